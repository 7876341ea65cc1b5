//! Reading a runc command line without changing it.
//!
//! The shim must pass its arguments to the real runtime byte for byte, including flags this
//! version of gpuhook has never heard of, so it does not parse them with clap: it only finds
//! the command, `--bundle` and the container id, knowing which of runc's global flags take a
//! value. Everything else is left as it is.

use std::ffi::OsString;
use std::path::PathBuf;

/// runc's global flags that take a value (`--root DIR` and `--root=DIR` alike).
const GLOBAL_FLAGS_WITH_VALUE: [&str; 5] =
    ["--root", "--log", "--log-format", "--criu", "--rootless"];
/// `create` and `run` flags that take a value, so their value is not taken for the id.
const COMMAND_FLAGS_WITH_VALUE: [&str; 7] = [
    "--bundle",
    "-b",
    "--console-socket",
    "--pid-file",
    "--preserve-fds",
    "--notify-socket",
    "--criu",
];

/// What the shim needs to know of one invocation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuncInvocation {
    /// `create`, `run`, `start`, `delete`, ...; `None` for `--version` and the like.
    pub command: Option<String>,
    /// `--bundle`/`-b`, as given (relative to the current directory when relative).
    pub bundle: Option<PathBuf>,
    /// The container id (the command's first positional argument).
    pub container_id: Option<String>,
    /// runc's `--log` file: where containerd looks for the reason a command failed.
    pub log_file: Option<PathBuf>,
    /// `--log-format` (`text` or `json`).
    pub log_format: Option<String>,
}

impl RuncInvocation {
    /// The command's bundle: `--bundle`, else the current directory (runc's rule).
    pub fn bundle_dir(&self) -> std::io::Result<PathBuf> {
        let cwd = std::env::current_dir()?;
        Ok(match &self.bundle {
            Some(b) => cwd.join(b),
            None => cwd,
        })
    }

    /// Whether the command creates a container from a bundle (the ones the shim edits).
    pub fn creates_container(&self) -> bool {
        matches!(self.command.as_deref(), Some("create" | "run"))
    }
}

/// Parses the arguments after argv[0].
pub fn parse(args: &[OsString]) -> RuncInvocation {
    let mut invocation = RuncInvocation::default();
    let mut i = 0;
    // Global flags, then the command.
    while i < args.len() {
        let arg = args[i].to_string_lossy();
        if !arg.starts_with('-') {
            invocation.command = Some(arg.into_owned());
            i += 1;
            break;
        }
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_string())),
            None => (arg.as_ref(), None),
        };
        let mut value = inline_value;
        if value.is_none() && GLOBAL_FLAGS_WITH_VALUE.contains(&flag) {
            i += 1;
            value = args.get(i).map(|v| v.to_string_lossy().into_owned());
        }
        match flag {
            "--log" => invocation.log_file = value.map(PathBuf::from),
            "--log-format" => invocation.log_format = value,
            _ => {}
        }
        i += 1;
    }
    // The command's flags and its first positional argument.
    while i < args.len() {
        let arg = args[i].to_string_lossy();
        if let Some((flag, value)) = arg.split_once('=') {
            if flag == "--bundle" || flag == "-b" {
                invocation.bundle = Some(PathBuf::from(value));
            }
        } else if arg == "--bundle" || arg == "-b" {
            invocation.bundle = args.get(i + 1).map(PathBuf::from);
            i += 1;
        } else if COMMAND_FLAGS_WITH_VALUE.contains(&arg.as_ref()) {
            i += 1;
        } else if arg == "--" {
            if invocation.container_id.is_none() {
                invocation.container_id = args.get(i + 1).map(|a| a.to_string_lossy().into_owned());
            }
            break;
        } else if !arg.starts_with('-') && invocation.container_id.is_none() {
            invocation.container_id = Some(arg.into_owned());
        }
        i += 1;
    }
    invocation
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(line: &str) -> RuncInvocation {
        let args: Vec<OsString> = line.split_whitespace().map(OsString::from).collect();
        parse(&args)
    }

    #[test]
    fn containerd_shim_create() {
        let inv = parse_str("--root /run/containerd/runc/moby --log /run/x/log.json --log-format json --systemd-cgroup create --bundle /run/b --pid-file /run/b/init.pid abc123");
        assert_eq!(inv.command.as_deref(), Some("create"));
        assert_eq!(inv.bundle, Some(PathBuf::from("/run/b")));
        assert_eq!(inv.container_id.as_deref(), Some("abc123"));
        assert_eq!(inv.log_file, Some(PathBuf::from("/run/x/log.json")));
        assert_eq!(inv.log_format.as_deref(), Some("json"));
        assert!(inv.creates_container());
    }

    #[test]
    fn short_and_equals_forms() {
        let inv = parse_str("run -b bundle ctr");
        assert_eq!(
            (inv.bundle, inv.container_id.as_deref()),
            (Some(PathBuf::from("bundle")), Some("ctr"))
        );
        let inv =
            parse_str("--root=/r --log=/l.json --log-format=json run --bundle=/b --detach c1");
        assert_eq!(
            (inv.bundle, inv.container_id.as_deref()),
            (Some(PathBuf::from("/b")), Some("c1"))
        );
        assert_eq!(
            (inv.log_file, inv.log_format.as_deref()),
            (Some(PathBuf::from("/l.json")), Some("json"))
        );
        let inv = parse_str("create --console-socket /s --pid-file /p c2");
        assert_eq!(
            (inv.bundle, inv.container_id.as_deref()),
            (None, Some("c2"))
        );
    }

    #[test]
    fn other_commands_and_no_command() {
        assert_eq!(
            parse_str("--root /r delete --force c1").command.as_deref(),
            Some("delete")
        );
        assert!(!parse_str("start c1").creates_container());
        assert_eq!(parse_str("--version").command, None);
        assert_eq!(parse_str("").command, None);
    }
}
