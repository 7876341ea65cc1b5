//! From a container's request and the operator's policy to the caps each of its GPUs gets.
//! Pure. The rules:
//! - a GPU's memory cap is the container's own value for it, else the operator's default;
//!   then the operator's maximum and a runtime name's imposed cap bound it: the smallest wins,
//!   so a container's env can lower its cap and never raise it;
//! - the compute share follows the same rules; 100 % is no share;
//! - the soft limit (`NVIDIA_GPU_MEMORY_REQUEST`, NVML only) never exceeds the cap;
//! - a per-GPU entry must name one of the container's GPUs.

use crate::request::memory::{
    format_size, GpuName, MemoryLimit, MemoryRequest, COMPUTE_LIMIT_ENV, MEMORY_LIMIT_ENV,
    MEMORY_REQUEST_ENV,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("{variable} names GPU {name}, which this container was not given (it has {given})")]
    UnknownGpu {
        variable: &'static str,
        name: String,
        given: String,
    },
    #[error("{variable} names GPU {name}, which is several of this container's MIG devices ({matches}): name each by its MIG UUID")]
    Ambiguous {
        variable: &'static str,
        name: String,
        matches: String,
    },
}

/// A memory cap and a compute share, each optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    pub compute_percent: Option<u8>,
}

/// What the operator decides: defaults, maxima, and what the runtime name imposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    pub default: Limits,
    pub max: Limits,
    pub imposed: Limits,
}

/// One GPU of the container and its caps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuCap {
    pub index: u32,
    pub uuid: String,
    pub limit_bytes: Option<u64>,
    pub soft_bytes: Option<u64>,
}

/// What a container gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caps {
    /// Every GPU of the container, in its order, capped or not.
    pub gpus: Vec<GpuCap>,
    pub compute_percent: Option<u8>,
    /// Where the container's own value was lowered, in words (for the log).
    pub lowered: Vec<String>,
}

impl Caps {
    pub fn caps_memory(&self) -> bool {
        self.gpus.iter().any(|g| g.limit_bytes.is_some())
    }

    /// `0=2G,1=-` and `compute=25%`, for the log.
    pub fn summary(&self) -> String {
        let gpus: Vec<String> = self
            .gpus
            .iter()
            .map(|g| {
                let cap = g.limit_bytes.map_or("-".to_string(), format_size);
                format!("{}={cap}", g.index)
            })
            .collect();
        let compute = self
            .compute_percent
            .map(|p| format!(" compute={p}%"))
            .unwrap_or_default();
        format!("[{}]{compute}", gpus.join(","))
    }
}

fn tightest<T: Ord + Copy>(values: [Option<T>; 3]) -> Option<T> {
    values.into_iter().flatten().min()
}

/// The caps of a container with `gpus` (index, UUID); `None` when nothing is capped.
pub fn resolve(
    request: &MemoryRequest,
    policy: &Policy,
    gpus: &[(u32, String)],
) -> Result<Option<Caps>, PolicyError> {
    for (variable, limit) in [
        (MEMORY_LIMIT_ENV, &request.limit),
        (MEMORY_REQUEST_ENV, &request.soft),
    ] {
        if let Some(MemoryLimit::PerGpu(entries)) = limit {
            for (name, _) in entries {
                check_names_one(variable, name, gpus)?;
            }
        }
    }
    let mut lowered = Vec::new();
    let mut caps = Vec::new();
    for (index, uuid) in gpus {
        let own = request.limit.as_ref().and_then(|l| l.for_gpu(*index, uuid));
        let limit = tightest([
            own.or(policy.default.memory_bytes),
            policy.max.memory_bytes,
            policy.imposed.memory_bytes,
        ]);
        if let (Some(own), Some(limit)) = (own, limit) {
            if limit < own {
                lowered.push(format!(
                    "{MEMORY_LIMIT_ENV} {} on GPU {index} lowered to {}",
                    format_size(own),
                    format_size(limit)
                ));
            }
        }
        let soft = request.soft.as_ref().and_then(|s| s.for_gpu(*index, uuid));
        caps.push(GpuCap {
            index: *index,
            uuid: uuid.clone(),
            limit_bytes: limit,
            soft_bytes: limit.and_then(|l| soft.map(|s| s.min(l))),
        });
    }
    let own = request.compute_percent;
    let compute = tightest([
        own.or(policy.default.compute_percent),
        policy.max.compute_percent,
        policy.imposed.compute_percent,
    ])
    .filter(|p| *p < 100);
    if let (Some(own), Some(share)) = (own, compute) {
        if share < own {
            lowered.push(format!("{COMPUTE_LIMIT_ENV} {own}% lowered to {share}%"));
        }
    }
    let caps = Caps {
        gpus: caps,
        compute_percent: compute,
        lowered,
    };
    Ok((caps.caps_memory() || caps.compute_percent.is_some()).then_some(caps))
}

