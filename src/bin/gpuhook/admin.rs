//! `gpuhook info` and `gpuhook list`: what gpuhook sees on this host, and what a container
//! with a given request would get. Both print a table, or JSON with `--json`.

use std::process::ExitCode;

use serde_json::json;

use gpuhook::config::Config;
use gpuhook::inventory::mig::MigGpu;
use gpuhook::inventory::{Inventory, InventoryNeeds};
use gpuhook::plan::{self, ContainerLayout, MountKind};
use gpuhook::request::{self, ContainerFacts, RequestPolicy};
use gpuhook::vendor::VendorInventory;

use crate::fail;

/// `gpuhook info [--json]`. libcuda (CUDA version) and NVML (architecture, brand, MIG) are
/// loaded separately: when one cannot be, only what needs it shows as unknown, with a note
/// saying which library failed, and the rest still prints.
pub fn info(config: &Config, as_json: bool) -> ExitCode {
    let vendor_gpus = crate::vendors::read(config);
    let mut inventory = match Inventory::read(&config.driver, InventoryNeeds::default()) {
        Ok(inventory) => inventory,
        // A host of AMD or Intel GPUs alone has no NVIDIA driver to read.
        Err(e) if !vendor_gpus.gpus.is_empty() => {
            print_vendors_only(&vendor_gpus, &e.to_string(), as_json);
            return ExitCode::SUCCESS;
        }
        Err(e) => return fail(None, &e.to_string()),
    };
    let mut notes = Vec::new();
    if let Err(e) = inventory.load_cuda_version(&config.driver) {
        notes.push(format!("CUDA version unknown: {e}"));
    }
    let nvml_facts = InventoryNeeds {
        gpu_details: true,
        mig: true,
        ..InventoryNeeds::default()
    };
    if let Err(e) = inventory.load_nvml_facts(&config.driver, nvml_facts) {
        notes.push(format!(
            "architecture, brand and MIG mode unknown (they come from NVML): {e}"
        ));
    }
    if as_json {
        print_info_json(&inventory, &vendor_gpus, &notes);
    } else {
        print_info_table(&inventory, &notes);
        crate::vendors::print_table(&vendor_gpus);
    }
    ExitCode::SUCCESS
}

fn print_vendors_only(vendor_gpus: &VendorInventory, nvidia: &str, as_json: bool) {
    if as_json {
        let (gpus, kfd) = crate::vendors::json(vendor_gpus);
        let value = json!({"gpus": [], "vendor_gpus": gpus, "kfd": kfd, "note": nvidia});
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        crate::vendors::print_table(vendor_gpus);
        println!("note: {nvidia}");
    }
}

fn mig_of(inventory: &Inventory, index: u32) -> Option<&MigGpu> {
    inventory.mig.as_ref().and_then(|m| m.gpu(index))
}

fn print_info_json(inventory: &Inventory, vendor_gpus: &VendorInventory, notes: &[String]) {
    let (vendor_gpus, kfd) = crate::vendors::json(vendor_gpus);
    let gpus: Vec<serde_json::Value> = inventory
        .gpus
        .iter()
        .map(|g| {
            let mig = mig_of(inventory, g.index);
            json!({
                "index": g.index,
                "uuid": g.info.uuid,
                "bus_id": g.info.bus_id,
                "model": g.info.model,
                "minor": g.info.minor,
                "device": g.device.as_ref().map(|d| d.host_path.display().to_string()),
                "arch": g.arch,
                "brand": g.brand,
                "mig_mode": mig.map(|m| if m.enabled { "enabled" } else { "disabled" }),
                "mig_devices": mig.map(|m| m.devices.iter().map(|d| json!({
                    "index": d.index,
                    "uuid": d.uuid,
                    "gpu_instance": d.gpu_instance,
                    "compute_instance": d.compute_instance,
                })).collect::<Vec<_>>()),
            })
        })
        .collect();
    let unusable: Vec<serde_json::Value> = inventory
        .unusable_gpus
        .iter()
        .map(|u| json!({"index": u.index, "bus_id": u.bus_id, "reason": u.reason}))
        .collect();
    let value = json!({
        "driver_version": inventory.driver_version,
        "cuda_version": inventory.cuda_version,
        "gpus": gpus,
        "unusable_gpus": unusable,
        "vendor_gpus": vendor_gpus,
        "kfd": kfd,
        "note": (!notes.is_empty()).then(|| notes.join("; ")),
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&value).unwrap_or_default()
    );
}

