//! `gpuhook cdi generate|list` and the hooks a generated spec names (`gpuhook cdi-hook ...`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};

use gpuhook::cdi::hooks::{self, CdiHook};
use gpuhook::cdi::{self, DeviceNameStrategy, GenerateOptions, Registry, Spec};
use gpuhook::config::{Config, LogLevel, CONFIG_ENV};
use gpuhook::hook::OciState;
use gpuhook::inventory::{Inventory, InventoryNeeds};
use gpuhook::log::Log;
use gpuhook::request::parse_capabilities;
use gpuhook::vendor::Vendor;

use crate::{fail, read_state, sibling_or};

#[derive(Subcommand)]
pub enum CdiCommand {
    /// Write a CDI spec for this host's GPUs (to stdout, or --output).
    Generate(GenerateArgs),
    /// List the device names the CDI specs on disk offer.
    List {
        /// A spec directory (repeatable) [default: cdi.spec-dirs of the config].
        #[arg(long = "spec-dir")]
        spec_dirs: Vec<PathBuf>,
    },
}

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// The file to write (atomically); its extension picks the format unless --format is given.
    #[arg(long)]
    output: Option<PathBuf>,
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// What the spec offers: the GPUs and their MIG devices (`gpu`), or the host's IMEX
    /// channels (`imex`, kind nvidia.com/imex-channel), as the incumbent's `--mode imex`.
    #[arg(long, value_enum, default_value = "gpu")]
    mode: Mode,
    /// Name devices by index (`0`, `0:1`), by UUID (`GPU-...`, `MIG-...`) or both.
    #[arg(long, value_enum, default_value = "index")]
    device_name_strategy: DeviceNameStrategy,
    /// The driver root to read files from [default: driver.root of the config].
    #[arg(long)]
    driver_root: Option<PathBuf>,
    /// The spec's kind [default: cdi.default-kind of the config, nvidia.com/gpu; with
    /// --mode imex, nvidia.com/imex-channel].
    #[arg(long)]
    kind: Option<String>,
    /// Driver capabilities whose files the spec carries (as NVIDIA_DRIVER_CAPABILITIES).
    #[arg(long, default_value = "all")]
    capabilities: String,
    /// The gpuhook binary the spec's hooks run [default: this one].
    #[arg(long)]
    hook_path: Option<PathBuf>,
    /// Whose GPUs: NVIDIA's (the driver's), or AMD's or Intel's (from sysfs; kinds
    /// amd.com/gpu and intel.com/gpu, devices named by index, and `all`). One spec per vendor.
    #[arg(long, value_enum, default_value = "nvidia")]
    vendor: VendorArg,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VendorArg {
    Nvidia,
    Amd,
    Intel,
}

