//! The hook reads only the driver files of the capabilities a container asks for (a third of
//! the lookups for the default `compute,utility`): against the simulated driver, with each
//! capability set, the plan built from the hook's own scoped inventory
//! (`InventoryNeeds::for_request`) must be exactly the plan built from the full one, and the scoped inventory must hold no file of another capability.

mod support;

use std::path::Path;

use gpuhook::catalog;
use gpuhook::config::Config;
use gpuhook::inventory::{Inventory, InventoryNeeds};
use gpuhook::plan::{self, ContainerLayout};
use gpuhook::request::{
    container_request, ContainerFacts, ContainerRequest, DriverCapability, RequestPolicy,
};
use support::*;

fn request(config: &Config, capabilities: &str) -> ContainerRequest {
    let env = [
        "NVIDIA_VISIBLE_DEVICES=all".to_string(),
        format!("NVIDIA_DRIVER_CAPABILITIES={capabilities}"),
    ];
    let spec: oci_spec::runtime::Spec = serde_json::from_value(serde_json::json!({
        "ociVersion": "1.0.2", "root": {"path": "rootfs"},
        "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}, "env": env},
    }))
    .unwrap();
    let facts = ContainerFacts::from_spec(&spec);
    container_request(&facts, &RequestPolicy::from(config))
        .unwrap()
        .unwrap()
}

#[test]
fn a_scoped_inventory_plans_exactly_what_the_full_one_does() {
    // The simulated driver's device nodes are made with mknod.
    if !prerequisites_with(
        "a_scoped_inventory_plans_exactly_what_the_full_one_does",
        &[],
    ) {
        return;
    }
    let sim = Sim::build(2);
    let dir = tempfile::tempdir().unwrap();
    let text = sim.config(&dir.path().join("log"), "");
    let config = Config::parse(&text, Path::new("gpuhook.toml")).unwrap();
    let full = Inventory::read(&config.driver, InventoryNeeds::default()).unwrap();
    let layout = ContainerLayout::for_rootfs(true);
    for capabilities in [
        "compute,utility",
        "utility",
        "compute",
        "graphics",
        "video,compat32",
        "display",
        "ngx",
        "all",
    ] {
        let request = request(&config, capabilities);
        let inventory =
            Inventory::read(&config.driver, InventoryNeeds::for_request(&request)).unwrap();
        assert_eq!(
            plan::plan(&request, &inventory, &layout),
            plan::plan(&request, &full, &layout),
            "{capabilities}"
        );
        let asked =
            |c: Option<DriverCapability>| c.is_some_and(|c| request.capabilities.contains(&c));
        for library in &inventory.libraries {
            // libcuda comes for an MPS daemon a memory cap may start, whatever was asked.
            assert!(
                asked(catalog::capability_of_library(library.prefix))
                    || library.prefix == "libcuda.so",
                "{capabilities}: {} read",
                library.file_name
            );
        }
        for (name, _) in &inventory.binaries {
            assert!(
                asked(catalog::capability_of_binary(name)) || *name == catalog::MPS_CONTROL,
                "{capabilities}: {name} read"
            );
        }
        for file in &inventory.support_files {
            assert!(
                asked(Some(file.capability)),
                "{capabilities}: {file:?} read"
            );
        }
        assert!(inventory.libraries.len() <= full.libraries.len());
    }
    // The default request leaves most of the driver unread.
    let default = Inventory::read(
        &config.driver,
        InventoryNeeds::for_request(&request(&config, "compute,utility")),
    )
    .unwrap();
    assert!(
        default.libraries.len() * 2 < full.libraries.len(),
        "{} of {} libraries read for compute,utility",
        default.libraries.len(),
        full.libraries.len()
    );
    assert!(default.support_files.is_empty());
}
