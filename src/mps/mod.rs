//! MPS control daemons that gpuhook starts and stops for capped containers.
//!
//! Containers with the same GPUs, memory caps and compute share form a pool ([`pool`]) and
//! share one daemon, started with the pool's defaults on the first container's start and told
//! `quit` when the last one is gone. Every change happens under the root's lock
//! ([`registry`]), so parallel starts and stops see each other's work whole:
//! - [`join`]: reap, make sure the pool's daemon runs (starting it and sending its defaults
//!   before its pipe directory is given to anyone), register the container;
//! - [`leave`]: unregister a container (the poststop hook), then reap;
//! - [`reap`]: drop registrations whose container process is gone (pid and start time), stop
//!   pools nobody uses, and remove what a killed gpuhook left half made. It runs in every
//!   hook run and as `gpuhook mps reap`.

pub mod daemon;
pub mod pool;
pub mod procs;
pub mod registry;

use std::path::{Path, PathBuf};

pub use pool::{PoolGpu, PoolKey};
pub use registry::{MpsRoot, PoolRecord, ProcessId, RegisteredGpu, Registration};

#[derive(Debug, thiserror::Error)]
pub enum MpsError {
    #[error("MPS: cannot {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("MPS control daemon {}: {problem}", control.display())]
    Daemon { control: PathBuf, problem: String },
    #[error("MPS pool {name}: {} holds another pool's key; remove it (gpuhook mps reap, then rm -r) and retry", dir.display())]
    Collision { name: String, dir: PathBuf },
}

impl MpsError {
    pub fn io(what: String) -> impl FnOnce(std::io::Error) -> MpsError {
        move |source| MpsError::Io { what, source }
    }
}

/// How to start a pool's daemon.
pub struct DaemonLaunch<'a> {
    pub control: &'a Path,
    /// `LD_LIBRARY_PATH` for it: the driver's library directory.
    pub library_dirs: String,
}

/// Registers the container and, when it has a pool, makes sure the pool's daemon runs;
/// returns the pool's pipe directory.
pub fn join(
    root: &MpsRoot,
    registration: &Registration,
    pool: Option<(&PoolKey, &DaemonLaunch)>,
) -> Result<Option<PathBuf>, MpsError> {
    let lock = root.lock(true)?.ok_or_else(|| MpsError::Io {
        what: "lock the MPS root".into(),
        source: std::io::ErrorKind::WouldBlock.into(),
    })?;
    reap_locked(root);
    let pipe = match pool {
        Some((key, launch)) => Some(ensure_pool(root, key, launch)?),
        None => None,
    };
    root.register(registration, &lock)?;
    Ok(pipe)
}

/// The pool's directory with a serving daemon that was given the pool's defaults.
fn ensure_pool(root: &MpsRoot, key: &PoolKey, launch: &DaemonLaunch) -> Result<PathBuf, MpsError> {
    let name = key.name();
    let pipe = root.pipe_dir(&name);
    match root.pool_record(&name) {
        Some(record) if record.key != *key => {
            return Err(MpsError::Collision {
                dir: root.pool_dir(&name),
                name,
            })
        }
        Some(PoolRecord {
            daemon: Some(daemon),
            ..
        }) if procs::alive(daemon) => return Ok(pipe),
        // Half made by a killed gpuhook, or its daemon died: start afresh in the same place.
        Some(record) => daemon::stop(Some(&record.control), &pipe, record.daemon),
        None if root.pool_dir(&name).exists() => daemon::stop(None, &pipe, None),
        None => {}
    }
    let log = root.log_dir(&name);
    registry::private_dir(&root.pool_dir(&name))?;
    for dir in [&pipe, &log] {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir(dir).map_err(MpsError::io(format!("create {}", dir.display())))?;
    }
    let mut record = PoolRecord {
        key: key.clone(),
        control: launch.control.to_path_buf(),
        daemon: None,
    };
    root.write_pool_record(&name, &record)?;
    record.daemon = Some(daemon::start(
        launch.control,
        key,
        &pipe,
        &log,
        &launch.library_dirs,
    )?);
    root.write_pool_record(&name, &record)?;
    Ok(pipe)
}

/// Unregisters the container `id` of `bundle` (nothing when it has no registration), then
/// reaps. Returns whether it was registered.
pub fn leave(root: &MpsRoot, id: &str, bundle: &Path) -> Result<bool, MpsError> {
    if !root.exists() {
        return Ok(false);
    }
    let _lock = root.lock(true)?;
    let path = root.containers_dir().join(Registration::key(id, bundle));
    let found = std::fs::remove_file(&path).is_ok();
    reap_locked(root);
    Ok(found)
}

/// What a reap removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reaped {
    /// Container ids whose process was gone.
    pub registrations: Vec<String>,
    /// Pools stopped and removed.
    pub pools: Vec<String>,
}

/// Reaps (see the module docs). With `wait: false` it gives up at once when another gpuhook
/// holds the lock (that one reaps anyway).
pub fn reap(root: &MpsRoot, wait: bool) -> Result<Reaped, MpsError> {
    if !root.exists() {
        return Ok(Reaped::default());
    }
    match root.lock(wait)? {
        Some(_lock) => Ok(reap_locked(root)),
        None => Ok(Reaped::default()),
    }
}

fn reap_locked(root: &MpsRoot) -> Reaped {
    let mut reaped = Reaped::default();
    let mut in_use: Vec<String> = Vec::new();
    for (path, registration) in root.registrations() {
        match registration {
            Some(r) if procs::alive(r.process) => in_use.extend(r.pool),
            other => {
                let _ = std::fs::remove_file(&path);
                reaped.registrations.extend(other.map(|r| r.id));
            }
        }
    }
    for name in root.pool_names() {
        if in_use.contains(&name) {
            continue;
        }
        let record = root.pool_record(&name);
        daemon::stop(
            record.as_ref().map(|r| r.control.as_path()),
            &root.pipe_dir(&name),
            record.as_ref().and_then(|r| r.daemon),
        );
        let _ = std::fs::remove_dir_all(root.pool_dir(&name));
        reaped.pools.push(name);
    }
    reaped
}
