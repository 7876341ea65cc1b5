//! A fuzzed operator policy: the first bytes of an input choose the config settings a host
//! can have (unprivileged env refused, `disable-require`, restricted capabilities, volume
//! mounts, CDI `auto`/`cdi` mode, tight limits); the rest is the tenant's `config.json`.

use gpuhook::limits::RequestLimits;
use gpuhook::request::{DriverCapability, RequestPolicy};

/// Bytes of the input that encode the policy.
pub const POLICY_BYTES: usize = 3;

#[derive(Debug, Clone)]
pub struct FuzzPolicy {
    pub request: RequestPolicy,
    /// `runtime.mode = "cdi"` (bare names get the default kind), else `auto`.
    pub cdi_mode: bool,
    /// The image is Debian-like (library directory choice).
    pub debian: bool,
    /// The image carries a compat libcuda newer than the driver.
    pub cuda_compat: bool,
}

/// Splits `data` into the policy and the tenant's bytes; `None` when too short.
pub fn split(data: &[u8]) -> Option<(FuzzPolicy, &[u8])> {
    let (head, rest) = (data.get(..POLICY_BYTES)?, data.get(POLICY_BYTES..)?);
    let flags = head[0];
    let bit = |n: u8| flags & (1 << n) != 0;
    let supported = if head[1] & 0x80 != 0 {
        DriverCapability::ALL.to_vec()
    } else {
        let mask = head[1];
        DriverCapability::ALL
            .into_iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, c)| c)
            .collect()
    };
    // Tight limits reach every "over the limit" path with small inputs.
    let limits = if bit(4) {
        let small = 1 + usize::from(head[2] % 8);
        RequestLimits {
            env_value_bytes: 8 + 4 * usize::from(head[2]),
            device_entries: small,
            capability_entries: small,
            imex_entries: small,
            requirement_groups: small,
            requirement_conditions: small,
            cdi_names: small,
            cdi_annotations: small,
        }
    } else {
        RequestLimits::DEFAULT
    };
    let request = RequestPolicy {
        supported_capabilities: supported,
        accept_env_when_unprivileged: !bit(0),
        accept_volume_mounts: bit(1),
        disable_require: bit(2),
        limits,
    };
    let policy = FuzzPolicy {
        request,
        cdi_mode: bit(3),
        debian: bit(5),
        cuda_compat: bit(6),
    };
    Some((policy, rest))
}
