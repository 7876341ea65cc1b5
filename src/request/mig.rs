//! `NVIDIA_MIG_CONFIG_DEVICES` and `NVIDIA_MIG_MONITOR_DEVICES`: the host-wide MIG
//! capabilities. `config` lets a process create and destroy MIG devices on every GPU,
//! `monitor` lets it watch all of them; both reach past the container's own devices, so only
//! privileged containers may ask.

use super::{ContainerFacts, RequestError};
use crate::limits::RequestLimits;

pub const MIG_CONFIG_ENV: &str = "NVIDIA_MIG_CONFIG_DEVICES";
pub const MIG_MONITOR_ENV: &str = "NVIDIA_MIG_MONITOR_DEVICES";

/// Which host-wide MIG capabilities a container asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MigAccess {
    /// `/proc/driver/nvidia/capabilities/mig/config`.
    pub config: bool,
    /// `/proc/driver/nvidia/capabilities/mig/monitor`.
    pub monitor: bool,
}

impl MigAccess {
    pub fn any(&self) -> bool {
        self.config || self.monitor
    }
}

/// Reads both variables. `all` asks; unset, empty, `void` and `none` do not; anything else is
/// an error, and so is asking from a container without `CAP_SYS_ADMIN`.
pub fn parse_mig_access(
    facts: &ContainerFacts,
    limits: &RequestLimits,
) -> Result<MigAccess, RequestError> {
    Ok(MigAccess {
        config: wants(facts, MIG_CONFIG_ENV, limits)?,
        monitor: wants(facts, MIG_MONITOR_ENV, limits)?,
    })
}

fn wants(facts: &ContainerFacts, name: &str, limits: &RequestLimits) -> Result<bool, RequestError> {
    let Some(value) = facts.bounded(name, limits)? else {
        return Ok(false);
    };
    match value.trim() {
        "" | "void" | "none" => Ok(false),
        // The capability files are host-wide: a per-GPU list would promise a confinement the
        // driver does not offer, so only `all` is accepted.
        "all" if facts.privileged => Ok(true),
        "all" => Err(RequestError::MigUnprivileged {
            name: name.to_string(),
        }),
        _ => Err(RequestError::MigAccess {
            name: name.to_string(),
            value: value.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: RequestLimits = RequestLimits::DEFAULT;

    fn facts(env: &[(&str, &str)], privileged: bool) -> ContainerFacts {
        ContainerFacts {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            privileged,
            ..ContainerFacts::default()
        }
    }

    #[test]
    fn unset_and_empty_ask_for_nothing() {
        assert_eq!(
            parse_mig_access(&facts(&[], false), &LIMITS).unwrap(),
            MigAccess::default()
        );
        for value in ["", " ", "void", "none"] {
            let f = facts(&[(MIG_CONFIG_ENV, value), (MIG_MONITOR_ENV, value)], false);
            assert!(!parse_mig_access(&f, &LIMITS).unwrap().any(), "{value:?}");
        }
    }

    #[test]
    fn all_is_for_privileged_containers_only() {
        let env = [(MIG_CONFIG_ENV, "all"), (MIG_MONITOR_ENV, "all")];
        assert_eq!(
            parse_mig_access(&facts(&env, true), &LIMITS).unwrap(),
            MigAccess {
                config: true,
                monitor: true
            }
        );
        let monitor_only =
            parse_mig_access(&facts(&[(MIG_MONITOR_ENV, "all")], true), &LIMITS).unwrap();
        assert!(!monitor_only.config && monitor_only.monitor);
        for name in [MIG_CONFIG_ENV, MIG_MONITOR_ENV] {
            let err = parse_mig_access(&facts(&[(name, "all")], false), &LIMITS)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("{name}=all")) && err.contains("CAP_SYS_ADMIN"),
                "{err}"
            );
        }
    }

    #[test]
    fn other_values_are_errors_naming_the_variable() {
        for value in ["0", "0,1", "ALL", "GPU-5e1f"] {
            let err = parse_mig_access(&facts(&[(MIG_MONITOR_ENV, value)], true), &LIMITS)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("{MIG_MONITOR_ENV}={value:?}")),
                "{err}"
            );
        }
    }
}
