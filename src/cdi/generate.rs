//! `gpuhook cdi generate`: the legacy hook's plan for "every GPU, these capabilities", written
//! as a CDI spec. The same planner decides the files, so a CDI container and a hook container
//! get the same ones:
//! - each GPU is a device (by index, UUID or both) whose edit is its device node; `all` has
//!   every GPU node;
//! - the shared edits carry the control nodes, the library, utility, firmware and IPC mounts
//!   (with the hook's mount flags), and two `createRuntime` hooks that are gpuhook itself:
//!   `cdi-hook mask-proc-driver` (only the container's GPUs under `/proc/driver/nvidia/gpus`)
//!   and `cdi-hook update-ldcache` (the container's ld cache, by the host's static ldconfig).
//!   Both run on the host side with the container's state on stdin, under the same rules as
//!   the hook: confined to the rootfs, nothing from the image executed, clean environment.

use std::path::PathBuf;

use crate::inventory::Inventory;
use crate::plan::{self, ContainerLayout, MountKind, PlanError};
use crate::request::{ContainerRequest, DriverCapabilities, VisibleDevices};

use super::spec::{ContainerEdits, Device, DeviceNode, Hook, Mount, Spec, CDI_VERSION};

/// How devices are named in the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceNameStrategy {
    /// `0`, `1`, ...
    Index,
    /// `GPU-<uuid>`
    Uuid,
    /// both, as two devices each
    Both,
}

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// `vendor.com/class`, e.g. `nvidia.com/gpu`.
    pub kind: String,
    pub naming: DeviceNameStrategy,
    pub capabilities: DriverCapabilities,
    /// The gpuhook binary the spec's hooks run.
    pub hook_path: PathBuf,
    /// Environment for those hooks (e.g. `GPUHOOK_CONFIG=...`), never the container's.
    pub hook_env: Vec<String>,
}

/// Where a CDI container gets its libraries: the multiarch directory, which the
/// `update-ldcache` hook indexes whatever the image's own layout.
fn cdi_layout() -> ContainerLayout {
    ContainerLayout::for_rootfs(true)
}

