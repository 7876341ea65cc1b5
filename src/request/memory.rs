//! What a container asks for of GPU memory and compute: `NVIDIA_GPU_MEMORY_LIMIT` (and
//! `NVIDIA_GPU_MEMORY_REQUEST`, the soft limit NVML's memory limits take), and
//! `NVIDIA_GPU_COMPUTE_LIMIT` (a share of each GPU's SMs). Pure: values in, values or errors
//! out. What the operator allows (default, maximum, imposed caps) is applied later, once the
//! container's GPUs are known (`memcap::policy`).
//!
//! Sizes are parsed here by hand: the forms are a superset of the incumbent's (a plain number
//! of MiB) plus the binary units MPS itself writes (`2G`), and no size crate reads a bare
//! number as MiB.

use super::ContainerFacts;

pub const MEMORY_LIMIT_ENV: &str = "NVIDIA_GPU_MEMORY_LIMIT";
pub const MEMORY_REQUEST_ENV: &str = "NVIDIA_GPU_MEMORY_REQUEST";
pub const COMPUTE_LIMIT_ENV: &str = "NVIDIA_GPU_COMPUTE_LIMIT";

pub const MIB: u64 = 1 << 20;

/// What every size error says is accepted.
pub const ACCEPTED_SIZES: &str = "accepted: a whole number of MiB (`2048`, as NVIDIA's toolkit \
    reads it) or a number with a binary unit (`2G`, `2048M`, `512Mi`, `2GiB`, `1T`; K, M, G, T are \
    powers of 1024, `GB` means GiB as MPS reads it; `2147483648B` in bytes), at least 1 MiB and a \
    whole number of MiB; per GPU `0=2G,1=4G` or `GPU-<uuid>=2G` (the GPU's index or UUID as \
    NVIDIA_VISIBLE_DEVICES names it)";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MemoryError {
    #[error("{variable}={}: {problem}; {ACCEPTED_SIZES}", crate::limits::quoted(.value))]
    Size {
        variable: String,
        value: String,
        problem: String,
    },
    #[error("{COMPUTE_LIMIT_ENV}={}: {problem}; accepted: a percentage of each GPU's SMs from 1 to 100 (`25` or `25%`)", crate::limits::quoted(.value))]
    Compute { value: String, problem: String },
    #[error("{MEMORY_REQUEST_ENV}={} is more than {MEMORY_LIMIT_ENV}={}: the soft limit must not exceed the cap", crate::limits::quoted(.request), crate::limits::quoted(.limit))]
    RequestAboveLimit { request: String, limit: String },
}

/// How a per-GPU entry names a GPU: as `NVIDIA_VISIBLE_DEVICES` does, by index or by UUID
/// (`GPU-...`, or `MIG-...` for a MIG device), compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuName {
    Index(u32),
    Uuid(String),
}

impl std::fmt::Display for GpuName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GpuName::Index(i) => write!(f, "{i}"),
            GpuName::Uuid(u) => f.write_str(u),
        }
    }
}

/// A memory cap in bytes: the same for every GPU of the container, or per GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryLimit {
    Every(u64),
    PerGpu(Vec<(GpuName, u64)>),
}

impl MemoryLimit {
    /// The cap this value gives GPU `(index, uuid)`, if any.
    pub fn for_gpu(&self, index: u32, uuid: &str) -> Option<u64> {
        match self {
            MemoryLimit::Every(bytes) => Some(*bytes),
            MemoryLimit::PerGpu(entries) => entries
                .iter()
                .find(|(name, _)| name.names(index, uuid))
                .map(|(_, bytes)| *bytes),
        }
    }
}

impl GpuName {
    pub fn names(&self, index: u32, uuid: &str) -> bool {
        match self {
            GpuName::Index(i) => *i == index,
            GpuName::Uuid(u) => u.eq_ignore_ascii_case(uuid),
        }
    }
}

/// The container's own request (empty when it asks for nothing, or may not ask).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryRequest {
    pub limit: Option<MemoryLimit>,
    /// The soft limit (`NVIDIA_GPU_MEMORY_REQUEST`); only NVML's memory limits have one.
    pub soft: Option<MemoryLimit>,
    /// Percent of each GPU's SMs, 1 to 100.
    pub compute_percent: Option<u8>,
}

impl MemoryRequest {
    pub fn is_empty(&self) -> bool {
        self.limit.is_none() && self.soft.is_none() && self.compute_percent.is_none()
    }
}