fn check_names_one(
    variable: &'static str,
    name: &GpuName,
    gpus: &[(u32, String)],
) -> Result<(), PolicyError> {
    let matches: Vec<&(u32, String)> = gpus.iter().filter(|(i, u)| name.names(*i, u)).collect();
    let list = |gpus: &[&(u32, String)]| {
        gpus.iter()
            .map(|(i, u)| format!("{i} ({u})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match matches.len() {
        1 => Ok(()),
        0 => Err(PolicyError::UnknownGpu {
            variable,
            name: name.to_string(),
            given: list(&gpus.iter().collect::<Vec<_>>()),
        }),
        _ => Err(PolicyError::Ambiguous {
            variable,
            name: name.to_string(),
            matches: list(&matches),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::memory::parse_memory_limit;

    const G: u64 = 1 << 30;

    fn gpus() -> Vec<(u32, String)> {
        vec![(0, "GPU-a".into()), (1, "GPU-b".into())]
    }

    fn request(limit: Option<&str>, compute: Option<u8>) -> MemoryRequest {
        MemoryRequest {
            limit: limit.map(|l| parse_memory_limit(MEMORY_LIMIT_ENV, l).unwrap()),
            soft: None,
            compute_percent: compute,
        }
    }

    fn limits(memory: Option<u64>, compute: Option<u8>) -> Limits {
        Limits {
            memory_bytes: memory,
            compute_percent: compute,
        }
    }

    fn caps_of(caps: &Caps) -> Vec<Option<u64>> {
        caps.gpus.iter().map(|g| g.limit_bytes).collect()
    }

    #[test]
    fn nothing_asked_and_no_policy_caps_nothing() {
        assert_eq!(
            resolve(&MemoryRequest::default(), &Policy::default(), &gpus()),
            Ok(None)
        );
        // 100 % is no share.
        assert_eq!(
            resolve(&request(None, Some(100)), &Policy::default(), &gpus()),
            Ok(None)
        );
    }

    #[test]
    fn the_default_applies_when_the_container_asks_for_none() {
        let policy = Policy {
            default: limits(Some(4 * G), Some(50)),
            ..Policy::default()
        };
        let caps = resolve(&MemoryRequest::default(), &policy, &gpus())
            .unwrap()
            .unwrap();
        assert_eq!(caps_of(&caps), [Some(4 * G), Some(4 * G)]);
        assert_eq!(caps.compute_percent, Some(50));
        // The container's own value replaces the default, higher or lower.
        let caps = resolve(&request(Some("8G"), Some(75)), &policy, &gpus())
            .unwrap()
            .unwrap();
        assert_eq!(caps_of(&caps), [Some(8 * G), Some(8 * G)]);
        assert_eq!(caps.compute_percent, Some(75));
    }

    #[test]
    fn a_tenant_cannot_raise_above_the_maximum_or_an_imposed_cap() {
        let policy = Policy {
            max: limits(Some(4 * G), Some(50)),
            imposed: limits(Some(2 * G), None),
            ..Policy::default()
        };
        let caps = resolve(&request(Some("0=16G,1=1G"), Some(90)), &policy, &gpus())
            .unwrap()
            .unwrap();
        assert_eq!(caps_of(&caps), [Some(2 * G), Some(G)]);
        assert_eq!(caps.compute_percent, Some(50));
        assert_eq!(
            caps.lowered,
            [
                "NVIDIA_GPU_MEMORY_LIMIT 16G on GPU 0 lowered to 2G",
                "NVIDIA_GPU_COMPUTE_LIMIT 90% lowered to 50%"
            ]
        );
        // The maximum alone caps a container that asks for nothing.
        let max_only = Policy {
            max: limits(Some(4 * G), None),
            ..Policy::default()
        };
        let caps = resolve(&MemoryRequest::default(), &max_only, &gpus())
            .unwrap()
            .unwrap();
        assert_eq!(caps_of(&caps), [Some(4 * G), Some(4 * G)]);
        assert_eq!(caps.summary(), "[0=4G,1=4G]");
    }

    #[test]
    fn per_gpu_entries_must_name_the_containers_gpus() {
        let caps = resolve(
            &request(Some("GPU-B=3G"), None),
            &Policy::default(),
            &gpus(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(caps_of(&caps), [None, Some(3 * G)]);
        let err = resolve(&request(Some("7=3G"), None), &Policy::default(), &gpus()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "NVIDIA_GPU_MEMORY_LIMIT names GPU 7, which this container was not given (it has 0 (GPU-a), 1 (GPU-b))"
        );
        let migs = vec![(0, "MIG-1".to_string()), (0, "MIG-2".to_string())];
        let err = resolve(&request(Some("0=1G"), None), &Policy::default(), &migs).unwrap_err();
        assert!(matches!(err, PolicyError::Ambiguous { .. }), "{err}");
    }

    #[test]
    fn the_soft_limit_never_exceeds_the_cap() {
        let mut r = request(Some("2G"), None);
        r.soft = Some(MemoryLimit::Every(G));
        let policy = Policy {
            max: limits(Some(G / 2), None),
            ..Policy::default()
        };
        let caps = resolve(&r, &Policy::default(), &gpus()).unwrap().unwrap();
        assert_eq!(caps.gpus[0].soft_bytes, Some(G));
        let caps = resolve(&r, &policy, &gpus()).unwrap().unwrap();
        assert_eq!(caps.gpus[0].soft_bytes, Some(G / 2));
    }
}
