//! `isolab check` (on this host) end to end: outputs written, exit codes as documented
//! (0 pass/skip, 1 fail or regression, 2 harness error).

mod common;

use std::process::Command;

fn isolab(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_isolab"))
        .arg("--runtime")
        .arg(common::isorun())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_host_writes_every_output_and_gates_on_a_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("res");
    let (code, stdout, stderr) =
        isolab(&["check", "--host", "--only", "pid.init_is_pid1,uts.*", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("3 pass, 0 fail, 0 skip, 0 error"), "{stdout}");
    for f in [
        "results.json",
        "junit.xml",
        "results.ktap",
        "report.html",
        "summary.md",
        "annotations.txt",
        "kcidb.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert!(doc["timing"]["wall_secs"].as_f64().unwrap() > 0.0, "{doc}");
    let records = doc["records"].clone();
    assert_eq!(records[0]["assertion"], "pid.init_is_pid1");
    assert_eq!(records[0]["kernel"], "host");
    assert_eq!(records[0]["status"], "PASS");

    // A baseline that says this PASS was a FAIL before: a change, no regression → 0.
    let mut base = records.clone();
    base[0]["status"] = "FAIL".into();
    let base_path = dir.path().join("base.json");
    std::fs::write(&base_path, serde_json::to_vec(&base).unwrap()).unwrap();
    let (code, stdout, _) = isolab(&[
        "check",
        "--host",
        "--only",
        "pid.init_is_pid1",
        "--out",
        out.to_str().unwrap(),
        "--baseline",
        base_path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("changed: host/"), "{stdout}");
}

#[test]
fn bad_selection_is_a_harness_error() {
    let (code, _, stderr) = isolab(&["check", "--host", "--only", "no.such.*"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("matches no assertion"), "{stderr}");
}

#[test]
fn check_runs_on_this_host_without_the_host_flag_or_a_kernels_toml() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("res");
    let o = Command::new(env!("CARGO_BIN_EXE_isolab"))
        .arg("--runtime")
        .arg(common::isorun())
        .args(["check", "--only", "pid.init_is_pid1", "--out", out.to_str().unwrap()])
        .env("ISOLAB_KERNELS", dir.path().join("no-kernels.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("1 pass, 0 fail, 0 skip, 0 error"), "{stdout}");
    assert!(out.join("results.json").is_file());
}

#[test]
fn a_cgroup_mode_that_is_not_v1_or_v2_is_refused_by_name_in_every_subcommand() {
    for args in [
        &["matrix", "--cgroup", "v1,v3"][..],
        &["boot", "debian-6.1", "--cgroup", "v3"],
        &["smoke", "--cgroup", "v3"],
        &["migrate", "debian-6.1", "--cgroup", "v3"],
        &["snapshot", "bench", "debian-6.1", "--cgroup", "v3"],
        &["snapshot", "run", "debian-6.1", "--cgroup", "v3", "--", "true"],
    ] {
        let (code, _, stderr) = isolab(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.contains("--cgroup") && stderr.contains("\"v3\" is not a cgroup mode: expected v1 or v2"),
            "{args:?}: {stderr}"
        );
    }
}

/// `check --base-config docker` with `runtime`: every record says docker, the cells are
/// labelled `host/<layout>/docker`, and the FAILs are those Docker's own config makes (no
/// noNewPrivileges, a writable root), each naming what the config leaves out; no ERROR.
fn docker_base_with(runtime: &std::path::Path) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("res");
    let o = Command::new(env!("CARGO_BIN_EXE_isolab"))
        .arg("--runtime")
        .arg(runtime)
        .args(["check", "--base-config", "docker", "--only", "security.*,mount.*,pid.*", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let records = doc["records"].as_array().unwrap();
    assert!(records.len() >= 20, "{stdout}");
    let get = |id: &str| records.iter().find(|r| r["assertion"] == id).unwrap_or_else(|| panic!("{id}"));
    for r in records {
        assert_eq!(r["base_config"], "docker", "{r}");
        assert_ne!(r["status"], "ERROR", "{r}");
        if r["assertion"].as_str().unwrap().starts_with("pid.") {
            assert_eq!(r["status"], "PASS", "{r}");
        }
    }
    for (id, why) in [
        ("security.no_new_privs", "[base config docker: process.noNewPrivileges unset]"),
        ("mount.readonly_root_erofs", "[base config docker: root.readonly unset"),
    ] {
        assert_eq!(get(id)["status"], "FAIL", "{id}");
        assert!(get(id)["detail"].as_str().unwrap().contains(why), "{id}: {}", get(id)["detail"]);
    }
    for id in ["security.capabilities_match_config", "mount.masked_paths", "mount.readonly_paths"] {
        assert_eq!(get(id)["status"], "PASS", "{id}: {}", get(id)["detail"]);
    }
    assert!(stdout.lines().next().unwrap().contains("/docker"), "{stdout}");
    let ktap = std::fs::read_to_string(out.join("results.ktap")).unwrap();
    assert!(ktap.contains("/docker:pid.init_is_pid1"), "{ktap}");
}

#[test]
fn check_with_docker_base_config_under_isorun() {
    docker_base_with(&common::isorun());
}

#[test]
fn check_with_docker_base_config_under_runc() {
    let runc = std::path::Path::new("/usr/sbin/runc");
    if !runc.exists() {
        eprintln!("SKIP: no runc at {}", runc.display());
        return;
    }
    docker_base_with(runc);
}

#[test]
fn an_unknown_base_config_is_refused_by_name_in_check_and_matrix() {
    for args in [&["check", "--base-config", "dockr"][..], &["matrix", "--base-config", "spec,/no/such.json"]]
    {
        let (code, _, stderr) = isolab(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.contains("--base-config")
                && stderr.contains("not spec, docker, podman, containerd or podman-rootless"),
            "{args:?}: {stderr}"
        );
    }
}
