use std::path::Path;

use super::super::tests::registration;
use super::*;

const SAMPLE_V2: &str = r#"# containerd config, kept by the node team
version = 2
root = "/var/lib/containerd"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.9"   # pinned

  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
"#;

/// A version-less file, as Debian's containerd package and many older nodes have it.
const SAMPLE_V1: &str = r#"# no version key: format version 1
root = "/var/lib/containerd"

[plugins]
  [plugins.cri]
    sandbox_image = "registry.k8s.io/pause:3.6"
    [plugins.cri.containerd]
      snapshotter = "overlayfs"
"#;

fn render_ok(text: &str, set_as_default: bool) -> String {
    render(
        text,
        Path::new("config.toml"),
        &registration(set_as_default),
    )
    .unwrap()
}

/// `plugins.<cri plugin>.containerd` of the rendered text, parsed independently.
fn containerd_table(text: &str, cri_plugin: &str) -> toml::Value {
    let parsed: toml::Value = toml::from_str(text).unwrap();
    parsed["plugins"][cri_plugin]["containerd"].clone()
}

/// The handler `gpuhook` as containerd's CRI plugin of that version reads it.
fn assert_gpuhook_handler(text: &str, cri_plugin: &str) {
    let handler = &containerd_table(text, cri_plugin)["runtimes"]["gpuhook"];
    assert_eq!(
        handler["runtime_type"].as_str(),
        Some("io.containerd.runc.v2"),
        "{text}"
    );
    assert_eq!(
        handler["options"]["BinaryName"].as_str(),
        Some("/usr/bin/gpuhook-runtime"),
        "{text}"
    );
    assert_eq!(
        handler["container_annotations"],
        toml::Value::Array(vec!["cdi.k8s.io/*".into()]),
        "{text}"
    );
}

#[test]
fn version_2_adds_the_runtime_keeping_comments_and_layout() {
    let out = render_ok(SAMPLE_V2, false);
    assert!(
        out.starts_with(SAMPLE_V2),
        "existing text kept as is:\n{out}"
    );
    assert!(out.contains("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.gpuhook]\nruntime_type = \"io.containerd.runc.v2\""), "{out}");
    assert!(out.contains("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.gpuhook.options]\nBinaryName = \"/usr/bin/gpuhook-runtime\""), "{out}");
    assert_gpuhook_handler(&out, "io.containerd.grpc.v1.cri");
    assert_eq!(
        containerd_table(&out, "io.containerd.grpc.v1.cri")["default_runtime_name"].as_str(),
        Some("runc")
    );
    assert_eq!(render_ok(&out, false), out, "re-running is a no-op");
}

#[test]
fn version_1_keeps_its_version_and_uses_the_short_plugin_name() {
    let out = render_ok(SAMPLE_V1, false);
    assert!(
        out.starts_with(SAMPLE_V1),
        "existing text kept as is:\n{out}"
    );
    let parsed: toml::Value = toml::from_str(&out).unwrap();
    assert!(parsed.get("version").is_none(), "no version added:\n{out}");
    assert!(
        parsed["plugins"].get("io.containerd.grpc.v1.cri").is_none(),
        "no version-2 table in a version-1 file:\n{out}"
    );
    assert!(
        out.contains("[plugins.cri.containerd.runtimes.gpuhook]\n"),
        "{out}"
    );
    assert_gpuhook_handler(&out, "cri");
    assert_eq!(
        containerd_table(&out, "cri")["snapshotter"].as_str(),
        Some("overlayfs")
    );
    assert_eq!(render_ok(&out, false), out, "re-running is a no-op");
    // `version = 1` written out is the same format.
    let explicit = render_ok("version = 1\n", true);
    assert_gpuhook_handler(&explicit, "cri");
    assert_eq!(
        containerd_table(&explicit, "cri")["default_runtime_name"].as_str(),
        Some("gpuhook")
    );
}

#[test]
fn version_3_uses_the_cri_runtime_plugin() {
    let out = render_ok("version = 3\n", false);
    assert_gpuhook_handler(&out, "io.containerd.cri.v1.runtime");
    let parsed: toml::Value = toml::from_str(&out).unwrap();
    assert_eq!(parsed["version"].as_integer(), Some(3));
    assert!(parsed["plugins"].get("io.containerd.grpc.v1.cri").is_none());
}

#[test]
fn set_as_default_in_each_version() {
    for (text, plugin) in [
        (SAMPLE_V1, "cri"),
        (SAMPLE_V2, "io.containerd.grpc.v1.cri"),
        ("version = 3\n", "io.containerd.cri.v1.runtime"),
    ] {
        let out = render_ok(text, true);
        assert_eq!(
            containerd_table(&out, plugin)["default_runtime_name"].as_str(),
            Some("gpuhook"),
            "{out}"
        );
        assert_gpuhook_handler(&out, plugin);
    }
    assert!(render_ok(SAMPLE_V2, true).contains("# pinned"));
}

#[test]
fn a_file_with_no_setting_gets_version_2() {
    for text in ["", "# only a comment\n"] {
        let out = render_ok(text, false);
        let parsed: toml::Value = toml::from_str(&out).unwrap();
        assert_eq!(parsed["version"].as_integer(), Some(2), "{out}");
        assert_gpuhook_handler(&out, "io.containerd.grpc.v1.cri");
    }
}

