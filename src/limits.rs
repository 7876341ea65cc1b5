//! Bounds on what gpuhook reads from a tenant. The hook runs as root before the container
//! starts, so every byte of `config.json` and of the state on stdin, every `NVIDIA_*` value and
//! every list in them costs the host, not the tenant. Each bound is far above what real
//! containers use (the reason is next to it, and in the README's "Limits" section) and is
//! checked before the value is parsed, so the work stays linear in an input of bounded size.
//! Crossing one is an error naming the bound and the size that crossed it.

use std::fmt;
use std::io::Read;
use std::path::Path;

/// The bundle's `config.json`. Real specs are a few KiB to a few hundred KiB: their largest
/// parts are the environment (a process's whole environment is bounded by `ARG_MAX`, a quarter
/// of the stack limit: 2 MiB by default) and a seccomp profile (Docker's default is ~30 KiB in
/// the spec); Kubernetes stores a whole pod in at most 1.5 MiB. 16 MiB is several times all of
/// these together and parses in a fraction of a second.
pub const MAX_SPEC_BYTES: usize = 16 << 20;

/// The OCI state on stdin: `id`, `pid`, `bundle`, `status`, plus the spec's `annotations`,
/// which runc copies into it. It can therefore be as large as the spec, no larger.
pub const MAX_STATE_BYTES: usize = MAX_SPEC_BYTES;

/// A size that crossed a bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LimitError {
    /// What was measured, e.g. `NVIDIA_VISIBLE_DEVICES` or `the OCI state on stdin`.
    pub what: String,
    /// The size seen; `None` for a stream that was cut off at `limit + 1`.
    pub size: Option<usize>,
    pub limit: usize,
    /// `bytes`, `entries`, ...
    pub unit: &'static str,
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, limit, unit) = (&self.what, self.limit, self.unit);
        match self.size {
            Some(size) => write!(
                f,
                "{what} is {size} {unit} long, over gpuhook's limit of {limit}"
            ),
            None => write!(f, "{what} is over gpuhook's limit of {limit} {unit}"),
        }
    }
}

/// `Err` when `size` is over `limit`.
pub fn check(what: &str, size: usize, limit: usize, unit: &'static str) -> Result<(), LimitError> {
    if size <= limit {
        return Ok(());
    }
    Err(LimitError {
        what: what.to_string(),
        size: Some(size),
        limit,
        unit,
    })
}

/// Reading a bounded input failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    TooLarge(#[from] LimitError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Reads all of `reader`, at most `limit` bytes; `what` names it in the error.
pub fn read_bounded(reader: impl Read, limit: usize, what: &str) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    // One byte more than allowed tells "exactly the limit" from "over it".
    let allowed = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(allowed).read_to_end(&mut bytes)?;
    if bytes.len() > limit {
        return Err(ReadError::TooLarge(LimitError {
            what: what.to_string(),
            size: None,
            limit,
            unit: "bytes",
        }));
    }
    Ok(bytes)
}

/// Reads the file at `path`, at most `limit` bytes. A file whose size is already over the
/// limit is refused without being read, with its size in the error.
pub fn read_file_bounded(path: &Path, limit: usize) -> Result<Vec<u8>, ReadError> {
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let what = "the file";
    if let Ok(size) = usize::try_from(size) {
        check(what, size, limit, "bytes")?;
    }
    read_bounded(file, limit, what)
}

/// Bounds on the request a container makes (env values and list lengths).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Bytes of one env value the request reads (`NVIDIA_*`, `CUDA_VERSION`,
    /// `CUDA_MPS_PIPE_DIRECTORY`).
    pub env_value_bytes: usize,
    /// Entries of `NVIDIA_VISIBLE_DEVICES`, or device volume mounts.
    pub device_entries: usize,
    /// Entries of `NVIDIA_DRIVER_CAPABILITIES`.
    pub capability_entries: usize,
    /// Entries of `NVIDIA_IMEX_CHANNELS`, or IMEX volume mounts.
    pub imex_entries: usize,
    /// Alternative groups of one `NVIDIA_REQUIRE_*` variable.
    pub requirement_groups: usize,
    /// Conditions of one group.
    pub requirement_conditions: usize,
    /// Distinct CDI device names, all channels together.
    pub cdi_names: usize,
    /// Annotations under the CDI annotation prefixes.
    pub cdi_annotations: usize,
}

impl RequestLimits {
    pub const DEFAULT: RequestLimits = RequestLimits {
        // MAX_ARG_STRLEN, the kernel's bound on one `KEY=value` string given to execve: a
        // container with a longer variable cannot start its process anyway.
        env_value_bytes: 128 << 10,
        // The largest hosts have 16 GPUs with up to 7 MIG devices each: 128 names. 8x that.
        device_entries: 1024,
        // 7 capabilities and `all`; repeats allowed.
        capability_entries: 64,
        // The driver offers 2048 IMEX channels by default (NVreg_ImexChannelCount); 2x that.
        imex_entries: 4096,
        // CUDA images carry ~50 groups (one per brand and driver branch); 20x that.
        requirement_groups: 1024,
        // Real groups have 1 to 3 conditions (`brand=tesla,driver>=535,driver<536`).
        requirement_conditions: 64,
        // As for device lists: every GPU and MIG device of the largest host, several names each.
        cdi_names: 1024,
        // Kubernetes device plugins write one annotation per request.
        cdi_annotations: 1024,
    };

