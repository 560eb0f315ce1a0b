//! Configs and flags runc runs that isorun refused or mishandled: a rootfs whose /proc is a
//! symlink (refused, naming it), startContainer hooks without env, `exec --env` overriding
//! the config, `exec --ignore-paused`, `exec --cgroup`.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{text, Fixture, ISORUN};
use serde_json::json;

/// A detached `sleep` container whose init has become sleep.

#[test]
fn proc_or_sys_as_a_symlink_is_refused_naming_the_path() {
    for dir in ["proc", "sys"] {
        let mut f = Fixture::new();
        let link = f.bundle().join("rootfs").join(dir);
        std::fs::remove_dir(&link).unwrap();
        std::os::unix::fs::symlink("/tmp", &link).unwrap();
        let (code, _, err) = f.run(&["true"], |_| {});
        assert_ne!(code, 0);
        assert!(err.contains(&format!("{} is a symlink", link.display())), "{err}");
        assert!(err.contains("must be mounted on ordinary directory"), "{err}");
    }
}

#[test]
fn start_container_hook_without_env_gets_the_process_env() {
    let mut f = Fixture::new();
    let logdir = f.tmp.path().join("hooklog");
    std::fs::create_dir_all(&logdir).unwrap();
    let (code, _, err) = f.run(&["true"], |s| {
        s["process"]["env"] = json!(["PATH=/bin", "FROM_PROCESS=yes"]);
        s["mounts"].as_array_mut().unwrap().push(
            json!({"destination": "/hooklog", "type": "bind", "source": logdir, "options": ["rbind", "rw"]}),
        );
        s["hooks"] = json!({"startContainer": [
            {"path": "/bin/sh", "args": ["sh", "-c", "echo \"$FROM_PROCESS\" > /hooklog/env"]}
        ]});
    });
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(logdir.join("env")).unwrap(), "yes\n");
}

#[test]
fn exec_env_overrides_the_configs_value() {
    let mut f = Fixture::new();
    let id = f.running_sleep(|s| s["process"]["env"] = json!(["PATH=/bin", "K=config", "OTHER=kept"]));
    // The process's own environment, not a shell's re-export (glibc's getenv takes the first).
    let out = f.isorun(&["exec", "--env", "K=cli", &id, "cat", "/proc/self/environ"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let env = text(&out.stdout);
    let ks: Vec<&str> = env.split('\0').filter(|e| e.starts_with("K=") || e.starts_with("OTHER=")).collect();
    assert_eq!(ks, ["K=cli", "OTHER=kept"], "{env:?}");
}

#[test]
fn exec_in_a_paused_container_needs_ignore_paused() {
    let mut f = Fixture::new();
    let id = f.running_sleep(|_| {});
    assert!(f.isorun(&["pause", &id]).status.success());
    let out = f.isorun(&["exec", &id, "true"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--ignore-paused"), "{}", text(&out.stderr));
    // With the flag the process is created in the frozen cgroup and runs once resumed.
    let mut exec = Command::new(ISORUN)
        .arg("--root")
        .arg(f.root())
        .args(["exec", "--ignore-paused", &id, "sh", "-c", "exit 7"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(exec.try_wait().unwrap().is_none(), "exec ran in a frozen cgroup");
    assert!(f.isorun(&["resume", &id]).status.success());
    let t = Instant::now();
    let status = loop {
        if let Some(s) = exec.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(10) {
            let _ = exec.kill();
            panic!("exec did not finish after resume");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(7));
}

#[test]
fn exec_cgroup_places_the_process_in_a_sub_cgroup() {
    let mut f = Fixture::new();
    let id = f.running_sleep(|_| {});
    let pid = f.state(&id)["pid"].as_i64().unwrap();
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let Some(line) = cg.lines().find(|l| l.split(':').nth(1) == Some("pids")) else {
        panic!("SKIP is not allowed: this test needs a v1 pids hierarchy (hybrid host), got {cg}")
    };
    let path = line.splitn(3, ':').nth(2).unwrap();
    let sub = PathBuf::from("/sys/fs/cgroup/pids").join(path.trim_start_matches('/')).join("sub");
    std::fs::create_dir(&sub).unwrap();
    let pid_file = f.tmp.path().join("exec.pid");
    let out = f.isorun(&[
        "exec",
        "-d",
        "--cgroup",
        "pids:sub",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
        "sleep",
        "50",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let exec_pid = std::fs::read_to_string(&pid_file).unwrap();
    let cg = std::fs::read_to_string(format!("/proc/{}/cgroup", exec_pid.trim())).unwrap();
    let pids_line = cg.lines().find(|l| l.split(':').nth(1) == Some("pids")).unwrap();
    assert!(pids_line.ends_with(&format!("{path}/sub")), "{pids_line}");
    let mem_line = cg.lines().find(|l| l.split(':').nth(1) == Some("memory")).unwrap();
    assert!(mem_line.ends_with(path), "other controllers stay in the container's cgroup: {mem_line}");
    let out = f.isorun(&["exec", "--cgroup", "../escape", &id, "true"]);
    assert!(!out.status.success() && text(&out.stderr).contains("--cgroup"), "{}", text(&out.stderr));
}
