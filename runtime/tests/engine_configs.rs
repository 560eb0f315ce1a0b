//! The config.json that Docker 20.10, podman 4.3 and containerd 1.6 (ctr) send their runtime
//! for a plain `run IMAGE true`, captured by `ci/recording-runtime` into
//! `vm-images/engine-configs/ENGINE.json` (`ci/capture-engine-configs` regenerates them): the
//! stored ones must parse and validate with isorun's validator. `podman-rootless.json` is what
//! rootless podman (run by a throwaway unprivileged uid, single-id mapping, `--network none`)
//! sends its runtime, which it runs as root of its own user namespace.

mod engine_support;
mod rootless_support;

use std::path::{Path, PathBuf};

use engine_support::daemons::Private;
use engine_support::image;

const ENGINES: [&str; 4] = ["docker", "podman", "containerd", "podman-rootless"];

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

#[test]
#[ignore = "regenerates vm-images/engine-configs/podman-rootless.json: run by ci/capture-engine-configs"]
fn capture_engine_configs_podman_rootless() {
    engine_support::require_engines(&["/usr/bin/podman"]);
    if let Some(reason) = rootless_support::cannot_run() {
        panic!("rootless podman cannot run here: {reason}");
    }
    let user = rootless_support::User::new();
    let dir = user.tmp.path().to_owned();
    let home = dir.join("home");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(user.uid), Some(user.uid)).unwrap();
    let conf = dir.join("containers.conf");
    std::fs::write(&conf, "[engine]\nevents_logger = \"file\"\ncgroup_manager = \"cgroupfs\"\n").unwrap();
    // The recorder runs as the user: it writes into the user's home.
    let captured = home.join("podman-rootless.json");
    // A copy: the user may not traverse the directories above the checkout.
    let script = dir.join("recording-runtime");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/recording-runtime"), &script).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let wrapper = dir.join("record-podman-rootless");
    let body = format!("#!/bin/sh\nexec '{}' '{}' \"$@\"\n", script.display(), captured.display());
    std::fs::write(&wrapper, body).unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // An image whose files belong to root: a single-id mapping cannot hold others.
    let tar = dir.join("rootfs.tar");
    let rootfs = user.bundle().join("rootfs");
    let made = std::process::Command::new("tar")
        .args(["--owner=0", "--group=0", "-C"])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(made.success(), "tar of {}", rootfs.display());
    std::fs::set_permissions(&tar, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let (h, c, x) =
        (home.display().to_string(), conf.display().to_string(), user.xdg().display().to_string());
    let (storage, run) = (format!("{h}/storage"), format!("{h}/run"));
    let (env_home, env_conf, env_xdg) =
        (format!("HOME={h}"), format!("CONTAINERS_CONF={c}"), format!("XDG_RUNTIME_DIR={x}"));
    let podman = |args: &[&str]| {
        let base = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", &env_home, &env_conf, &env_xdg];
        let podman = ["/usr/bin/podman", "--root", &storage, "--runroot", &run, "--storage-driver", "vfs"];
        let argv = [&base[..], &podman[..], &["--events-backend", "file"], args].concat();
        user.command(&dir, false, &argv, &[])
    };
    let img = "localhost/isolab/busybox:1";
    let env = format!("ENV {}", image::PATH_ENV);
    let tar_s = tar.display().to_string();
    let out = podman(&["import", "-c", &env, "-c", "CMD [\"sh\"]", &tar_s, img]);
    assert!(out.status.success(), "podman import: {}", String::from_utf8_lossy(&out.stderr));
    // No slirp4netns here: `--network none` (still a network namespace of its own).
    let wrapper_s = wrapper.display().to_string();
    let out = podman(&["run", "--rm", "--network", "none", "--runtime", &wrapper_s, img, "true"]);
    let text = std::fs::read_to_string(&captured).unwrap_or_else(|e| {
        panic!("rootless podman did not run the recorder ({e}): {}", String::from_utf8_lossy(&out.stderr))
    });
    let text = text.replace(&*dir.to_string_lossy(), "/capture");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut pretty = serde_json::to_string_pretty(&value).unwrap();
    pretty.push('\n');
    std::fs::write(store().join("podman-rootless.json"), pretty).unwrap();
}
