//! CRI-O: a drop-in (`/etc/crio/crio.conf.d/99-gpuhook.conf` by default) or `crio.conf`,
//! edited with `toml_edit`: `[crio.runtime.runtimes.gpuhook]` with `runtime_path` and
//! `runtime_type = "oci"`, and `crio.runtime.default_runtime` with `--set-as-default`.

use std::path::Path;

use toml_edit::value;

use super::{sub_table, ConfigureError, Registration};

pub fn render(
    current: &str,
    path: &Path,
    registration: &Registration,
) -> Result<String, ConfigureError> {
    let mut doc = super::parse_toml(current, path)?;
    let unsupported = |what: &str| super::not_a_table(path, what);
    let runtime = ["crio", "runtime"]
        .iter()
        .try_fold(doc.as_table_mut(), |table, key| {
            sub_table(table, key).ok_or_else(|| unsupported(key))
        })?;
    if registration.set_as_default {
        runtime.set_implicit(false);
        runtime.insert("default_runtime", value(&registration.name));
    }
    let runtimes = sub_table(runtime, "runtimes").ok_or_else(|| unsupported("runtimes"))?;
    let entry =
        sub_table(runtimes, &registration.name).ok_or_else(|| unsupported(&registration.name))?;
    entry.set_implicit(false);
    entry.insert(
        "runtime_path",
        value(registration.runtime_path.to_string_lossy().as_ref()),
    );
    entry.insert("runtime_type", value("oci"));
    Ok(doc.to_string())
}

/// Takes the runtime `name` out; `None` when nothing is left (gpuhook's own drop-in).
pub fn render_removal(
    current: &str,
    path: &Path,
    name: &str,
) -> Result<Option<String>, ConfigureError> {
    super::remove_toml_runtime(
        current,
        path,
        &["crio", "runtime"],
        "default_runtime",
        name,
        &[],
    )
}

#[cfg(test)]
mod tests {
    use super::super::tests::registration;
    use super::*;

    #[test]
    fn drop_in_from_nothing_and_from_an_existing_file() {
        let out = render("", Path::new("c"), &registration(true)).unwrap();
        let parsed: toml::Value = toml::from_str(&out).unwrap();
        assert_eq!(
            parsed["crio"]["runtime"]["default_runtime"].as_str(),
            Some("gpuhook")
        );
        assert_eq!(
            parsed["crio"]["runtime"]["runtimes"]["gpuhook"]["runtime_path"].as_str(),
            Some("/usr/bin/gpuhook-runtime")
        );
        let existing = "# site settings\n[crio.runtime]\ncgroup_manager = \"systemd\"\n\n[crio.runtime.runtimes.runc]\nruntime_path = \"/usr/bin/runc\"\n";
        let out = render(existing, Path::new("c"), &registration(false)).unwrap();
        assert!(out.starts_with(existing), "{out}");
        assert!(out.contains("[crio.runtime.runtimes.gpuhook]\nruntime_path = \"/usr/bin/gpuhook-runtime\"\nruntime_type = \"oci\""), "{out}");
        assert_eq!(
            render(&out, Path::new("c"), &registration(false)).unwrap(),
            out
        );
    }
}
