//! On a simulated cgroup tree: a root with `dmem.capacity`, a container cgroup with
//! `dmem.max` (a plain file here: what is written shows in it).

use super::*;
use crate::vendor::test_tree::tree;

const CAPACITY: &str = "drm/0000:c1:00.0/vram0 68702699520\ndrm/0000:c2:00.0/vram0 68702699520\n\
    drm/0000:06:00.0/vram0 17163091968\ndrm/0000:06:00.0/stolen 268435456\n";

fn gpus() -> Vec<VendorGpu> {
    let tree = tree();
    crate::vendor::read(&tree.sys(), &tree.dev()).gpus
}

fn limit(vendor: Vendor, value: &str) -> (Vendor, MemoryLimit) {
    (
        vendor,
        parse_memory_limit(vendor.memory_limit_env(), value).unwrap(),
    )
}

#[test]
fn each_capped_gpu_gets_its_regions_capped() {
    let gpus = gpus();
    let p = Path::new("/sys/fs/cgroup/dmem.capacity");
    let lines = max_lines(&[limit(Vendor::Amd, "1=4G")], &gpus, CAPACITY, p).unwrap();
    assert_eq!(lines, ["drm/0000:c2:00.0/vram0 4294967296"]);
    let lines = max_lines(&[limit(Vendor::Amd, "8192")], &gpus, CAPACITY, p).unwrap();
    assert_eq!(
        lines,
        [
            "drm/0000:c1:00.0/vram0 8589934592",
            "drm/0000:c2:00.0/vram0 8589934592"
        ]
    );
    // Above a region's size: its size (the stolen region is small).
    let lines = max_lines(&[limit(Vendor::Intel, "1=1T")], &gpus, CAPACITY, p).unwrap();
    assert_eq!(
        lines,
        [
            "drm/0000:06:00.0/vram0 17163091968",
            "drm/0000:06:00.0/stolen 268435456"
        ]
    );
}

#[test]
fn a_gpu_without_a_region_is_refused() {
    let gpus = gpus();
    let p = Path::new("/cg/dmem.capacity");
    let err = max_lines(&[limit(Vendor::Intel, "2G")], &gpus, CAPACITY, p).unwrap_err();
    assert_eq!(
        err.to_string(),
        "INTEL_GPU_MEMORY_LIMIT: Intel GPU 0 (0000:05:00.0) has no dmem region in /cg/dmem.capacity (its driver registers none: amdgpu and xe do, i915 does not)"
    );
}

#[test]
fn dmem_max_is_written_one_region_per_line() {
    let root = tempfile::tempdir().unwrap();
    let cgroup = root.path().join("pod/ctr");
    std::fs::create_dir_all(&cgroup).unwrap();
    std::fs::write(root.path().join("dmem.capacity"), CAPACITY).unwrap();
    std::fs::write(cgroup.join("dmem.max"), "").unwrap();
    let capacity = read_capacity("AMD_GPU_MEMORY_LIMIT", root.path()).unwrap();
    let lines = max_lines(
        &[limit(Vendor::Amd, "0=1G,1=2G")],
        &gpus(),
        &capacity,
        Path::new("x"),
    )
    .unwrap();
    write_max("AMD_GPU_MEMORY_LIMIT", &cgroup, &lines).unwrap();
    assert_eq!(
        std::fs::read_to_string(cgroup.join("dmem.max")).unwrap(),
        "drm/0000:c1:00.0/vram0 1073741824\ndrm/0000:c2:00.0/vram0 2147483648\n"
    );
}

#[test]
fn no_controller_is_a_clear_error() {
    let root = tempfile::tempdir().unwrap();
    let err = read_capacity("AMD_GPU_MEMORY_LIMIT", root.path()).unwrap_err();
    assert!(matches!(err, DmemError::NoController { .. }), "{err}");
    assert!(err.to_string().contains("Linux 6.14+, cgroup v2"), "{err}");
    let err = write_max("AMD_GPU_MEMORY_LIMIT", root.path(), &["a 1".into()]).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "AMD_GPU_MEMORY_LIMIT asks for a GPU memory cap, but {}/dmem.max is missing",
            root.path().display()
        )),
        "{err}"
    );
}

#[test]
fn a_symlinked_dmem_max_is_not_followed() {
    let root = tempfile::tempdir().unwrap();
    let victim = root.path().join("victim");
    std::fs::write(&victim, "host file\n").unwrap();
    std::os::unix::fs::symlink(&victim, root.path().join("dmem.max")).unwrap();
    let err = write_max("AMD_GPU_MEMORY_LIMIT", root.path(), &["a 1".into()]).unwrap_err();
    assert!(matches!(err, DmemError::Io { .. }), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "host file\n");
}

#[test]
fn limits_are_read_per_vendor_with_nvidias_forms() {
    let facts = |env: &[(&str, &str)], privileged| ContainerFacts {
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        privileged,
        ..Default::default()
    };
    let f = facts(
        &[
            ("AMD_GPU_MEMORY_LIMIT", "4G"),
            ("NVIDIA_GPU_MEMORY_LIMIT", "1G"),
        ],
        true,
    );
    let limits = read_limits(&f, false).unwrap();
    assert_eq!(limits, [(Vendor::Amd, MemoryLimit::Every(4 << 30))]);
    let f = facts(&[("INTEL_GPU_MEMORY_LIMIT", "lots")], false);
    assert!(
        read_limits(&f, false).unwrap().is_empty(),
        "unprivileged, not accepted"
    );
    let err = read_limits(&f, true).unwrap_err().to_string();
    assert!(
        err.starts_with("INTEL_GPU_MEMORY_LIMIT=\"lots\": "),
        "{err}"
    );
}

#[test]
fn the_unified_cgroup_is_found_on_hybrid_hosts_and_never_climbs() {
    let root = Path::new("/sys/fs/cgroup");
    let hybrid = "12:devices:/ctr\n1:name=systemd:/ctr\n0::/pod/ctr\n";
    assert_eq!(unified_cgroup(hybrid, root), Some(root.join("pod/ctr")));
    assert_eq!(unified_cgroup("0::/\n", root), Some(root.to_path_buf()));
    assert_eq!(unified_cgroup("0::/../../etc\n", root), None);
    assert_eq!(unified_cgroup("12:devices:/ctr\n", root), None);
}
