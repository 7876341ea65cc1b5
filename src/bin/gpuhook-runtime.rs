//! `gpuhook-runtime`: register it with Docker, containerd or CRI-O like runc (see
//! `gpuhook configure`). It prepares GPU containers' specs, then execs the real runtime.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use gpuhook::config::{Config, LogLevel, CONFIG_ENV, DEFAULT_CONFIG_PATH};
use gpuhook::log::Log;
use gpuhook::runtime::{self, Prepared, RuncInvocation};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let (config_path, named) = match std::env::var_os(CONFIG_ENV) {
        Some(path) => (PathBuf::from(path), true),
        None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
    };
    let invocation = runtime::args::parse(&args);
    let config = match Config::load(&config_path, named) {
        Ok(config) => config,
        Err(e) if invocation.creates_container() => return fail(None, &invocation, &e.to_string()),
        // A broken config must not stop `delete`, `kill` or `state` of running containers:
        // those pass through with the default runtime search order.
        Err(e) => {
            eprintln!("gpuhook-runtime: warning: {e}; passing through with defaults");
            Config::default()
        }
    };
    let log = Log::new(&config.log.file, config.log.level);
    let id = invocation.container_id.clone().unwrap_or_default();
    // The file name it was executed under: the engine's registered path, which a second runtime
    // name (a link to this binary) makes different; `memory.runtimes` is keyed by it.
    let runtime_name = std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    match runtime::prepare(&config, &invocation, &runtime_name) {
        Ok(Prepared::Untouched) => {}
        Ok(Prepared::Gpus { gpus, summary }) => {
            let gpus: Vec<String> = gpus.iter().map(|(i, uuid)| format!("{i}={uuid}")).collect();
            log.write(
                LogLevel::Info,
                &format!(
                    "runtime: container={id} gpus=[{}] hook_added={} devices_added={} hooks_capped={} poststop_added={}",
                    gpus.join(","),
                    summary.hook_added,
                    summary.devices_added,
                    summary.hooks_capped,
                    summary.poststop_added
                ),
            );
        }
        Ok(Prepared::Cdi { devices, summary }) => {
            log.write(
                LogLevel::Info,
                &format!(
                    "runtime: container={id} cdi=[{}] devices_added={} mounts_added={} hooks_added={}",
                    devices.join(","),
                    summary.devices,
                    summary.mounts,
                    summary.hooks
                ),
            );
        }
        Err(e) => return fail(Some(&log), &invocation, &format!("container {id}: {e}")),
    }
    let runtime = match runtime::find_runtime(&config) {
        Ok(path) => path,
        Err(e) => return fail(Some(&log), &invocation, &e.to_string()),
    };
    log.write(
        LogLevel::Debug,
        &format!("runtime: exec {} {:?}", runtime.display(), args),
    );
    // exec only returns on failure.
    let error = Command::new(&runtime).args(&args).exec();
    fail(
        Some(&log),
        &invocation,
        &format!("cannot exec {}: {error}", runtime.display()),
    )
}

/// Says what went wrong on stderr, in gpuhook's log, and in runc's `--log` file (where
/// containerd, and so `docker run`, looks for it).
fn fail(log: Option<&Log>, invocation: &RuncInvocation, message: &str) -> ExitCode {
    if let Some(log) = log {
        log.write(LogLevel::Error, &format!("runtime: {message}"));
    }
    let line = format!("gpuhook-runtime: {message}");
    // Best effort: the message is on stderr whatever happens to the runc log.
    let _ = runtime::runc_log::record_failure(invocation, &line);
    eprintln!("{line}");
    ExitCode::FAILURE
}
