//! isolab-benches: fixtures of the criterion benches in `benches/` — a busybox bundle,
//! the `isorun` binary, and a child process that times one phase of a container's start
//! from the inside and reports the duration over a pipe — and the floor program
//! `isolab-floor` ([`floor`]), the physical limit `isolab bench startup` measures against.
#![warn(missing_docs)]
#![warn(clippy::too_many_lines)]

pub mod floor;
mod sys;

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use isolab_runtime::sys::process::{clone_into, Forked};
use nix::sys::wait::{waitpid, WaitStatus};
use serde_json::{json, Value};

/// The benches need root (they create namespaces, mounts and cgroups) and busybox. When
/// they cannot run, say so loudly and return false: the bench then measures nothing.
pub fn can_run() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP isolab-benches: not root (the benches create namespaces, mounts and cgroups)");
        return false;
    }
    if !Path::new("/bin/busybox").is_file() {
        eprintln!("SKIP isolab-benches: /bin/busybox missing (apt-get install busybox-static)");
        return false;
    }
    true
}

/// A bundle in a temp dir: busybox rootfs, isorun's default spec with terminal off, `args`,
/// a cgroup namespace added (all namespaces but user), then `edit`.
#[derive(Debug)]
pub struct Bundle {
    dir: tempfile::TempDir,
}

impl Bundle {
    /// Builds the bundle.
    pub fn new(args: &[&str], edit: impl FnOnce(&mut Value)) -> std::io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("isolab-benches-").tempdir_in("/tmp")?;
        let rootfs = dir.path().join("bundle/rootfs");
        let bin = rootfs.join("bin");
        std::fs::create_dir_all(&bin)?;
        std::fs::copy("/bin/busybox", bin.join("busybox"))?;
        for applet in ["sh", "true", "sleep"] {
            std::os::unix::fs::symlink("busybox", bin.join(applet))?;
        }
        for d in ["proc", "sys", "dev", "tmp", "etc"] {
            std::fs::create_dir_all(rootfs.join(d))?;
        }
        let mut spec: Value = serde_json::from_str(DEFAULT_SPEC).map_err(std::io::Error::other)?;
        spec["process"]["terminal"] = json!(false);
        spec["process"]["args"] = json!(args);
        if let Some(ns) = spec["linux"]["namespaces"].as_array_mut() {
            if !ns.iter().any(|n| n["type"] == "cgroup") {
                ns.push(json!({ "type": "cgroup" }));
            }
        }
        edit(&mut spec);
        let b = Bundle { dir };
        std::fs::write(b.config_path(), serde_json::to_vec_pretty(&spec).map_err(std::io::Error::other)?)?;
        Ok(b)
    }

    /// The bundle directory.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("bundle")
    }

    /// Its config.json.
    pub fn config_path(&self) -> PathBuf {
        self.path().join("config.json")
    }

    /// A private `--root` for state.
    pub fn state_root(&self) -> PathBuf {
        self.dir.path().join("state")
    }
}

/// isorun's `spec` default (runc's, hostname `isorun`).
pub const DEFAULT_SPEC: &str = include_str!("../../runtime/src/spec/default.json");

/// Adds a user namespace mapping 0..65536 to 100000..165536.
pub fn add_user_ns(spec: &mut Value) {
    let map = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    if let Some(ns) = spec["linux"]["namespaces"].as_array_mut() {
        ns.push(json!({ "type": "user" }));
    }
    spec["linux"]["uidMappings"] = map.clone();
    spec["linux"]["gidMappings"] = map;
}

/// Drops the network namespace.
pub fn drop_net_ns(spec: &mut Value) {
    if let Some(ns) = spec["linux"]["namespaces"].as_array_mut() {
        ns.retain(|n| n["type"] != "network");
    }
}

/// The release (else debug) `isorun` of this workspace, or `ISOLAB_BENCH_ISORUN`.
pub fn isorun_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ISOLAB_BENCH_ISORUN") {
        return Some(PathBuf::from(p));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    ["release", "debug"].iter().map(|p| target.join(p).join("isorun")).find(|p| p.is_file())
}

/// `isorun --root ROOT run -b BUNDLE ID`, asserting success.
pub fn isorun_run(bin: &Path, b: &Bundle, id: &str) {
    let out = Command::new(bin)
        .arg("--root")
        .arg(b.state_root())
        .args(["run", "-b"])
        .arg(b.path())
        .arg(id)
        .output()
        .expect("spawn isorun");
    assert!(out.status.success(), "isorun run {id}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Clones a child with `flags` (CLONE_NEW* bits), runs `phase` in it and returns the time
/// the phase took, measured inside the child and sent back over a pipe; the child then
/// exits. `phase` failing panics with its message (a bench that measures an error is no
/// bench). The process must be single-threaded (criterion's default runner is).
pub fn time_in_child(flags: u64, phase: impl FnOnce() -> Result<(), String>) -> Duration {
    let (rd, wr): (OwnedFd, OwnedFd) = nix::unistd::pipe().expect("pipe");
    match clone_into(flags, None).expect("clone3") {
        Forked::Child => {
            drop(rd);
            let t = Instant::now();
            let r = phase();
            let msg = match r {
                Ok(()) => format!("ok {}", t.elapsed().as_nanos()),
                Err(e) => format!("err {e}"),
            };
            let _ = nix::unistd::write(&wr, msg.as_bytes());
            sys::exit_now(0)
        }
        Forked::Parent(pid) => {
            drop(wr);
            let mut s = String::new();
            let _ = std::fs::File::from(rd).read_to_string(&mut s);
            let status = waitpid(pid, None).expect("waitpid");
            assert_eq!(status, WaitStatus::Exited(pid, 0), "bench child: {s}");
            match s.strip_prefix("ok ") {
                Some(ns) => Duration::from_nanos(ns.parse().expect("nanoseconds")),
                None => panic!("bench child failed: {s}"),
            }
        }
    }
}

/// Clones a child with `flags` that exits at once; returns the time from clone to reaped,
/// measured in the parent: the kernel's cost of making (and tearing down) the namespaces.
pub fn clone_and_reap(flags: u64) -> Duration {
    let t = Instant::now();
    match clone_into(flags, None).expect("clone3") {
        Forked::Child => sys::exit_now(0),
        Forked::Parent(pid) => {
            let status = waitpid(pid, None).expect("waitpid");
            assert_eq!(status, WaitStatus::Exited(pid, 0));
            t.elapsed()
        }
    }
}
