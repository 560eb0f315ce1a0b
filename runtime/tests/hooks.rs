//! Hooks at their runtime-spec moments, in order, with the state on stdin; a failing
//! createRuntime hook aborts create and leaves nothing; a failing poststop only warns.

mod common;

use common::{text, Fixture};
use serde_json::json;

#[test]
fn every_hook_runs_in_order_with_the_state_on_stdin() {
    let mut f = Fixture::new();
    let logdir = f.tmp.path().join("hooklog");
    std::fs::create_dir_all(&logdir).unwrap();
    std::fs::create_dir_all(f.bundle().join("rootfs/hooklog")).unwrap();
    let log = logdir.join("log");
    // Runtime-namespace hooks write to the host path; container hooks to the bind mount.
    let host_hook = |kind: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo {kind} $(tr -d '\\n' | grep -o '\"status\": *\"[a-z]*\"') >> {}", log.display())]});
    let in_container =
        |kind: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo {kind} >> /hooklog/log")]});
    let (code, out, err) = f.run(&["sh", "-c", "echo main >> /hooklog/log; echo ran"], |s| {
        s["mounts"].as_array_mut().unwrap().push(
            json!({"destination": "/hooklog", "type": "bind", "source": logdir, "options": ["rbind", "rw"]}),
        );
        s["hooks"] = json!({
            "prestart": [host_hook("prestart")],
            "createRuntime": [host_hook("createRuntime")],
            "createContainer": [host_hook("createContainer")],
            "startContainer": [in_container("startContainer")],
            "poststart": [host_hook("poststart")],
            "poststop": [host_hook("poststop")],
        });
    });
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "ran\n");
    let got = std::fs::read_to_string(&log).unwrap();
    let kinds: Vec<&str> = got.lines().map(|l| l.split_whitespace().next().unwrap()).collect();
    // poststart runs after the process is released: it may come before or after "main".
    let mut without_poststart: Vec<&str> = kinds.iter().copied().filter(|k| *k != "poststart").collect();
    assert!(kinds.contains(&"poststart"), "{got}");
    without_poststart.dedup();
    assert_eq!(
        without_poststart,
        ["prestart", "createRuntime", "createContainer", "startContainer", "main", "poststop"],
        "{got}"
    );
    assert!(got.lines().next().unwrap().contains("\"creating\""), "prestart sees status creating: {got}");
    assert!(got.lines().last().unwrap().contains("\"stopped\""), "poststop sees status stopped: {got}");
}

#[test]
fn failing_create_runtime_hook_aborts_and_leaves_nothing() {
    let mut f = Fixture::new();
    f.config(&["true"], |s| {
        s["hooks"] =
            json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 9"]}]});
    });
    let id = f.id("hookfail");
    let bundle = f.bundle();
    let out = f.isorun(&["create", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("createRuntime hook [0] /bin/sh") && err.contains("nope"), "{err}");
    assert!(!f.root().join(&id).exists());
}

#[test]
fn failing_poststop_hook_only_warns() {
    let mut f = Fixture::new();
    let (code, _, err) = f.run(&["true"], |s| {
        s["hooks"] = json!({"poststop": [{"path": "/bin/false"}]});
    });
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("warning") && err.contains("poststop"), "{err}");
}
