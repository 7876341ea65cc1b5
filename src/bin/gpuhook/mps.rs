//! `gpuhook poststop` and `gpuhook mps reap`: capped containers leaving their MPS pools.

use std::process::ExitCode;

use clap::Subcommand;

use gpuhook::config::{Config, LogLevel};
use gpuhook::log::Log;
use gpuhook::mps::{self, MpsRoot, Reaped};

use crate::{fail, read_state};

#[derive(Subcommand)]
pub enum MpsCommand {
    /// Unregister capped containers whose process is gone and stop the MPS control daemons
    /// nobody uses (what every hook run does, for containers that exited without a poststop
    /// hook); prints what it removed.
    Reap,
}

pub fn command(command: MpsCommand, config: &Config) -> ExitCode {
    match command {
        MpsCommand::Reap => match mps::reap(&root(config), true) {
            Ok(reaped) => {
                println!("{}", describe(&reaped));
                ExitCode::SUCCESS
            }
            Err(e) => fail(None, &e.to_string()),
        },
    }
}

/// The poststop hook: the container leaves its pool; the last one out stops the daemon.
pub fn poststop(config: &Config, log: &Log) -> ExitCode {
    let state = match read_state(log) {
        Ok(state) => state,
        Err(code) => return code,
    };
    match mps::leave(&root(config), &state.id, &state.bundle) {
        Ok(true) => {
            log.write(
                LogLevel::Info,
                &format!("poststop: container={} left its MPS pool", state.id),
            );
            ExitCode::SUCCESS
        }
        Ok(false) => {
            log.write(
                LogLevel::Debug,
                &format!("poststop: container={} has no registration", state.id),
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(Some(log), &format!("container {}: {e}", state.id)),
    }
}

/// The reap every hook run does: never waits for the lock, never fails the container.
pub fn reap_quietly(config: &Config, log: &Log) {
    match mps::reap(&root(config), false) {
        Ok(reaped) if reaped != Reaped::default() => {
            log.write(LogLevel::Info, &format!("reaper: {}", describe(&reaped)))
        }
        Ok(_) => {}
        Err(e) => log.write(LogLevel::Warn, &format!("reaper: {e}")),
    }
}

fn root(config: &Config) -> MpsRoot {
    MpsRoot::new(&config.memory.mps_root)
}

fn describe(reaped: &Reaped) -> String {
    let list = |items: &[String]| match items.is_empty() {
        true => "none".to_string(),
        false => items.join(", "),
    };
    format!(
        "removed registrations of exited containers: {}; stopped pools: {}",
        list(&reaped.registrations),
        list(&reaped.pools)
    )
}
