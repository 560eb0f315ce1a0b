//! isorun under faults: a `create` SIGKILLed at a deterministic point (a sleeping hook, in
//! the runtime or in the init) leaves no process, and `delete --force` then leaves no cgroup,
//! state, mount or fifo; concurrent commands on one id are serialised.

mod common;
mod fault_support;

use std::path::Path;
use std::time::Duration;

use common::{text, Fixture, ISORUN};
use fault_support::{kill9, spawn_isorun, wait_for_process, wait_gone, Ids, Scope};
use serde_json::{json, Value};

fn scope(f: &Fixture, ids: Ids, marker: &str) -> Scope {
    let tmp = f.tmp.path().to_owned();
    Scope {
        needles: vec![tmp.to_string_lossy().into_owned(), marker.to_owned()],
        tmp,
        root: f.root(),
        ids,
        whole: true,
    }
}

/// The record `create` wrote, read straight from the state directory.
fn record(root: &Path, id: &str) -> Value {
    serde_json::from_slice(&std::fs::read(root.join(id).join("state.json")).unwrap()).unwrap()
}

fn list(f: &Fixture) -> Vec<Value> {
    let out = f.isorun(&["list", "--format", "json"]);
    assert!(out.status.success(), "list: {}", text(&out.stderr));
    serde_json::from_slice::<Option<Vec<Value>>>(&out.stdout).unwrap().unwrap_or_default()
}

/// A unique `sleep` duration: the hook's marker on its command line.
fn marker() -> String {
    format!("29.{}{}", std::process::id(), rand_digits())
}

fn rand_digits() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() % 100_000
}

/// Kill `create` while a hook of `kind` sleeps; the init and the hook must die with it, the
/// half-made container must be listed and `delete --force` must leave nothing.
fn killed_at_hook(kind: &str) {
    let mut f = Fixture::new();
    let mark = marker();
    f.config(&["sleep", "100"], |s| {
        s["hooks"] = json!({ kind: [{"path": "/bin/sleep", "args": ["sleep", mark]}] });
    });
    let id = f.id("killhook");
    let bundle = f.bundle();
    let mut create = spawn_isorun(
        ISORUN,
        &f.root(),
        f.tmp.path(),
        "create",
        &["create", "--bundle", bundle.to_str().unwrap(), &id],
    );
    let hook = wait_for_process(&mark, Duration::from_secs(20)).expect("the hook never ran");
    // The record is there before the hook runs: the cgroup path and the init's pid.
    let rec = record(&f.root(), &id);
    let init = rec["pid"].as_i64().unwrap() as i32;
    assert!(init > 0, "no init pid recorded before the hooks: {rec}");
    assert!(rec["cgroup_path"].as_str().is_some_and(|p| p.ends_with(&id)), "{rec}");
    assert_eq!(f.state(&id)["status"], "creating");
    kill9(&mut create);

    assert!(wait_gone(hook, Duration::from_secs(5)), "the {kind} hook outlived the killed create");
    assert!(wait_gone(init, Duration::from_secs(5)), "the init outlived the killed create ({kind})");
    let listed = list(&f);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["status"], "stopped");
    let out = f.isorun(&["delete", "--force", &id]);
    assert!(out.status.success(), "delete --force: {}", text(&out.stderr));
    assert!(list(&f).is_empty());
    let left = scope(&f, Ids::Exact(id.clone()), &mark).scan_settled(Duration::from_secs(5));
    assert!(left.is_empty(), "left after delete --force: {left}");
}

#[test]
fn create_killed_in_a_runtime_hook_is_recoverable() {
    killed_at_hook("createRuntime");
}

#[test]
fn create_killed_in_a_prestart_hook_is_recoverable() {
    killed_at_hook("prestart");
}

/// createContainer runs in the init: the init is busy (not reading the sync socket) when
/// create dies, so only its parent-death signal can end it (the hook would sleep ~29 s).
#[test]
fn create_killed_while_the_init_runs_a_hook_takes_the_init_along() {
    killed_at_hook("createContainer");
}

