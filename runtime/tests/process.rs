//! The user process's setup read back from inside: user and groups, umask, rlimits,
//! oom_score_adj, no_new_privs, capability sets, cwd and env; and joining a namespace by path.

mod common;

use common::{text, Fixture};
use serde_json::json;

fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{key} missing: {status}"))
}

#[test]
fn user_groups_umask_cwd_env() {
    let mut f = Fixture::new();
    std::fs::create_dir_all(f.bundle().join("rootfs/work")).unwrap();
    let (code, out, err) =
        f.run(&["sh", "-c", "id -u; id -g; id -G; umask; pwd; echo $GREETING; echo $HOME"], |s| {
            s["process"]["user"] = json!({"uid": 1234, "gid": 5678, "additionalGids": [42, 43], "umask": 63});
            s["process"]["cwd"] = json!("/work");
            s["process"]["env"].as_array_mut().unwrap().push(json!("GREETING=hi"));
        });
    assert_eq!(code, 0, "stderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1234");
    assert_eq!(lines[1], "5678");
    let groups: Vec<&str> = lines[2].split_whitespace().collect();
    assert!(groups.contains(&"42") && groups.contains(&"43"), "{groups:?}");
    assert_eq!(lines[3], "0077");
    assert_eq!(lines[4], "/work");
    assert_eq!(lines[5], "hi");
    assert_eq!(lines[6], "/", "HOME defaults to / when /etc/passwd has no entry");
}

#[test]
fn rlimits_oom_score_adj_and_no_new_privs() {
    let mut f = Fixture::new();
    let (code, out, err) = f.run(
        &["sh", "-c", "ulimit -n; ulimit -Hn; cat /proc/self/oom_score_adj; cat /proc/self/status"],
        |s| {
            s["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654}]);
            s["process"]["oomScoreAdj"] = json!(123);
            s["process"]["noNewPrivileges"] = json!(true);
        },
    );
    assert_eq!(code, 0, "stderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..3], ["321", "654", "123"]);
    assert_eq!(status_field(&out, "NoNewPrivs:"), "1");
}

/// Docker sends `oomScoreAdj` (0 when unset) with every config; in a user namespace the init,
/// non-dumpable, cannot write its own /proc/self/oom_score_adj (owned by the host's root), so
/// the parent writes it, as runc's nsexec does before the namespaces.
#[test_case::test_case(0 ; "docker's zero")]
#[test_case::test_case(500 ; "raised")]
fn oom_score_adj_applies_in_a_user_namespace(adj: i32) {
    let mut f = Fixture::new();
    let (code, out, err) = f.run(&["cat", "/proc/self/oom_score_adj"], |s| {
        s["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
        s["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        s["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        s["process"]["oomScoreAdj"] = json!(adj);
    });
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out.trim(), adj.to_string());
}

/// `process.rlimits` with a user namespace: the parent sets them with prlimit(2), as runc does
/// (inside, a raised hard limit needs CAP_SYS_RESOURCE in the host's namespace). This host's
/// root cannot raise a hard limit at all, so the values stay under the caller's: what is
/// checked is that they reach the process, from the new path.
#[test]
fn rlimits_apply_in_a_user_namespace() {
    let mut f = Fixture::new();
    let (code, out, err) = f.run(&["cat", "/proc/self/limits"], |s| {
        s["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
        s["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        s["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        s["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 777, "hard": 888},
            {"type": "RLIMIT_NPROC", "soft": 333, "hard": 444}
        ]);
    });
    assert_eq!(code, 0, "stderr: {err}");
    let limit = |name: &str| {
        let line = out.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in {out}"));
        line.split_whitespace().skip(name.split_whitespace().count()).take(2).collect::<Vec<_>>().join(" ")
    };
    assert_eq!(limit("Max open files"), "777 888");
    assert_eq!(limit("Max processes"), "333 444");
}

#[test]
fn capability_sets_are_applied_exactly() {
    let mut f = Fixture::new();
    let (code, out, err) = f.run(&["cat", "/proc/self/status"], |s| {
        s["process"]["capabilities"] = json!({
            "bounding": ["CAP_KILL", "CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_KILL", "CAP_CHOWN"],
            "permitted": ["CAP_KILL", "CAP_CHOWN"],
            "inheritable": ["CAP_KILL"],
            "ambient": ["CAP_KILL"]
        });
        s["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    });
    assert_eq!(code, 0, "stderr: {err}");
    // CAP_CHOWN = 0, CAP_KILL = 5, CAP_NET_BIND_SERVICE = 10.
    let bit = |n: u32| 1u64 << n;
    let read = |k: &str| u64::from_str_radix(status_field(&out, k), 16).unwrap();
    assert_eq!(read("CapBnd:"), bit(0) | bit(5) | bit(10));
    // Ambient CAP_KILL is kept across execve by a non-root user: effective = permitted ∪ ambient rules.
    assert_eq!(read("CapAmb:"), bit(5));
    assert_eq!(read("CapInh:"), bit(5));
    assert_eq!(read("CapPrm:"), bit(5), "a non-root user keeps only the ambient caps after execve");
    assert_eq!(read("CapEff:"), bit(5));
}

#[test]
fn dropped_cap_sys_admin_makes_mount_fail() {
    let mut f = Fixture::new();
    let (code, out, _) = f.run(&["sh", "-c", "mount -t tmpfs none /tmp 2>&1; echo rc=$?"], |_| {});
    assert_eq!(code, 0);
    let lower = out.to_lowercase();
    assert!(lower.contains("operation not permitted") || lower.contains("permission denied"), "{out}");
    assert!(out.contains("rc=1") || out.contains("rc=255"), "{out}");
}

#[test]
fn joining_a_namespace_by_path() {
    let mut f = Fixture::new();
    f.config(&["sleep", "30"], |_| {});
    let first = f.id("netowner");
    let bundle = f.bundle();
    let out = f.isorun(&["run", "-d", "--bundle", bundle.to_str().unwrap(), &first]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pid = f.state(&first)["pid"].as_i64().unwrap();
    let want = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let (code, out, err) = f.run(&["readlink", "/proc/self/ns/net"], |s| {
        for ns in s["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "network" {
                ns["path"] = json!(format!("/proc/{pid}/ns/net"));
            }
        }
    });
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out.trim(), want.to_str().unwrap());
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_ne!(want, host, "the first container has its own netns");
}

#[test]
fn an_apparmor_profile_that_cannot_be_applied_fails_create_naming_it() {
    // Without AppArmor: a config error naming the field. With it: the profile does not exist,
    // so applying it fails in the init, naming the profile. Either way nothing is left.
    let apparmor = isolab_runtime::lsm::HostLsms::detect().apparmor;
    let mut f = Fixture::new();
    f.config(&["true"], |s| s["process"]["apparmorProfile"] = json!("isolab-test-profile"));
    let id = f.id("lsm");
    let bundle = f.bundle();
    let out = f.isorun(&["create", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    if apparmor {
        assert!(err.contains("isolab-test-profile"), "{err}");
    } else {
        assert!(err.contains("process.apparmorProfile") && err.contains("AppArmor is not enabled"), "{err}");
    }
    assert!(!f.root().join(&id).exists());
}
