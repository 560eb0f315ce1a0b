//! A throwaway unprivileged user context for tests that run isorun (or an engine) as a user:
//! a uid of 60000 and up with no passwd entry and no process, a temp dir with a busybox
//! bundle and an `XDG_RUNTIME_DIR` owned by it, commands through `setpriv --reuid --regid
//! --clear-groups`. The guard force-deletes the containers a test made and kills whatever
//! runs as the uid; the temp dir goes with it. Nothing on the host is edited.
#![allow(dead_code)]

use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The build's isorun. The user runs [`User::isorun_bin`], a copy of it: the build's own may sit
/// under a directory the user cannot traverse (a clone made in a 0700 `mktemp -d`).
pub const ISORUN: &str = env!("CARGO_BIN_EXE_isorun");

/// Why rootless tests cannot run here (`None`: they can).
pub fn cannot_run() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("the test needs root to make a throwaway user context".into());
    }
    for tool in ["/usr/bin/setpriv", "/bin/busybox"] {
        if !Path::new(tool).exists() {
            return Some(format!("{tool} is not installed"));
        }
    }
    let knob = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned());
    if knob("/proc/sys/kernel/unprivileged_userns_clone").is_some_and(|v| v == "0") {
        return Some("kernel.unprivileged_userns_clone is 0".into());
    }
    if knob("/proc/sys/user/max_user_namespaces").is_some_and(|v| v == "0") {
        return Some("user.max_user_namespaces is 0".into());
    }
    if knob("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").is_some_and(|v| v == "1") {
        return Some("kernel.apparmor_restrict_unprivileged_userns is 1".into());
    }
    None
}

#[macro_export]
macro_rules! skip_unless_possible {
    () => {
        if let Some(reason) = $crate::rootless_support::cannot_run() {
            eprintln!("SKIP: rootless tests cannot run: {reason}");
            return;
        }
    };
}

/// Processes whose real or effective uid is `uid`.
pub fn processes_of(uid: u32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        let uids = status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap_or_default();
        if uids.split_whitespace().take(2).any(|u| u == uid.to_string()) {
            out.push(pid);
        }
    }
    out
}

/// A fresh uid: no passwd entry, no process.
pub fn free_uid() -> u32 {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    (0..1000)
        .map(|i| 60000 + (seed.wrapping_add(std::process::id()).wrapping_add(i * 7919)) % 5000)
        .find(|&u| {
            nix::unistd::User::from_uid(u.into()).ok().flatten().is_none()
                && nix::unistd::Group::from_gid(u.into()).ok().flatten().is_none()
                && processes_of(u).is_empty()
        })
        .expect("no free uid in 60000..65000")
}

/// An unprivileged user context: its uid/gid, a bundle and an `XDG_RUNTIME_DIR` it owns.
pub struct User {
    pub uid: u32,
    pub tmp: tempfile::TempDir,
    pub ids: Vec<String>,
}

