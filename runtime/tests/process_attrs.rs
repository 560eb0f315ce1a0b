//! Fields that were validated and then ignored are applied (as runc 1.2/1.3 do) or refused
//! with an error naming them: process.scheduler, process.ioPriority, linux.personality,
//! linux.memoryPolicy, process.execCPUAffinity, linux.intelRdt, memory.checkBeforeUpdate,
//! and the --systemd-cgroup flag.

mod common;

use common::{text, Fixture};
use serde_json::json;

#[test]
fn scheduler_and_io_priority_are_applied() {
    let mut f = Fixture::new();
    let id = f.running_sleep(|s| {
        s["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 5});
        s["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
    });
    let pid = f.state(&id)["pid"].as_i64().unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after "comm)": state is field 3, nice 19, policy 41.
    let rest: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    assert_eq!((rest[19 - 3], rest[41 - 3]), ("5", "3"), "nice 5, SCHED_BATCH: {stat}");
    // SAFETY: ioprio_get(IOPRIO_WHO_PROCESS, pid) takes integers only.
    let prio = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, pid as libc::c_int) };
    assert_eq!(prio, (2 << 13) | 6, "IOPRIO_CLASS_BE level 6");
}

#[test]
fn personality_and_memory_policy_are_applied() {
    let mut f = Fixture::new();
    let (code, out, err) = f.run(&["sh", "-c", "uname -m; grep -c bind:0 /proc/self/numa_maps"], |s| {
        s["linux"]["personality"] = json!({"domain": "LINUX32"});
        s["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"});
    });
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "i686", "{out}");
    assert_ne!(lines[1], "0", "no mapping under the bind policy: {out}");
}

#[test]
fn exec_cpu_affinity_applies_to_exec() {
    let mut f = Fixture::new();
    let id = f.running_sleep(|s| s["process"]["execCPUAffinity"] = json!({"initial": "0", "final": "1"}));
    let out = f.isorun(&["exec", &id, "grep", "Cpus_allowed_list", "/proc/self/status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).split_whitespace().last(), Some("1"), "{}", text(&out.stdout));
}

#[test]
fn intel_rdt_and_systemd_cgroup_are_refused_by_name() {
    let mut f = Fixture::new();
    let (code, _, err) = f.run(&["true"], |s| s["linux"]["intelRdt"] = json!({"closID": "x"}));
    assert_ne!(code, 0);
    assert!(err.contains("linux.intelRdt"), "{err}");
    f.config(&["true"], |_| {});
    let id = f.id("sysd");
    let bundle = f.bundle();
    let out = f.isorun(&["--systemd-cgroup", "run", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--systemd-cgroup"), "{}", text(&out.stderr));
}

#[test]
fn check_before_update_refuses_a_limit_below_usage() {
    let mut f = Fixture::new();
    let id = f.running_sleep(|s| s["linux"]["resources"]["memory"] = json!({"limit": 64 << 20}));
    let file = f.tmp.path().join("r.json");
    std::fs::write(&file, json!({"memory": {"limit": 4096, "checkBeforeUpdate": true}}).to_string()).unwrap();
    let out = f.isorun(&["update", "-r", file.to_str().unwrap(), &id]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("checkBeforeUpdate"), "{}", text(&out.stderr));
    assert_eq!(f.state(&id)["status"], "running");
}