/// containerd's built-in `runtimes` (its default `runc`) give way to the file's table: a file
/// that had none gets `runc` written out, one that had some is left to its admin.
#[test]
fn the_default_runc_runtime_survives() {
    for (text, plugin) in [
        (SAMPLE_V1, "cri"),
        ("", "io.containerd.grpc.v1.cri"),
        ("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".cni]\n  conf_dir = \"/etc/cni/net.d\"\n", "io.containerd.grpc.v1.cri"),
        ("version = 3\n", "io.containerd.cri.v1.runtime"),
    ] {
        let out = render_ok(text, false);
        let runtimes = &containerd_table(&out, plugin)["runtimes"];
        assert_eq!(
            runtimes["runc"]["runtime_type"].as_str(),
            Some("io.containerd.runc.v2"),
            "{out}"
        );
        let back = render_removal(&out, Path::new("c"), "gpuhook").unwrap();
        match back {
            Some(back) => assert!(!back.contains("runtimes"), "{back}"),
            None => assert!(text.trim().is_empty() || text.starts_with("version = 3")),
        }
    }
    // The admin's own runtimes: nothing added, and their runc stays on removal.
    let out = render_ok(SAMPLE_V2, false);
    let runtimes = containerd_table(&out, "io.containerd.grpc.v1.cri")["runtimes"].clone();
    let names: Vec<&String> = runtimes.as_table().unwrap().keys().collect();
    assert_eq!(names, ["gpuhook", "runc"]);
    let back = render_removal(&out, Path::new("c"), "gpuhook")
        .unwrap()
        .unwrap();
    assert!(back.contains("containerd.runtimes.runc]"), "{back}");
}

#[test]
fn unknown_versions_and_odd_values_are_refused() {
    for text in ["version = 4\n", "version = \"2\"\n"] {
        let err = render(text, Path::new("c"), &registration(false)).unwrap_err();
        assert!(err.to_string().contains("is not supported"), "{err}");
    }
    let text = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.gpuhook]\ncontainer_annotations = \"cdi.k8s.io/*\"\n";
    let err = render(text, Path::new("c"), &registration(false)).unwrap_err();
    assert!(err.to_string().contains("container_annotations"), "{err}");
}

#[test]
fn the_admins_container_annotations_are_kept() {
    let text = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.gpuhook]\ncontainer_annotations = [\"example.com/*\"]\n";
    let out = render_ok(text, false);
    let handler = &containerd_table(&out, "io.containerd.grpc.v1.cri")["runtimes"]["gpuhook"];
    assert_eq!(
        handler["container_annotations"],
        toml::Value::Array(vec!["example.com/*".into(), "cdi.k8s.io/*".into()])
    );
}

#[test]
fn removal_undoes_each_version() {
    for text in [SAMPLE_V1, SAMPLE_V2, "version = 3\nroot = \"/r\"\n"] {
        let out = render_ok(text, true);
        let back = render_removal(&out, Path::new("c"), "gpuhook")
            .unwrap()
            .unwrap();
        assert!(!back.contains("gpuhook"), "{back}");
        assert!(back.contains("root = "), "{back}");
    }
}

#[test]
fn reads_the_handlers_the_cri_plugin_offers() {
    for (text, version) in [
        (SAMPLE_V1, ConfigVersion::V1),
        (SAMPLE_V2, ConfigVersion::V2),
        ("version = 3\n", ConfigVersion::V3),
    ] {
        let out = render_ok(text, true);
        let cri = read_cri_config(&out, Path::new("c")).unwrap();
        assert_eq!(cri.version, version);
        assert!(!cri.cri_disabled);
        assert_eq!(cri.default_runtime.as_deref(), Some("gpuhook"));
        let gpuhook = cri.handlers.iter().find(|h| h.name == "gpuhook").unwrap();
        assert_eq!(gpuhook.runtime_type.as_deref(), Some(RUNC_V2));
        assert_eq!(
            gpuhook.binary_name.as_deref(),
            Some("/usr/bin/gpuhook-runtime")
        );
        assert!(gpuhook.passes_annotations("cdi.k8s.io/"));
        assert!(!gpuhook.passes_annotations("example.com/"));
    }
    let names: Vec<String> = read_cri_config(&render_ok(SAMPLE_V2, false), Path::new("c"))
        .unwrap()
        .handlers
        .into_iter()
        .map(|h| h.name)
        .collect();
    assert_eq!(names, ["runc", "gpuhook"], "file order");
}

#[test]
fn reads_a_disabled_cri_plugin_and_tables_of_another_version() {
    // Docker's containerd.io package ships this: containerd without CRI.
    let cri = read_cri_config("disabled_plugins = [\"cri\"]\n", Path::new("c")).unwrap();
    assert!(cri.cri_disabled);
    assert!(cri.handlers.is_empty());
    // Version-2 tables in a version-less file are not what containerd's CRI plugin reads.
    let misplaced = "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.gpuhook.options]\nBinaryName = \"/x\"\n";
    let cri = read_cri_config(misplaced, Path::new("c")).unwrap();
    assert_eq!(cri.version, ConfigVersion::V1);
    assert!(cri.handlers.is_empty(), "{cri:?}");
    assert_eq!(cri.ignored_cri_tables, ["io.containerd.grpc.v1.cri"]);
    let cri = read_cri_config(&render_ok(SAMPLE_V2, false), Path::new("c")).unwrap();
    assert!(cri.ignored_cri_tables.is_empty());
    assert!(read_cri_config("[plugins\n", Path::new("c")).is_err());
}
