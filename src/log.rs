//! The hook's log file: one line per event, appended. Logging never fails a container: a log
//! that cannot be written is skipped. The file is opened once, when the log is made: in the
//! hook's own mount namespace, before anything enters the container's (where the same path
//! could name another file).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

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
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let line = format!(
            "{}.{:03} gpuhook[{}] {:?}: {}\n",
            now.as_secs(),
            now.subsec_millis(),
            std::process::id(),
            level,
            message.replace('\n', " ")
        );
        // One write(2) per line: O_APPEND keeps lines of concurrent hooks whole.
        let _ = file.write_all(line.as_bytes());
    }
}
