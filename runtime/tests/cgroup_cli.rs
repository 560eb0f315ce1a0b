//! The cgroup side of the CLI on a real container: pause/resume (state `paused`), update,
//! events --stats, ps, and no cgroup directory left after delete (also after an OOM kill).

mod common;

use common::{text, Fixture};
use serde_json::json;
use std::path::PathBuf;

/// The `(controllers, path)` of each line of `/proc/<pid>/cgroup` (no controllers: the
/// unified hierarchy); empty when the process is gone.
fn cgroup_lines(pid: i64) -> Vec<(Vec<String>, String)> {
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    cg.lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            let ctrls = ctrls.split(',').filter(|c| !c.is_empty()).map(str::to_owned).collect();
            Some((ctrls, path.to_owned()))
        })
        .collect()
}

/// `path` in the hierarchy mounted at `/sys/fs/cgroup/<mount>`.
fn dir_in(mount: &str, path: &str) -> PathBuf {
    PathBuf::from(format!("/sys/fs/cgroup/{mount}")).join(path.trim_start_matches('/'))
}

fn cgroup_dir(pid: i64, controller: &str) -> Option<PathBuf> {
    let (_, path) = cgroup_lines(pid).into_iter().find(|(c, _)| c.iter().any(|x| x == controller))?;
    Some(dir_in(controller, &path))
}

