use super::*;
use crate::vendor::test_tree::{tree, AMD_IDS};
use crate::vendor::{parse_visible, read};

fn request(vendor: Vendor, value: &str) -> VendorRequest {
    VendorRequest {
        vendor,
        devices: parse_visible(vendor, value).unwrap().unwrap(),
        value: value.into(),
    }
}

fn paths(plan: &VendorPlan) -> Vec<String> {
    plan.devices
        .iter()
        .map(|d| d.path.display().to_string())
        .collect()
}

#[test]
fn each_form_selects_exactly_its_gpus() {
    let tree = tree();
    let inv = read(&tree.sys(), &tree.dev());
    let one = format!("{:#x}", AMD_IDS[1]);
    let cases: &[(Vendor, &str, &[&str])] = &[
        (
            Vendor::Amd,
            "all",
            &[
                "/dev/kfd",
                "/dev/dri/card10",
                "/dev/dri/renderD140",
                "/dev/dri/card11",
                "/dev/dri/renderD141",
            ],
        ),
        (
            Vendor::Amd,
            "1",
            &["/dev/kfd", "/dev/dri/card11", "/dev/dri/renderD141"],
        ),
        (
            Vendor::Amd,
            "0-1",
            &[
                "/dev/kfd",
                "/dev/dri/card10",
                "/dev/dri/renderD140",
                "/dev/dri/card11",
                "/dev/dri/renderD141",
            ],
        ),
        (
            Vendor::Amd,
            &one,
            &["/dev/kfd", "/dev/dri/card11", "/dev/dri/renderD141"],
        ),
        (
            Vendor::Amd,
            "1,0x1F2E3D4C5B6A7980,0",
            &[
                "/dev/kfd",
                "/dev/dri/card11",
                "/dev/dri/renderD141",
                "/dev/dri/card10",
                "/dev/dri/renderD140",
            ],
        ),
        (
            Vendor::Intel,
            "all",
            &[
                "/dev/dri/card12",
                "/dev/dri/renderD142",
                "/dev/dri/card13",
                "/dev/dri/renderD143",
            ],
        ),
        (
            Vendor::Intel,
            "0000:06:00.0",
            &["/dev/dri/card13", "/dev/dri/renderD143"],
        ),
        (
            Vendor::Intel,
            "0",
            &["/dev/dri/card12", "/dev/dri/renderD142"],
        ),
    ];
    for (vendor, value, want) in cases {
        let plan = plan(&[request(*vendor, value)], &inv).unwrap();
        assert_eq!(paths(&plan), *want, "{vendor} {value}");
    }
}

#[test]
fn a_mixed_request_gives_both_vendors_and_no_other_gpu() {
    let tree = tree();
    let inv = read(&tree.sys(), &tree.dev());
    let plan = plan(
        &[request(Vendor::Amd, "0"), request(Vendor::Intel, "1")],
        &inv,
    )
    .unwrap();
    assert_eq!(
        paths(&plan),
        [
            "/dev/kfd",
            "/dev/dri/card10",
            "/dev/dri/renderD140",
            "/dev/dri/card13",
            "/dev/dri/renderD143"
        ]
    );
    assert_eq!(
        plan.summary(),
        [
            (0, "amd 0000:c1:00.0".into()),
            (1, "intel 0000:06:00.0".into())
        ]
    );
}

#[test]
fn unknown_gpus_say_what_the_host_has() {
    let tree = tree();
    let inv = read(&tree.sys(), &tree.dev());
    let cases = [
        (Vendor::Amd, "2", "AMD_VISIBLE_DEVICES=\"2\": GPU 2 requested, this host has AMD GPUs 0 (0x1f2e3d4c5b6a7980, 0000:c1:00.0), 1 (0x123456789abcdef, 0000:c2:00.0)"),
        (Vendor::Amd, "0-2", "GPU 0-2 requested"),
        (Vendor::Amd, "0xdead", "GPU 0xdead requested"),
        (Vendor::Intel, "0000:07:00.0", "INTEL_VISIBLE_DEVICES=\"0000:07:00.0\": GPU 0000:07:00.0 requested, this host has Intel GPUs 0 (0000:05:00.0), 1 (0000:06:00.0)"),
    ];
    for (vendor, value, want) in cases {
        let err = plan(&[request(vendor, value)], &inv)
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{err}");
    }
    let empty = VendorInventory::default();
    let err = plan(&[request(Vendor::Intel, "all")], &empty)
        .unwrap_err()
        .to_string();
    assert_eq!(err, "INTEL_VISIBLE_DEVICES=\"all\": GPU all requested, but this host has no Intel GPU (a PCI display device bound to i915 or xe)");
}

#[test]
fn missing_kfd_or_nodes_are_refused() {
    let tree = tree();
    std::fs::remove_file(tree.dev().join("kfd")).unwrap();
    let inv = read(&tree.sys(), &tree.dev());
    let err = plan(&[request(Vendor::Amd, "0")], &inv).unwrap_err();
    assert!(matches!(err, VendorError::NoKfd { .. }), "{err}");
    for name in ["card12", "renderD142"] {
        std::fs::remove_file(tree.dev().join("dri").join(name)).unwrap();
    }
    let inv = read(&tree.sys(), &tree.dev());
    let err = plan(&[request(Vendor::Intel, "0")], &inv)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Intel GPU 0 (0000:05:00.0) has no DRM card or render node"),
        "{err}"
    );
}
