//! `restore` under faults: like `create`, it records the container (`creating`, with its
//! cgroup) before it makes anything, so a restore SIGKILLed while CRIU runs leaves a record
//! that `delete --force` undoes: no cgroup, state, mount or process is left, and the bundle's
//! rootfs, bound into the state directory for CRIU, is untouched.
//!
//! CRIU cannot restore on this host (`criu check` fails, see tests/checkpoint.rs), so the
//! `criu` run here is a stand-in (`ISORUN_CRIU`): it answers `--version` and `check` like
//! CRIU 3.17 and, for `restore`, sleeps until killed. That is the instant that matters: the
//! record, the cgroup and the rootfs bind are made, the restored process is not yet there;
//! CRIU itself must die with isorun.

mod common;
mod fault_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{text, Fixture, ISORUN};
use fault_support::{kill9, wait_for_process, wait_gone, Ids, Scope};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A `criu` that passes isorun's preflight and sleeps `mark` seconds in `restore`.
fn stand_in_criu(dir: &Path, mark: &str) -> std::path::PathBuf {
    let path = dir.join("criu");
    let script = format!(
        "#!/bin/sh\ncase \"$1\" in\n--version) echo 'Version: 3.17.1' ;;\ncheck) exit 0 ;;\n\
         restore) exec sleep {mark} ;;\n*) exit 1 ;;\nesac\n"
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path
}

/// An image directory isorun accepts for the fixture's bundle (only its own metadata file:
/// the stand-in CRIU reads no images).
fn images_for(f: &Fixture) -> std::path::PathBuf {
    let images = f.tmp.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let config = std::fs::read(f.bundle().join("config.json")).unwrap();
    let sha: String = Sha256::digest(&config).iter().map(|b| format!("{b:02x}")).collect();
    let meta =
        json!({ "id": "x", "config_sha256": sha, "cgroup_path": "x", "stdio": [], "criu_version": "3.17.1" });
    std::fs::write(images.join("isorun-checkpoint.json"), meta.to_string()).unwrap();
    images
}

/// Every path under `dir`, sorted (symlinks not followed).
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().map(Result::unwrap) {
            out.push(e.path().to_string_lossy().into_owned());
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn restore_killed_while_criu_runs_is_recoverable() {
    let mut f = Fixture::new();
    f.config(&["sleep", "100"], |_| {});
    let mark = format!(
        "29.{}{}",
        std::process::id(),
        std::time::UNIX_EPOCH.elapsed().unwrap().subsec_nanos() % 100_000
    );
    let criu = stand_in_criu(f.tmp.path(), &mark);
    let images = images_for(&f);
    let rootfs_before = tree(&f.bundle().join("rootfs"));
    assert!(rootfs_before.len() > 10, "the fixture's rootfs is a busybox tree: {rootfs_before:?}");
    let id = f.id("killrestore");
    let bundle = f.bundle();
    let mut restore = Command::new(ISORUN)
        .env("ISORUN_CRIU", &criu)
        .arg("--root")
        .arg(f.root())
        .args([
            "restore",
            "-d",
            "--image-path",
            images.to_str().unwrap(),
            "-b",
            bundle.to_str().unwrap(),
            &id,
        ])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(f.tmp.path().join("restore.out")).unwrap())
        .stderr(std::fs::File::create(f.tmp.path().join("restore.err")).unwrap())
        .spawn()
        .unwrap();
    let Some(criu_pid) = wait_for_process(&mark, Duration::from_secs(20)) else {
        let _ = restore.kill();
        panic!(
            "criu restore never ran: {}",
            std::fs::read_to_string(f.tmp.path().join("restore.err")).unwrap()
        );
    };
    // While CRIU runs: recorded (`creating`, its cgroup named), the rootfs bound for CRIU.
    let rec: Value =
        serde_json::from_slice(&std::fs::read(f.root().join(&id).join("state.json")).unwrap()).unwrap();
    assert!(rec["cgroup_path"].as_str().is_some_and(|p| p.ends_with(&id)), "{rec}");
    assert_eq!(f.state(&id)["status"], "creating");
    let criu_root = f.root().join(&id).join("criu-root");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(mounts.contains(criu_root.to_str().unwrap()), "no rootfs bind at {}", criu_root.display());
    kill9(&mut restore);
    // CRIU dies with the isorun that runs it (its parent-death signal): left running, it could
    // make the restored tree after `delete --force` removed the record.
    let died_alone = wait_gone(criu_pid, Duration::from_secs(5));
    if !died_alone {
        let _ =
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(criu_pid), nix::sys::signal::Signal::SIGKILL);
        let _ = wait_gone(criu_pid, Duration::from_secs(5));
    }
    assert!(died_alone, "criu {criu_pid} outlived the SIGKILLed isorun restore");

    assert_eq!(f.state(&id)["status"], "stopped");
    let out = f.isorun(&["delete", "--force", &id]);
    assert!(out.status.success(), "delete --force: {}", text(&out.stderr));
    assert!(!f.root().join(&id).exists(), "state directory left");
    assert_eq!(tree(&f.bundle().join("rootfs")), rootfs_before, "delete --force changed the rootfs");
    let tmp = f.tmp.path().to_owned();
    let scope = Scope {
        needles: vec![tmp.to_string_lossy().into_owned(), mark.clone()],
        tmp,
        root: f.root(),
        ids: Ids::Exact(id.clone()),
        whole: true,
    };
    let left = scope.scan_settled(Duration::from_secs(5));
    assert!(left.is_empty(), "left after delete --force: {left}");
}
