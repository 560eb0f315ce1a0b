//! isorun run by an unprivileged user (rootless, as runc and crun run): the whole lifecycle
//! with `isorun spec --rootless`'s config, and the refusals that name their field.
//!
//! The test (root) makes a throwaway user context without touching /etc/passwd: a uid of
//! 60000 and up with no passwd entry and no process, a temp dir with its bundle and its
//! `XDG_RUNTIME_DIR` owned by it, and runs isorun through `setpriv --reuid --regid
//! --clear-groups` with no `--root`, so the default root (`$XDG_RUNTIME_DIR/isorun`) is
//! used. The guard force-deletes what a test made, kills whatever runs as the uid and
//! removes the temp dir.

use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ISORUN: &str = env!("CARGO_BIN_EXE_isorun");

/// Why rootless tests cannot run here (`None`: they can).
fn cannot_run() -> Option<String> {
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

macro_rules! skip_unless_possible {
    () => {
        if let Some(reason) = cannot_run() {
            eprintln!("SKIP: rootless tests cannot run: {reason}");
            return;
        }
    };
}

/// Processes whose real or effective uid is `uid`.
fn processes_of(uid: u32) -> Vec<i32> {
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
fn free_uid() -> u32 {
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
struct User {
    uid: u32,
    tmp: tempfile::TempDir,
    ids: Vec<String>,
}

impl User {
    fn new() -> Self {
        let uid = free_uid();
        let tmp = tempfile::Builder::new().prefix("isorun-rootless-").tempdir_in("/tmp").unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let user = User { uid, tmp, ids: Vec::new() };
        let rootfs = user.bundle().join("rootfs");
        busybox_rootfs(&rootfs);
        std::fs::create_dir(user.xdg()).unwrap();
        std::fs::set_permissions(user.xdg(), std::fs::Permissions::from_mode(0o700)).unwrap();
        for p in [user.bundle(), user.xdg()] {
            chown(&p, Some(uid), Some(uid)).unwrap();
        }
        user
    }

    fn bundle(&self) -> PathBuf {
        self.tmp.path().join("bundle")
    }

    fn xdg(&self) -> PathBuf {
        self.tmp.path().join("xdg")
    }

    /// The default state root the user's isorun should pick.
    fn state_root(&self) -> PathBuf {
        self.xdg().join("isorun")
    }

    /// isorun as the user, with `XDG_RUNTIME_DIR` (if `xdg`) and no `--root`, in `cwd`.
    fn isorun_in(&self, cwd: &Path, xdg: bool, args: &[&str]) -> Output {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        // Files, not pipes: a detached container inherits them and outlives the command.
        let (out, err) = (self.tmp.path().join(format!("out.{n}")), self.tmp.path().join(format!("err.{n}")));
        let id = self.uid.to_string();
        let mut cmd = Command::new("/usr/bin/setpriv");
        cmd.args(["--reuid", &id, "--regid", &id, "--clear-groups", "--", ISORUN])
            .args(args)
            .current_dir(cwd)
            .env_remove("ISORUN_ROOT")
            .env_remove("XDG_RUNTIME_DIR")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        if xdg {
            cmd.env("XDG_RUNTIME_DIR", self.xdg());
        }
        let status = cmd.status().unwrap();
        Output { status, stdout: std::fs::read(&out).unwrap(), stderr: std::fs::read(&err).unwrap() }
    }

    fn isorun(&self, args: &[&str]) -> Output {
        self.isorun_in(self.tmp.path(), true, args)
    }

    /// `isorun spec --rootless` as the user, then terminal off, `args`, then `edit`.
    fn config(&self, args: &[&str], edit: impl FnOnce(&mut Value)) {
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

    fn id(&mut self, prefix: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        self.ids.push(id.clone());
        id
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.isorun(args);
        assert!(out.status.success(), "isorun {args:?} as uid {}: {}", self.uid, text(&out.stderr));
        text(&out.stdout)
    }

    fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    fn wait_status(&self, id: &str, want: &str) {
        let t = Instant::now();
        while self.state(id)["status"] != want {
            assert!(t.elapsed() < Duration::from_secs(10), "{id} never became {want}: {}", self.state(id));
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The state root holds nothing (no directory, lock or temp file of any container).
    fn assert_state_root_empty(&self) {
        let left: Vec<_> = std::fs::read_dir(self.state_root())
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "left in {}: {left:?}", self.state_root().display());
    }

    /// No process runs as the user (bounded wait: a killed init may take a moment to go).
    fn assert_no_processes(&self) {
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

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A busybox rootfs under `dir`, owned by root and readable by all.
fn busybox_rootfs(dir: &Path) {
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

/// `containerID hostID size` lines of a uid_map/gid_map.
fn map_lines(s: &str) -> Vec<Vec<u64>> {
    s.lines().map(|l| l.split_whitespace().map(|n| n.parse().unwrap()).collect()).collect()
}

#[test]
fn lifecycle_as_an_unprivileged_user() {
    skip_unless_possible!();
    let mut user = User::new();
    user.config(&["sleep", "100"], |_| {});
    let id = user.id("life");
    let bundle = user.bundle().to_string_lossy().into_owned();
    user.ok(&["create", "--bundle", &bundle, &id]);
    assert!(user.state_root().join(&id).is_dir(), "no state under the default root $XDG_RUNTIME_DIR/isorun");
    let created = user.state(&id);
    assert_eq!(created["status"], "created");
    assert_eq!(created["owner"], user.uid.to_string());
    let pid = created["pid"].as_i64().unwrap();
    user.ok(&["start", &id]);
    user.wait_status(&id, "running");
    assert!(user.ok(&["list", "-q"]).lines().any(|l| l == id), "list lacks {id}");
    // From inside: uid 0 and gid 0 are the user's ids, and only they are mapped.
    let u = user.uid as u64;
    assert_eq!(map_lines(&user.ok(&["exec", &id, "cat", "/proc/self/uid_map"])), vec![vec![0, u, 1]]);
    assert_eq!(map_lines(&user.ok(&["exec", &id, "cat", "/proc/self/gid_map"])), vec![vec![0, u, 1]]);
    assert_eq!(user.ok(&["exec", &id, "id", "-u"]).trim(), "0");
    assert_eq!(user.ok(&["exec", &id, "cat", "/proc/self/setgroups"]).trim(), "deny");
    // The rootless mounts: /dev/null bound (not made with mknod), sysfs and the cgroups there.
    assert_eq!(
        user.ok(&["exec", &id, "sh", "-c", "test -c /dev/null && echo > /dev/null && echo ok"]),
        "ok\n"
    );
    assert!(!user.ok(&["exec", &id, "ls", "/sys/fs/cgroup"]).trim().is_empty(), "/sys/fs/cgroup is empty");
    assert!(!user.ok(&["exec", &id, "ls", "/sys/kernel"]).trim().is_empty(), "/sys is empty");
    // The init runs as the user on the host.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let host_uids = status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap().to_owned();
    assert!(host_uids.split_whitespace().all(|x| x == user.uid.to_string()), "host uids {host_uids}");
    user.ok(&["kill", &id, "KILL"]);
    user.wait_status(&id, "stopped");
    user.ok(&["delete", &id]);
    assert!(user.isorun(&["state", &id]).status.code() == Some(1), "state after delete succeeded");
    user.assert_state_root_empty();
    user.assert_no_processes();
}

#[test]
fn run_in_foreground_and_delete_force_of_a_running_one() {
    skip_unless_possible!();
    let mut user = User::new();
    user.config(&["cat", "/proc/self/uid_map"], |_| {});
    let bundle = user.bundle().to_string_lossy().into_owned();
    let id = user.id("fg");
    let out = user.ok(&["run", "--bundle", &bundle, &id]);
    assert_eq!(map_lines(&out), vec![vec![0, user.uid as u64, 1]]);
    user.assert_state_root_empty();
    user.config(&["sleep", "100"], |_| {});
    let id = user.id("force");
    user.ok(&["run", "-d", "--bundle", &bundle, &id]);
    user.ok(&["exec", "-d", &id, "sleep", "99"]);
    assert!(processes_of(user.uid).len() >= 2, "init and exec'd process: {:?}", processes_of(user.uid));
    user.ok(&["delete", "--force", &id]);
    user.assert_state_root_empty();
    user.assert_no_processes();
}

#[test]
fn cgroup_resources_on_a_hierarchy_not_delegated_are_refused() {
    skip_unless_possible!();
    let mut user = User::new();
    user.config(&["true"], |s| s["linux"]["resources"] = json!({"pids": {"limit": 64}}));
    let id = user.id("res");
    let out = user.isorun(&["run", "--bundle", &user.bundle().to_string_lossy(), &id]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "run with pids.limit succeeded");
    assert!(err.contains("linux.resources.pids.limit: /sys/fs/cgroup/"), "{err}");
    assert!(err.contains(&format!("is not writable by uid {}", user.uid)), "{err}");
    user.assert_state_root_empty();
    user.assert_no_processes();
    // Without resources, the same config runs (without a cgroup).
    user.config(&["true"], |s| {
        s["linux"]["resources"] = json!({"devices": [{"allow": false, "access": "rwm"}]})
    });
    let id = user.id("nores");
    user.ok(&["run", "--bundle", &user.bundle().to_string_lossy(), &id]);
    user.assert_state_root_empty();
}

#[test]
fn a_multi_id_mapping_is_refused_naming_the_field() {
    skip_unless_possible!();
    let mut user = User::new();
    user.config(&["true"], |s| {
        s["linux"]["uidMappings"]
            .as_array_mut()
            .unwrap()
            .push(json!({"containerID": 1, "hostID": 100000, "size": 65536}))
    });
    let id = user.id("map");
    let out = user.isorun(&["run", "--bundle", &user.bundle().to_string_lossy(), &id]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "run with a subuid range succeeded");
    assert!(err.contains("linux.uidMappings: 2 entries"), "{err}");
    user.config(&["true"], |s| s["linux"]["gidMappings"][0]["hostID"] = json!(0));
    let out = user.isorun(&["run", "--bundle", &user.bundle().to_string_lossy(), &id]);
    assert!(text(&out.stderr).contains("linux.gidMappings: [0] maps host gid 0"), "{}", text(&out.stderr));
    user.assert_state_root_empty();
    user.assert_no_processes();
}

#[test]
fn no_user_namespace_is_refused_naming_the_field() {
    skip_unless_possible!();
    let mut user = User::new();
    user.config(&["true"], |s| {
        let ns = s["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "user");
        let linux = s["linux"].as_object_mut().unwrap();
        linux.remove("uidMappings");
        linux.remove("gidMappings");
    });
    let id = user.id("nouserns");
    let out = user.isorun(&["run", "--bundle", &user.bundle().to_string_lossy(), &id]);
    assert!(
        text(&out.stderr).contains("linux.namespaces: an unprivileged user needs a user namespace"),
        "{}",
        text(&out.stderr)
    );
    user.assert_state_root_empty();
}

#[test]
fn without_xdg_runtime_dir_and_a_writable_run_the_error_says_so() {
    skip_unless_possible!();
    let user = User::new();
    let out = user.isorun_in(user.tmp.path(), false, &["list"]);
    assert!(!out.status.success(), "list without a usable root succeeded");
    let want = format!(
        "isorun: no usable state root for uid {}: XDG_RUNTIME_DIR is not set, /run/isorun is not writable",
        user.uid
    );
    assert!(text(&out.stderr).starts_with(&want), "{}", text(&out.stderr));
}

/// A test-owned cgroup `/<name>` in every v1 hierarchy, chowned to a user (delegated, as a
/// v1 host delegates); removed with whatever is left under it on drop.
struct DelegatedV1Cgroup {
    dirs: Vec<PathBuf>,
}

impl DelegatedV1Cgroup {
    /// `None` when the host has no v1 hierarchies (pure v2: not covered here).
    fn new(name: &str, uid: u32) -> Option<Self> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mounts: Vec<PathBuf> = mountinfo
            .lines()
            .filter(|l| l.split(" - ").nth(1).is_some_and(|post| post.starts_with("cgroup ")))
            .map(|l| PathBuf::from(l.split(' ').nth(4).unwrap()))
            .collect();
        if mounts.is_empty() {
            return None;
        }
        let mut made = DelegatedV1Cgroup { dirs: Vec::new() };
        for m in mounts {
            let dir = m.join(name);
            std::fs::create_dir(&dir).unwrap();
            made.dirs.push(dir.clone());
            if m.join("cpuset.cpus").exists() {
                for f in ["cpuset.cpus", "cpuset.mems"] {
                    std::fs::write(dir.join(f), std::fs::read_to_string(m.join(f)).unwrap().trim()).unwrap();
                }
            }
            chown(&dir, Some(uid), Some(uid)).unwrap();
            for f in ["cgroup.procs", "tasks"] {
                chown(dir.join(f), Some(uid), Some(uid)).unwrap();
            }
        }
        Some(made)
    }

    /// The child cgroup `child` of this one in `controller`'s hierarchy.
    fn child(&self, controller: &str, child: &str) -> PathBuf {
        let dir = self.dirs.iter().find(|d| d.parent().unwrap().ends_with(controller)).unwrap();
        dir.join(child)
    }
}

impl Drop for DelegatedV1Cgroup {
    fn drop(&mut self) {
        for dir in &self.dirs {
            for child in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if child.path().is_dir() {
                    let _ = std::fs::remove_dir(child.path());
                }
            }
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[test]
fn a_delegated_v1_hierarchy_is_used_with_its_resources() {
    skip_unless_possible!();
    let mut user = User::new();
    let name = format!("isorun-rootless-{}-{}", std::process::id(), user.uid);
    let Some(cgroup) = DelegatedV1Cgroup::new(&name, user.uid) else {
        eprintln!("SKIP: no cgroup v1 hierarchy to delegate on this host (pure v2 is not covered)");
        return;
    };
    let path = format!("/{name}/c");
    user.config(&["sleep", "100"], |s| {
        s["linux"]["cgroupsPath"] = json!(path);
        s["linux"]["resources"] =
            json!({"pids": {"limit": 64}, "devices": [{"allow": false, "access": "rwm"}]});
    });
    let id = user.id("deleg");
    user.ok(&["run", "-d", "--bundle", &user.bundle().to_string_lossy(), &id]);
    let pids_max = cgroup.child("pids", "c").join("pids.max");
    assert_eq!(std::fs::read_to_string(&pids_max).unwrap().trim(), "64");
    let pid = user.state(&id)["pid"].as_i64().unwrap();
    let procs = std::fs::read_to_string(cgroup.child("pids", "c").join("cgroup.procs")).unwrap();
    assert!(procs.lines().any(|l| l == pid.to_string()), "init {pid} not in {}: {procs}", pids_max.display());
    assert_eq!(user.ok(&["ps", "--format", "json", &id]).trim(), format!("[{pid}]"));
    user.ok(&["delete", "--force", &id]);
    for d in &cgroup.dirs {
        assert!(!d.join("c").exists(), "{} left after delete", d.join("c").display());
    }
    user.assert_state_root_empty();
    user.assert_no_processes();
}
