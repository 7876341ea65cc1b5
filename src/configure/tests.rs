use super::*;

pub(super) fn registration(set_as_default: bool) -> Registration {
    Registration {
        name: "gpuhook".into(),
        runtime_path: PathBuf::from("/usr/bin/gpuhook-runtime"),
        set_as_default,
    }
}

#[test]
fn apply_backs_up_writes_and_then_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("daemon.json");
    std::fs::write(&path, "{\n  \"debug\": true\n}\n").unwrap();
    let outcome = apply(Engine::Docker, &path, &registration(false)).unwrap();
    let backup = dir.path().join("daemon.json.gpuhook-backup");
    assert_eq!(
        outcome,
        Outcome::Written {
            backup: Some(backup.clone())
        }
    );
    assert_eq!(
        std::fs::read_to_string(&backup).unwrap(),
        "{\n  \"debug\": true\n}\n"
    );
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.contains("gpuhook-runtime"), "{written}");
    assert_eq!(
        apply(Engine::Docker, &path, &registration(false)).unwrap(),
        Outcome::AlreadyConfigured
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), written);
}

/// Configure then remove, per engine: the user's file comes back as it was (the same
/// text), and a file gpuhook created is removed again.
#[test]
fn removal_undoes_configure() {
    let samples = [
        (Engine::Docker, "daemon.json", "{\n  \"debug\": true,\n  \"runtimes\": {\n    \"kata\": {\n      \"path\": \"/k\"\n    }\n  }\n}\n"),
        (Engine::Containerd, "config.toml", "# ours\nversion = 2\n\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  snapshotter = \"overlayfs\"\n"),
        (Engine::Crio, "crio.conf", "[crio.runtime]\nlog_level = \"info\" # keep\n"),
    ];
    for (engine, name, original) in samples {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, original).unwrap();
        apply(engine, &path, &registration(true)).unwrap();
        assert_ne!(std::fs::read_to_string(&path).unwrap(), original);
        assert_eq!(
            apply_removal(engine, &path, "gpuhook").unwrap(),
            Removal::Written
        );
        let restored = std::fs::read_to_string(&path).unwrap();
        assert!(!restored.contains("gpuhook"), "{engine:?}: {restored}");
        assert!(
            restored.contains("kata")
                || restored.contains("snapshotter")
                || restored.contains("# keep"),
            "{engine:?} lost the user's settings: {restored}"
        );
        assert_eq!(
            apply_removal(engine, &path, "gpuhook").unwrap(),
            Removal::NotPresent
        );

        let created = dir.path().join(format!("new-{name}"));
        apply(engine, &created, &registration(true)).unwrap();
        assert_eq!(
            apply_removal(engine, &created, "gpuhook").unwrap(),
            Removal::FileRemoved
        );
        assert!(!created.exists());
        assert_eq!(
            apply_removal(engine, &created, "gpuhook").unwrap(),
            Removal::NotPresent
        );
    }
}

#[test]
fn removal_leaves_other_defaults_and_malformed_files_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("daemon.json");
    let other = "{\n  \"default-runtime\": \"runc\",\n  \"runtimes\": {\n    \"gpuhook\": {\n      \"path\": \"/x\"\n    }\n  }\n}\n";
    std::fs::write(&path, other).unwrap();
    apply_removal(Engine::Docker, &path, "gpuhook").unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{\n  \"default-runtime\": \"runc\"\n}\n"
    );
    std::fs::write(&path, "{ broken").unwrap();
    assert!(apply_removal(Engine::Docker, &path, "gpuhook").is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{ broken");
}

#[test]
fn a_missing_file_is_created_without_backup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("containerd/config.toml");
    assert_eq!(
        apply(Engine::Containerd, &path, &registration(true)).unwrap(),
        Outcome::Written { backup: None }
    );
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .contains("BinaryName = \"/usr/bin/gpuhook-runtime\""));
}

#[test]
fn malformed_files_are_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    for (engine, name, text) in [
        (Engine::Docker, "daemon.json", "{ \"debug\": tru"),
        (Engine::Docker, "list.json", "[1, 2]"),
        (Engine::Containerd, "config.toml", "version = 2\n[plugins\n"),
        (Engine::Crio, "crio.conf", "[crio.runtime\n"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let err = apply(engine, &path, &registration(false))
            .unwrap_err()
            .to_string();
        assert!(err.contains("left unchanged"), "{name}: {err}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            text,
            "{name} modified"
        );
        assert!(!dir.path().join(format!("{name}.gpuhook-backup")).exists());
    }
}
