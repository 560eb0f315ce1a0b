//! isorun run by an unprivileged user (rootless, as runc and crun run): the whole lifecycle
//! with `isorun spec --rootless`'s config, and the refusals that name their field.
//!
//! The test (root) makes a throwaway user context without touching /etc/passwd: a uid of
//! 60000 and up with no passwd entry and no process, a temp dir with its bundle and its
//! `XDG_RUNTIME_DIR` owned by it, and runs isorun through `setpriv --reuid --regid
//! --clear-groups` with no `--root`, so the default root (`$XDG_RUNTIME_DIR/isorun`) is
//! used. The guard force-deletes what a test made, kills whatever runs as the uid and
//! removes the temp dir.

mod rootless_support;

use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};

use rootless_support::{processes_of, text, User};
use serde_json::json;

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

const NEWUIDMAP: &str = "/usr/bin/newuidmap";

/// A subuid range added to the user's own uid (and the same for gids).
fn with_subid_range(s: &mut serde_json::Value) {
    for field in ["uidMappings", "gidMappings"] {
        let range = json!({"containerID": 1, "hostID": 100000, "size": 65536});
        s["linux"][field].as_array_mut().unwrap().push(range);
    }
}

#[test]
fn a_multi_id_mapping_the_user_has_no_range_for_is_refused_naming_the_field() {
    skip_unless_possible!();
    let mut user = User::new();
    user.config(&["true"], with_subid_range);
    let id = user.id("map");
    let out = user.isorun(&["run", "--bundle", &user.bundle().to_string_lossy(), &id]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "run with a subuid range succeeded");
    if Path::new(NEWUIDMAP).exists() {
        // Tried with newuidmap, which refuses a user without a passwd entry or range.
        let want = format!("isorun: linux.uidMappings: {NEWUIDMAP} ");
        assert!(
            err.starts_with(&want)
                && err.contains(
                    " 0 {} 1 1 100000 65536 failed (exit status: 1): newuidmap: "
                        .replace("{}", &user.uid.to_string())
                        .as_str()
                ),
            "{err}"
        );
    } else {
        assert!(err.starts_with("isorun: linux.uidMappings: 2 entries: "), "{err}");
        assert!(err.contains("unless newuidmap (package uidmap) is installed: it is not in PATH"), "{err}");
    }
    user.assert_state_root_empty();
    user.assert_no_processes();
}

#[test]
fn a_gid_map_of_another_gid_without_newgidmap_is_refused_naming_the_field() {
    skip_unless_possible!();
    if Path::new("/usr/bin/newgidmap").exists() {
        eprintln!("SKIP: newgidmap is installed: the map goes to it (see the newuidmap tests)");
        return;
    }
    let mut user = User::new();
    user.config(&["true"], |s| s["linux"]["gidMappings"][0]["hostID"] = json!(0));
    let id = user.id("gidmap");
    let out = user.isorun(&["run", "--bundle", &user.bundle().to_string_lossy(), &id]);
    assert!(
        text(&out.stderr).starts_with("isorun: linux.gidMappings: [0] maps host gid 0: "),
        "{}",
        text(&out.stderr)
    );
    user.assert_state_root_empty();
}

