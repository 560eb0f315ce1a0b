//! The config.json that Docker 20.10, podman 4.3 and containerd 1.6 (ctr) send their runtime
//! for a plain `run IMAGE true`, captured by `ci/recording-runtime` into
//! `vm-images/engine-configs/ENGINE.json` (`ci/capture-engine-configs` regenerates them): the
//! stored ones must parse and validate with isorun's validator.

mod engine_support;

use std::path::{Path, PathBuf};

use engine_support::daemons::Private;
use engine_support::image;

const ENGINES: [&str; 3] = ["docker", "podman", "containerd"];

fn store() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../vm-images/engine-configs")
}

#[test]
fn stored_engine_configs_validate() {
    for engine in ENGINES {
        let file = store().join(format!("{engine}.json"));
        let bytes = std::fs::read(&file)
            .unwrap_or_else(|e| panic!("{}: {e} (ci/capture-engine-configs makes it)", file.display()));
        if let Err(errors) = isolab_runtime::config::parse_config(&bytes) {
            panic!("{engine}'s config ({}) does not validate:\n{errors}", file.display());
        }
    }
}

/// A one-line runtime for `engine`: ci/recording-runtime writing to `dir/ENGINE.json`.
fn recorder(p: &Private, engine: &str) -> (PathBuf, PathBuf) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/recording-runtime");
    let out = p.path(&format!("{engine}.json"));
    let wrapper = p.path(&format!("record-{engine}"));
    let body = format!("#!/bin/sh\nexec '{}' '{}' \"$@\"\n", script.display(), out.display());
    std::fs::write(&wrapper, body).unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    (wrapper, out)
}

/// Store `captured` as `engine`'s config: pretty JSON, the private dir's path replaced by
/// `/capture` and the test's tag by `isolab-capture` (container ids, and what derives from
/// them, still differ between captures).
fn store_config(p: &Private, engine: &str, captured: &Path) {
    let text = std::fs::read_to_string(captured).unwrap_or_else(|e| {
        panic!("{engine} did not run the recording runtime ({}): {e}", captured.display())
    });
    let text = text.replace(&*p.dir.path().to_string_lossy(), "/capture").replace(&p.tag, "isolab-capture");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    std::fs::create_dir_all(store()).unwrap();
    let mut pretty = serde_json::to_string_pretty(&value).unwrap();
    pretty.push('\n');
    std::fs::write(store().join(format!("{engine}.json")), pretty).unwrap();
}

/// Run `argv` on the private daemons; it must succeed.
fn must(p: &Private, argv: Vec<String>) {
    let out = p.run(argv.clone(), None);
    assert_eq!(out.code, 0, "{}: {}", argv.join(" "), out.brief());
}

#[test]
#[ignore = "regenerates vm-images/engine-configs: run by ci/capture-engine-configs"]
fn capture_engine_configs() {
    engine_support::require_engines(&["/usr/sbin/dockerd", "/usr/bin/containerd", "/usr/bin/podman"]);
    let mut p = Private::new("capture");
    let (docker_rt, docker_out) = recorder(&p, "docker");
    let (ctr_rt, ctr_out) = recorder(&p, "containerd");
    let (podman_rt, podman_out) = recorder(&p, "podman");
    p.start_containerd();
    p.start_dockerd(&[("record", &docker_rt)]);
    let tar = image::rootfs_tarball(p.dir.path());
    let tar_s = tar.display().to_string();
    let env = format!("ENV {}", image::PATH_ENV);
    let img = "isolab/busybox:1";
    must(&p, p.docker(&["import", "-c", &env, "-c", "CMD [\"sh\"]", &tar_s, img]));
    must(&p, p.docker(&["run", "--rm", "--runtime", "record", img, "true"]));
    let ctr_img = "docker.io/isolab/busybox:1";
    let archive = image::oci_archive(p.dir.path(), &tar, ctr_img).display().to_string();
    must(&p, p.ctr(&["images", "import", "--snapshotter", "native", &archive]));
    let ctr_bin = ctr_rt.display().to_string();
    must(
        &p,
        p.ctr(&[
            "run",
            "--rm",
            "--snapshotter",
            "native",
            "--runc-binary",
            &ctr_bin,
            ctr_img,
            "capture",
            "true",
        ]),
    );
    let pimg = "localhost/isolab/busybox:1";
    let argv = p.podman(&podman_rt, &["import", "-c", &env, "-c", "CMD [\"sh\"]", &tar_s, pimg]);
    must(&p, argv);
    // podman's default rlimits exceed what root may set here (engine_podman.rs): recorded
    // anyway, since the recorder copies the config before runc refuses it.
    let parent = p.podman_cgroup_parent();
    let argv = p.podman(&podman_rt, &["run", "--rm", "--cgroup-parent", &parent, pimg, "true"]);
    let _ = p.run(argv, None);
    store_config(&p, "docker", &docker_out);
    store_config(&p, "containerd", &ctr_out);
    store_config(&p, "podman", &podman_out);
}