/// Reads the container's env. An unprivileged container's values are ignored when the
/// operator does not accept them (`memory.accept-unprivileged = false`), as
/// `NVIDIA_VISIBLE_DEVICES` is under the matching setting.
pub fn read(
    facts: &ContainerFacts,
    accept_unprivileged: bool,
) -> Result<MemoryRequest, MemoryError> {
    if !facts.privileged && !accept_unprivileged {
        return Ok(MemoryRequest::default());
    }
    let value = |name: &str| facts.get(name).map(str::trim).filter(|v| !v.is_empty());
    let limit = value(MEMORY_LIMIT_ENV)
        .map(|v| parse_memory_limit(MEMORY_LIMIT_ENV, v))
        .transpose()?;
    let soft = value(MEMORY_REQUEST_ENV)
        .map(|v| parse_memory_limit(MEMORY_REQUEST_ENV, v))
        .transpose()?;
    if let (Some(MemoryLimit::Every(l)), Some(MemoryLimit::Every(s))) = (&limit, &soft) {
        if s > l {
            return Err(MemoryError::RequestAboveLimit {
                request: value(MEMORY_REQUEST_ENV).unwrap_or_default().into(),
                limit: value(MEMORY_LIMIT_ENV).unwrap_or_default().into(),
            });
        }
    }
    let compute_percent = value(COMPUTE_LIMIT_ENV)
        .map(parse_compute_limit)
        .transpose()?;
    Ok(MemoryRequest {
        limit,
        soft,
        compute_percent,
    })
}

/// `2G` for every GPU, or `0=2G,GPU-...=4G` per GPU.
pub fn parse_memory_limit(variable: &str, value: &str) -> Result<MemoryLimit, MemoryError> {
    let error = |problem: String| MemoryError::Size {
        variable: variable.to_string(),
        value: value.to_string(),
        problem,
    };
    if !value.contains('=') {
        return parse_size(value).map(MemoryLimit::Every).map_err(error);
    }
    let mut entries: Vec<(GpuName, u64)> = Vec::new();
    for item in value.split(',').map(str::trim) {
        let (name, size) = item
            .split_once('=')
            .ok_or_else(|| error(format!("{item:?} has no `=` (mixing the two forms)")))?;
        let name = parse_gpu_name(name.trim())
            .ok_or_else(|| error(format!("{:?} is not a GPU index or UUID", name.trim())))?;
        let bytes = parse_size(size.trim()).map_err(|p| error(format!("{item:?}: {p}")))?;
        if entries.iter().any(|(n, _)| *n == name) {
            return Err(error(format!("GPU {name} is named twice")));
        }
        entries.push((name, bytes));
    }
    Ok(MemoryLimit::PerGpu(entries))
}

fn parse_gpu_name(text: &str) -> Option<GpuName> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok().map(GpuName::Index);
    }
    let upper = text.to_ascii_uppercase();
    let is_uuid = (upper.starts_with("GPU-") || upper.starts_with("MIG-"))
        && text.len() > 4
        && text[4..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'-');
    is_uuid.then(|| GpuName::Uuid(text.to_string()))
}

/// One size in bytes; the problem, in words, when it is not one.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    if number.is_empty() {
        return Err(if text.is_empty() {
            "no size given".into()
        } else {
            format!("{text:?} does not start with a number")
        });
    }
    let multiplier = match unit.to_ascii_uppercase().as_str() {
        "" => MIB,
        "B" => 1,
        "K" | "KB" | "KI" | "KIB" => 1 << 10,
        "M" | "MB" | "MI" | "MIB" => MIB,
        "G" | "GB" | "GI" | "GIB" => 1 << 30,
        "T" | "TB" | "TI" | "TIB" => 1 << 40,
        _ => return Err(format!("{unit:?} is not a unit")),
    };
    let bytes = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| format!("{text} is too large"))?;
    if bytes < MIB {
        return Err(format!("{text} is less than 1 MiB"));
    }
    if bytes % MIB != 0 {
        return Err(format!(
            "{text} is not a whole number of MiB (MPS sets limits in MiB)"
        ));
    }
    Ok(bytes)
}

/// `25` or `25%`, 1 to 100.
pub fn parse_compute_limit(text: &str) -> Result<u8, MemoryError> {
    let error = |problem: &str| MemoryError::Compute {
        value: text.to_string(),
        problem: problem.to_string(),
    };
    let number = text.strip_suffix('%').unwrap_or(text).trim();
    let percent: u32 = number.parse().map_err(|_| error("not a whole number"))?;
    match u8::try_from(percent) {
        Ok(p @ 1..=100) => Ok(p),
        _ => Err(error("out of range")),
    }
}

