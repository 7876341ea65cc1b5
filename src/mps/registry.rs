//! gpuhook's own state of capped containers and MPS pools, under `memory.mps-root`:
//!
//! ```text
//! <root>/lock                      flock: one gpuhook at a time changes anything below
//! <root>/containers/<key>.json     one registration per capped container
//! <root>/pools/<name>/pool.json    the pool's key, control binary and daemon
//! <root>/pools/<name>/pipe/        CUDA_MPS_PIPE_DIRECTORY of its daemon (mounted in containers)
//! <root>/pools/<name>/log/         CUDA_MPS_LOG_DIRECTORY of its daemon
//! ```
//!
//! The root and `pools/` are 0700: only root on the host reaches a pipe directory, except
//! through the mount a container is given.

use std::fs::File;
use std::hash::Hasher;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::pool::PoolKey;
use super::MpsError;

/// A process, told apart from a later one with the same pid by its start time (clock ticks
/// since boot, `/proc/<pid>/stat` field 22).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessId {
    pub pid: u32,
    pub start_time: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredGpu {
    pub index: u32,
    pub uuid: String,
    pub limit_bytes: Option<u64>,
}

/// A capped container: who it is, what it got, and the pool it uses (none when NVML's
/// memory limits cap it without MPS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub id: String,
    pub bundle: PathBuf,
    /// The container's init process.
    pub process: ProcessId,
    pub pool: Option<String>,
    /// `mps` or `nvml`: what enforces the memory caps.
    pub enforcement: String,
    pub gpus: Vec<RegisteredGpu>,
    pub compute_percent: Option<u8>,
}

impl Registration {
    /// The file name: a hash of the id and the bundle, since two runtimes (or runc roots) may
    /// use one id.
    pub fn key(id: &str, bundle: &Path) -> String {
        let mut hasher = fnv::FnvHasher::default();
        hasher.write(id.as_bytes());
        hasher.write(&[0]);
        hasher.write(bundle.as_os_str().as_encoded_bytes());
        format!("c{:016x}.json", hasher.finish())
    }
}

/// A pool as recorded when its daemon was started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolRecord {
    pub key: PoolKey,
    /// The driver's `nvidia-cuda-mps-control` that started it (and is told `quit`).
    pub control: PathBuf,
    /// `None` while it is being started.
    pub daemon: Option<ProcessId>,
}

#[derive(Debug, Clone)]
pub struct MpsRoot {
    pub dir: PathBuf,
}

/// The root's lock, held until dropped (the kernel drops it with a killed holder).
pub struct Locked {
    _file: File,
}

impl MpsRoot {
    pub fn new(dir: &Path) -> MpsRoot {
        MpsRoot {
            dir: dir.to_path_buf(),
        }
    }

    pub fn exists(&self) -> bool {
        self.dir.is_dir()
    }

    pub fn containers_dir(&self) -> PathBuf {
        self.dir.join("containers")
    }
    pub fn pools_dir(&self) -> PathBuf {
        self.dir.join("pools")
    }
    pub fn pool_dir(&self, name: &str) -> PathBuf {
        self.pools_dir().join(name)
    }
    pub fn pipe_dir(&self, name: &str) -> PathBuf {
        self.pool_dir(name).join("pipe")
    }
    pub fn log_dir(&self, name: &str) -> PathBuf {
        self.pool_dir(name).join("log")
    }

    /// Creates the root (0700) and takes its lock; `wait: false` gives `None` when another
    /// gpuhook holds it.
    pub fn lock(&self, wait: bool) -> Result<Option<Locked>, MpsError> {
        for dir in [&self.dir, &self.containers_dir(), &self.pools_dir()] {
            private_dir(dir)?;
        }
        let path = self.dir.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(MpsError::io(format!("open {}", path.display())))?;
        use rustix::fs::FlockOperation::{LockExclusive, NonBlockingLockExclusive};
        match rustix::fs::flock(
            &file,
            if wait {
                LockExclusive
            } else {
                NonBlockingLockExclusive
            },
        ) {
            Ok(()) => Ok(Some(Locked { _file: file })),
            Err(rustix::io::Errno::WOULDBLOCK) if !wait => Ok(None),
            Err(e) => Err(MpsError::io(format!("lock {}", path.display()))(e.into())),
        }
    }

