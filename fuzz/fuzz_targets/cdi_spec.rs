//! CDI specs (JSON and YAML) and applying their edits to a spec tree.
#![no_main]
use libfuzzer_sys::fuzz_target;

use gpuhook::cdi::spec::Spec;

fuzz_target!(|data: &[u8]| {
    let specs = [
        serde_json::from_slice::<Spec>(data).ok(),
        serde_norway::from_slice::<Spec>(data).ok(),
    ];
    for spec in specs.into_iter().flatten() {
        let mut edits = vec![spec.container_edits.clone()];
        edits.extend(spec.devices.iter().map(|d| d.container_edits.clone()));
        // Device nodes without numbers would be stat()ed on the host: keep the fuzzer off the
        // filesystem by giving them numbers.
        for edit in &mut edits {
            for node in &mut edit.device_nodes {
                node.major.get_or_insert(1);
                node.minor.get_or_insert(3);
            }
        }
        let mut tree = serde_json::json!({"process": {"env": []}});
        let _ = gpuhook::runtime::cdi_edit::apply(&mut tree, &edits);
    }
});