/// A size as MPS and users read it: `2048M` is shown `2G`, others in MiB.
pub fn format_size(bytes: u64) -> String {
    const GIB: u64 = 1 << 30;
    if bytes % GIB == 0 {
        format!("{}G", bytes / GIB)
    } else {
        format!("{}M", bytes / MIB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn facts(env: &[&str], privileged: bool) -> ContainerFacts {
        crate::request::tests::spec_with_mounts(env, serde_json::json!([]), privileged)
    }

    #[test]
    fn sizes_in_every_accepted_form() {
        for (text, bytes) in [
            ("2048", 2 * GIB),
            ("2G", 2 * GIB),
            ("2g", 2 * GIB),
            ("2GiB", 2 * GIB),
            ("2Gi", 2 * GIB),
            ("2GB", 2 * GIB),
            ("2048M", 2 * GIB),
            ("2048MiB", 2 * GIB),
            ("512Mi", 512 * MIB),
            ("1048576K", GIB),
            ("2147483648B", 2 * GIB),
            ("1T", 1 << 40),
            ("1", MIB),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn bad_sizes_say_why() {
        for (text, problem) in [
            ("lots", "does not start with a number"),
            ("", "no size given"),
            ("2X", "\"X\" is not a unit"),
            ("1.5G", "\".5G\" is not a unit"),
            ("-1G", "does not start with a number"),
            ("0", "less than 1 MiB"),
            ("512K", "less than 1 MiB"),
            ("1000000B", "less than 1 MiB"),
            ("1536K", "not a whole number of MiB"),
            ("99999999999999999999", "too large"),
            ("18446744073709551615G", "too large"),
        ] {
            let err = parse_size(text).unwrap_err();
            assert!(err.contains(problem), "{text}: {err}");
        }
    }

    #[test]
    fn lots_names_the_variable_and_what_would_be_accepted() {
        let err = read(&facts(&["NVIDIA_GPU_MEMORY_LIMIT=lots"], false), true).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("NVIDIA_GPU_MEMORY_LIMIT=\"lots\": "),
            "{text}"
        );
        for form in ["`2048`", "`2G`", "`2048M`", "`0=2G,1=4G`", "MiB"] {
            assert!(text.contains(form), "{form} missing: {text}");
        }
        assert!(!text.contains('\n'));
    }

    #[test]
    fn per_gpu_entries_by_index_and_uuid() {
        let limit = parse_memory_limit(MEMORY_LIMIT_ENV, "0=2G, GPU-5e1f-AB=4096").unwrap();
        assert_eq!(
            limit,
            MemoryLimit::PerGpu(vec![
                (GpuName::Index(0), 2 * GIB),
                (GpuName::Uuid("GPU-5e1f-AB".into()), 4 * GIB)
            ])
        );
        assert_eq!(limit.for_gpu(0, "GPU-x"), Some(2 * GIB));
        assert_eq!(limit.for_gpu(3, "gpu-5e1f-ab"), Some(4 * GIB));
        assert_eq!(limit.for_gpu(1, "GPU-other"), None);
        assert_eq!(MemoryLimit::Every(GIB).for_gpu(7, "GPU-y"), Some(GIB));
        for bad in ["0=2G,0=3G", "0=2G,3G", "x=2G", "0=lots", "GPU-=1G", "0=2G,"] {
            let err = parse_memory_limit(MEMORY_LIMIT_ENV, bad).unwrap_err();
            assert!(matches!(err, MemoryError::Size { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn compute_limits() {
        assert_eq!(parse_compute_limit("25"), Ok(25));
        assert_eq!(parse_compute_limit("25%"), Ok(25));
        assert_eq!(parse_compute_limit("100"), Ok(100));
        for bad in ["0", "101", "half", "25.5", "-3", "300"] {
            let err = parse_compute_limit(bad).unwrap_err().to_string();
            assert!(err.contains("from 1 to 100"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_env_is_read_and_empty_values_ask_for_nothing() {
        let env = [
            "NVIDIA_GPU_MEMORY_LIMIT=4G",
            "NVIDIA_GPU_MEMORY_REQUEST=2G",
            "NVIDIA_GPU_COMPUTE_LIMIT=50",
        ];
        let request = read(&facts(&env, false), true).unwrap();
        assert_eq!(request.limit, Some(MemoryLimit::Every(4 * GIB)));
        assert_eq!(request.soft, Some(MemoryLimit::Every(2 * GIB)));
        assert_eq!(request.compute_percent, Some(50));
        let empty = read(&facts(&["NVIDIA_GPU_MEMORY_LIMIT=", "X=1"], false), true).unwrap();
        assert!(empty.is_empty());
        let err = read(
            &facts(
                &["NVIDIA_GPU_MEMORY_LIMIT=1G", "NVIDIA_GPU_MEMORY_REQUEST=2G"],
                true,
            ),
            true,
        )
        .unwrap_err();
        assert!(
            matches!(err, MemoryError::RequestAboveLimit { .. }),
            "{err}"
        );
    }

    #[test]
    fn unprivileged_values_are_ignored_when_the_operator_says_so() {
        let env = [
            "NVIDIA_GPU_MEMORY_LIMIT=lots",
            "NVIDIA_GPU_COMPUTE_LIMIT=10",
        ];
        assert!(read(&facts(&env, false), false).unwrap().is_empty());
        // A privileged container's values are read (and a bad one refused).
        assert!(read(&facts(&env, true), false).is_err());
        let ok = ["NVIDIA_GPU_MEMORY_LIMIT=1G"];
        assert_eq!(
            read(&facts(&ok, true), false).unwrap().limit,
            Some(MemoryLimit::Every(GIB))
        );
    }

    #[test]
    fn sizes_are_shown_as_mps_reads_them() {
        assert_eq!(format_size(2 * GIB), "2G");
        assert_eq!(format_size(1536 * MIB), "1536M");
    }
}
