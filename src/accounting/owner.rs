//! Whose is a host process: which container it runs in, or none.
//!
//! A process's cgroup says where it runs (`/proc/<pid>/cgroup`). Two ways lead from there to
//! a container: the runtimes' state (each container's init process, whose cgroup is the
//! container's: any process at or below it is the container's), and the engines' cgroup names
//! ([`super::cgroup::recognize`]), which also cover containers whose state is out of reach.
//! The state is asked first: it knows plain runc and containerd containers, whose cgroups have
//! no telltale name, and confirms the others.

use std::collections::HashMap;
use std::path::PathBuf;

use super::cgroup;
use super::state::StateEntry;
use super::{Container, Owner};

/// What is read about host processes (the host's `/proc` in use, a table in tests).
pub trait ProcessTable {
    /// The process's cgroup path ([`cgroup::process_path`]).
    fn cgroup_path(&self, pid: u32) -> Option<String>;
    /// Start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
    fn start_time(&self, pid: u32) -> Option<u64>;
    /// The command name (`comm`).
    fn name(&self, pid: u32) -> Option<String>;
}

/// The processes of a procfs mounted at `root` (`/proc`): pids as that pid namespace sees
/// them, which must be the host's for NVML's pids to match.
pub struct HostProcesses {
    pub root: PathBuf,
}

impl HostProcesses {
    fn process(&self, pid: u32) -> Option<procfs::process::Process> {
        procfs::process::Process::new_with_root(self.root.join(pid.to_string())).ok()
    }
}

impl ProcessTable for HostProcesses {
    fn cgroup_path(&self, pid: u32) -> Option<String> {
        let text = std::fs::read_to_string(self.root.join(pid.to_string()).join("cgroup")).ok()?;
        cgroup::process_path(&text)
    }
    fn start_time(&self, pid: u32) -> Option<u64> {
        self.process(pid)?.stat().ok().map(|s| s.starttime)
    }
    fn name(&self, pid: u32) -> Option<String> {
        self.process(pid)?.stat().ok().map(|s| s.comm)
    }
}

/// A runtime's container with the cgroup its init process is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub entry: StateEntry,
    /// `None` when the init process is gone, is another process by now (its pid reused), or
    /// sits in the root cgroup (a container run without cgroups cannot be told from the host).
    pub cgroup: Option<String>,
}

/// Finds each container's cgroup through its init process.
pub fn locate(entries: Vec<StateEntry>, processes: &dyn ProcessTable) -> Vec<Located> {
    entries
        .into_iter()
        .map(|entry| {
            let same_process = match entry.init_start {
                Some(start) => processes.start_time(entry.init_pid) == Some(start),
                None => processes.start_time(entry.init_pid).is_some(),
            };
            let cgroup = same_process
                .then(|| processes.cgroup_path(entry.init_pid))
                .flatten()
                .filter(|path| path != "/");
            Located { entry, cgroup }
        })
        .collect()
}

/// What attribution knows: the runtimes' containers and Docker's names for its own.
#[derive(Debug, Default)]
pub struct Known {
    pub containers: Vec<Located>,
    /// Full container id -> name, from Docker's API.
    pub docker_names: HashMap<String, String>,
}

impl Known {
    /// The owner of a process in cgroup `path`; `None` (its `/proc` entry could not be read,
    /// e.g. it exited, or it is in another pid namespace) gives [`Owner::Unknown`].
    pub fn owner(&self, path: Option<&str>) -> Owner {
        let Some(path) = path else {
            return Owner::Unknown;
        };
        let by_state = self
            .containers
            .iter()
            .filter(|c| {
                c.cgroup
                    .as_deref()
                    .is_some_and(|q| cgroup::is_within(path, q))
            })
            .max_by_key(|c| c.cgroup.as_ref().map(String::len));
        if let Some(located) = by_state {
            // The cgroup's name, when it has an engine's, says which engine ran the runtime.
            let engine = cgroup::recognize(path)
                .filter(|r| r.id == located.entry.id)
                .and_then(|r| r.runtime);
            return Owner::Container(self.describe(&located.entry.id, Some(located), engine));
        }
        match cgroup::recognize(path) {
            Some(found) => {
                let located = self.containers.iter().find(|c| c.entry.id == found.id);
                Owner::Container(self.describe(&found.id, located, found.runtime))
            }
            None => Owner::Host,
        }
    }