impl VendorArg {
    /// `None` for NVIDIA, whose GPUs the driver's own inventory lists.
    pub fn vendor(self) -> Option<Vendor> {
        match self {
            VendorArg::Nvidia => None,
            VendorArg::Amd => Some(Vendor::Amd),
            VendorArg::Intel => Some(Vendor::Intel),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    Gpu,
    Imex,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Yaml,
}

/// Hooks that a gpuhook CDI spec names; the engine runs them with the state on stdin.
#[derive(Subcommand)]
pub enum CdiHookCommand {
    /// Show only the container's GPUs under /proc/driver/nvidia.
    MaskProcDriver,
    /// Rebuild the container's ld cache for these directories.
    UpdateLdcache {
        #[arg(long = "folder", required = true)]
        folders: Vec<PathBuf>,
    },
}

pub fn command(command: CdiCommand, config: &Config, config_named: Option<&Path>) -> ExitCode {
    match command {
        CdiCommand::Generate(args) => generate(args, config, config_named),
        CdiCommand::List { spec_dirs } => {
            let dirs = if spec_dirs.is_empty() {
                config.cdi.spec_dirs.clone()
            } else {
                spec_dirs
            };
            let registry = Registry::load(&dirs);
            for error in &registry.errors {
                eprintln!("gpuhook: warning: unreadable CDI spec {error}");
            }
            for name in registry.device_names() {
                println!("{name}");
            }
            ExitCode::SUCCESS
        }
    }
}

fn generate(args: GenerateArgs, config: &Config, config_named: Option<&Path>) -> ExitCode {
    if let Some(vendor) = args.vendor.vendor() {
        return generate_vendor(vendor, &args, config);
    }
    let mut driver = config.driver.clone();
    if let Some(root) = args.driver_root {
        driver.root = root;
    }
    let capabilities = match parse_capabilities(
        Some(&args.capabilities),
        &config.supported_driver_capabilities,
    ) {
        Ok(c) => c,
        Err(e) => return fail(None, &e.to_string()),
    };
    let mut inventory = match Inventory::read(&driver, InventoryNeeds::default()) {
        Ok(i) => i,
        Err(e) => return fail(None, &e.to_string()),
    };
    let spec = match args.mode {
        Mode::Imex => {
            let kind = args.kind.as_deref().unwrap_or(cdi::IMEX_CHANNEL_KIND);
            match cdi::generate_imex_channels(&inventory, kind) {
                Some(spec) => spec,
                None => {
                    return fail(
                        None,
                        &format!(
                    "no IMEX channel devices under {} (is nvidia-imex running?): nothing to write",
                    driver.dev_root.join(gpuhook::inventory::IMEX_CHANNEL_DIR).display()
                ),
                    )
                }
            }
        }
        Mode::Gpu => {
            // MIG devices are NVML's to enumerate; a host where NVML cannot start still gets
            // a spec of its whole GPUs.
            let mig = InventoryNeeds {
                mig: true,
                ..InventoryNeeds::default()
            };
            if let Err(e) = inventory.load_nvml_facts(&driver, mig) {
                eprintln!("gpuhook: warning: MIG devices left out of the spec: {e}");
            }
            for unusable in &inventory.unusable_gpus {
                eprintln!(
                    "gpuhook: warning: GPU {} ({}) left out of the spec, it cannot be used: {}",
                    unusable.index, unusable.bus_id, unusable.reason
                );
            }
            let options = GenerateOptions {
                kind: args.kind.unwrap_or_else(|| config.cdi.default_kind.clone()),
                naming: args.device_name_strategy,
                capabilities,
                hook_path: args
                    .hook_path
                    .unwrap_or_else(|| sibling_or("gpuhook", "/usr/bin/gpuhook")),
                // A config named for this run (a test's, a non-default driver root) is the one
                // the spec's hooks must read too.
                hook_env: config_named
                    .and_then(|p| std::path::absolute(p).ok())
                    .map(|p| vec![format!("{CONFIG_ENV}={}", p.display())])
                    .unwrap_or_default(),
            };
            match cdi::generate(&inventory, &options) {
                Ok(generated) => {
                    for reason in &generated.left_out {
                        eprintln!("gpuhook: warning: left out of the spec: {reason}");
                    }
                    generated.spec
                }
                Err(e) => return fail(None, &e.to_string()),
            }
        }
    };
    let output = args.output.as_deref();
    write_spec(&spec, format_of(args.format, output), output)
}

/// An AMD or Intel spec, from sysfs alone.
fn generate_vendor(vendor: Vendor, args: &GenerateArgs, config: &Config) -> ExitCode {
    let driver = &config.driver;
    let inventory = gpuhook::vendor::read(&driver.sysfs_root, &driver.dev_root);
    let Some(mut spec) = cdi::vendor::generate_vendor(&inventory, vendor) else {
        return fail(
            None,
            &format!(
                "no {vendor} GPU with DRM nodes under {} and {} (a PCI display device bound to {}): nothing to write",
                driver.sysfs_root.join("bus/pci/devices").display(),
                driver.dev_root.join("dri").display(),
                vendor.drivers().join(" or ")
            ),
        );
    };
    if let Some(kind) = &args.kind {
        spec.kind = kind.clone();
    }
    let output = args.output.as_deref();
    write_spec(&spec, format_of(args.format, output), output)
}

fn format_of(format: Option<Format>, output: Option<&Path>) -> Format {
    format.unwrap_or(
        match output.and_then(|o| o.extension()).and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => Format::Yaml,
            _ => Format::Json,
        },
    )
}

fn write_spec(spec: &Spec, format: Format, output: Option<&Path>) -> ExitCode {
    let text = match format {
        Format::Json => serde_json::to_string_pretty(spec)
            .map(|t| t + "\n")
            .map_err(|e| e.to_string()),
        Format::Yaml => serde_norway::to_string(spec).map_err(|e| e.to_string()),
    };
    let text = match text {
        Ok(t) => t,
        Err(e) => return fail(None, &format!("cannot serialise the CDI spec: {e}")),
    };
    let Some(path) = output else {
        print!("{text}");
        return ExitCode::SUCCESS;
    };
    let written = gpuhook::fsutil::write_atomically(
        path,
        text.as_bytes(),
        gpuhook::fsutil::Mode::Exactly(0o644),
        true,
    );
    match written {
        Ok(()) => {
            println!(
                "wrote CDI spec {} ({} devices)",
                path.display(),
                spec.devices.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(None, &format!("cannot write {}: {e}", path.display())),
    }
}

pub fn hook(command: CdiHookCommand, config: &Config, log: &Log) -> ExitCode {
    let state: OciState = match read_state(log) {
        Ok(state) => state,
        Err(code) => return code,
    };
    let which = match command {
        CdiHookCommand::MaskProcDriver => CdiHook::MaskProcDriver,
        CdiHookCommand::UpdateLdcache { folders } => CdiHook::UpdateLdcache { folders },
    };
    match hooks::run(config, &state, &which) {
        Ok(done) => {
            log.write(
                LogLevel::Info,
                &format!("cdi-hook: container={} {done}", state.id),
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(Some(log), &format!("container {}: {e}", state.id)),
    }
}
