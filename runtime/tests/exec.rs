//! `exec` into a running container: same namespaces (pid, mount, uts, net, ipc) and root as
//! the init, the process's own user and capabilities, exit status returned; `exec` of a
//! stopped container is an error.

mod common;

use common::{text, Fixture};
use serde_json::json;

#[test]
fn exec_joins_the_containers_namespaces_and_root() {
    let mut f = Fixture::new();
    std::fs::write(f.bundle().join("rootfs/marker"), "in-rootfs\n").unwrap();
    let id = f.running_sleep(|s| s["hostname"] = json!("exec-box"));
    let pid = f.state(&id)["pid"].as_i64().unwrap();
    let out = f.isorun(&["exec", &id, "sh", "-c", "hostname; cat /marker; ps -o pid,comm | grep -c sleep; for n in net ipc mnt; do readlink /proc/self/ns/$n; done"]);
    assert!(out.status.success(), "exec: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "exec-box");
    assert_eq!(lines[1], "in-rootfs");
    assert_eq!(lines[2].trim(), "1", "sees the container's sleep (its pid namespace)");
    for (i, ns) in ["net", "ipc", "mnt"].iter().enumerate() {
        let want = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        assert_eq!(lines[3 + i], want.to_str().unwrap(), "{ns} namespace");
    }
}

#[test]
fn exec_returns_the_exit_status_and_applies_user_and_env() {
    let mut f = Fixture::new();
    let id = f.running_sleep(|_| {});
    let out = f.isorun(&[
        "exec",
        "--user",
        "1000:1001",
        "--env",
        "X=42",
        &id,
        "sh",
        "-c",
        "echo $(id -u):$(id -g):$X; exit 5",
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "1000:1001:42\n");
}

#[test]
fn exec_with_process_json_and_capabilities() {
    let mut f = Fixture::new();
    let id = f.running_sleep(|_| {});
    let process = f.tmp.path().join("process.json");
    std::fs::write(
        &process,
        serde_json::to_vec(&json!({
            "args": ["sh", "-c", "grep CapEff /proc/self/status"],
            "cwd": "/",
            "user": {"uid": 0, "gid": 0},
            "env": ["PATH=/bin"],
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}
        }))
        .unwrap(),
    )
    .unwrap();
    let out = f.isorun(&["exec", "--process", process.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).split_whitespace().last(),
        Some("0000000000000020"),
        "only CAP_KILL (bit 5)"
    );
}

/// `docker exec` into a container with a user namespace sends the container's oomScoreAdj
/// in its process.json: the exec'd process gets it (written by the parent, as for the init).
#[test]
fn exec_with_oom_score_adj_into_a_user_namespace() {
    let mut f = Fixture::new();
    let id = f.running_sleep(|s| {
        s["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
        s["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        s["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    });
    let process = f.tmp.path().join("process.json");
    let spec = json!({
        "args": ["cat", "/proc/self/oom_score_adj"],
        "cwd": "/",
        "user": {"uid": 0, "gid": 0},
        "env": ["PATH=/bin"],
        "oomScoreAdj": 321
    });
    std::fs::write(&process, serde_json::to_vec(&spec).unwrap()).unwrap();
    let out = f.isorun(&["exec", "--process", process.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "321");
}

#[test]
fn exec_into_a_stopped_container_is_an_error() {
    let mut f = Fixture::new();
    let id = f.running_sleep(|_| {});
    assert!(f.isorun(&["kill", &id, "KILL"]).status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while f.state(&id)["status"] != "stopped" {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = f.isorun(&["exec", &id, "true"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("stopped"), "{}", text(&out.stderr));
}
