//! What makes containers share one MPS control daemon, a pool: the same GPUs (in the same
//! order), the same memory cap on each and the same compute share. The pool's name is derived
//! from those alone, so every hook run for such a container finds the same daemon.

use std::hash::Hasher;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::request::memory::format_size;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolGpu {
    pub uuid: String,
    /// The pinned-memory limit each client of the pool gets on this GPU.
    pub limit_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolKey {
    pub gpus: Vec<PoolGpu>,
    pub compute_percent: Option<u8>,
}

impl PoolKey {
    /// Every field, in one line: what the name is a hash of.
    pub fn canonical(&self) -> String {
        let gpus: Vec<String> = self
            .gpus
            .iter()
            .map(|g| {
                let limit = g.limit_bytes.map_or("-".to_string(), |b| b.to_string());
                format!("{}={limit}", g.uuid.to_ascii_uppercase())
            })
            .collect();
        let compute = self
            .compute_percent
            .map_or("-".to_string(), |p| p.to_string());
        format!("gpus={};compute={compute}", gpus.join(","))
    }

    /// `p` and 16 hex digits of the FNV-1a hash of [`canonical`](Self::canonical): short
    /// enough that the daemon's socket paths stay within a unix socket's 108 bytes. FNV is
    /// defined bit for bit, so the name does not change between gpuhook builds.
    pub fn name(&self) -> String {
        let mut hasher = fnv::FnvHasher::default();
        hasher.write(self.canonical().as_bytes());
        format!("p{:016x}", hasher.finish())
    }

    /// The control daemon's whole environment: nothing of the hook's or a container's.
    pub fn daemon_env(&self, pipe: &Path, log: &Path, library_dirs: &str) -> Vec<(String, String)> {
        let uuids: Vec<&str> = self.gpus.iter().map(|g| g.uuid.as_str()).collect();
        vec![
            ("CUDA_MPS_PIPE_DIRECTORY".into(), pipe.display().to_string()),
            ("CUDA_MPS_LOG_DIRECTORY".into(), log.display().to_string()),
            ("CUDA_VISIBLE_DEVICES".into(), uuids.join(",")),
            ("LD_LIBRARY_PATH".into(), library_dirs.to_string()),
            ("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into()),
        ]
    }

    /// What the daemon is told before any client can reach it. The daemon sees only the pool's
    /// GPUs, renumbered from 0 in `CUDA_VISIBLE_DEVICES` order, so GPU `i` of the pool is
    /// device `i` there.
    pub fn default_commands(&self) -> Vec<String> {
        let mut commands: Vec<String> = self
            .gpus
            .iter()
            .enumerate()
            .filter_map(|(device, g)| {
                // `2G` as MPS's own documentation writes it; `1536M` when not whole GiB.
                g.limit_bytes.map(|bytes| {
                    format!(
                        "set_default_device_pinned_mem_limit {device} {}",
                        format_size(bytes)
                    )
                })
            })
            .collect();
        if let Some(percent) = self.compute_percent {
            commands.push(format!("set_default_active_thread_percentage {percent}"));
        }
        commands
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(limits: &[Option<u64>], compute: Option<u8>) -> PoolKey {
        PoolKey {
            gpus: limits
                .iter()
                .enumerate()
                .map(|(i, l)| PoolGpu {
                    uuid: format!("GPU-{i}"),
                    limit_bytes: *l,
                })
                .collect(),
            compute_percent: compute,
        }
    }

    #[test]
    fn one_name_per_gpu_set_cap_and_share() {
        let two_g = key(&[Some(2 << 30)], None);
        assert_eq!(two_g.name(), key(&[Some(2 << 30)], None).name());
        assert_eq!(two_g.name().len(), 17);
        let others = [
            key(&[Some(4 << 30)], None),
            key(&[Some(2 << 30)], Some(50)),
            key(&[Some(2 << 30), None], None),
            key(&[None], Some(50)),
        ];
        for other in &others {
            assert_ne!(two_g.name(), other.name(), "{}", other.canonical());
        }
        // Fixed forever: a pool started by an older gpuhook is found by a newer one.
        assert_eq!(two_g.canonical(), "gpus=GPU-0=2147483648;compute=-");
        assert_eq!(two_g.name(), "p1b8977c8b8a4b616");
    }

    #[test]
    fn defaults_per_device_ordinal_and_the_share() {
        let k = key(&[None, Some(3 << 30)], Some(25));
        assert_eq!(
            k.default_commands(),
            [
                "set_default_device_pinned_mem_limit 1 3G",
                "set_default_active_thread_percentage 25"
            ]
        );
        let env = k.daemon_env(Path::new("/p"), Path::new("/l"), "/lib");
        assert!(env.contains(&("CUDA_VISIBLE_DEVICES".into(), "GPU-0,GPU-1".into())));
        assert_eq!(env.len(), 5);
    }
}