/// Builds the spec for every GPU in `inventory`.
pub fn generate(inventory: &Inventory, options: &GenerateOptions) -> Result<Spec, PlanError> {
    let request = ContainerRequest {
        devices: VisibleDevices::All,
        capabilities: options.capabilities.clone(),
        requirements: Vec::new(),
        imex_channels: Default::default(),
        mps_pipe_directory: None,
        mig_access: Default::default(),
        declared_devices: Vec::new(),
    };
    let plan = plan::plan(&request, inventory, &cdi_layout())?;

    let node = |d: &crate::inventory::DeviceNode| DeviceNode {
        path: d.path.clone(),
        host_path: Some(d.host_path.clone()),
        kind: Some("c".into()),
        major: Some(d.major.into()),
        minor: Some(d.minor.into()),
        permissions: Some("rw".into()),
    };
    let gpu_nodes: Vec<(u32, String, DeviceNode)> = inventory
        .gpus
        .iter()
        .filter_map(|g| {
            g.device
                .as_ref()
                .map(|d| (g.index, g.info.uuid.clone(), node(d)))
        })
        .collect();

    let mut devices = Vec::new();
    for (index, uuid, device_node) in &gpu_nodes {
        let names = match options.naming {
            DeviceNameStrategy::Index => vec![index.to_string()],
            DeviceNameStrategy::Uuid => vec![uuid.clone()],
            DeviceNameStrategy::Both => vec![index.to_string(), uuid.clone()],
        };
        for name in names {
            devices.push(Device {
                name,
                container_edits: ContainerEdits {
                    device_nodes: vec![device_node.clone()],
                    ..Default::default()
                },
            });
        }
    }
    devices.push(Device {
        name: "all".into(),
        container_edits: ContainerEdits {
            device_nodes: gpu_nodes.iter().map(|(_, _, n)| n.clone()).collect(),
            ..Default::default()
        },
    });

    let mounts = plan
        .mounts
        .iter()
        .filter(|m| m.kind != MountKind::Device)
        .map(|m| Mount {
            host_path: m.host_path.clone(),
            container_path: m.container_path.clone(),
            options: m.flags.options(),
        })
        .collect();
    let hook = |args: Vec<String>| Hook {
        hook_name: "createRuntime".into(),
        path: options.hook_path.clone(),
        args,
        env: options.hook_env.clone(),
    };
    let mut hooks = vec![hook(
        ["gpuhook", "cdi-hook", "mask-proc-driver"]
            .map(String::from)
            .to_vec(),
    )];
    if !plan.ldcache_dirs.is_empty() {
        let mut args: Vec<String> = ["gpuhook", "cdi-hook", "update-ldcache"]
            .map(String::from)
            .to_vec();
        for dir in &plan.ldcache_dirs {
            args.push("--folder".into());
            args.push(dir.to_string_lossy().into_owned());
        }
        hooks.push(hook(args));
    }
    Ok(Spec {
        cdi_version: CDI_VERSION.into(),
        kind: options.kind.clone(),
        devices,
        container_edits: ContainerEdits {
            // A container given GPUs through this spec gets exactly those: a legacy hook (the
            // packaged hooks.d entry, `--gpus`) then sees no request, whatever the image's env
            // says (CUDA images set NVIDIA_VISIBLE_DEVICES=all).
            env: vec!["NVIDIA_VISIBLE_DEVICES=void".into()],
            // The control nodes the plan gives for these capabilities (the GPUs' own are per
            // device above).
            device_nodes: plan
                .devices
                .iter()
                .filter(|d| inventory.control_devices.contains(d))
                .map(node)
                .collect(),
            mounts,
            hooks,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdi::registry::read_spec;
    use crate::request::DriverCapability;

    fn options(naming: DeviceNameStrategy) -> GenerateOptions {
        GenerateOptions {
            kind: "nvidia.com/gpu".into(),
            naming,
            capabilities: DriverCapability::ALL.into_iter().collect(),
            hook_path: "/usr/bin/gpuhook".into(),
            hook_env: vec![],
        }
    }

    fn names(spec: &Spec) -> Vec<&str> {
        spec.devices.iter().map(|d| d.name.as_str()).collect()
    }

    #[test]
    fn one_device_per_gpu_by_each_naming_strategy_plus_all() {
        let inventory = crate::plan::tests::inventory();
        let uuid0 = inventory.gpus[0].info.uuid.clone();
        let uuid1 = inventory.gpus[1].info.uuid.clone();
        let spec = generate(&inventory, &options(DeviceNameStrategy::Index)).unwrap();
        assert_eq!(names(&spec), ["0", "1", "all"]);
        let spec = generate(&inventory, &options(DeviceNameStrategy::Uuid)).unwrap();
        assert_eq!(names(&spec), [uuid0.as_str(), uuid1.as_str(), "all"]);
        let spec = generate(&inventory, &options(DeviceNameStrategy::Both)).unwrap();
        assert_eq!(
            names(&spec),
            ["0", uuid0.as_str(), "1", uuid1.as_str(), "all"]
        );

        let node_paths = |d: &Device| -> Vec<String> {
            d.container_edits
                .device_nodes
                .iter()
                .map(|n| n.path.display().to_string())
                .collect()
        };
        assert_eq!(node_paths(&spec.devices[2]), ["/dev/nvidia1"]);
        assert_eq!(
            node_paths(&spec.devices[4]),
            ["/dev/nvidia0", "/dev/nvidia1"]
        );
        let gpu1 = &spec.devices[2].container_edits.device_nodes[0];
        assert_eq!(
            (gpu1.host_path.as_deref(), gpu1.major, gpu1.minor),
            (
                Some(std::path::Path::new("/sim/dev/nvidia1")),
                Some(195),
                Some(1)
            )
        );
    }

    #[test]
    fn shared_edits_carry_control_nodes_files_and_the_gpuhook_hooks() {
        let inventory = crate::plan::tests::inventory();
        let spec = generate(&inventory, &options(DeviceNameStrategy::Index)).unwrap();
        assert_eq!(spec.cdi_version, "0.5.0");
        let edits = &spec.container_edits;
        assert_eq!(edits.env, ["NVIDIA_VISIBLE_DEVICES=void"]);
        let nodes: Vec<_> = edits
            .device_nodes
            .iter()
            .map(|n| n.path.display().to_string())
            .collect();
        assert_eq!(
            nodes,
            ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-modeset"]
        );
        let mount = |target: &str| {
            edits
                .mounts
                .iter()
                .find(|m| m.container_path == std::path::Path::new(target))
        };
        let libcuda = mount("/usr/lib/x86_64-linux-gnu/libcuda.so.580.159.04").unwrap();
        assert_eq!(libcuda.options, ["ro", "nosuid", "nodev", "bind"]);
        assert!(
            mount("/usr/lib/i386-linux-gnu/libcuda.so.580.159.04").is_some(),
            "compat32 with all"
        );
        assert!(mount("/usr/bin/nvidia-smi").is_some());
        assert!(mount("/lib/firmware/nvidia/580.159.04/gsp_ga10x.bin").is_some());
        let socket = mount("/run/nvidia-persistenced/socket").unwrap();
        assert_eq!(socket.options, ["nosuid", "nodev", "noexec", "bind"]);
        assert!(mount("/dev/nvidia0").is_none(), "GPU nodes are per device");

        let args: Vec<Vec<&str>> = edits
            .hooks
            .iter()
            .map(|h| h.args.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(args[0], ["gpuhook", "cdi-hook", "mask-proc-driver"]);
        assert_eq!(
            args[1],
            [
                "gpuhook",
                "cdi-hook",
                "update-ldcache",
                "--folder",
                "/usr/lib/x86_64-linux-gnu",
                "--folder",
                "/usr/lib/i386-linux-gnu"
            ]
        );
        assert!(edits.hooks.iter().all(|h| h.hook_name == "createRuntime"));
    }

    #[test]
    fn capabilities_narrow_the_files() {
        let inventory = crate::plan::tests::inventory();
        let mut opts = options(DeviceNameStrategy::Index);
        opts.capabilities = [DriverCapability::Utility].into_iter().collect();
        let spec = generate(&inventory, &opts).unwrap();
        let targets: Vec<_> = spec
            .container_edits
            .mounts
            .iter()
            .map(|m| m.container_path.display().to_string())
            .filter(|t| t.starts_with("/usr/lib"))
            .collect();
        assert_eq!(
            targets,
            ["/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.580.159.04"]
        );
    }

    #[test]
    fn json_and_yaml_round_trip() {
        let inventory = crate::plan::tests::inventory();
        let spec = generate(&inventory, &options(DeviceNameStrategy::Both)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("gpu.json");
        std::fs::write(&json, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
        assert_eq!(read_spec(&json).unwrap(), spec);
        let yaml = dir.path().join("gpu.yaml");
        std::fs::write(&yaml, serde_norway::to_string(&spec).unwrap()).unwrap();
        assert_eq!(read_spec(&yaml).unwrap(), spec);
    }
}
