//! The lifecycle as runtime-spec runtime.md defines it, driven through the isorun binary:
//! create → created → start → running → stopped → delete, and the errors in between.

mod common;

use common::{text, Fixture};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

fn wait_status(f: &Fixture, id: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let st = f.state(id);
        if st["status"] == want {
            return;
        }
        assert!(Instant::now() < deadline, "{id} never became {want}: {st}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn create_start_kill_delete() {
    let mut f = Fixture::new();
    f.config(&["sleep", "60"], |_| {});
    let id = f.id("life");
    let bundle = f.bundle();
    let pidfile = f.tmp.path().join("pid");
    let out = f.isorun(&[
        "create",
        "--bundle",
        bundle.to_str().unwrap(),
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
    ]);
    assert!(out.status.success(), "create: {}", text(&out.stderr));
    let st = f.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["bundle"], bundle.to_str().unwrap());
    let pid = st["pid"].as_i64().unwrap();
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap(), pid.to_string());
    // The user process has not run yet: init still is isorun, waiting on the fifo.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "isorun");

    // Not stopped: delete without --force is refused and changes nothing.
    let out = f.isorun(&["delete", &id]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("created"), "{}", text(&out.stderr));

    let out = f.isorun(&["start", &id]);
    assert!(out.status.success(), "start: {}", text(&out.stderr));
    wait_status(&f, &id, "running");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim() != "sleep" {
        assert!(Instant::now() < deadline, "user process never exec'd");
        std::thread::sleep(Duration::from_millis(10));
    }
    // start of a running container is an error.
    let out = f.isorun(&["start", &id]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("running"));

    let out = f.isorun(&["kill", &id, "KILL"]);
    assert!(out.status.success(), "kill: {}", text(&out.stderr));
    wait_status(&f, &id, "stopped");
    assert_eq!(f.state(&id)["pid"], 0);
    // kill of a stopped container is an error.
    let out = f.isorun(&["kill", &id, "TERM"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("stopped"));

    let out = f.isorun(&["delete", &id]);
    assert!(out.status.success(), "delete: {}", text(&out.stderr));
    assert!(!f.root().join(&id).exists(), "state dir left behind");
    let out = f.isorun(&["state", &id]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("does not exist"));
}

#[test]
fn delete_force_kills_a_running_container_and_its_children() {
    let mut f = Fixture::new();
    f.config(&["sh", "-c", "sleep 100 & sleep 100"], |_| {});
    let id = f.id("force");
    let bundle = f.bundle();
    let out = f.isorun(&["run", "-d", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(out.status.success(), "run -d: {}", text(&out.stderr));
    let pid = f.state(&id)["pid"].as_i64().unwrap();
    let out = f.isorun(&["delete", "--force", &id]);
    assert!(out.status.success(), "delete --force: {}", text(&out.stderr));
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z")
    );
    assert!(!f.root().join(&id).exists());
}

#[test]
fn list_shows_containers_in_table_and_json() {
    let mut f = Fixture::new();
    f.config(&["sleep", "60"], |_| {});
    let id = f.id("list");
    let bundle = f.bundle();
    assert!(f.isorun(&["create", "--bundle", bundle.to_str().unwrap(), &id]).status.success());
    let table = text(&f.isorun(&["list"]).stdout);
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.lines().any(|l| l.starts_with(&id) && l.contains("created")), "{table}");
    let json: serde_json::Value =
        serde_json::from_slice(&f.isorun(&["list", "--format", "json"]).stdout).unwrap();
    assert_eq!(json[0]["id"], id.as_str());
    assert_eq!(json[0]["status"], "created");
}

#[test]
fn duplicate_id_is_refused_and_leaves_the_first_alone() {
    let mut f = Fixture::new();
    f.config(&["sleep", "60"], |_| {});
    let id = f.id("dup");
    let bundle = f.bundle();
    assert!(f.isorun(&["create", "--bundle", bundle.to_str().unwrap(), &id]).status.success());
    let out = f.isorun(&["create", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("already exists"), "{}", text(&out.stderr));
    assert_eq!(f.state(&id)["status"], "created");
}

#[test]
fn bad_ids_are_rejected() {
    let f = Fixture::new();
    for id in ["../escape", "a/b", ".."] {
        let out = f.isorun(&["state", id]);
        assert!(!out.status.success());
        assert!(text(&out.stderr).contains("invalid container id"), "{id}: {}", text(&out.stderr));
    }
}

#[test]
fn failure_inside_init_is_reported_with_context_and_leaves_nothing() {
    let mut f = Fixture::new();
    f.config(&["/no/such/binary"], |s| s["mounts"].as_array_mut().unwrap().push(json!({"destination": "/mnt/x", "type": "bind", "source": "/definitely/missing", "options": ["bind"]})));
    let id = f.id("fail");
    let bundle = f.bundle();
    let out = f.isorun(&["create", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one-line error: {err}");
    assert!(err.contains("/definitely/missing"), "error names the path: {err}");
    assert!(!f.root().join(&id).exists(), "state dir left behind");
}

#[test]
fn missing_executable_fails_create() {
    let mut f = Fixture::new();
    f.config(&["/no/such/binary"], |_| {});
    let id = f.id("noexe");
    let bundle = f.bundle();
    let out = f.isorun(&["create", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("/no/such/binary"), "{}", text(&out.stderr));
    assert!(!f.root().join(&id).exists());
}

#[test]
fn invalid_config_names_every_json_path_and_creates_nothing() {
    let mut f = Fixture::new();
    f.config(&["true"], |s| {
        s["linux"]["namespaces"][2]["type"] = json!("pidd");
        s["process"]["cwd"] = json!("relative");
    });
    let id = f.id("badcfg");
    let bundle = f.bundle();
    let out = f.isorun(&["create", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("linux.namespaces[2].type"), "{err}");
    assert!(err.contains("pidd"), "{err}");
    assert!(err.contains("process.cwd"), "{err}");
    assert!(!f.root().join(&id).exists());
}

#[test]
fn spec_writes_a_config_that_runs() {
    let mut f = Fixture::new();
    let dir = f.bundle();
    std::fs::remove_file(dir.join("config.json")).ok();
    let out = f.isorun(&["spec", "--bundle", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let again = f.isorun(&["spec", "--bundle", dir.to_str().unwrap()]);
    assert!(!again.status.success(), "spec refuses to overwrite");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["hostname"], "isorun");
    spec["process"]["terminal"] = json!(false);
    spec["process"]["args"] = json!(["hostname"]);
    std::fs::write(dir.join("config.json"), serde_json::to_vec(&spec).unwrap()).unwrap();
    let id = f.id("spec");
    let out = f.isorun(&["run", "--bundle", dir.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "isorun\n");
}

/// `--version` names the build, so a bench can refuse a debug one; the isorun under test is
/// built with the same profile as this test.
#[test]
fn version_says_which_build_it_is() {
    let f = Fixture::new();
    let out = f.isorun(&["--version"]);
    assert!(out.status.success());
    let text = common::text(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], concat!("isorun ", env!("CARGO_PKG_VERSION")), "{text}");
    let expect = if cfg!(debug_assertions) { "build: debug" } else { "build: release" };
    assert_eq!(lines[1..], [expect], "{text}");
}

#[test]
fn features_lists_namespaces() {
    let f = Fixture::new();
    let out = f.isorun(&["features"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ociVersionMax"], "1.3.0");
    assert!(v["linux"]["namespaces"].as_array().unwrap().contains(&json!("time")));
}