/// A create that finished normally is not tied to its process: the init waits for start
/// and runs; `run -d` likewise (the init's parent-death signal was cleared before exit).
#[test]
fn a_finished_create_leaves_an_init_that_outlives_it() {
    let mut f = Fixture::new();
    f.config(&["sleep", "100"], |_| {});
    let id = f.id("outlive");
    let bundle = f.bundle();
    let out = f.isorun(&["create", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(out.status.success(), "create: {}", text(&out.stderr));
    let rec = record(&f.root(), &id);
    assert!(rec.get("creator").is_none(), "a finished create still names its creator: {rec}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(f.state(&id)["status"], "created");
    let out = f.isorun(&["start", &id]);
    assert!(out.status.success(), "start: {}", text(&out.stderr));
    let detached = f.running_sleep(|_| {});
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(f.state(&id)["status"], "running");
    assert_eq!(f.state(&detached)["status"], "running");
    for id in [&id, &detached] {
        let out = f.isorun(&["delete", "--force", id]);
        assert!(out.status.success(), "delete: {}", text(&out.stderr));
    }
    let left =
        scope(&f, Ids::Prefix("outlive".into()), "no-marker-here").scan_settled(Duration::from_secs(5));
    assert!(left.is_empty(), "{left}");
}

/// N concurrent creates of one id: exactly one wins, the others fail saying it exists,
/// and nothing is left after delete.
#[test]
fn concurrent_creates_of_one_id_one_wins() {
    let mut f = Fixture::new();
    f.config(&["sleep", "100"], |_| {});
    let id = f.id("race");
    let bundle = f.bundle();
    let children: Vec<_> = (0..6)
        .map(|i| {
            spawn_isorun(
                ISORUN,
                &f.root(),
                f.tmp.path(),
                &format!("race{i}"),
                &["create", "--bundle", bundle.to_str().unwrap(), &id],
            )
        })
        .collect();
    let mut won = 0;
    for (i, mut c) in children.into_iter().enumerate() {
        let status = c.wait().unwrap();
        let err = std::fs::read_to_string(f.tmp.path().join(format!("race{i}.err"))).unwrap();
        if status.success() {
            won += 1;
        } else {
            assert!(err.contains("already exists"), "a losing create said: {err}");
        }
    }
    assert_eq!(won, 1, "exactly one create of {id} must succeed");
    assert_eq!(f.state(&id)["status"], "created");
    let out = f.isorun(&["delete", "--force", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let left = scope(&f, Ids::Exact(id.clone()), "no-marker-here").scan_settled(Duration::from_secs(5));
    assert!(left.is_empty(), "{left}");
}

/// A delete --force waits for the create that holds the id (a sleeping hook) and then
/// deletes the finished container; a start racing with the delete either runs first or finds
/// no container. Nothing interleaves: nothing is left and no command fails oddly.
#[test]
fn commands_on_one_id_wait_for_each_other() {
    let mut f = Fixture::new();
    let mark = format!("0.3{}", rand_digits());
    f.config(&["sleep", "100"], |s| {
        s["hooks"] = json!({ "createRuntime": [{"path": "/bin/sleep", "args": ["sleep", mark]}] });
    });
    let id = f.id("serial");
    let bundle = f.bundle();
    let (root, tmp) = (f.root(), f.tmp.path().to_owned());
    let mut create =
        spawn_isorun(ISORUN, &root, &tmp, "c", &["create", "--bundle", bundle.to_str().unwrap(), &id]);
    wait_for_process(&mark, Duration::from_secs(20)).expect("the hook never ran");
    let mut start = spawn_isorun(ISORUN, &root, &tmp, "s", &["start", &id]);
    std::thread::sleep(Duration::from_millis(20));
    let mut delete = spawn_isorun(ISORUN, &root, &tmp, "d", &["delete", "--force", &id]);
    assert!(
        create.wait().unwrap().success(),
        "create: {}",
        std::fs::read_to_string(tmp.join("c.err")).unwrap()
    );
    let started = start.wait().unwrap().success();
    let start_err = std::fs::read_to_string(tmp.join("s.err")).unwrap();
    // Started after the create released the lock (it waited, not failed with "creating"),
    // or the delete came first and there was no container any more.
    assert!(started || start_err.contains("does not exist"), "start: {start_err}");
    assert!(
        delete.wait().unwrap().success(),
        "delete: {}",
        std::fs::read_to_string(tmp.join("d.err")).unwrap()
    );
    assert!(list(&f).is_empty());
    let left = scope(&f, Ids::Exact(id.clone()), &mark).scan_settled(Duration::from_secs(5));
    assert!(left.is_empty(), "{left}");
}