    fn describe(
        &self,
        id: &str,
        located: Option<&Located>,
        runtime: Option<&'static str>,
    ) -> Container {
        let entry = located.map(|l| &l.entry);
        Container {
            id: id.to_string(),
            runtime: runtime
                .map(str::to_string)
                .or_else(|| entry.map(|e| e.runtime.clone())),
            namespace: entry.and_then(|e| e.namespace.clone()),
            name: self
                .docker_names
                .get(id)
                .cloned()
                .or_else(|| entry.and_then(|e| e.name.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// pid -> (cgroup path, start time, name).
    struct Table(HashMap<u32, (&'static str, u64, &'static str)>);

    impl ProcessTable for Table {
        fn cgroup_path(&self, pid: u32) -> Option<String> {
            self.0.get(&pid).map(|p| p.0.to_string())
        }
        fn start_time(&self, pid: u32) -> Option<u64> {
            self.0.get(&pid).map(|p| p.1)
        }
        fn name(&self, pid: u32) -> Option<String> {
            self.0.get(&pid).map(|p| p.2.to_string())
        }
    }

    fn entry(id: &str, runtime: &str, pid: u32, start: Option<u64>) -> StateEntry {
        StateEntry {
            id: id.to_string(),
            runtime: runtime.to_string(),
            namespace: None,
            init_pid: pid,
            init_start: start,
            name: None,
        }
    }

    const DOCKER_ID: &str = "3f2a1b9c0d11e2f3a4b5c6d7e8f90123456789abcdef0123456789abcdef0123";

    fn table() -> Table {
        Table(HashMap::from([
            (100, ("/c1", 5, "sleep")),
            (101, ("/c1/sub", 9, "worker")),
            (200, ("/ns/c2", 7, "sh")),
            (300, ("/user.slice/session-1.scope", 3, "bash")),
            // A pid now held by another process than the container's init.
            (400, ("/user.slice/session-1.scope", 99, "bash")),
            (500, ("/", 1, "init")),
        ]))
    }

    fn known() -> Known {
        let mut c2 = entry("c2", "containerd", 200, Some(7));
        c2.namespace = Some("ns".into());
        c2.name = Some("ml/job/trainer".into());
        let entries = vec![
            entry("c1", "runc", 100, Some(5)),
            c2,
            entry("stale", "runc", 400, Some(4)),
            entry("rootless", "runc", 500, None),
            entry("gone", "runc", 600, Some(1)),
        ];
        Known {
            containers: locate(entries, &table()),
            docker_names: HashMap::from([(DOCKER_ID.to_string(), "web1".to_string())]),
        }
    }

    fn container(owner: Owner) -> Container {
        match owner {
            Owner::Container(c) => c,
            other => panic!("not a container: {other:?}"),
        }
    }

    #[test]
    fn a_container_cgroup_comes_from_its_live_init_process_only() {
        let cgroups: Vec<(String, Option<String>)> = known()
            .containers
            .into_iter()
            .map(|l| (l.entry.id, l.cgroup))
            .collect();
        assert_eq!(
            cgroups,
            vec![
                ("c1".into(), Some("/c1".into())),
                ("c2".into(), Some("/ns/c2".into())),
                ("stale".into(), None),
                ("rootless".into(), None),
                ("gone".into(), None),
            ]
        );
    }

    #[test]
    fn processes_at_or_below_a_container_cgroup_are_its() {
        let known = known();
        let c1 = container(known.owner(Some("/c1/sub")));
        assert_eq!(
            (c1.id.as_str(), c1.runtime.as_deref()),
            ("c1", Some("runc"))
        );
        let c2 = container(known.owner(Some("/ns/c2")));
        assert_eq!(c2.namespace.as_deref(), Some("ns"));
        assert_eq!(c2.name.as_deref(), Some("ml/job/trainer"));
        assert_eq!(
            known.owner(Some("/c10")),
            Owner::Host,
            "a sibling, not below"
        );
    }

    #[test]
    fn host_and_unreadable_processes_are_told_apart() {
        let known = known();
        assert_eq!(
            known.owner(Some("/user.slice/session-1.scope")),
            Owner::Host,
            "the stale entry's reused pid does not make the session a container"
        );
        assert_eq!(known.owner(Some("/")), Owner::Host);
        assert_eq!(known.owner(None), Owner::Unknown);
    }

    #[test]
    fn engine_names_find_containers_the_state_does_not_know() {
        let known = known();
        let web = container(known.owner(Some(&format!("/docker/{DOCKER_ID}"))));
        assert_eq!(web.runtime.as_deref(), Some("docker"));
        assert_eq!(web.name.as_deref(), Some("web1"), "Docker's name");
        let other = "a".repeat(64);
        let pod = container(known.owner(Some(&format!("/kubepods/burstable/pod1/{other}"))));
        assert_eq!((pod.runtime, pod.name), (None, None));
    }

    #[test]
    fn the_deepest_known_container_wins() {
        let table = Table(HashMap::from([
            (1, ("/outer", 1, "a")),
            (2, ("/outer/inner", 2, "b")),
        ]));
        let known = Known {
            containers: locate(
                vec![
                    entry("outer", "runc", 1, Some(1)),
                    entry("inner", "runc", 2, Some(2)),
                ],
                &table,
            ),
            ..Default::default()
        };
        assert_eq!(container(known.owner(Some("/outer/inner/x"))).id, "inner");
        assert_eq!(container(known.owner(Some("/outer/y"))).id, "outer");
    }
}
