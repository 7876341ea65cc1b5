//! `NVIDIA_REQUIRE_*` expressions: conditions the host must meet before the container starts.
//!
//! Grammar (the incumbent's): whitespace separates alternative groups, any one of which is
//! enough; commas join conditions inside a group, all of which must hold. A condition is
//! `key op value` with key `cuda`, `driver`, `arch` or `brand` and op one of
//! `=`, `==`, `!=`, `<`, `<=`, `>`, `>=` (`brand`: `=`, `==`, `!=` only). Hand-written: the grammar is three splits and an
//! operator scan, smaller than any parser-combinator setup would be.

use std::cmp::Ordering;
use std::fmt;

use super::RequestError;
use crate::limits::quoted;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequirementKey {
    /// The driver's CUDA version (`cuDriverGetVersion`).
    Cuda,
    /// The kernel driver version (`/proc/driver/nvidia/version`).
    Driver,
    /// A GPU's compute capability, e.g. `9.0`.
    Arch,
    /// A GPU's brand, e.g. `tesla`.
    Brand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub key: RequirementKey,
    pub op: Operator,
    pub value: String,
}

/// One `NVIDIA_REQUIRE_*` variable (or the legacy `CUDA_VERSION` rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// Where it came from, e.g. `NVIDIA_REQUIRE_CUDA`, for error messages.
    pub name: String,
    pub text: String,
    /// Alternatives: the requirement holds when every condition of any one group holds.
    pub groups: Vec<Vec<Condition>>,
}

/// What the host offers, for one GPU (arch and brand are per GPU; `None` when not known).
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    pub cuda: Option<String>,
    pub driver: Option<String>,
    pub arch: Option<String>,
    pub brand: Option<String>,
}

impl Requirement {
    pub fn parse(name: &str, text: &str) -> Result<Requirement, RequestError> {
        let error = |message: String| RequestError::Requirement {
            name: name.to_string(),
            text: text.to_string(),
            message,
        };
        let mut groups = Vec::new();
        for group in text.split_whitespace() {
            let mut conditions = Vec::new();
            for item in group.split(',') {
                if item.is_empty() {
                    return Err(error("empty condition".to_string()));
                }
                conditions.push(Condition::parse(item).map_err(&error)?);
            }
            groups.push(conditions);
        }
        Ok(Requirement {
            name: name.to_string(),
            text: text.to_string(),
            groups,
        })
    }

    /// Whether any condition needs this key (so the inventory only gathers what is needed).
    pub fn uses(&self, key: RequirementKey) -> bool {
        self.groups.iter().flatten().any(|c| c.key == key)
    }

    /// `Ok(())` when the requirement holds, else the first failing condition of the first
    /// group (the one a user most likely meant). An empty requirement always holds.
    pub fn check(&self, facts: &HostFacts) -> Result<(), &Condition> {
        let mut first_failure = None;
        for group in &self.groups {
            match group.iter().find(|c| !c.holds(facts)) {
                None => return Ok(()),
                Some(failed) => {
                    first_failure.get_or_insert(failed);
                }
            }
        }
        first_failure.map_or(Ok(()), Err)
    }
}

impl Condition {
    fn parse(item: &str) -> Result<Condition, String> {
        let op_start = item
            .find(['=', '!', '<', '>'])
            .ok_or_else(|| format!("{item:?} has no comparison operator"))?;
        let (key_text, rest) = item.split_at(op_start);
        let key = match key_text {
            "cuda" => RequirementKey::Cuda,
            "driver" => RequirementKey::Driver,
            "arch" => RequirementKey::Arch,
            "brand" => RequirementKey::Brand,
            other => {
                return Err(format!(
                    "unknown key {other:?} in {item:?} (known: cuda, driver, arch, brand)"
                ))
            }
        };
        // Longest operators first, so `<=` is not read as `<` followed by `=value`.
        let operators = [
            ("==", Operator::Eq),
            ("!=", Operator::Ne),
            ("<=", Operator::Le),
            (">=", Operator::Ge),
            ("=", Operator::Eq),
            ("<", Operator::Lt),
            (">", Operator::Gt),
        ];
        let (op, value) = operators
            .iter()
            .find_map(|(text, op)| rest.strip_prefix(text).map(|v| (*op, v)))
            .ok_or_else(|| format!("bad operator in {}", quoted(item)))?;
        if value.is_empty() || value.contains(['=', '!', '<', '>']) {
            return Err(format!("bad value in {}", quoted(item)));
        }
        if key != RequirementKey::Brand && parse_version(value).is_none() {
            return Err(format!(
                "{} in {} is not a version",
                quoted(value),
                quoted(item)
            ));
        }
        // Brands are names, not versions: like the incumbent, only equality is defined.
        if key == RequirementKey::Brand && !matches!(op, Operator::Eq | Operator::Ne) {
            return Err(format!(
                "{}: a brand can only be compared with = or !=",
                quoted(item)
            ));
        }
        Ok(Condition {
            key,
            op,
            value: value.to_string(),
        })
    }

