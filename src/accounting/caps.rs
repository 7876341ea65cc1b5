//! The memory cap of each (container, GPU) row: what gpuhook's registration of the container
//! records (`mps::Registration`), matched by the container's id and the GPU's UUID. A
//! container gpuhook did not cap has none.

use super::{Owner, Usage};
use crate::mps::Registration;

/// Sets `memory_cap_bytes` of every container row a registration covers.
pub fn attach(usage: &mut [Usage], registrations: &[Registration]) {
    for row in usage {
        let Owner::Container(container) = &row.owner else {
            continue;
        };
        row.memory_cap_bytes = registrations
            .iter()
            .filter(|r| r.id == container.id)
            .flat_map(|r| &r.gpus)
            .find(|g| g.uuid.eq_ignore_ascii_case(&row.gpu_uuid))
            .and_then(|g| g.limit_bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounting::Container;
    use crate::mps::{ProcessId, RegisteredGpu};

    fn row(owner: Owner, uuid: &str) -> Usage {
        Usage {
            owner,
            gpu_index: 0,
            gpu_uuid: uuid.into(),
            memory_used_bytes: 0,
            processes: Vec::new(),
            memory_cap_bytes: None,
        }
    }

    fn container(id: &str) -> Owner {
        Owner::Container(Container {
            id: id.into(),
            runtime: None,
            namespace: None,
            name: None,
        })
    }

    #[test]
    fn a_registered_container_shows_its_cap_on_that_gpu_only() {
        let registration = Registration {
            id: "web".into(),
            bundle: "/b".into(),
            process: ProcessId {
                pid: 1,
                start_time: 1,
            },
            pool: None,
            enforcement: "mps".into(),
            gpus: vec![
                RegisteredGpu {
                    index: 0,
                    uuid: "GPU-a".into(),
                    limit_bytes: Some(2 << 30),
                },
                RegisteredGpu {
                    index: 1,
                    uuid: "GPU-b".into(),
                    limit_bytes: None,
                },
            ],
            compute_percent: None,
        };
        let mut usage = vec![
            row(container("web"), "GPU-A"),
            row(container("web"), "GPU-b"),
            row(container("db"), "GPU-a"),
            row(Owner::Host, "GPU-a"),
        ];
        attach(&mut usage, &[registration]);
        let caps: Vec<Option<u64>> = usage.iter().map(|u| u.memory_cap_bytes).collect();
        assert_eq!(caps, [Some(2 << 30), None, None, None]);
    }
}
