//! `gpuhook configure`: register gpuhook-runtime with a container engine by editing its config
//! file, keeping every other key and, as far as the format allows, its formatting (key order
//! and indentation for JSON; comments and layout for TOML). Re-running changes nothing.

mod containerd;
mod crio;
mod docker;

use std::io::Write;
use std::path::{Path, PathBuf};

/// The engines gpuhook-runtime can be registered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    Docker,
    Containerd,
    Crio,
}

impl Engine {
    pub fn default_config_path(self) -> &'static Path {
        Path::new(match self {
            Engine::Docker => "/etc/docker/daemon.json",
            Engine::Containerd => "/etc/containerd/config.toml",
            Engine::Crio => "/etc/crio/crio.conf.d/99-gpuhook.conf",
        })
    }

    pub fn restart_hint(self) -> &'static str {
        match self {
            Engine::Docker => "restart dockerd (systemctl restart docker) to load it",
            Engine::Containerd => "restart containerd (systemctl restart containerd) to load it",
            Engine::Crio => "restart CRI-O (systemctl restart crio) to load it",
        }
    }
}

/// What to register.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Name of the runtime entry (`gpuhook`).
    pub name: String,
    /// Path of the gpuhook-runtime binary.
    pub runtime_path: PathBuf,
    pub set_as_default: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigureError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not valid {format} ({message}); it was left unchanged: fix it and run again"
    )]
    Malformed {
        path: PathBuf,
        format: &'static str,
        message: String,
    },
    #[error("{path}: {message}; it was left unchanged")]
    Unsupported { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The file's new text, from its current text (empty when the file does not exist).
pub fn render(
    engine: Engine,
    current: &str,
    path: &Path,
    registration: &Registration,
) -> Result<String, ConfigureError> {
    match engine {
        Engine::Docker => docker::render(current, path, registration),
        Engine::Containerd => containerd::render(current, path, registration),
        Engine::Crio => crio::render(current, path, registration),
    }
}

/// What `apply` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    AlreadyConfigured,
    /// Written; the previous file (if any) saved at the backup path.
    Written {
        backup: Option<PathBuf>,
    },
}

/// Reads `path`, renders, and (unless nothing changed) backs up and writes atomically.
pub fn apply(
    engine: Engine,
    path: &Path,
    registration: &Registration,
) -> Result<Outcome, ConfigureError> {
    let current = read_current(path)?;
    let new = render(engine, current.as_deref().unwrap_or(""), path, registration)?;
    if current.as_deref() == Some(new.as_str()) {
        return Ok(Outcome::AlreadyConfigured);
    }
    let write_error = |source| ConfigureError::Write {
        path: path.to_path_buf(),
        source,
    };
    let backup = match current {
        Some(_) => {
            let mut name = path.as_os_str().to_owned();
            name.push(".gpuhook-backup");
            let backup = PathBuf::from(name);
            std::fs::copy(path, &backup).map_err(write_error)?;
            Some(backup)
        }
        None => None,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(write_error)?;
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(write_error)?;
    file.write_all(new.as_bytes()).map_err(write_error)?;
    if let Ok(meta) = std::fs::metadata(path) {
        std::fs::set_permissions(file.path(), meta.permissions()).map_err(write_error)?;
    }
    file.persist(path).map_err(|e| write_error(e.error))?;
    Ok(Outcome::Written { backup })
}

/// The current text, or `None` when there is no file yet.
pub fn read_current(path: &Path) -> Result<Option<String>, ConfigureError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigureError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Parses a TOML engine config for editing in place (comments and layout kept).
fn parse_toml(current: &str, path: &Path) -> Result<toml_edit::DocumentMut, ConfigureError> {
    current
        .parse()
        .map_err(|e: toml_edit::TomlError| ConfigureError::Malformed {
            path: path.to_path_buf(),
            format: "TOML",
            message: e.message().to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn registration(set_as_default: bool) -> Registration {
        Registration {
            name: "gpuhook".into(),
            runtime_path: PathBuf::from("/usr/bin/gpuhook-runtime"),
            set_as_default,
        }
    }

    #[test]
    fn apply_backs_up_writes_and_then_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("daemon.json");
        std::fs::write(&path, "{\n  \"debug\": true\n}\n").unwrap();
        let outcome = apply(Engine::Docker, &path, &registration(false)).unwrap();
        let backup = dir.path().join("daemon.json.gpuhook-backup");
        assert_eq!(
            outcome,
            Outcome::Written {
                backup: Some(backup.clone())
            }
        );
        assert_eq!(
            std::fs::read_to_string(&backup).unwrap(),
            "{\n  \"debug\": true\n}\n"
        );
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(written.contains("gpuhook-runtime"), "{written}");
        assert_eq!(
            apply(Engine::Docker, &path, &registration(false)).unwrap(),
            Outcome::AlreadyConfigured
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), written);
    }

    #[test]
    fn a_missing_file_is_created_without_backup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("containerd/config.toml");
        assert_eq!(
            apply(Engine::Containerd, &path, &registration(true)).unwrap(),
            Outcome::Written { backup: None }
        );
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("BinaryName = \"/usr/bin/gpuhook-runtime\""));
    }

    #[test]
    fn malformed_files_are_refused_and_left_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        for (engine, name, text) in [
            (Engine::Docker, "daemon.json", "{ \"debug\": tru"),
            (Engine::Docker, "list.json", "[1, 2]"),
            (Engine::Containerd, "config.toml", "version = 2\n[plugins\n"),
            (Engine::Crio, "crio.conf", "[crio.runtime\n"),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let err = apply(engine, &path, &registration(false))
                .unwrap_err()
                .to_string();
            assert!(err.contains("left unchanged"), "{name}: {err}");
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                text,
                "{name} modified"
            );
            assert!(!dir.path().join(format!("{name}.gpuhook-backup")).exists());
        }
    }
}
