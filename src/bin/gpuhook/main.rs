//! `gpuhook`: the OCI hook (also installed as `nvidia-container-runtime-hook`, the name
//! dockerd's `--gpus` looks for).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use gpuhook::config::{Config, LogLevel, CONFIG_ENV, DEFAULT_CONFIG_PATH};
use gpuhook::configure::{Engine, Registration};
use gpuhook::hook::{self, OciState, Outcome};
use gpuhook::limits::{self, ReadError};
use gpuhook::log::Log;

mod admin;
mod cdi;
mod doctor;
mod metrics;
mod mps;
mod ps;
mod setup;
mod vendors;

/// The name dockerd's `--gpus` support looks up in its PATH.
const COMPAT_HOOK_NAME: &str = "nvidia-container-runtime-hook";

#[derive(Parser)]
#[command(
    version,
    about = "Gives OCI containers NVIDIA GPUs (an OCI hook, a drop-in for nvidia-container-runtime-hook)"
)]
struct Cli {
    /// gpuhook's config file [default: $GPUHOOK_CONFIG, else /etc/gpuhook/config.toml]
    #[arg(long)]
    config: Option<PathBuf>,
    /// Log at debug level.
    #[arg(long, global = true)]
    debug: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run as an OCI prestart hook: container state JSON on stdin.
    Prestart,
    /// Run as an OCI createRuntime hook (same work as prestart).
    #[command(name = "createRuntime")]
    CreateRuntime,
    /// Refused with a clear message: runc runs createContainer hooks inside the container's
    /// namespaces, where gpuhook cannot work safely (use prestart or createRuntime).
    #[command(name = "createContainer")]
    CreateContainer,
    /// Accepted for compatibility; does nothing.
    Poststart,
    /// Run as an OCI poststop hook: a capped container leaves its MPS pool (state on stdin).
    Poststop,
    /// Register gpuhook-runtime with a container engine (edits its config file, with a backup).
    Configure {
        /// The engine whose config to edit.
        #[arg(long = "runtime", value_enum)]
        engine: Engine,
        /// The engine's config file [default: /etc/docker/daemon.json,
        /// /etc/containerd/config.toml, /etc/crio/crio.conf.d/99-gpuhook.conf]
        #[arg(long = "config")]
        engine_config: Option<PathBuf>,
        /// Name of the runtime entry.
        #[arg(long, default_value = "gpuhook")]
        name: String,
        /// Path of gpuhook-runtime [default: next to this gpuhook, else /usr/bin/gpuhook-runtime]
        #[arg(long)]
        runtime_path: Option<PathBuf>,
        /// Make it the engine's default runtime.
        #[arg(long)]
        set_as_default: bool,
        /// Print the resulting file instead of writing it.
        #[arg(long)]
        dry_run: bool,
        /// Take the runtime entry out again (package removal); removes the file when the
        /// entry was all it held.
        #[arg(long, conflicts_with = "set_as_default")]
        remove: bool,
    },
    /// Put `nvidia-container-runtime-hook` (the name dockerd's --gpus runs) in a directory on
    /// PATH, pointing at this gpuhook.
    Install {
        /// Where to put the link.
        #[arg(long, default_value = "/usr/bin")]
        bin_dir: PathBuf,
        /// Replace an existing file of that name that is not gpuhook (NVIDIA's package's).
        #[arg(long)]
        force: bool,
    },
    /// What gpuhook sees on this host: driver and CUDA versions, each GPU.
    Info {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every host file a container with this request would get, and where.
    List {
        /// As NVIDIA_VISIBLE_DEVICES (or, with --vendor, AMD_/INTEL_VISIBLE_DEVICES).
        #[arg(long, default_value = "all")]
        devices: String,
        /// Whose GPUs the request names.
        #[arg(long, value_enum, default_value = "nvidia")]
        vendor: cdi::VendorArg,
        /// As NVIDIA_DRIVER_CAPABILITIES.
        #[arg(long, default_value = "utility,compute")]
        capabilities: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check this node end to end (driver, device nodes, ld cache, ldconfig, cgroup, engine
    /// registration, config) and say how to fix what is wrong.
    Doctor {
        /// Docker's daemon.json.
        #[arg(long, default_value = "/etc/docker/daemon.json")]
        docker_config: PathBuf,
        /// containerd's config.toml.
        #[arg(long, default_value = "/etc/containerd/config.toml")]
        containerd_config: PathBuf,
    },
    /// Which container uses how much GPU memory: one row per (container, GPU), with its
    /// processes (NVML's, attributed through their cgroups and the runtimes' state).
    Ps(ps::PsArgs),
    /// The same as Prometheus metrics, printed once or served with --listen.
    Metrics(metrics::MetricsArgs),
    /// CDI specs: generate one for this host, list what the specs on disk offer.
    #[command(subcommand)]
    Cdi(cdi::CdiCommand),
    /// The hooks a gpuhook CDI spec names (run by the container engine, state on stdin).
    #[command(subcommand, name = "cdi-hook")]
    CdiHook(cdi::CdiHookCommand),
    /// The MPS control daemons gpuhook runs for capped containers.
    #[command(subcommand)]
    Mps(mps::MpsCommand),
}

fn main() -> ExitCode {
    let started = std::time::Instant::now();
    let cli = Cli::parse();
    match cli.command {
        Command::Prestart | Command::CreateRuntime => {}
        Command::CreateContainer => {
            return fail(None, "createContainer hooks run inside the container's namespaces (runc runs them there), where gpuhook cannot do its work safely: register gpuhook as a prestart or createRuntime hook")
        }
        Command::Poststart => return ExitCode::SUCCESS,
        Command::Configure {
            engine,
            engine_config,
            name,
            runtime_path,
            set_as_default,
            dry_run,
            remove,
        } => {
            let registration = Registration {
                name,
                runtime_path: runtime_path
                    .unwrap_or_else(|| sibling_or("gpuhook-runtime", "/usr/bin/gpuhook-runtime")),
                set_as_default,
            };
            let path = engine_config.unwrap_or_else(|| engine.default_config_path().to_path_buf());
            if remove {
                return setup::unconfigure(engine, &path, &registration.name, dry_run);
            }
            return setup::configure(engine, &path, &registration, dry_run);
        }
        Command::Install { bin_dir, force } => return setup::install(&bin_dir, force),
        Command::Cdi(_)
        | Command::CdiHook(_)
        | Command::Info { .. }
        | Command::List { .. }
        | Command::Ps(_)
        | Command::Metrics(_)
        | Command::Mps(_)
        | Command::Poststop
        | Command::Doctor { .. } => {}
    }
    let (config_path, named) = match (cli.config, std::env::var_os(CONFIG_ENV)) {
        (Some(path), _) => (path, true),
        (None, Some(path)) => (PathBuf::from(path), true),
        (None, None) => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
    };
    if let Command::Doctor {
        docker_config,
        containerd_config,
    } = &cli.command
    {
        let engines = doctor::EngineFiles {
            docker: docker_config.clone(),
            containerd: containerd_config.clone(),
        };
        let config = Config::load(&config_path, named).map_err(|e| e.to_string());
        return doctor::doctor(config, &config_path, &engines);
    }
    let config = match Config::load(&config_path, named) {
        Ok(config) => config,
        Err(e) => return fail(None, &e.to_string()),
    };
    let level = if cli.debug {
        LogLevel::Debug
    } else {
        config.log.level
    };
    let log = Log::new(&config.log.file, level);
    match cli.command {
        Command::Cdi(command) => cdi::command(command, &config, named.then_some(&config_path)),
        Command::CdiHook(command) => cdi::hook(command, &config, &log),
        Command::Info { json } => admin::info(&config, json),
        Command::List {
            devices,
            capabilities,
            json,
            vendor,
        } => match vendor.vendor() {
            Some(vendor) => vendors::list(&config, vendor, &devices, json),
            None => admin::list(&config, &devices, &capabilities, json),
        },
        Command::Ps(args) => ps::ps(&config, &args),
        Command::Metrics(args) => metrics::metrics(&config, &args),
        Command::Mps(command) => mps::command(command, &config),
        Command::Poststop => mps::poststop(&config, &log),
        _ => oci_hook(&config, &log, started),
    }
}

/// Reads the OCI state a runtime gives its hooks on stdin.
fn read_state(log: &Log) -> Result<OciState, ExitCode> {
    let what = "the OCI state on stdin";
    let input = match limits::read_bounded(std::io::stdin().lock(), limits::MAX_STATE_BYTES, what) {
        Ok(input) => input,
        Err(ReadError::TooLarge(e)) => return Err(fail(Some(log), &e.to_string())),
        Err(ReadError::Io(e)) => {
            return Err(fail(Some(log), &format!("cannot read {what}: {e}")));
        }
    };
    OciState::parse(&input).map_err(|e| fail(Some(log), &e.to_string()))
}

/// The legacy hook: `prestart` (or `createRuntime`/`createContainer`).
fn oci_hook(config: &Config, log: &Log, started: std::time::Instant) -> ExitCode {
    let state = match read_state(log) {
        Ok(state) => state,
        Err(code) => return code,
    };
    let outcome = hook::run(config, &state);
    // A capped start reaped already; every other run reaps what exited without a poststop.
    if !matches!(outcome, Ok(Outcome::Injected { caps: Some(_), .. })) {
        mps::reap_quietly(config, log);
    }
    match outcome {
        Ok(Outcome::Untouched) => {
            log.write(
                LogLevel::Debug,
                &format!("container={} no GPU requested", state.id),
            );
            ExitCode::SUCCESS
        }
        Ok(Outcome::Injected {
            gpus,
            skipped_gpus,
            capabilities,
            mounts,
            skipped,
            ldcache,
            ldconfig_rss_kib,
            caps,
        }) => {
            for (index, bus_id, reason) in skipped_gpus {
                log.write(
                    LogLevel::Warn,
                    &format!(
                        "container={} skipped unusable GPU {index} ({bus_id}): {reason}",
                        state.id
                    ),
                );
            }
            let lowered = caps.iter().flat_map(|c| &c.lowered);
            for reason in skipped.iter().chain(lowered) {
                log.write(
                    LogLevel::Warn,
                    &format!("container={} left out: {reason}", state.id),
                );
            }
            let gpus: Vec<String> = gpus.iter().map(|(i, uuid)| format!("{i}={uuid}")).collect();
            let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
            let ldcache = ldcache
                .map(|how| format!(" ldcache={how}"))
                .unwrap_or_default();
            let rss = ldconfig_rss_kib
                .map(|kib| format!(" ldconfig_max_rss_kib={kib}"))
                .unwrap_or_default();
            let own_rss = peak_rss_kib()
                .map(|kib| format!(" max_rss_kib={kib}"))
                .unwrap_or_default();
            let memory = caps
                .map(|c| format!(" memory={}", c.summary))
                .unwrap_or_default();
            log.write(
                LogLevel::Info,
                &format!(
                    "container={} gpus=[{}] caps={}{memory} mounts={mounts}{ldcache} elapsed_ms={elapsed_ms:.2}{own_rss}{rss}",
                    state.id,
                    gpus.join(","),
                    capabilities.join(",")
                ),
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(Some(log), &format!("container {}: {e}", state.id)),
    }
}

/// The peak resident set of this process (KiB), for the log: the high-water mark of its own
/// memory since exec (`VmHWM`). `getrusage`'s `ru_maxrss` would not do: it keeps the peak of
/// the process before exec, the runtime (runc's ~10 MB) that forked the hook.
fn peak_rss_kib() -> Option<u64> {
    use procfs::FromRead;
    let status = procfs::process::Status::from_file("/proc/self/status").ok()?;
    status.vmhwm
}

/// A binary installed next to this one, else `fallback`.
fn sibling_or(name: &str, fallback: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(fallback))
}

/// One line a user can act on, on stderr (runc shows it when it aborts the container).
fn fail(log: Option<&Log>, message: &str) -> ExitCode {
    if let Some(log) = log {
        log.write(LogLevel::Error, message);
    }
    eprintln!("gpuhook: {message}");
    ExitCode::FAILURE
}
