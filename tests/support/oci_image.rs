//! A container image made from a rootfs directory, for nodes that cannot pull: one
//! uncompressed layer in an OCI image layout, packed as the tar that `ctr images import` reads.
//! Written with tar and sha256sum rather than an image crate: three JSON documents and two
//! tar calls are all it takes.

use std::path::Path;
use std::process::Command;

use crate::support::sh;

/// Writes `rootfs` as a one-layer OCI image archive (an image layout in a tar, the form
/// `ctr images import` reads) named `name`, whose default command sleeps. Layer and blobs
/// are made with tar and sha256sum in `work`.
pub fn write_archive(rootfs: &Path, archive: &Path, name: &str, work: &Path) {
    let layout = work.join("pause-layout");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let layer_tar = work.join("layer.tar");
    sh(Command::new("tar")
        .arg("-C")
        .arg(rootfs)
        .arg("-cf")
        .arg(&layer_tar)
        .arg("."));
    let layer = store_blob(&blobs, &std::fs::read(&layer_tar).unwrap());
    std::fs::remove_file(&layer_tar).unwrap();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sleep", "1000000"], "Env": ["PATH=/usr/bin:/bin:/usr/sbin:/sbin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
    });
    let config = store_blob(&blobs, &serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config.descriptor("application/vnd.oci.image.config.v1+json"),
        "layers": [layer.descriptor("application/vnd.oci.image.layer.v1.tar")],
    });
    let manifest = store_blob(&blobs, &serde_json::to_vec(&manifest).unwrap());
    let mut entry = manifest.descriptor("application/vnd.oci.image.manifest.v1+json");
    entry["platform"] = serde_json::json!({"architecture": "amd64", "os": "linux"});
    entry["annotations"] = serde_json::json!({"io.containerd.image.name": name});
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [entry]});
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    sh(Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(archive)
        .arg("."));
}

struct Blob {
    digest: String,
    size: usize,
}

impl Blob {
    fn descriptor(&self, media_type: &str) -> serde_json::Value {
        serde_json::json!({"mediaType": media_type, "digest": self.digest, "size": self.size})
    }
}

/// Stores `bytes` under `blobs/<sha256>`.
fn store_blob(blobs: &Path, bytes: &[u8]) -> Blob {
    let staged = blobs.join("staged");
    std::fs::write(&staged, bytes).unwrap();
    let sum = sh(Command::new("sha256sum").arg(&staged));
    let hex = String::from_utf8_lossy(&sum.stdout)
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    std::fs::rename(&staged, blobs.join(&hex)).unwrap();
    Blob {
        digest: format!("sha256:{hex}"),
        size: bytes.len(),
    }
}
