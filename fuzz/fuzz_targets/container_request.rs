//! A tenant's config.json (env forms, volume-mount channel, annotations, capabilities) to the
//! request, legacy and CDI, and its memory caps (env forms and the policy that resolves them):
//! the whole spec parsed as the hook and the shim parse it.
#![no_main]
use libfuzzer_sys::fuzz_target;

use gpuhook::config::Config;
use gpuhook::memcap::Limits;
use gpuhook::request::cdi::{cdi_devices, CdiRequestPolicy};
use gpuhook::request::{container_request, ContainerFacts, RequestPolicy};

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = serde_json::from_slice::<oci_spec::runtime::Spec>(data) else {
        return;
    };
    let facts = ContainerFacts::from_spec(&spec);
    let mut config = Config::default();
    config.accept_nvidia_visible_devices_as_volume_mounts = true;
    let policy = RequestPolicy::from(&config);
    let _ = container_request(&facts, &policy);
    let prefixes = ["cdi.k8s.io/".to_string()];
    let cdi = CdiRequestPolicy {
        default_kind: Some("nvidia.com/gpu"),
        annotation_prefixes: &prefixes,
    };
    let _ = cdi_devices(&facts, &policy, &cdi);
    if let Ok(memory) = gpuhook::request::memory::read(&facts, true) {
        let gpus = [(0, "GPU-0".to_string()), (1, "MIG-1".to_string())];
        let bounds = Limits {
            memory_bytes: Some(4 << 30),
            compute_percent: Some(50),
        };
        let _ = gpuhook::memcap::policy::resolve(&memory, &gpuhook::memcap::policy(&config.memory, bounds), &gpus);
    }
});
