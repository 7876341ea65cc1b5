//! One [`Snapshot`]: NVML's view of the GPUs joined with what the host knows of each process.

use std::path::PathBuf;

use super::nvml::{GpuQuery, NvmlQueryError};
use super::owner::{locate, HostProcesses, Known, ProcessTable};
use super::state::{read_roots, StateRoot};
use super::{aggregate, docker, ProcessFacts, Snapshot};

/// Where the host's knowledge of processes and containers is read.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The procfs whose pids NVML's match: the host's `/proc`.
    pub proc_root: PathBuf,
    pub state_roots: Vec<StateRoot>,
    /// Docker's API socket; not asked when absent.
    pub docker_socket: Option<PathBuf>,
    /// gpuhook's MPS root, whose registrations record the caps (`memory.mps-root`).
    pub mps_root: Option<PathBuf>,
}

/// Reads the GPUs, then the runtimes' containers and Docker's names, and attributes every GPU
/// process. Only NVML failing fails it: an engine that cannot be asked gives no names.
pub fn snapshot(query: &GpuQuery, sources: &Sources) -> Result<Snapshot, NvmlQueryError> {
    let gpus = query.read()?;
    let processes = HostProcesses {
        root: sources.proc_root.clone(),
    };
    let docker_names = sources
        .docker_socket
        .as_deref()
        .filter(|socket| socket.exists())
        .and_then(|socket| docker::container_names(socket).ok())
        .unwrap_or_default();
    let known = Known {
        containers: locate(read_roots(&sources.state_roots), &processes),
        docker_names,
    };
    let mut usage = aggregate(&gpus, |pid| ProcessFacts {
        name: processes.name(pid),
        owner: known.owner(processes.cgroup_path(pid).as_deref()),
    });
    if let Some(root) = &sources.mps_root {
        let registrations: Vec<_> = crate::mps::MpsRoot::new(root)
            .registrations()
            .into_iter()
            .filter_map(|(_, r)| r)
            .collect();
        super::caps::attach(&mut usage, &registrations);
    }
    Ok(Snapshot { gpus, usage })
}
