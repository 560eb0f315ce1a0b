//! `checkpoint` and `restore`: the errors named before anything changes. (A successful
//! round trip needs a kernel CRIU works on; the guests prove it: `checkpoint.*` in
//! `ci/matrix`. On this host `criu check` fails, and checkpoint must say CRIU's reason.)

mod common;

use std::process::{Command, Stdio};

use common::{text, Fixture, ISORUN};
use serde_json::json;

fn start(f: &mut Fixture) -> (String, i64) {
    f.config(&["sleep", "60"], |_| {});
    let id = f.id("ckpt");
    let out = f.isorun(&["run", "-d", "--bundle", f.bundle().to_str().unwrap(), &id]);
    assert!(out.status.success(), "run -d: {}", text(&out.stderr));
    let pid = f.state(&id)["pid"].as_i64().unwrap();
    (id, pid)
}

fn assert_untouched(f: &Fixture, id: &str, pid: i64) {
    let st = f.state(id);
    assert_eq!(st["status"], "running", "{st}");
    assert_eq!(st["pid"], pid, "the same init");
}

#[test]
fn the_init_leads_its_own_session_like_runc_s() {
    let mut f = Fixture::new();
    let (_, pid) = start(&mut f);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit_once(')').unwrap().1;
    let sid: i64 = after.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert_eq!(sid, pid, "session of the init: {stat}");
}

#[test]
fn checkpoint_without_criu_names_it_and_changes_nothing() {
    let mut f = Fixture::new();
    let (id, pid) = start(&mut f);
    let images = f.tmp.path().join("images");
    let out = Command::new(ISORUN)
        .env("ISORUN_CRIU", "/nonexistent/criu")
        .args(["--root", f.root().to_str().unwrap(), "checkpoint", "--image-path"])
        .arg(&images)
        .arg(&id)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("criu not found") && err.contains("/nonexistent/criu"), "{err}");
    assert!(!images.exists(), "no image directory before the checks pass");
    assert_untouched(&f, &id, pid);
}

#[test]
fn checkpoint_of_a_created_container_is_refused() {
    let mut f = Fixture::new();
    f.config(&["sleep", "60"], |_| {});
    let id = f.id("ckpt");
    let out = f.isorun(&["create", "--bundle", f.bundle().to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = f.isorun(&["checkpoint", "--image-path", f.tmp.path().join("img").to_str().unwrap(), &id]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("is created: cannot checkpoint"), "{}", text(&out.stderr));
    assert_eq!(f.state(&id)["status"], "created");
}

/// Where `criu check` fails (CRIU 3.17 on this host's 6.18), checkpoint says why, in CRIU's
/// words, and the container runs on as it was.
#[test]
fn checkpoint_where_criu_check_fails_gives_criu_s_reason() {
    let check = Command::new("criu").arg("check").output().expect("criu is installed (ci/setup)");
    if check.status.success() {
        eprintln!("SKIP: criu check passes on this kernel; its failure path cannot be shown here");
        return;
    }
    let mut f = Fixture::new();
    let (id, pid) = start(&mut f);
    let images = f.tmp.path().join("images");
    let out = f.isorun(&["checkpoint", "--image-path", images.to_str().unwrap(), &id]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    let stderr = text(&check.stderr);
    let reason = stderr
        .lines()
        .find(|l| {
            l.contains("Error (")
                && !["exited, status=1", "tun: ", "Diag module missing"].iter().any(|n| l.contains(n))
        })
        .unwrap();
    assert!(err.contains("criu check failed on kernel") && err.contains(reason.trim()), "{err}");
    assert!(!images.exists());
    assert_untouched(&f, &id, pid);
}

#[test]
fn restore_refuses_a_directory_that_is_not_a_checkpoint_and_leaves_nothing() {
    let mut f = Fixture::new();
    f.config(&["sleep", "60"], |_| {});
    let images = f.tmp.path().join("empty");
    std::fs::create_dir_all(&images).unwrap();
    let id = f.id("rst");
    let out = restore_detached(&f, &images, &id);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(images.to_str().unwrap()) && err.contains("not a checkpoint made by isorun"),
        "{err}"
    );
    assert!(!f.root().join(&id).exists(), "no state directory left");
}

/// `isorun restore -d` of `id` from `images`, with the fixture's bundle.
fn restore_detached(f: &Fixture, images: &std::path::Path, id: &str) -> std::process::Output {
    let (images, bundle) = (images.to_str().unwrap(), f.bundle());
    f.isorun(&["restore", "-d", "--image-path", images, "-b", bundle.to_str().unwrap(), id])
}

#[test]
fn restore_refuses_images_of_another_config_and_leaves_nothing() {
    let mut f = Fixture::new();
    f.config(&["sleep", "60"], |_| {});
    let images = f.tmp.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let meta = json!({ "id": "x", "config_sha256": "00".repeat(32), "cgroup_path": null, "stdio": [], "criu_version": "3.17.1" });
    std::fs::write(images.join("isorun-checkpoint.json"), meta.to_string()).unwrap();
    let id = f.id("rst");
    let out = restore_detached(&f, &images, &id);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("made from a config.json with sha256 0000") && err.contains("config.json has sha256"),
        "{err}"
    );
    assert!(!f.root().join(&id).exists(), "no state directory left");
}