#[test]
fn a_multi_id_mapping_is_written_by_newuidmap_from_the_users_subids() {
    skip_unless_possible!();
    if !Path::new(NEWUIDMAP).exists() || !Path::new("/usr/bin/newgidmap").exists() {
        eprintln!("SKIP: newuidmap/newgidmap are not installed (apt-get install uidmap)");
        return;
    }
    let mut user = User::new();
    // The user's passwd entry and subid ranges, seen only in a private mount namespace: the
    // host's /etc is not edited.
    let etc = user.tmp.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    let name = format!("isorun-test-{}", user.uid);
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    std::fs::write(
        etc.join("passwd"),
        format!("{passwd}{name}:x:{0}:{0}::/nonexistent:/bin/false\n", user.uid),
    )
    .unwrap();
    std::fs::write(etc.join("subid"), format!("{name}:100000:65536\n")).unwrap();
    let mounts = format!(
        "mount --bind {0}/passwd /etc/passwd && mount --bind {0}/subid /etc/subuid && \
         mount --bind {0}/subid /etc/subgid && exec \"$@\"",
        etc.display()
    );
    let wrapper = ["/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", &mounts, "sh"];
    // A writable root, a /tmp the container's root (the user) owns, and CAP_CHOWN, to chown.
    user.config(&["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; chown 1000:1000 /tmp && stat -c %u:%g /tmp"], |s| {
        with_subid_range(s);
        s["root"]["readonly"] = json!(false);
        for set in ["bounding", "effective", "permitted"] {
            s["process"]["capabilities"][set].as_array_mut().unwrap().push(json!("CAP_CHOWN"));
        }
    });
    chown(user.bundle().join("rootfs/tmp"), Some(user.uid), Some(user.uid)).unwrap();
    let id = user.id("newuidmap");
    let bundle = user.bundle().display().to_string();
    let bin = user.isorun_bin().display().to_string();
    let argv = [&*bin, "run", "--bundle", &bundle, &id];
    let out = user.command_wrapped(&wrapper, user.tmp.path(), true, &argv, &[]);
    assert!(out.status.success(), "run with newuidmap: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let u = user.uid as u64;
    assert_eq!(map_lines(&lines[..2].join("\n")), vec![vec![0, u, 1], vec![1, 100000, 65536]], "{stdout}");
    assert_eq!(map_lines(&lines[2..4].join("\n")), vec![vec![0, u, 1], vec![1, 100000, 65536]], "{stdout}");
    // newgidmap allows setgroups for a user with a subgid range; the container's ids beyond
    // 0 are real: a file chowned to 1000 inside is 101000 (100000 + 999) on the host.
    assert_eq!(lines[4..], ["allow", "1000:1000"], "{stdout}");
    let host = std::fs::metadata(user.bundle().join("rootfs/tmp")).unwrap();
    assert_eq!(
        (std::os::unix::fs::MetadataExt::uid(&host), std::os::unix::fs::MetadataExt::gid(&host)),
        (100999, 100999)
    );
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
    // An exec'd process joins the cgroup too.
    let own = user.ok(&["exec", &id, "cat", "/proc/self/cgroup"]);
    let pids_line = own.lines().find(|l| l.contains(":pids:")).unwrap_or_default().to_owned();
    assert!(pids_line.ends_with(&format!(":pids:{path}")), "exec'd process in {pids_line:?}, not {path}");
    user.ok(&["delete", "--force", &id]);
    for d in &cgroup.dirs {
        assert!(!d.join("c").exists(), "{} left after delete", d.join("c").display());
    }
    user.assert_state_root_empty();
    user.assert_no_processes();
}

#[test]
fn as_root_of_a_user_namespace_with_rootless_podmans_config() {
    skip_unless_possible!();
    let mut user = User::new();
    // What rootless podman sends its runtime (no user namespace in the config: podman runs
    // the runtime as root of its own), without its binds of podman's own files.
    let stored =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../vm-images/engine-configs/podman-rootless.json");
    let mut spec: serde_json::Value = serde_json::from_slice(&std::fs::read(&stored).unwrap()).unwrap();
    spec["mounts"].as_array_mut().unwrap().retain(|m| m["type"] != "bind");
    spec["root"] = json!({"path": "rootfs"});
    spec["process"]["args"] =
        json!(["sh", "-c", "cat /proc/self/uid_map; id -u; test -c /dev/null && echo dev-ok"]);
    spec["process"]["terminal"] = json!(false);
    std::fs::write(user.bundle().join("config.json"), serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    let id = user.id("podmanlike");
    let root = user.state_root().display().to_string();
    let bundle = user.bundle().display().to_string();
    let bin = user.isorun_bin().display().to_string();
    let argv = [
        "/usr/bin/unshare",
        "--user",
        "--map-root-user",
        &*bin,
        "--root",
        &root,
        "run",
        "--bundle",
        &bundle,
        &id,
    ];
    let out = user.command(user.tmp.path(), true, &argv, &[]);
    assert!(out.status.success(), "run as root of a user namespace: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next().map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["0", &*user.uid.to_string(), "1"])
    );
    assert_eq!(lines.next(), Some("0"));
    assert_eq!(lines.next(), Some("dev-ok"));
    user.assert_state_root_empty();
    user.assert_no_processes();
}