#[test]
fn pause_resume_update_events_ps_and_cleanup() {
    let mut f = Fixture::new();
    f.config(&["sh", "-c", "sleep 100 & exec sleep 101"], |s| {
        s["linux"]["resources"]["pids"] = json!({"limit": 50})
    });
    let id = f.id("cg");
    let bundle = f.bundle();
    let out = f.isorun(&["run", "-d", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pid = f.state(&id)["pid"].as_i64().unwrap();
    let pids_dir = cgroup_dir(pid, "pids").expect("init is in a pids cgroup");
    assert_eq!(std::fs::read_to_string(pids_dir.join("pids.max")).unwrap().trim(), "50");

    assert!(f.isorun(&["pause", &id]).status.success());
    assert_eq!(f.state(&id)["status"], "paused");
    let out = f.isorun(&["pause", &id]);
    assert!(!out.status.success(), "pause of a paused container is an error");
    assert!(f.isorun(&["resume", &id]).status.success());
    assert_eq!(f.state(&id)["status"], "running");

    let out = f.isorun(&["update", "--pids-limit", "20", "--memory", "64m", &id]);
    assert!(out.status.success(), "update: {}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(pids_dir.join("pids.max")).unwrap().trim(), "20");
    let mem = cgroup_dir(pid, "memory").unwrap();
    assert_eq!(
        std::fs::read_to_string(mem.join("memory.limit_in_bytes")).unwrap().trim(),
        (64u64 << 20).to_string()
    );
    // A page size that is a path (found by the exec_update_json fuzz target) is refused by
    // name, and nothing is written.
    let bad = bundle.join("bad-resources.json");
    std::fs::write(&bad, r#"{"hugepageLimits":[{"pageSize":"2MB/../../x","limit":1}],"pids":{"limit":7}}"#)
        .unwrap();
    let out = f.isorun(&["update", "--resources", bad.to_str().unwrap(), &id]);
    assert!(!out.status.success(), "a path as pageSize was accepted");
    assert!(text(&out.stderr).contains("linux.resources.hugepageLimits"), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(pids_dir.join("pids.max")).unwrap().trim(), "20");

    let out = f.isorun(&["events", "--stats", &id]);
    assert!(out.status.success(), "events: {}", text(&out.stderr));
    let ev: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["data"]["pids"]["current"], 2);
    assert_eq!(ev["data"]["pids"]["limit"], 20);

    let out = f.isorun(&["ps", "--format", "json", &id]);
    let pids: Vec<i64> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pids.len(), 2);
    assert!(pids.contains(&pid));

    assert!(f.isorun(&["delete", "--force", &id]).status.success());
    assert!(!pids_dir.exists(), "{} survives delete", pids_dir.display());
    assert!(!mem.exists(), "{} survives delete", mem.display());
}

#[test]
fn oom_killed_container_is_deleted_without_leftovers() {
    let mut f = Fixture::new();
    f.config(&["sh", "-c", "sleep 1; dd if=/dev/zero of=/tmp/fill bs=1M count=64"], |s| {
        s["linux"]["resources"]["memory"] = json!({"limit": 16777216});
        s["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
    });
    let id = f.id("oom");
    let bundle = f.bundle();
    assert!(f.isorun(&["run", "-d", "--bundle", bundle.to_str().unwrap(), &id]).status.success());
    let pid = f.state(&id)["pid"].as_i64().unwrap();
    let mem = cgroup_dir(pid, "memory").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while f.state(&id)["status"] != "stopped" {
        assert!(std::time::Instant::now() < deadline, "the container was never OOM-killed");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let oom = std::fs::read_to_string(mem.join("memory.oom_control")).unwrap();
    assert!(oom.lines().any(|l| l.starts_with("oom_kill ") && l != "oom_kill 0"), "{oom}");
    assert!(f.isorun(&["delete", &id]).status.success());
    assert!(!mem.exists());
}

#[test]
fn unenforceable_or_bad_resources_are_rejected_with_their_path() {
    let mut f = Fixture::new();
    f.config(&["true"], |s| s["linux"]["resources"]["pids"] = json!({"limit": "lots"}));
    let id = f.id("badres");
    let bundle = f.bundle();
    let out = f.isorun(&["create", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("linux.resources.pids.limit"), "{}", text(&out.stderr));
    assert!(!f.root().join(&id).exists());
}

/// Docker's `update` without `--memory` sends zeros for what it does not change; on v1,
/// writing them fails (EBUSY) or sets a 0 soft limit. runc treats them as unset.
#[test]
fn update_with_the_engines_zeros_changes_only_what_is_set() {
    let mut f = Fixture::new();
    f.config(&["sleep", "100"], |s| {
        s["linux"]["resources"]["memory"] = json!({"limit": 64 << 20, "reservation": 32 << 20});
    });
    let id = f.id("cgzero");
    let bundle = f.bundle();
    let out = f.isorun(&["run", "-d", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pid = f.state(&id)["pid"].as_i64().unwrap();
    let zeros = json!({
        "memory": {"limit": 0, "reservation": 0, "swap": 0, "kernel": 0},
        "cpu": {"shares": 0, "quota": 0, "period": 0, "cpus": "", "mems": ""},
        "blockIO": {"weight": 0},
        "pids": {"limit": 25}
    });
    let file = f.tmp.path().join("zeros.json");
    std::fs::write(&file, zeros.to_string()).unwrap();
    let out = f.isorun(&["update", "-r", file.to_str().unwrap(), &id]);
    assert!(out.status.success(), "update: {}", text(&out.stderr));
    let read = |c: &str, file: &str| {
        let dir = cgroup_dir(pid, c).unwrap_or_else(|| cgroup_dir(pid, "").expect("a cgroup2 path"));
        std::fs::read_to_string(dir.join(file)).unwrap().trim().to_owned()
    };
    if std::path::Path::new("/sys/fs/cgroup/memory").is_dir() {
        assert_eq!(read("memory", "memory.limit_in_bytes"), (64u64 << 20).to_string());
        assert_eq!(read("memory", "memory.soft_limit_in_bytes"), (32u64 << 20).to_string());
    } else {
        assert_eq!(read("memory", "memory.max"), (64u64 << 20).to_string());
        assert_eq!(read("memory", "memory.low"), (32u64 << 20).to_string());
    }
    assert_eq!(read("pids", "pids.max"), "25");
}

/// `delete --force` of a paused container with its own pid namespace kills the init (the
/// kernel then kills the rest of the namespace, as runc's destroy relies on), thaws it so it
/// can die, and kills a process that is in its cgroups but not in its namespace.
#[test]
fn delete_force_of_a_paused_container_kills_its_namespace_and_strangers_in_its_cgroup() {
    let mut f = Fixture::new();
    f.config(&["sh", "-c", "sleep 100 & exec sleep 101"], |_| {});
    let id = f.id("fz");
    let bundle = f.bundle();
    let out = f.isorun(&["run", "-d", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let init = f.state(&id)["pid"].as_i64().unwrap();
    let mut stranger = std::process::Command::new("sleep").arg("100").spawn().unwrap();
    let reap = KillOnDrop(&mut stranger);
    let spid = reap.pid();
    // Into every hierarchy the init is in.
    let lines = cgroup_lines(init);
    let mut dirs = Vec::new();
    for (ctrls, path) in &lines {
        let mount = ctrls.first().map_or("unified", |c| c.trim_start_matches("name="));
        let dir = dir_in(mount, path);
        if dir.join("cgroup.procs").exists() {
            std::fs::write(dir.join("cgroup.procs"), spid.to_string()).unwrap();
            dirs.push(dir);
        }
    }
    assert!(!dirs.is_empty(), "no cgroup of {init} found in {lines:?}");
    let out = f.isorun(&["ps", "--format", "json", &id]);
    let mut pids: Vec<i64> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pids.len(), 3, "the init, its child and the stranger: {pids:?}");
    assert!(f.isorun(&["pause", &id]).status.success());
    let out = f.isorun(&["delete", "--force", &id]);
    assert!(out.status.success(), "delete --force: {}", text(&out.stderr));
    pids.retain(|p| *p != i64::from(spid));
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(stat.is_empty() || stat.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')));
    }
    let status = reap.0.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9), "{status:?}");
    let left: Vec<_> = dirs.iter().filter(|d| d.exists()).collect();
    assert!(left.is_empty(), "cgroup left: {left:?}");
    assert!(!f.root().join(&id).exists());
}

/// Kills the child if the test fails before isorun does.
struct KillOnDrop<'a>(&'a mut std::process::Child);

impl KillOnDrop<'_> {
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// In a cgroup namespace on a v1 or hybrid host, `/sys/fs/cgroup/<hierarchy>` shows the
/// container's own cgroup: the host's superblock (the same device; a fresh mount in the
/// namespace reuses it too), `/` as its root in mountinfo, the container's processes only.
/// isorun binds the own directory, which gives the view of a fresh mount in the namespace
/// without its O(containers) kernel cost.
#[test]
fn cgroup_namespace_shows_the_own_cgroup_as_the_root() {
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    if !host.lines().any(|l| l.contains(" - cgroup ")) {
        eprintln!("SKIP: no cgroup v1 hierarchy on this host (pure cgroup v2: one fresh cgroup2 mount)");
        return;
    }
    let host_dev = std::os::unix::fs::MetadataExt::dev(&std::fs::metadata("/sys/fs/cgroup/memory").unwrap());
    let mut f = Fixture::new();
    let script = "stat -c dev=%d /sys/fs/cgroup/memory; \
        grep ' /sys/fs/cgroup/memory ' /proc/self/mountinfo | cut -d' ' -f4 | sed 's/^/root=/'; \
        while read p; do [ -d /proc/$p ] || echo stranger=$p; done < /sys/fs/cgroup/memory/cgroup.procs; \
        grep ':memory:' /proc/self/cgroup | sed 's/.*:/own=/'";
    let (code, out, err) = f.run(&["sh", "-c", script], |s| {
        let ns = s["linux"]["namespaces"].as_array_mut().unwrap();
        if !ns.iter().any(|n| n["type"] == "cgroup") {
            ns.push(json!({"type": "cgroup"}));
        }
    });
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, [format!("dev={host_dev}").as_str(), "root=/", "own=/"], "{out}");
}
