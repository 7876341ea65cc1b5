//! The hook's log file: one line per event, appended. Logging never fails a container: a log
//! that cannot be written is skipped. The file is opened once, when the log is made: in the
//! hook's own mount namespace, before anything enters the container's (where the same path
//! could name another file).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use crate::config::LogLevel;

pub struct Log {
    file: Option<File>,
    level: LogLevel,
}

impl Log {
    pub fn new(path: &Path, level: LogLevel) -> Log {
        let file = (!path.as_os_str().is_empty())
            .then(|| OpenOptions::new().create(true).append(true).open(path).ok())
            .flatten();
        Log { file, level }
    }

    pub fn write(&self, level: LogLevel, message: &str) {
        let Some(mut file) = self.file.as_ref() else {
            return;
        };
        if level > self.level {
            return;
        }
        let line = format!(
            "{} gpuhook[{}] {:?}: {}\n",
            timestamp(SystemTime::now()),
            std::process::id(),
            level,
            message.replace('\n', " ")
        );
        // One write(2) per line: O_APPEND keeps lines of concurrent hooks whole.
        let _ = file.write_all(line.as_bytes());
    }
}

/// RFC 3339 in UTC with milliseconds (`2026-12-01T20:19:14.123Z`): what people and journald
/// readers expect, sortable as text.
fn timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn timestamps_are_rfc3339_utc_milliseconds() {
        let time = UNIX_EPOCH + Duration::from_millis(1_796_156_354_123);
        assert_eq!(timestamp(time), "2026-12-01T20:19:14.123Z");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn a_log_line_starts_with_the_timestamp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gpuhook.log");
        Log::new(&path, LogLevel::Info).write(LogLevel::Info, "container=c1 two\nlines");
        let text = std::fs::read_to_string(&path).unwrap();
        let (stamp, rest) = text.split_once(' ').unwrap();
        assert!(
            humantime::parse_rfc3339(stamp).is_ok() && stamp.ends_with('Z') && stamp.len() == 24,
            "{text}"
        );
        assert_eq!(
            rest,
            format!(
                "gpuhook[{}] Info: container=c1 two lines\n",
                std::process::id()
            )
        );
    }
}
