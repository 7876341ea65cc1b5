//! Docker's `daemon.json`: `"runtimes": {"gpuhook": {"path": ...}}`, optionally
//! `"default-runtime": "gpuhook"`. Key order is kept (serde_json `preserve_order`) and the
//! file's indentation reused.

use std::path::Path;

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{ConfigureError, Registration};

pub fn render(
    current: &str,
    path: &Path,
    registration: &Registration,
) -> Result<String, ConfigureError> {
    let mut root = parse(current, path)?;
    let runtimes = root
        .entry("runtimes")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| ConfigureError::Unsupported {
            path: path.to_path_buf(),
            message: "\"runtimes\" is not an object".into(),
        })?;
    let entry = runtimes
        .entry(registration.name.clone())
        .or_insert_with(|| json!({}));
    let entry = entry
        .as_object_mut()
        .ok_or_else(|| ConfigureError::Unsupported {
            path: path.to_path_buf(),
            message: format!("runtimes.{} is not an object", registration.name),
        })?;
    entry.insert("path".into(), json!(registration.runtime_path));
    if registration.set_as_default {
        root.insert("default-runtime".into(), json!(registration.name));
    }
    serialize(root, current, path)
}

/// Removes `runtimes.<name>` (and `runtimes` when it empties, `default-runtime` when it is
/// `name`); `None` when the object is then empty.
pub fn render_removal(
    current: &str,
    path: &Path,
    name: &str,
) -> Result<Option<String>, ConfigureError> {
    let mut root = parse(current, path)?;
    if let Some(Value::Object(runtimes)) = root.get_mut("runtimes") {
        runtimes.shift_remove(name);
        if runtimes.is_empty() {
            root.shift_remove("runtimes");
        }
    }
    if root.get("default-runtime").and_then(Value::as_str) == Some(name) {
        root.shift_remove("default-runtime");
    }
    if root.is_empty() {
        return Ok(None);
    }
    serialize(root, current, path).map(Some)
}

fn parse(current: &str, path: &Path) -> Result<Map<String, Value>, ConfigureError> {
    if current.trim().is_empty() {
        return Ok(Map::new());
    }
    let value: Value = serde_json::from_str(current).map_err(|e| ConfigureError::Malformed {
        path: path.to_path_buf(),
        format: "JSON",
        message: e.to_string(),
    })?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ConfigureError::Unsupported {
            path: path.to_path_buf(),
            message: "the top level is not a JSON object".into(),
        }),
    }
}

/// Pretty JSON with the indentation `current` uses, and a final newline.
fn serialize(
    root: Map<String, Value>,
    current: &str,
    path: &Path,
) -> Result<String, ConfigureError> {
    let indent = detect_indent(current);
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    Value::Object(root)
        .serialize(&mut serializer)
        .map_err(|e| ConfigureError::Unsupported {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    out.push(b'\n');
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The indentation of the first indented line (Docker's docs use tabs, 2 or 4 spaces).
fn detect_indent(text: &str) -> String {
    text.lines()
        .map(|l| &l[..l.len() - l.trim_start().len()])
        .find(|ws| !ws.is_empty())
        .unwrap_or("    ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::super::tests::registration;
    use super::*;

    const SAMPLE: &str = r#"{
  "log-driver": "json-file",
  "log-opts": {
    "max-size": "10m"
  },
  "runtimes": {
    "kata": {
      "path": "/usr/bin/kata-runtime"
    }
  },
  "storage-driver": "overlay2"
}
"#;

    #[test]
    fn adds_the_runtime_keeping_everything_else() {
        let out = render(SAMPLE, Path::new("daemon.json"), &registration(false)).unwrap();
        assert_eq!(
            out,
            r#"{
  "log-driver": "json-file",
  "log-opts": {
    "max-size": "10m"
  },
  "runtimes": {
    "kata": {
      "path": "/usr/bin/kata-runtime"
    },
    "gpuhook": {
      "path": "/usr/bin/gpuhook-runtime"
    }
  },
  "storage-driver": "overlay2"
}
"#
        );
        assert_eq!(
            render(&out, Path::new("d"), &registration(false)).unwrap(),
            out,
            "re-running is a no-op"
        );
    }

    #[test]
    fn set_as_default_and_empty_files() {
        let out = render("", Path::new("d"), &registration(true)).unwrap();
        let value: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value["default-runtime"], "gpuhook");
        assert_eq!(
            value["runtimes"]["gpuhook"]["path"],
            "/usr/bin/gpuhook-runtime"
        );
        assert!(
            out.starts_with("{\n    \""),
            "four spaces when nothing to copy: {out}"
        );
    }

    #[test]
    fn wrong_shapes_are_refused() {
        assert!(render("{\"runtimes\": []}", Path::new("d"), &registration(false)).is_err());
        assert!(render(
            "{\"runtimes\": {\"gpuhook\": 1}}",
            Path::new("d"),
            &registration(false)
        )
        .is_err());
    }
}
