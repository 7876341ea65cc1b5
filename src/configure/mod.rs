//! `gpuhook configure`: register gpuhook-runtime with a container engine by editing its config
//! file, keeping every other key and, as far as the format allows, its formatting (key order
//! and indentation for JSON; comments and layout for TOML). Re-running changes nothing.

pub mod containerd;
mod crio;
mod docker;

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

/// What `apply_removal` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Removal {
    /// No such entry (or no file).
    NotPresent,
    /// The entry was taken out.
    Written,
    /// The entry was all the file held: the file was removed.
    FileRemoved,
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
    let backup = match current {
        Some(_) => {
            let mut name = path.as_os_str().to_owned();
            name.push(".gpuhook-backup");
            let backup = PathBuf::from(name);
            std::fs::copy(path, &backup).map_err(|source| ConfigureError::Write {
                path: backup.clone(),
                source,
            })?;
            Some(backup)
        }
        None => None,
    };
    write_atomically(path, &new)?;
    Ok(Outcome::Written { backup })
}

/// The file's text without the runtime entry `name` (and without `name` as the default
/// runtime); `None` when nothing else is left in it.
pub fn render_removal(
    engine: Engine,
    current: &str,
    path: &Path,
    name: &str,
) -> Result<Option<String>, ConfigureError> {
    match engine {
        Engine::Docker => docker::render_removal(current, path, name),
        Engine::Containerd => containerd::render_removal(current, path, name),
        Engine::Crio => crio::render_removal(current, path, name),
    }
}

/// Undoes `apply` (package removal): takes the entry out, or removes the file when the entry
/// was all it held. No backup: this is the inverse of gpuhook's own edit.
pub fn apply_removal(engine: Engine, path: &Path, name: &str) -> Result<Removal, ConfigureError> {
    let Some(current) = read_current(path)? else {
        return Ok(Removal::NotPresent);
    };
    match render_removal(engine, &current, path, name)? {
        Some(new) if new == current => Ok(Removal::NotPresent),
        Some(new) => {
            write_atomically(path, &new)?;
            Ok(Removal::Written)
        }
        None => {
            std::fs::remove_file(path).map_err(|source| ConfigureError::Write {
                path: path.to_path_buf(),
                source,
            })?;
            Ok(Removal::FileRemoved)
        }
    }
}

/// Writes next to the file, keeping its permissions, then renames over it.
fn write_atomically(path: &Path, text: &str) -> Result<(), ConfigureError> {
    crate::fsutil::write_atomically(
        path,
        text.as_bytes(),
        crate::fsutil::Mode::KeepOr(0o644),
        true,
    )
    .map_err(|source| ConfigureError::Write {
        path: path.to_path_buf(),
        source,
    })
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

/// The error for a key that holds something else than the table gpuhook edits there.
fn not_a_table(path: &Path, what: &str) -> ConfigureError {
    ConfigureError::Unsupported {
        path: path.to_path_buf(),
        message: format!("{what} is not a table"),
    }
}

/// `table[key]`, created as an implicit table (no header of its own) when absent; `None`
/// when the key holds something else than a table.
fn sub_table<'a>(table: &'a mut toml_edit::Table, key: &str) -> Option<&'a mut toml_edit::Table> {
    table
        .entry(key)
        .or_insert_with(|| {
            let mut new = toml_edit::Table::new();
            new.set_implicit(true);
            toml_edit::Item::Table(new)
        })
        .as_table_mut()
}

/// Removes `tables...runtimes.<name>` and, when it names `name`, the `default_key` of the
/// table holding `runtimes`; `None` when no value is left but `ignored` top-level keys.
fn remove_toml_runtime(
    current: &str,
    path: &Path,
    tables: &[&str],
    default_key: &str,
    name: &str,
    ignored: &[&str],
) -> Result<Option<String>, ConfigureError> {
    let mut doc = parse_toml(current, path)?;
    let parent = tables.iter().try_fold(doc.as_table_mut(), |table, key| {
        table.get_mut(key).and_then(toml_edit::Item::as_table_mut)
    });
    if let Some(parent) = parent {
        if let Some(runtimes) = parent
            .get_mut("runtimes")
            .and_then(toml_edit::Item::as_table_mut)
        {
            runtimes.remove(name);
        }
        if parent.get(default_key).and_then(toml_edit::Item::as_str) == Some(name) {
            parent.remove(default_key);
        }
    }
    let holds_values = doc
        .as_table()
        .iter()
        .any(|(key, item)| !ignored.contains(&key) && item_holds_values(item));
    Ok(holds_values.then(|| doc.to_string()))
}

/// Whether an item is a value, or a table with a value somewhere below.
fn item_holds_values(item: &toml_edit::Item) -> bool {
    match item {
        toml_edit::Item::None => false,
        toml_edit::Item::Table(table) => table.iter().any(|(_, i)| item_holds_values(i)),
        _ => true,
    }
}

#[cfg(test)]
mod tests;
