//! The hook's log file: one line per event, appended. Logging never fails a container: a log
//! that cannot be written is skipped.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::LogLevel;

pub struct Log {
    file: Option<PathBuf>,
    level: LogLevel,
}

impl Log {
    pub fn new(file: &Path, level: LogLevel) -> Log {
        let file = (!file.as_os_str().is_empty()).then(|| file.to_path_buf());
        Log { file, level }
    }

    pub fn write(&self, level: LogLevel, message: &str) {
        let Some(path) = &self.file else { return };
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
        if let Ok(mut file) = OpenOptions::new().create(true).append(true).open(path) {
            let _ = file.write_all(line.as_bytes());
        }
    }
}
