//! `gpuhook`: the OCI hook (also installed as `nvidia-container-runtime-hook`, the name
//! dockerd's `--gpus` looks for).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use gpuhook::config::{Config, LogLevel, CONFIG_ENV, DEFAULT_CONFIG_PATH};
use gpuhook::hook::{self, OciState, Outcome};
use gpuhook::log::Log;

#[derive(Parser)]
#[command(
    version,
    about = "Gives OCI containers NVIDIA GPUs (an OCI hook, a drop-in for nvidia-container-runtime-hook)"
)]
struct Cli {
    /// Config file [default: $GPUHOOK_CONFIG, else /etc/gpuhook/config.toml]
    #[arg(long, global = true)]
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
    /// Run as an OCI createContainer hook (same work as prestart).
    #[command(name = "createContainer")]
    CreateContainer,
    /// Accepted for compatibility; does nothing.
    Poststart,
    /// Accepted for compatibility; does nothing.
    Poststop,
}

fn main() -> ExitCode {
    let started = std::time::Instant::now();
    let cli = Cli::parse();
    match cli.command {
        Command::Prestart | Command::CreateRuntime | Command::CreateContainer => {}
        Command::Poststart | Command::Poststop => return ExitCode::SUCCESS,
    }
    let (config_path, named) = match (cli.config, std::env::var_os(CONFIG_ENV)) {
        (Some(path), _) => (path, true),
        (None, Some(path)) => (PathBuf::from(path), true),
        (None, None) => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
    };
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

    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        return fail(
            Some(&log),
            &format!("cannot read the OCI state from stdin: {e}"),
        );
    }
    let state = match OciState::parse(&input) {
        Ok(state) => state,
        Err(e) => return fail(Some(&log), &e.to_string()),
    };
    match hook::run(&config, &state) {
        Ok(Outcome::Untouched) => {
            log.write(
                LogLevel::Debug,
                &format!("container={} no GPU requested", state.id),
            );
            ExitCode::SUCCESS
        }
        Ok(Outcome::Injected { gpus, mounts }) => {
            let gpus: Vec<String> = gpus.iter().map(|(i, uuid)| format!("{i}={uuid}")).collect();
            let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
            log.write(
                LogLevel::Info,
                &format!(
                    "container={} gpus=[{}] mounts={mounts} elapsed_ms={elapsed_ms:.2}",
                    state.id,
                    gpus.join(",")
                ),
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(Some(&log), &format!("container {}: {e}", state.id)),
    }
}

/// One line a user can act on, on stderr (runc shows it when it aborts the container).
fn fail(log: Option<&Log>, message: &str) -> ExitCode {
    if let Some(log) = log {
        log.write(LogLevel::Error, message);
    }
    eprintln!("gpuhook: {message}");
    ExitCode::FAILURE
}