impl User {
    pub fn new() -> Self {
        let uid = free_uid();
        let tmp = tempfile::Builder::new().prefix("isorun-rootless-").tempdir_in("/tmp").unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let user = User { uid, tmp, ids: Vec::new() };
        let rootfs = user.bundle().join("rootfs");
        busybox_rootfs(&rootfs);
        std::fs::create_dir(user.tmp.path().join("bin")).unwrap();
        std::fs::copy(ISORUN, user.isorun_bin()).unwrap();
        std::fs::set_permissions(user.isorun_bin(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(user.xdg()).unwrap();
        std::fs::set_permissions(user.xdg(), std::fs::Permissions::from_mode(0o700)).unwrap();
        for p in [user.bundle(), user.xdg()] {
            chown(&p, Some(uid), Some(uid)).unwrap();
        }
        user
    }

    pub fn bundle(&self) -> PathBuf {
        self.tmp.path().join("bundle")
    }

    /// The isorun the user runs: a 0755 copy of the build's in the user's 0755 temp dir.
    pub fn isorun_bin(&self) -> PathBuf {
        self.tmp.path().join("bin/isorun")
    }

    pub fn xdg(&self) -> PathBuf {
        self.tmp.path().join("xdg")
    }

    /// The default state root the user's isorun should pick.
    pub fn state_root(&self) -> PathBuf {
        self.xdg().join("isorun")
    }

    /// isorun as the user, with `XDG_RUNTIME_DIR` (if `xdg`) and no `--root`, in `cwd`.
    pub fn isorun_in(&self, cwd: &Path, xdg: bool, args: &[&str]) -> Output {
        let bin = self.isorun_bin().display().to_string();
        self.command(cwd, xdg, &[&[bin.as_str()], args].concat(), &[])
    }

    /// `argv` as the user in `cwd`, with `XDG_RUNTIME_DIR` (if `xdg`) and `env` (else only
    /// the test's environment without ISORUN_ROOT).
    pub fn command(&self, cwd: &Path, xdg: bool, argv: &[&str], env: &[(&str, &str)]) -> Output {
        self.command_wrapped(&[], cwd, xdg, argv, env)
    }

    /// [`User::command`], started by `wrapper` (run as root, it ends by exec'ing the rest of
    /// its arguments: `setpriv ... argv`).
    pub fn command_wrapped(
        &self,
        wrapper: &[&str],
        cwd: &Path,
        xdg: bool,
        argv: &[&str],
        env: &[(&str, &str)],
    ) -> Output {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        // Files, not pipes: a detached container inherits them and outlives the command.
        let (out, err) = (self.tmp.path().join(format!("out.{n}")), self.tmp.path().join(format!("err.{n}")));
        let id = self.uid.to_string();
        let setpriv = ["/usr/bin/setpriv", "--reuid", &id, "--regid", &id, "--clear-groups", "--"];
        let all = [wrapper, &setpriv[..]].concat();
        let mut cmd = Command::new(all[0]);
        cmd.args(&all[1..])
            .args(argv)
            .current_dir(cwd)
            .env_remove("ISORUN_ROOT")
            .env_remove("XDG_RUNTIME_DIR")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        if xdg {
            cmd.env("XDG_RUNTIME_DIR", self.xdg());
        }
        let status = cmd.status().unwrap();
        Output { status, stdout: std::fs::read(&out).unwrap(), stderr: std::fs::read(&err).unwrap() }
    }

    pub fn isorun(&self, args: &[&str]) -> Output {
        self.isorun_in(self.tmp.path(), true, args)
    }

    /// `isorun spec --rootless` as the user, then terminal off, `args`, then `edit`.
    pub fn config(&self, args: &[&str], edit: impl FnOnce(&mut Value)) {
        let path = self.bundle().join("config.json");
        let _ = std::fs::remove_file(&path);
        let out = self.isorun_in(&self.bundle(), false, &["spec", "--rootless"]);
        assert!(out.status.success(), "spec --rootless: {}", text(&out.stderr));
        let mut spec: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(spec["linux"]["uidMappings"], json!([{"containerID": 0, "hostID": self.uid, "size": 1}]));
        spec["process"]["terminal"] = json!(false);
        spec["process"]["args"] = json!(args);
        edit(&mut spec);
        std::fs::write(&path, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    }

    pub fn id(&mut self, prefix: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        self.ids.push(id.clone());
        id
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.isorun(args);
        assert!(out.status.success(), "isorun {args:?} as uid {}: {}", self.uid, text(&out.stderr));
        text(&out.stdout)
    }

    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    pub fn wait_status(&self, id: &str, want: &str) {
        let t = Instant::now();
        while self.state(id)["status"] != want {
            assert!(t.elapsed() < Duration::from_secs(10), "{id} never became {want}: {}", self.state(id));
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The state root holds nothing of a container (no directory, lock or temp file; the
    /// compiled seccomp filters' cache, `@seccomp-cache`, is the runtime's own and stays, and
    /// so does the staging directory, `@staging`, when it is empty).
    pub fn assert_state_root_empty(&self) {
        let names = |dir: &Path| -> Vec<std::ffi::OsString> {
            std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default()
        };
        let own = [isolab_runtime::seccomp::cache::CACHE_DIR, isolab_runtime::state::STAGING_DIR];
        let mut left: Vec<_> =
            names(&self.state_root()).into_iter().filter(|n| !own.iter().any(|o| n == o)).collect();
        left.extend(names(&self.state_root().join(isolab_runtime::state::STAGING_DIR)));
        assert!(left.is_empty(), "left in {}: {left:?}", self.state_root().display());
    }

    /// No process runs as the user (bounded wait: a killed init may take a moment to go).
    pub fn assert_no_processes(&self) {
        let t = Instant::now();
        while !processes_of(self.uid).is_empty() {
            assert!(t.elapsed() < Duration::from_secs(5), "processes left: {:?}", processes_of(self.uid));
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for User {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = self.isorun(&["delete", "--force", id]);
        }
        for pid in processes_of(self.uid) {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A busybox rootfs under `dir`, owned by root and readable by all.
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
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
}
