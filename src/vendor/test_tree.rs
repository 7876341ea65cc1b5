//! A simulated sysfs and /dev for the unit tests (the layout `tests/sim/make-vendors.sh`
//! makes for the runc tests): AMD GPUs on `0000:c1:00.0` (card10, renderD140) and
//! `0000:c2:00.0` (card11, renderD141) with a CPU and two GPU KFD nodes, an Intel i915 GPU
//! on `0000:05:00.0` (card12, renderD142) and an xe one on `0000:06:00.0` (card13,
//! renderD143), an NVIDIA GPU and an AMD audio function to be left out. Needs root (mknod).

use std::path::{Path, PathBuf};

pub const AMD_IDS: [u64; 2] = [0x1f2e_3d4c_5b6a_7980, 0x0123_4567_89ab_cdef];

pub struct Tree {
    pub dir: tempfile::TempDir,
}

impl Tree {
    pub fn sys(&self) -> PathBuf {
        self.dir.path().join("sys")
    }
    pub fn dev(&self) -> PathBuf {
        self.dir.path().join("dev")
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn mknod(path: &Path, major: u32, minor: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(major, minor),
    )
    .unwrap();
}

/// A PCI device with `card` and `render` minors (none: no drm/).
fn device(tree: &Tree, bus: &str, vendor: &str, class: &str, driver: &str, card: Option<u32>) {
    let sys = tree.sys();
    let dir = sys.join("bus/pci/devices").join(bus);
    write(&dir.join("vendor"), &format!("{vendor}\n"));
    write(&dir.join("class"), &format!("{class}\n"));
    std::fs::create_dir_all(sys.join("bus/pci/drivers").join(driver)).unwrap();
    std::os::unix::fs::symlink(format!("../../drivers/{driver}"), dir.join("driver")).unwrap();
    if let Some(card) = card {
        for (name, minor) in [
            (format!("card{card}"), card),
            (format!("renderD{}", card + 130), card + 130),
        ] {
            std::fs::create_dir_all(dir.join("drm").join(&name)).unwrap();
            mknod(&tree.dev().join("dri").join(&name), 226, minor);
        }
    }
}

pub fn tree() -> Tree {
    let tree = Tree {
        dir: tempfile::tempdir().unwrap(),
    };
    device(
        &tree,
        "0000:c2:00.0",
        "0x1002",
        "0x038000",
        "amdgpu",
        Some(11),
    );
    device(
        &tree,
        "0000:c1:00.0",
        "0x1002",
        "0x030000",
        "amdgpu",
        Some(10),
    );
    device(
        &tree,
        "0000:c1:00.1",
        "0x1002",
        "0x040300",
        "snd_hda_intel",
        None,
    );
    device(
        &tree,
        "0000:05:00.0",
        "0x8086",
        "0x030000",
        "i915",
        Some(12),
    );
    device(&tree, "0000:06:00.0", "0x8086", "0x038000", "xe", Some(13));
    device(
        &tree,
        "0000:10:00.0",
        "0x10de",
        "0x030200",
        "nvidia",
        Some(1),
    );
    mknod(&tree.dev().join("kfd"), 238, 0);
    let nodes = tree.sys().join(super::kfd::TOPOLOGY_NODES);
    write(
        &nodes.join("0/properties"),
        "cpu_cores_count 64\nsimd_count 0\ndrm_render_minor 0\nunique_id 0\n",
    );
    for (node, (minor, id)) in [(1, (140, AMD_IDS[0])), (2, (141, AMD_IDS[1]))] {
        write(
            &nodes.join(format!("{node}/properties")),
            &format!("cpu_cores_count 0\nsimd_count 304\ndrm_render_minor {minor}\nunique_id {id}\nlocation_id {}\n", 0xc100 + (node - 1) * 0x100),
        );
    }
    tree
}
