//! AMD's and Intel's GPUs in `gpuhook info`, `gpuhook list --vendor` and `gpuhook doctor`.

use std::process::ExitCode;

use serde_json::{json, Value};

use gpuhook::config::Config;
use gpuhook::vendor::{self, Vendor, VendorInventory};

use crate::fail;

pub fn read(config: &Config) -> VendorInventory {
    vendor::read(&config.driver.sysfs_root, &config.driver.dev_root)
}

fn node_paths(gpu: &vendor::VendorGpu) -> Vec<String> {
    gpu.nodes
        .iter()
        .map(|n| n.path.display().to_string())
        .collect()
}

/// The `vendor_gpus` and `kfd` of `gpuhook info --json`.
pub fn json(inventory: &VendorInventory) -> (Value, Value) {
    let gpus = inventory
        .gpus
        .iter()
        .map(|g| {
            json!({
                "vendor": g.vendor.name(),
                "index": g.index,
                "bus_id": g.bus_id,
                "driver": g.driver,
                "unique_id": g.unique_id.map(|id| format!("{id:#x}")),
                "nodes": node_paths(g),
                "request": format!("{}={}", g.vendor.visible_devices_env(), g.index),
            })
        })
        .collect();
    let kfd = inventory
        .kfd
        .as_ref()
        .map(|k| k.host_path.display().to_string());
    (Value::Array(gpus), json!(kfd))
}

/// The table rows of `gpuhook info`.
pub fn print_table(inventory: &VendorInventory) {
    if inventory.gpus.is_empty() {
        return;
    }
    println!("VENDOR GPU  BUS ID        DRIVER  UNIQUE ID           NODES");
    for g in &inventory.gpus {
        println!(
            "{:<6} {:<4} {:<13} {:<7} {:<19} {}",
            g.vendor.name(),
            g.index,
            g.bus_id,
            g.driver,
            g.unique_id.map_or("-".to_string(), |id| format!("{id:#x}")),
            node_paths(g).join(" ")
        );
    }
    if inventory.of(Vendor::Amd).next().is_some() {
        match &inventory.kfd {
            Some(kfd) => println!("kfd {}", kfd.host_path.display()),
            None => println!("kfd missing: AMD GPUs cannot be given (no /dev/kfd)"),
        }
    }
}

/// `gpuhook list --vendor amd|intel --devices D`: the device nodes such a container gets.
pub fn list(config: &Config, vendor: Vendor, devices: &str, as_json: bool) -> ExitCode {
    let variable = vendor.visible_devices_env();
    let request = match vendor::parse_visible(vendor, devices) {
        Ok(Some(devices_asked)) => vendor::VendorRequest {
            vendor,
            devices: devices_asked,
            value: devices.to_string(),
        },
        Ok(None) => {
            println!("{variable}={devices:?} asks for nothing: nothing is injected");
            return ExitCode::SUCCESS;
        }
        Err(e) => return fail(None, &e.to_string()),
    };
    let plan = match vendor::plan(&[request], &read(config)) {
        Ok(plan) => plan,
        Err(e) => return fail(None, &e.to_string()),
    };
    if as_json {
        let value = json!({
            "gpus": plan.gpus.iter().map(|g| json!({"index": g.index, "bus_id": g.bus_id})).collect::<Vec<_>>(),
            "mounts": plan.devices.iter().map(|d| json!({
                "kind": "device", "host_path": d.host_path, "container_path": d.path,
            })).collect::<Vec<_>>(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    for d in &plan.devices {
        println!("device {} -> {}", d.host_path.display(), d.path.display());
    }
    ExitCode::SUCCESS
}

/// `gpuhook doctor`'s lines for AMD and Intel GPUs: `(ok, what, fix)` each.
pub fn doctor_lines(config: &Config) -> Vec<(bool, String, &'static str)> {
    let inventory = read(config);
    let mut lines = Vec::new();
    for g in &inventory.gpus {
        let what = format!("{} GPU {} ({}, {})", g.vendor, g.index, g.bus_id, g.driver);
        match g.nodes.is_empty() {
            false => lines.push((true, format!("{what}: {}", node_paths(g).join(", ")), "")),
            true => lines.push((
                false,
                format!(
                    "{what} has no DRM node under {}",
                    config.driver.dev_root.join("dri").display()
                ),
                "load its driver, or set driver.dev-root to where its /dev/dri nodes are",
            )),
        }
    }
    if inventory.of(Vendor::Amd).next().is_some() && inventory.kfd.is_none() {
        lines.push((
            false,
            format!(
                "no {} (ROCm's compute interface)",
                config.driver.dev_root.join("kfd").display()
            ),
            "load amdgpu with KFD (a ROCm-capable kernel), or set driver.dev-root",
        ));
    }
    lines
}
