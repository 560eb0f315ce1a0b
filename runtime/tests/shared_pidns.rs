//! A container without its own pid namespace (Docker's `--pid host`, `--pid container:X`):
//! its processes outlive the init in its cgroup. As runc, `kill --all` signals them also once
//! the container is stopped, and `delete` kills what is left before removing the cgroup.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{text, Fixture};
use serde_json::{json, Value};

/// A detached container whose init (sh, in the host's pid namespace) starts a background
/// `sleep MARK` and exits; returns (id, host pid of the sleep) once the container is stopped.
fn stopped_with_orphan(fx: &mut Fixture) -> (String, i32) {
    let mark = format!("{}", 4_000_000 + std::process::id() * 8 + fx.ids.len() as u32);
    let script = format!("sleep {mark} & exit 0");
    fx.config(&["sh", "-c", &script], |s| {
        let ns = s["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "pid");
    });
    let id = fx.id("sharedpid");
    let bundle = fx.bundle();
    let out = fx.isorun(&["run", "-d", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(out.status.success(), "run -d: {}", text(&out.stderr));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stopped = fx.state(&id)["status"] == "stopped";
        if let (true, Some(pid)) = (stopped, find_sleep(&mark)) {
            return (id, pid);
        }
        assert!(Instant::now() < deadline, "container did not stop with its orphan running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn find_sleep(mark: &str) -> Option<i32> {
    let want = format!("sleep\0{mark}\0");
    std::fs::read_dir("/proc").ok()?.filter_map(Result::ok).find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        (cmd == want.as_bytes()).then_some(pid)
    })
}

/// Gone, or a zombie waiting for its (host) parent.
fn dead_soon(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(s) if s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')) => return true,
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    false
}

/// Kills the orphan if a test failed before isorun did.
struct KillGuard(i32);

impl Drop for KillGuard {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0), nix::sys::signal::Signal::SIGKILL);
    }
}

fn cgroup_dirs(fx: &Fixture, id: &str) -> Vec<PathBuf> {
    let state: Value = serde_json::from_slice(&std::fs::read(fx.root().join(id).join("state.json")).unwrap())
        .unwrap_or(json!({}));
    let path = state["cgroup_path"].as_str().map(str::to_owned).unwrap_or_else(|| format!("/isorun/{id}"));
    ["pids", "memory", "freezer", "unified"]
        .iter()
        .map(|c| PathBuf::from(format!("/sys/fs/cgroup/{c}")).join(path.trim_start_matches('/')))
        .collect()
}

#[test]
fn kill_all_signals_the_cgroup_of_a_stopped_container() {
    let mut fx = Fixture::new();
    let (id, orphan) = stopped_with_orphan(&mut fx);
    let _guard = KillGuard(orphan);
    let out = fx.isorun(&["kill", "--all", &id, "KILL"]);
    assert!(out.status.success(), "kill --all: {}", text(&out.stderr));
    assert!(dead_soon(orphan), "pid {orphan} survived kill --all");
    // Without --all a stopped container stays an error, worded as runc's.
    let out = fx.isorun(&["kill", &id, "KILL"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("container not running"), "{}", text(&out.stderr));
    let out = fx.isorun(&["delete", &id]);
    assert!(out.status.success(), "delete: {}", text(&out.stderr));
}

#[test]
fn delete_kills_what_is_left_in_the_cgroup() {
    let mut fx = Fixture::new();
    let (id, orphan) = stopped_with_orphan(&mut fx);
    let _guard = KillGuard(orphan);
    let dirs = cgroup_dirs(&fx, &id);
    assert!(dirs.iter().any(|d| d.is_dir()), "no cgroup directory found among {dirs:?}");
    let out = fx.isorun(&["delete", &id]);
    assert!(out.status.success(), "delete: {}", text(&out.stderr));
    assert!(dead_soon(orphan), "pid {orphan} survived delete");
    let left: Vec<_> = dirs.iter().filter(|d| d.exists()).collect();
    assert!(left.is_empty(), "cgroup left: {left:?}");
}