fn print_info_table(inventory: &Inventory, notes: &[String]) {
    println!("driver {}", inventory.driver_version);
    println!(
        "cuda {}",
        inventory.cuda_version.as_deref().unwrap_or("unknown")
    );
    println!("GPU  UUID                                      BUS ID            MINOR  ARCH  BRAND     MIG       MODEL");
    for g in &inventory.gpus {
        let mig = mig_of(inventory, g.index);
        println!(
            "{:<4} {:<41} {:<17} {:<6} {:<5} {:<9} {:<9} {}",
            g.index,
            g.info.uuid,
            g.info.bus_id,
            g.info.minor,
            g.arch.as_deref().unwrap_or("?"),
            g.brand.as_deref().unwrap_or("?"),
            match mig {
                Some(m) if m.enabled => "enabled",
                Some(_) => "disabled",
                None => "?",
            },
            g.info.model
        );
        for d in mig.map(|m| m.devices.as_slice()).unwrap_or_default() {
            println!(
                "  {}:{}  {}  (GI {}, CI {})",
                g.index, d.index, d.uuid, d.gpu_instance, d.compute_instance
            );
        }
    }
    for u in &inventory.unusable_gpus {
        println!("{:<4} unusable ({}): {}", u.index, u.bus_id, u.reason);
    }
    for note in notes {
        println!("note: {note}");
    }
}

/// `gpuhook list [--devices D] [--capabilities C] [--json]`: the plan for a container with
/// `NVIDIA_VISIBLE_DEVICES=D` and `NVIDIA_DRIVER_CAPABILITIES=C` (Debian-layout image).
pub fn list(config: &Config, devices: &str, capabilities: &str, as_json: bool) -> ExitCode {
    let facts = ContainerFacts {
        env: [
            (request::VISIBLE_DEVICES_ENV, devices),
            (request::DRIVER_CAPABILITIES_ENV, capabilities),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        privileged: true,
        ..Default::default()
    };
    let request = match request::container_request(&facts, &RequestPolicy::from(config)) {
        Ok(Some(request)) => request,
        Ok(None) => {
            println!("NVIDIA_VISIBLE_DEVICES={devices:?} asks for nothing: nothing is injected");
            return ExitCode::SUCCESS;
        }
        Err(e) => return fail(None, &e.to_string()),
    };
    let inventory = match Inventory::read(&config.driver, InventoryNeeds::default()) {
        Ok(i) => i,
        Err(e) => return fail(None, &e.to_string()),
    };
    let plan = match plan::plan(&request, &inventory, &ContainerLayout::for_rootfs(true)) {
        Ok(p) => p,
        Err(e) => return fail(None, &e.to_string()),
    };
    let kind = |k: MountKind| match k {
        MountKind::File => "file",
        MountKind::Device => "device",
        MountKind::Ipc => "ipc",
    };
    if as_json {
        let mounts: Vec<serde_json::Value> = plan
            .mounts
            .iter()
            .map(|m| {
                json!({
                    "kind": kind(m.kind),
                    "host_path": m.host_path,
                    "container_path": m.container_path,
                })
            })
            .collect();
        let value = json!({
            "gpus": plan.gpus.iter().map(|(i, u)| json!({"index": i, "uuid": u})).collect::<Vec<_>>(),
            "mounts": mounts,
            "ldcache_dirs": plan.ldcache_dirs,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    for m in &plan.mounts {
        println!(
            "{:<6} {} -> {}",
            kind(m.kind),
            m.host_path.display(),
            m.container_path.display()
        );
    }
    ExitCode::SUCCESS
}
