//! containerd's `config.toml` (format version 2 or 3), edited with `toml_edit` so comments and
//! layout survive:
//! `[plugins."<cri plugin>".containerd.runtimes.gpuhook]` with `runtime_type` and
//! `options.BinaryName`, and `default_runtime_name` with `--set-as-default`.

use std::path::Path;

use toml_edit::value;

use super::{sub_table, ConfigureError, Registration};

pub fn render(
    current: &str,
    path: &Path,
    registration: &Registration,
) -> Result<String, ConfigureError> {
    let mut doc = super::parse_toml(current, path)?;
    let version = match doc.get("version") {
        None => {
            doc.insert("version", value(2));
            2
        }
        Some(item) => item.as_integer().unwrap_or(0),
    };
    // The CRI plugin's runtime settings moved in containerd 2.0 (config version 3).
    let cri_plugin = match version {
        2 => "io.containerd.grpc.v1.cri",
        3 => "io.containerd.cri.v1.runtime",
        other => {
            return Err(ConfigureError::Unsupported {
                path: path.to_path_buf(),
                message: format!("config version {other} is not supported (2 or 3): run `containerd config migrate` first"),
            })
        }
    };
    let unsupported = |what: &str| ConfigureError::Unsupported {
        path: path.to_path_buf(),
        message: format!("{what} is not a table"),
    };
    let containerd = ["plugins", cri_plugin, "containerd"]
        .iter()
        .try_fold(doc.as_table_mut(), |table, key| {
            sub_table(table, key).ok_or_else(|| unsupported(key))
        })?;
    if registration.set_as_default {
        containerd.insert("default_runtime_name", value(&registration.name));
    }
    let runtimes = sub_table(containerd, "runtimes").ok_or_else(|| unsupported("runtimes"))?;
    let entry =
        sub_table(runtimes, &registration.name).ok_or_else(|| unsupported(&registration.name))?;
    entry.set_implicit(false);
    entry.insert("runtime_type", value("io.containerd.runc.v2"));
    let options = sub_table(entry, "options").ok_or_else(|| unsupported("options"))?;
    options.set_implicit(false);
    options.insert(
        "BinaryName",
        value(registration.runtime_path.to_string_lossy().as_ref()),
    );
    Ok(doc.to_string())
}

/// Takes the runtime `name` out (either config version's CRI plugin); `None` when only
/// `version` is left.
pub fn render_removal(
    current: &str,
    path: &Path,
    name: &str,
) -> Result<Option<String>, ConfigureError> {
    let mut text = current.to_string();
    for plugin in ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime"] {
        let tables = ["plugins", plugin, "containerd"];
        match super::remove_toml_runtime(
            &text,
            path,
            &tables,
            "default_runtime_name",
            name,
            &["version"],
        )? {
            Some(rest) => text = rest,
            None => return Ok(None),
        }
    }
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::super::tests::registration;
    use super::*;

    const SAMPLE: &str = r#"# containerd config, kept by the node team
version = 2
root = "/var/lib/containerd"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.9"   # pinned

  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
"#;

    #[test]
    fn adds_the_runtime_keeping_comments_and_layout() {
        let out = render(SAMPLE, Path::new("config.toml"), &registration(false)).unwrap();
        assert!(out.starts_with(SAMPLE), "existing text kept as is:\n{out}");
        assert!(out.contains("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.gpuhook]\nruntime_type = \"io.containerd.runc.v2\""), "{out}");
        assert!(out.contains("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.gpuhook.options]\nBinaryName = \"/usr/bin/gpuhook-runtime\""), "{out}");
        assert!(out.contains("default_runtime_name = \"runc\""));
        let parsed: toml::Value = toml::from_str(&out).unwrap();
        assert_eq!(
            parsed["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["gpuhook"]
                ["options"]["BinaryName"]
                .as_str(),
            Some("/usr/bin/gpuhook-runtime")
        );
        assert_eq!(
            render(&out, Path::new("c"), &registration(false)).unwrap(),
            out,
            "re-running is a no-op"
        );
    }

    #[test]
    fn set_as_default() {
        let out = render(SAMPLE, Path::new("c"), &registration(true)).unwrap();
        let parsed: toml::Value = toml::from_str(&out).unwrap();
        assert_eq!(
            parsed["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["default_runtime_name"]
                .as_str(),
            Some("gpuhook")
        );
        assert!(out.contains("# pinned"));
    }

    #[test]
    fn version_3_and_empty_files() {
        let out = render("version = 3\n", Path::new("c"), &registration(false)).unwrap();
        assert!(out.contains("io.containerd.cri.v1.runtime"), "{out}");
        let out = render("", Path::new("c"), &registration(false)).unwrap();
        assert!(out.starts_with("version = 2\n"), "{out}");
        let err = render("version = 1\n", Path::new("c"), &registration(false)).unwrap_err();
        assert!(
            err.to_string().contains("containerd config migrate"),
            "{err}"
        );
    }
}
