//! Shared fixtures of the privileged integration tests: a busybox bundle in a unique temp
//! dir, an `isorun` with its own `--root`, and a guard that force-deletes every container a
//! test created and checks nothing is left behind.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{json, Value};

/// The isorun binary under test.
pub const ISORUN: &str = env!("CARGO_BIN_EXE_isorun");

/// Fail loudly (never pass silently) when the privileged tests cannot run.
pub fn require_root() {
    assert!(nix::unistd::geteuid().is_root(), "these integration tests run real containers and need root");
    assert!(
        Path::new("/bin/busybox").exists(),
        "busybox-static is not installed (apt-get install busybox-static)"
    );
}

/// A unique container id for this test process.
pub fn unique_id(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Build a busybox rootfs under `dir`: /bin/busybox plus one symlink per applet.
pub fn busybox_rootfs(dir: &Path) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
    }
    for d in ["proc", "sys", "dev", "tmp", "etc", "root"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
}

/// An isorun with its own state root, a bundle, and cleanup on drop.
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub ids: Vec<String>,
}

impl Fixture {
    pub fn new() -> Self {
        require_root();
        let tmp = tempfile::Builder::new().prefix("isorun-test-").tempdir_in("/tmp").unwrap();
        busybox_rootfs(&tmp.path().join("bundle/rootfs"));
        Fixture { tmp, ids: Vec::new() }
    }

    pub fn root(&self) -> PathBuf {
        self.tmp.path().join("state")
    }

    pub fn bundle(&self) -> PathBuf {
        self.tmp.path().join("bundle")
    }

    /// Write config.json: `isorun spec`'s default, terminal off, `args`, then `edit`.
    pub fn config(&self, args: &[&str], edit: impl FnOnce(&mut Value)) {
        let mut spec: Value = serde_json::from_str(include_str!("../../src/spec/default.json")).unwrap();
        spec["process"]["terminal"] = json!(false);
        spec["process"]["args"] = json!(args);
        edit(&mut spec);
        std::fs::write(self.bundle().join("config.json"), serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    }

    /// Run isorun with `--root` set. stdout and stderr go through files, not pipes: a
    /// container started by `create` or `run -d` inherits them and outlives the command.
    pub fn isorun(&self, args: &[&str]) -> Output {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let (out_path, err_path) =
            (self.tmp.path().join(format!("out.{n}")), self.tmp.path().join(format!("err.{n}")));
        let status = Command::new(ISORUN)
            .arg("--root")
            .arg(self.root())
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .status()
            .unwrap();
        Output {
            status,
            stdout: std::fs::read(&out_path).unwrap(),
            stderr: std::fs::read(&err_path).unwrap(),
        }
    }

    /// A fresh id, remembered for cleanup.
    pub fn id(&mut self, prefix: &str) -> String {
        let id = unique_id(prefix);
        self.ids.push(id.clone());
        id
    }

    /// `run` the bundle in the foreground; (exit code, stdout, stderr).
    pub fn run(&mut self, args: &[&str], edit: impl FnOnce(&mut Value)) -> (i32, String, String) {
        self.config(args, edit);
        let id = self.id("run");
        let bundle = self.bundle();
        let out = self.isorun(&["run", "--bundle", bundle.to_str().unwrap(), &id]);
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    }

    /// `run -d` of `sleep 100` (config edited by `edit`); returns the id once the init has
    /// become sleep.
    pub fn running_sleep(&mut self, edit: impl FnOnce(&mut Value)) -> String {
        self.config(&["sleep", "100"], edit);
        let id = self.id("sleep");
        let bundle = self.bundle();
        let out = self.isorun(&["run", "-d", "--bundle", bundle.to_str().unwrap(), &id]);
        assert!(out.status.success(), "run -d: {}", text(&out.stderr));
        let pid = self.state(&id)["pid"].as_i64().unwrap();
        let t = std::time::Instant::now();
        while std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim() != "sleep" {
            assert!(t.elapsed() < std::time::Duration::from_secs(10), "the init never became sleep");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        id
    }

    /// The state JSON of a container.
    pub fn state(&self, id: &str) -> Value {
        let out = self.isorun(&["state", id]);
        assert!(out.status.success(), "state {id}: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = self.isorun(&["delete", "--force", id]);
        }
        // Nothing of ours may stay mounted on the host.
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let tmp = self.tmp.path().to_string_lossy().into_owned();
        let leaked: Vec<&str> = mounts.lines().filter(|l| l.contains(&tmp)).collect();
        if !std::thread::panicking() {
            assert!(leaked.is_empty(), "mounts left on the host: {leaked:#?}");
        }
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