    /// Every registration that parses (a torn or foreign file is skipped, and removed by the
    /// reaper as not a registration).
    pub fn registrations(&self) -> Vec<(PathBuf, Option<Registration>)> {
        json_files(&self.containers_dir())
            .into_iter()
            .map(|path| {
                let parsed = read_json(&path);
                (path, parsed)
            })
            .collect()
    }

    pub fn register(&self, registration: &Registration, _lock: &Locked) -> Result<(), MpsError> {
        let path = self
            .containers_dir()
            .join(Registration::key(&registration.id, &registration.bundle));
        write_json(&path, registration)
    }

    pub fn pool_names(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.pools_dir()) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        names
    }

    pub fn pool_record(&self, name: &str) -> Option<PoolRecord> {
        read_json(&self.pool_dir(name).join("pool.json"))
    }

    pub fn write_pool_record(&self, name: &str, record: &PoolRecord) -> Result<(), MpsError> {
        write_json(&self.pool_dir(name).join("pool.json"), record)
    }
}

/// A directory only root may enter (created when missing; an existing one is made 0700).
pub fn private_dir(dir: &Path) -> Result<(), MpsError> {
    use std::os::unix::fs::PermissionsExt;
    let what = || format!("create {}", dir.display());
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(MpsError::io(what()))
        }
        Err(e) => Err(MpsError::io(what())(e)),
    }
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// Our own small files; anything larger than this is not one.
const MAX_STATE_BYTES: u64 = 1 << 20;

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    use std::io::Read;
    let mut text = Vec::new();
    File::open(path)
        .ok()?
        .take(MAX_STATE_BYTES)
        .read_to_end(&mut text)
        .ok()?;
    serde_json::from_slice(&text).ok()
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), MpsError> {
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| MpsError::io(format!("serialise {}", path.display()))(e.into()))?;
    crate::fsutil::write_atomically(path, &bytes, crate::fsutil::Mode::Exactly(0o600), false)
        .map_err(MpsError::io(format!("write {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(id: &str) -> Registration {
        Registration {
            id: id.into(),
            bundle: "/b".into(),
            process: ProcessId {
                pid: 1,
                start_time: 2,
            },
            pool: Some("p1".into()),
            enforcement: "mps".into(),
            gpus: vec![RegisteredGpu {
                index: 0,
                uuid: "GPU-0".into(),
                limit_bytes: Some(1 << 30),
            }],
            compute_percent: None,
        }
    }

    #[test]
    fn registrations_round_trip_under_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let root = MpsRoot::new(&dir.path().join("mps"));
        assert!(!root.exists());
        let lock = root.lock(true).unwrap().unwrap();
        // A second taker does not get it while it is held.
        assert!(root.lock(false).unwrap().is_none());
        root.register(&registration("a"), &lock).unwrap();
        root.register(&registration("b"), &lock).unwrap();
        std::fs::write(root.containers_dir().join("torn.json"), b"{").unwrap();
        let found: Vec<Option<String>> = root
            .registrations()
            .into_iter()
            .map(|(_, r)| r.map(|r| r.id))
            .collect();
        assert_eq!(found.len(), 3);
        assert!(found.contains(&Some("a".into())) && found.contains(&None));
        drop(lock);
        assert!(root.lock(false).unwrap().is_some());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&root.dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn keys_tell_apart_one_id_in_two_bundles() {
        let a = Registration::key("web", Path::new("/run/a"));
        assert_eq!(a, Registration::key("web", Path::new("/run/a")));
        assert_ne!(a, Registration::key("web", Path::new("/run/b")));
        assert_ne!(a, Registration::key("web2", Path::new("/run/a")));
        assert!(a.starts_with('c') && a.ends_with(".json"));
    }
}
