//! Which container uses how much GPU memory.
//!
//! NVML lists each GPU's processes (compute, graphics and MPS clients) by host pid and memory
//! ([`nvml`]); each pid is attributed to the container it runs in through its cgroup and the
//! runtimes' state ([`owner`], [`cgroup`], [`state`]), with Docker's names for its containers
//! ([`docker`]); [`aggregate`] sums them per (container, GPU). That is `gpuhook ps`; rendered
//! as Prometheus text ([`prometheus`]) it is `gpuhook metrics`. Everything after the NVML
//! query works on plain values.

pub mod caps;
pub mod cgroup;
mod collect;
pub mod docker;
pub mod nvml;
pub mod owner;
pub mod prometheus;
pub mod state;

use std::collections::{BTreeMap, BTreeSet};

pub use collect::{snapshot, Sources};

/// How a process uses a GPU, as NVML's three process lists tell (nvidia-smi's `C`, `G`, `M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProcessKind {
    Compute,
    Graphics,
    /// A client of the MPS server (nvidia-smi's `M+C`): counted for its own container.
    MpsClient,
}

impl ProcessKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessKind::Compute => "compute",
            ProcessKind::Graphics => "graphics",
            ProcessKind::MpsClient => "mps-client",
        }
    }
}

/// One process on one GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuProcess {
    /// As the host's pid namespace sees it.
    pub pid: u32,
    /// `None` where the driver does not say (NVML's "not available").
    pub memory_used_bytes: Option<u64>,
    pub kinds: BTreeSet<ProcessKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utilization {
    /// Percent of the last sample period a kernel ran.
    pub gpu_percent: u32,
    /// Percent of it device memory was read or written.
    pub memory_percent: u32,
}

/// One GPU as NVML reports it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuStatus {
    /// NVML's index: PCI bus order, as `nvidia-smi` and gpuhook number GPUs.
    pub index: u32,
    pub uuid: String,
    /// `None` where the GPU does not report memory.
    pub memory_total_bytes: Option<u64>,
    pub memory_used_bytes: Option<u64>,
    /// `None` where the GPU does not report it.
    pub utilization: Option<Utilization>,
    /// Each pid once, in pid order.
    pub processes: Vec<GpuProcess>,
}

/// A container a process runs in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Container {
    /// The full id (the runtime's; for Docker, containerd's CRI, CRI-O and Podman 64 hex digits).
    pub id: String,
    /// `docker`, `containerd`, `cri-o`, `podman`, `runc`; `None` when only a shared naming
    /// scheme (Kubernetes' cgroupfs layout) points at it.
    pub runtime: Option<String>,
    /// containerd's namespace, when the state came from one.
    pub namespace: Option<String>,
    /// The engine's name for it (Docker's, or Kubernetes' `namespace/pod/container`).
    pub name: Option<String>,
}

impl Container {
    /// The first 12 characters of an engine's hex id, as `docker ps` shows it; any other id
    /// (plain runc's are chosen by whoever ran it) whole.
    pub fn short_id(&self) -> &str {
        let hex = self.id.len() == 64 && self.id.bytes().all(|b| b.is_ascii_hexdigit());
        if hex {
            &self.id[..12]
        } else {
            &self.id
        }
    }
}

/// Whose a process is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Owner {
    Container(Container),
    /// In no container.
    Host,
    /// Its `/proc` entry could not be read: it exited, or gpuhook runs in another pid
    /// namespace than the driver reports pids in.
    Unknown,
}

/// A process of a [`Usage`] row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageProcess {
    pub pid: u32,
    pub name: Option<String>,
    pub memory_used_bytes: Option<u64>,
    pub kinds: BTreeSet<ProcessKind>,
}

/// One row of `gpuhook ps`: what one container's processes (or the host's) use on one GPU,
/// and the cap gpuhook gave that container on that GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub owner: Owner,
    pub gpu_index: u32,
    pub gpu_uuid: String,
    /// The sum over its processes of what the driver reports.
    pub memory_used_bytes: u64,
    /// In pid order.
    pub processes: Vec<UsageProcess>,
    /// The memory cap gpuhook's registration of the container records for this GPU.
    pub memory_cap_bytes: Option<u64>,
}

/// What `gpuhook ps` and `gpuhook metrics` show at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub gpus: Vec<GpuStatus>,
    pub usage: Vec<Usage>,
}

/// What is known about a process besides NVML's view: its name and owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessFacts {
    pub name: Option<String>,
    pub owner: Owner,
}

/// Sums each GPU's processes per owner: one [`Usage`] per (owner, GPU) that has a process,
/// containers first (by id), then the host, then unknown owners; GPUs in index order within.
pub fn aggregate(gpus: &[GpuStatus], facts: impl Fn(u32) -> ProcessFacts) -> Vec<Usage> {
    let mut rows: BTreeMap<(Owner, u32), Usage> = BTreeMap::new();
    for gpu in gpus {
        for process in &gpu.processes {
            let ProcessFacts { name, owner } = facts(process.pid);
            let row = rows
                .entry((owner.clone(), gpu.index))
                .or_insert_with(|| Usage {
                    owner,
                    gpu_index: gpu.index,
                    gpu_uuid: gpu.uuid.clone(),
                    memory_used_bytes: 0,
                    processes: Vec::new(),
                    memory_cap_bytes: None,
                });
            row.memory_used_bytes += process.memory_used_bytes.unwrap_or(0);
            row.processes.push(UsageProcess {
                pid: process.pid,
                name,
                memory_used_bytes: process.memory_used_bytes,
                kinds: process.kinds.clone(),
            });
        }
    }
    let mut usage: Vec<Usage> = rows.into_values().collect();
    for row in &mut usage {
        row.processes.sort_by_key(|p| p.pid);
    }
    usage
}

#[cfg(test)]
mod tests;
