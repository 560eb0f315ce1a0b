//! The busybox image, made here (no registry is reachable): a rootfs tarball for `docker
//! import` and `podman import`, and an OCI image archive of the same layer for `ctr image
//! import`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use sha2::{Digest, Sha256};

/// The image's PATH and default command (a tarball import has no config of its own).
pub const PATH_ENV: &str = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";

/// `dir/busybox.tar`: the busybox rootfs of the runtime tests, as a tarball.
pub fn rootfs_tarball(dir: &Path) -> PathBuf {
    let rootfs = dir.join("image-rootfs");
    super::common::busybox_rootfs(&rootfs);
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    std::fs::write(rootfs.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    let tar = dir.join("busybox.tar");
    let st = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success(), "tar of the busybox rootfs failed: {st}");
    tar
}

fn blob(layout: &Path, bytes: &[u8]) -> (String, usize) {
    let hex = format!("{:x}", Sha256::digest(bytes));
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(&hex), bytes).unwrap();
    (format!("sha256:{hex}"), bytes.len())
}

/// `dir/busybox-oci.tar`: an OCI image layout archive of `layer_tar`, named `name` (a full
/// reference, e.g. `docker.io/isolab/busybox:1`), for `ctr image import`.
pub fn oci_archive(dir: &Path, layer_tar: &Path, name: &str) -> PathBuf {
    let layout = dir.join("oci-layout");
    std::fs::create_dir_all(&layout).unwrap();
    let layer = std::fs::read(layer_tar).unwrap();
    let (layer_digest, layer_size) = blob(&layout, &layer);
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "config": { "Env": [PATH_ENV], "Cmd": ["sh"] },
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
    });
    let (config_digest, config_size) = blob(&layout, config.to_string().as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest, "size": config_size },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar",
                     "digest": layer_digest, "size": layer_size }],
    });
    let (manifest_digest, manifest_size) = blob(&layout, manifest.to_string().as_bytes());
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{ "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": manifest_digest, "size": manifest_size,
                        "annotations": { "io.containerd.image.name": name,
                                         "org.opencontainers.image.ref.name": name } }],
    });
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    std::fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let archive = dir.join("busybox-oci.tar");
    let st = Command::new("tar").arg("-C").arg(&layout).arg("-cf").arg(&archive).arg(".").status().unwrap();
    assert!(st.success(), "tar of the OCI layout failed: {st}");
    archive
}
