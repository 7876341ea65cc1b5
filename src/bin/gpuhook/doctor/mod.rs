//! `gpuhook doctor`: checks a node end to end and says, for each problem, what to do. Exits
//! non-zero when something is broken (a warning alone does not fail).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use gpuhook::apply::cgroup::{parse_proc_cgroup, DeviceCgroup};
use gpuhook::apply::ldconfig::HostLdconfig;
use gpuhook::config::Config;
use gpuhook::inventory::{Inventory, InventoryNeeds};

mod caps;
mod containerd;

/// Where the engines keep their configs (overridable for tests and odd layouts).
pub struct EngineFiles {
    pub docker: PathBuf,
    pub containerd: PathBuf,
}

#[derive(Default)]
struct Report {
    failures: usize,
    warnings: usize,
}

impl Report {
    fn ok(&mut self, what: &str) {
        println!("ok    {what}");
    }
    fn warn(&mut self, what: &str, fix: &str) {
        self.warnings += 1;
        println!("warn  {what}\n      -> {fix}");
    }
    fn fail(&mut self, what: &str, fix: &str) {
        self.failures += 1;
        println!("FAIL  {what}\n      -> {fix}");
    }
}

/// `config` is the loaded config, or why it could not be loaded.
pub fn doctor(
    config: Result<Config, String>,
    config_path: &Path,
    engines: &EngineFiles,
) -> ExitCode {
    let mut report = Report::default();
    let config = match config {
        Ok(config) => {
            report.ok(&format!("config {} is valid", config_path.display()));
            config
        }
        Err(e) => {
            report.fail(&e, "fix the named key (every key is documented in /usr/share/doc/gpuhook or config/config.toml); checking with defaults");
            Config::default()
        }
    };
    let others = check_vendor_gpus(&config, &mut report);
    check_driver(&config, others, &mut report);
    check_ldconfig(&config, &mut report);
    check_cgroup(&mut report);
    check_engines(engines, &config, &mut report);
    println!(
        "{} problem(s), {} warning(s)",
        report.failures, report.warnings
    );
    if report.failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// AMD's and Intel's GPUs; returns whether there are any (then no NVIDIA driver is no failure).
fn check_vendor_gpus(config: &Config, report: &mut Report) -> bool {
    let lines = crate::vendors::doctor_lines(config);
    for (ok, what, fix) in &lines {
        match ok {
            true => report.ok(what),
            false => report.warn(what, fix),
        }
    }
    !lines.is_empty()
}

fn check_driver(config: &Config, other_gpus: bool, report: &mut Report) {
    let inventory = match Inventory::read(&config.driver, InventoryNeeds::default()) {
        Ok(inventory) => inventory,
        Err(e) if other_gpus => {
            report.warn(&e.to_string(), "only AMD and Intel GPUs can be given on this host; install the NVIDIA driver for NVIDIA GPUs");
            return;
        }
        Err(e) => {
            report.fail(
                &e.to_string(),
                "load the NVIDIA kernel module (nvidia-smi on the host), or set driver.root / driver.proc-driver-root to where the driver is",
            );
            return;
        }
    };
    report.ok(&format!(
        "driver {} loaded, {} GPU(s)",
        inventory.driver_version,
        inventory.gpus.len() + inventory.unusable_gpus.len()
    ));
    check_gpus(config, &inventory, report);
    check_libraries(config, &inventory, report);
    caps::check(config, &inventory, report);
    check_utilities(&inventory, report);
}

fn check_gpus(config: &Config, inventory: &Inventory, report: &mut Report) {
    for gpu in &inventory.gpus {
        match &gpu.device {
            Some(node) => report.ok(&format!(
                "GPU {} ({}) device node {}",
                gpu.index,
                gpu.info.uuid,
                node.host_path.display()
            )),
            None => report.fail(
                &format!(
                    "GPU {} ({}) has no device node nvidia{} in {}",
                    gpu.index,
                    gpu.info.uuid,
                    gpu.info.minor,
                    config.driver.dev_root.display()
                ),
                "create the device files: run nvidia-modprobe (or nvidia-smi once) on the host",
            ),
        }
    }
    for unusable in &inventory.unusable_gpus {
        report.fail(
            &format!(
                "GPU {} ({}) cannot be used: {}",
                unusable.index, unusable.bus_id, unusable.reason
            ),
            &format!(
                "check the GPU (nvidia-smi -q -i {}, the kernel log); containers asking for it fail, `all` gets the other GPUs",
                unusable.bus_id
            ),
        );
    }
    if !inventory
        .control_devices
        .iter()
        .any(|d| d.path == Path::new("/dev/nvidiactl"))
    {
        report.fail(
            &format!("no nvidiactl in {}", config.driver.dev_root.display()),
            "create the device files: run nvidia-modprobe (or nvidia-smi once) on the host",
        );
    }
}

fn check_libraries(config: &Config, inventory: &Inventory, report: &mut Report) {
    for library in ["libcuda.so", "libnvidia-ml.so"] {
        if inventory
            .libraries
            .iter()
            .any(|l| l.prefix == library && l.is_64bit)
        {
            report.ok(&format!("{library} of this driver is in the ld cache"));
        } else {
            report.fail(
                &format!(
                    "{library}.{} not found through {} in {}",
                    inventory.driver_version,
                    config.driver.ldcache.display(),
                    config.driver.root.display()
                ),
                "run ldconfig on the host (the driver's library directory must be in /etc/ld.so.conf.d), or set driver.root",
            );
        }
    }
}

fn check_utilities(inventory: &Inventory, report: &mut Report) {
    let named = |list: &[(&str, std::path::PathBuf)]| {
        list.iter()
            .find(|(name, _)| *name == "nvidia-smi")
            .map(|(_, path)| path.clone())
    };
    if named(&inventory.binaries).is_some() {
        report.ok("nvidia-smi found for utility containers");
    } else if let Some(script) = named(&inventory.skipped_binaries) {
        report.warn(
            &format!(
                "nvidia-smi {} is a script (skipped on purpose: a host wrapper runs a host path a container does not have), and no ELF nvidia-smi is in driver.binary-dirs",
                script.display()
            ),
            "add the directory of the driver's real nvidia-smi (the one the script runs) to driver.binary-dirs",
        );
    } else {
        report.warn(
            "nvidia-smi not found in driver.binary-dirs",
            "add the directory holding the driver's nvidia-smi to driver.binary-dirs",
        );
    }
}

fn check_ldconfig(config: &Config, report: &mut Report) {
    match HostLdconfig::open(config.host_ldconfig()) {
        Ok(_) => report.ok(&format!(
            "ldconfig {} is a static executable",
            config.host_ldconfig().display()
        )),
        Err(e) => report.fail(
            &e.to_string(),
            "install the distro's static ldconfig (libc-bin) or set hook.ldconfig",
        ),
    }
}

fn check_cgroup(report: &mut Report) {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    match parse_proc_cgroup(&text, Path::new("/sys/fs/cgroup")) {
        Some(DeviceCgroup::V1(_)) => report.ok("cgroup v1: device rules through devices.allow"),
        Some(DeviceCgroup::V2(_)) => report.ok("cgroup v2: device rules through eBPF programs"),
        None => report.warn(
            "no devices (v1) or unified (v2) cgroup for this process",
            "set hook.no-cgroups = true if the runtime manages device rules itself",
        ),
    }
}

fn check_engines(engines: &EngineFiles, config: &Config, report: &mut Report) {
    let dockerd = which("dockerd");
    if dockerd.is_some() {
        match which("nvidia-container-runtime-hook") {
            Some(hook) if is_gpuhook(&hook) => report.ok(&format!(
                "{} is gpuhook: docker run --gpus uses it (after a dockerd restart)",
                hook.display()
            )),
            Some(hook) => report.fail(
                &format!("{} is not gpuhook (NVIDIA's toolkit?)", hook.display()),
                "remove nvidia-container-toolkit, then run gpuhook install",
            ),
            None => report.fail(
                "no nvidia-container-runtime-hook on PATH: docker run --gpus fails",
                "run gpuhook install, then restart dockerd",
            ),
        }
    }
    check_registration(
        "docker",
        dockerd.is_some(),
        &engines.docker,
        "gpuhook-runtime",
        report,
    );
    if which("containerd").is_some() {
        containerd::check(&engines.containerd, config, report);
    }
}

/// Whether the engine's config names gpuhook-runtime, and whether that binary exists.
fn check_registration(
    engine: &str,
    installed: bool,
    file: &Path,
    runtime: &str,
    report: &mut Report,
) {
    if !installed {
        return;
    }
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let Some(path) = registered_runtime_path(&text, runtime) else {
        report.warn(
            &format!("{engine}: no gpuhook runtime in {}", file.display()),
            &format!("for --runtime=gpuhook and CDI: gpuhook configure --runtime {engine}, then restart {engine}"),
        );
        return;
    };
    if Path::new(&path).is_file() {
        report.ok(&format!("{engine}: runtime registered ({path})"));
    } else {
        report.fail(
            &format!(
                "{engine}: {} names {path}, which does not exist",
                file.display()
            ),
            &format!(
                "reinstall gpuhook, or gpuhook configure --runtime {engine} --runtime-path <path>"
            ),
        );
    }
}

/// The first quoted path in `text` that ends in `/<runtime>` (daemon.json's `"path"`). A text
/// search, not a parse: the check only reports. (containerd's config is parsed: see
/// `containerd.rs`.)
fn registered_runtime_path(text: &str, runtime: &str) -> Option<String> {
    text.split('"')
        .find(|s| s.ends_with(&format!("/{runtime}")) && s.starts_with('/'))
        .map(str::to_string)
}

fn is_gpuhook(path: &Path) -> bool {
    let own = std::env::current_exe().and_then(|p| p.canonicalize()).ok();
    let target = path.canonicalize().ok();
    target.is_some()
        && (target == own
            || target.as_deref().and_then(|t| t.file_name()) == Some("gpuhook".as_ref()))
}

fn which(program: &str) -> Option<PathBuf> {
    gpuhook::runtime::executables_named(program)
        .into_iter()
        .next()
}