    /// A condition on a fact the host does not have (arch of no GPU) holds: there is nothing
    /// to contradict it.
    fn holds(&self, facts: &HostFacts) -> bool {
        let host = match self.key {
            RequirementKey::Cuda => &facts.cuda,
            RequirementKey::Driver => &facts.driver,
            RequirementKey::Arch => &facts.arch,
            RequirementKey::Brand => &facts.brand,
        };
        let Some(host) = host else { return true };
        let ordering = match self.key {
            RequirementKey::Brand => host.to_lowercase().cmp(&self.value.to_lowercase()),
            _ => match (parse_version(host), parse_version(&self.value)) {
                (Some(h), Some(w)) => compare_versions(&h, &w),
                // An unreadable host version cannot prove anything: fail closed.
                _ => return false,
            },
        };
        match self.op {
            Operator::Eq => ordering == Ordering::Equal,
            Operator::Ne => ordering != Ordering::Equal,
            Operator::Lt => ordering == Ordering::Less,
            Operator::Le => ordering != Ordering::Greater,
            Operator::Gt => ordering == Ordering::Greater,
            Operator::Ge => ordering != Ordering::Less,
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = match self.key {
            RequirementKey::Cuda => "cuda",
            RequirementKey::Driver => "driver",
            RequirementKey::Arch => "arch",
            RequirementKey::Brand => "brand",
        };
        let op = match self.op {
            Operator::Eq => "=",
            Operator::Ne => "!=",
            Operator::Lt => "<",
            Operator::Le => "<=",
            Operator::Gt => ">",
            Operator::Ge => ">=",
        };
        write!(f, "{key}{op}{}", self.value)
    }
}

/// Dotted numeric version: `12.4`, `580.159.04`.
pub fn parse_version(text: &str) -> Option<Vec<u64>> {
    text.split('.')
        .map(|part| part.parse::<u64>().ok())
        .collect()
}

/// Compares part by part; missing parts count as 0, so `12` equals `12.0`.
pub fn compare_versions(a: &[u64], b: &[u64]) -> Ordering {
    let len = a.len().max(b.len());
    (0..len)
        .map(|i| a.get(i).unwrap_or(&0).cmp(b.get(i).unwrap_or(&0)))
        .find(|o| *o != Ordering::Equal)
        .unwrap_or(Ordering::Equal)
}

/// `CUDA_VERSION=12.4.1` on a legacy image means `cuda>=12.4`.
pub fn legacy_cuda_requirement(cuda_version: &str) -> Result<Requirement, RequestError> {
    let mut parts = cuda_version.trim().split('.');
    let major_minor = match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) => format!("{major}.{minor}"),
        (Some(major), None) => major.to_string(),
        _ => String::new(),
    };
    Requirement::parse("CUDA_VERSION", &format!("cuda>={major_minor}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(cuda: &str, driver: &str, arch: Option<&str>, brand: Option<&str>) -> HostFacts {
        HostFacts {
            cuda: Some(cuda.into()),
            driver: Some(driver.into()),
            arch: arch.map(Into::into),
            brand: brand.map(Into::into),
        }
    }

    fn holds(text: &str, facts: &HostFacts) -> bool {
        Requirement::parse("NVIDIA_REQUIRE_CUDA", text)
            .unwrap()
            .check(facts)
            .is_ok()
    }

    #[test]
    fn versions_compare_numerically() {
        let host = facts("12.4", "580.159.04", Some("9.0"), Some("Tesla"));
        assert!(holds("cuda>=12.0", &host));
        assert!(holds("cuda>=12.4", &host));
        assert!(!holds("cuda>12.4", &host));
        assert!(holds("cuda<12.10", &host), "12.4 < 12.10 numerically");
        assert!(holds("cuda=12.4.0", &host));
        assert!(holds("cuda==12.4", &host));
        assert!(holds("cuda!=11.8", &host));
        assert!(holds("driver>=535,driver<581", &host));
        assert!(!holds("driver>=535,driver<536", &host));
        assert!(holds("driver=580.159.4", &host), "04 is 4");
        assert!(holds("arch>=8.0", &host));
        assert!(!holds("arch<9", &host));
    }

    #[test]
    fn brand_compares_without_case() {
        let host = facts("12.4", "580.1", None, Some("Tesla"));
        assert!(holds("brand=tesla", &host));
        assert!(holds("brand=TESLA", &host));
        assert!(!holds("brand=geforce", &host));
        assert!(holds("brand!=geforce", &host));
    }

    #[test]
    fn groups_are_alternatives_and_commas_conjunctions() {
        let text =
            "cuda>=13.0 brand=tesla,driver>=470,driver<471 brand=tesla,driver>=580,driver<581";
        assert!(holds(
            text,
            &facts("12.4", "580.159.04", None, Some("tesla"))
        ));
        assert!(!holds(text, &facts("12.4", "550.1", None, Some("tesla"))));
        assert!(holds(text, &facts("13.0", "550.1", None, Some("geforce"))));
    }

    #[test]
    fn failure_names_the_condition_of_the_first_group() {
        let req = Requirement::parse("NVIDIA_REQUIRE_CUDA", "cuda>=99.0 driver>=999").unwrap();
        let host = facts("12.4", "580.1", None, None);
        assert_eq!(req.check(&host).unwrap_err().to_string(), "cuda>=99.0");
    }

    #[test]
    fn unknown_facts_hold_but_unreadable_host_versions_do_not() {
        let host = facts("12.4", "580.1", None, None);
        assert!(holds("arch>=9.0", &host));
        assert!(holds("brand=tesla", &host));
        assert!(!holds("cuda>=1", &facts("garbage", "580", None, None)));
    }

    #[test]
    fn empty_requirement_holds() {
        assert!(holds("", &HostFacts::default()));
        assert!(holds("   ", &HostFacts::default()));
    }

    #[test]
    fn uses_reports_the_keys() {
        let req = Requirement::parse("X", "cuda>=12 brand=tesla,driver>=1").unwrap();
        assert!(req.uses(RequirementKey::Cuda));
        assert!(req.uses(RequirementKey::Brand));
        assert!(!req.uses(RequirementKey::Arch));
    }

    #[test]
    fn malformed_expressions_are_errors() {
        for bad in [
            "cuda",
            "cuda>=",
            "cuda>=abc",
            "os=linux",
            ">=12",
            "cuda=>12",
            "cuda>=12,,driver>=1",
            "cuda>=12,",
            "cuda<>12",
            "cuda>=1.-2",
            "brand>tesla",
            "brand<=geforce",
        ] {
            let err = Requirement::parse("NVIDIA_REQUIRE_CUDA", bad)
                .expect_err(bad)
                .to_string();
            assert!(err.contains("NVIDIA_REQUIRE_CUDA"), "{bad}: {err}");
        }
    }

    #[test]
    fn legacy_cuda_version_rule() {
        let req = legacy_cuda_requirement("12.4.1").unwrap();
        assert_eq!(req.groups[0][0].to_string(), "cuda>=12.4");
        assert!(req.check(&facts("12.4", "1", None, None)).is_ok());
        assert!(req.check(&facts("12.3", "1", None, None)).is_err());
        assert!(legacy_cuda_requirement("junk").is_err());
    }
}
