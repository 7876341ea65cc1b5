//! Failures reported the way runc reports them. containerd does not show a runtime's stderr:
//! it reads the last error from the file runc was given with `--log` (JSON lines with
//! `--log-format json`, logrus text otherwise) and puts that in `docker run`'s error. The shim
//! writes its own failures there too, so users see gpuhook's message, not "log.json: no such
//! file".

use std::io::Write;

use serde_json::json;

use super::RuncInvocation;

/// Appends `message` as an error entry to the invocation's `--log` file, if it has one.
pub fn record_failure(invocation: &RuncInvocation, message: &str) -> std::io::Result<()> {
    let Some(path) = &invocation.log_file else {
        return Ok(());
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(format_entry(invocation.log_format.as_deref(), message).as_bytes())
}

fn format_entry(format: Option<&str>, message: &str) -> String {
    match format {
        Some("json") => format!("{}\n", json!({ "level": "error", "msg": message })),
        // logrus's text form; `{:?}` quotes and escapes like Go's %q for what we write.
        _ => format!("level=error msg={message:?}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_entry_is_one_parseable_line() {
        let line = format_entry(Some("json"), "GPU 7 requested, \"quoted\"");
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(entry["level"], "error");
        assert_eq!(entry["msg"], "GPU 7 requested, \"quoted\"");
    }

    #[test]
    fn text_entry_quotes_the_message() {
        assert_eq!(
            format_entry(None, "no runc"),
            "level=error msg=\"no runc\"\n"
        );
    }

    #[test]
    fn appends_to_the_log_file_named_by_runc_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.json");
        std::fs::write(&path, "{\"level\":\"info\",\"msg\":\"earlier\"}\n").unwrap();
        let invocation = RuncInvocation {
            log_file: Some(path.clone()),
            log_format: Some("json".into()),
            ..Default::default()
        };
        record_failure(&invocation, "boom").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.lines().last().unwrap().contains("\"msg\":\"boom\""));
    }
}