    /// No bound at all: for benchmarks that measure the parsers themselves.
    pub const UNBOUNDED: RequestLimits = RequestLimits {
        env_value_bytes: usize::MAX,
        device_entries: usize::MAX,
        capability_entries: usize::MAX,
        imex_entries: usize::MAX,
        requirement_groups: usize::MAX,
        requirement_conditions: usize::MAX,
        cdi_names: usize::MAX,
        cdi_annotations: usize::MAX,
    };

    /// The value of env variable `name`, within `env_value_bytes`.
    pub fn env_value<'a>(&self, name: &str, value: &'a str) -> Result<&'a str, LimitError> {
        check(name, value.len(), self.env_value_bytes, "bytes")?;
        Ok(value)
    }

    /// A comma-separated list of at most `limit` non-empty entries (counted before parsing).
    pub fn list(&self, name: &str, value: &str, limit: usize) -> Result<(), LimitError> {
        let entries = value.split(',').filter(|e| !e.trim().is_empty()).count();
        check(name, entries, limit, "entries")
    }

    /// An `NVIDIA_REQUIRE_*` expression: its size, its groups and each group's conditions.
    pub fn requirement(&self, name: &str, text: &str) -> Result<(), LimitError> {
        self.env_value(name, text)?;
        let mut groups = 0;
        for group in text.split_whitespace() {
            groups += 1;
            check(name, groups, self.requirement_groups, "groups")?;
            let conditions = group.split(',').count();
            let what = format!("a group of {name}");
            check(&what, conditions, self.requirement_conditions, "conditions")?;
        }
        Ok(())
    }
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_at_the_limit_is_read_and_one_byte_more_is_refused() {
        let data = vec![b'x'; 100];
        assert_eq!(read_bounded(&data[..], 100, "input").unwrap(), data);
        let err = read_bounded(&data[..], 99, "the OCI state on stdin").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the OCI state on stdin is over gpuhook's limit of 99 bytes"
        );
    }

    #[test]
    fn a_file_over_the_limit_is_refused_with_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, vec![b' '; 1001]).unwrap();
        assert_eq!(read_file_bounded(&path, 1001).unwrap().len(), 1001);
        let err = read_file_bounded(&path, 1000).unwrap_err().to_string();
        assert_eq!(
            err,
            "the file is 1001 bytes long, over gpuhook's limit of 1000"
        );
        let missing = read_file_bounded(&dir.path().join("nope"), 10).unwrap_err();
        assert!(matches!(missing, ReadError::Io(_)), "{missing}");
    }

    #[test]
    fn env_values_and_lists() {
        let limits = RequestLimits {
            env_value_bytes: 5,
            ..RequestLimits::DEFAULT
        };
        assert_eq!(limits.env_value("NVIDIA_X", "12345"), Ok("12345"));
        let err = limits.env_value("NVIDIA_X", "123456").unwrap_err();
        assert_eq!(
            err.to_string(),
            "NVIDIA_X is 6 bytes long, over gpuhook's limit of 5"
        );
        // Empty entries (`0,,1`, trailing commas) are not counted.
        assert!(limits.list("L", "0, ,1,,2,", 3).is_ok());
        let err = limits.list("L", "0,1,2,3", 3).unwrap_err();
        assert_eq!(
            err.to_string(),
            "L is 4 entries long, over gpuhook's limit of 3"
        );
    }

    #[test]
    fn requirement_groups_and_conditions() {
        let limits = RequestLimits {
            requirement_groups: 2,
            requirement_conditions: 3,
            ..RequestLimits::DEFAULT
        };
        let name = "NVIDIA_REQUIRE_CUDA";
        assert!(limits
            .requirement(name, "cuda>=12 brand=tesla,driver>=1,driver<2")
            .is_ok());
        let err = limits
            .requirement(name, "cuda>=12 cuda>=11 cuda>=10")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "NVIDIA_REQUIRE_CUDA is 3 groups long, over gpuhook's limit of 2"
        );
        let err = limits.requirement(name, "a=1,b=2,c=3,d=4").unwrap_err();
        assert_eq!(
            err.to_string(),
            "a group of NVIDIA_REQUIRE_CUDA is 4 conditions long, over gpuhook's limit of 3"
        );
    }
}

/// How much of a tenant's value an error line quotes: enough to recognise it, not a 128 KiB
/// line in the runtime's error output and the log.
pub const QUOTED_VALUE_CHARS: usize = 80;

/// `value` quoted as `{:?}` prints it, cut to [`QUOTED_VALUE_CHARS`] characters with the
/// whole length after it when longer: `"0,1,2,..."... (131072 bytes)`.
pub fn quoted(value: &str) -> String {
    match value.char_indices().nth(QUOTED_VALUE_CHARS) {
        None => format!("{value:?}"),
        Some((cut, _)) => format!("{:?}... ({} bytes)", &value[..cut], value.len()),
    }
}

#[cfg(test)]
mod quoted_tests {
    use super::*;

    #[test]
    fn short_values_are_quoted_whole() {
        assert_eq!(quoted("0,1"), "\"0,1\"");
        assert_eq!(quoted(""), "\"\"");
    }

    #[test]
    fn long_values_are_cut_and_their_length_given() {
        let value = "7,".repeat(65_536);
        let shown = quoted(&value);
        assert!(shown.len() < 120, "{shown}");
        assert!(shown.ends_with("... (131072 bytes)"), "{shown}");
        // A multi-byte character at the cut is not split.
        let wide = "é".repeat(200);
        assert!(quoted(&wide).starts_with(&format!("{:?}", "é".repeat(80))));
    }
}
