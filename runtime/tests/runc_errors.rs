//! Errors reach the engine as runc's do: `--log FILE --log-format json` writes logrus's
//! records (`level`, `msg`, `time`), whose last `error` msg containerd's shim shows, in runc's
//! wording where Docker maps it to an exit code (127 not found, 126 permission denied).

mod common;

use common::{text, Fixture};
use serde_json::Value;

/// `create` the bundle with `args` and `--log-format json`: (exit ok, stderr, log records).
fn create_logged(fx: &mut Fixture, args: &[&str]) -> (bool, String, Vec<Value>) {
    fx.config(args, |_| {});
    let id = fx.id("errs");
    let log = fx.tmp.path().join(format!("{id}.log"));
    let bundle = fx.bundle();
    let out = fx.isorun(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "create",
        "--bundle",
        bundle.to_str().unwrap(),
        &id,
    ]);
    let records = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect();
    (out.status.success(), text(&out.stderr), records)
}

/// The shim's reading: the msg of the last record whose level is "error"; every record has
/// exactly runc's three keys and an RFC 3339 time.
fn last_error(records: &[Value]) -> String {
    for r in records {
        let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["level", "msg", "time"], "{r}");
        humantime::parse_rfc3339(r["time"].as_str().unwrap()).unwrap();
    }
    let last = records.iter().rev().find(|r| r["level"] == "error").expect("an error record");
    last["msg"].as_str().unwrap().to_owned()
}

#[test]
fn not_executable_is_permission_denied() {
    let mut fx = Fixture::new();
    let (ok, stderr, records) = create_logged(&mut fx, &["/etc/passwd"]);
    assert!(!ok);
    let msg = last_error(&records);
    assert!(msg.contains(r#"exec: "/etc/passwd": permission denied"#), "{msg}");
    assert!(stderr.contains(&msg), "{stderr}");
}

#[test]
fn absolute_missing_path_is_stat_enoent_without_path_variable() {
    let mut fx = Fixture::new();
    let (ok, _, records) = create_logged(&mut fx, &["/no/such/cmd"]);
    assert!(!ok);
    let msg = last_error(&records);
    assert!(msg.contains(r#"exec: "/no/such/cmd": stat /no/such/cmd: no such file or directory"#), "{msg}");
    assert!(!msg.contains("$PATH"), "{msg}");
}

#[test]
fn name_not_in_path_is_executable_file_not_found() {
    let mut fx = Fixture::new();
    let (ok, _, records) = create_logged(&mut fx, &["no-such-cmd"]);
    assert!(!ok);
    let msg = last_error(&records);
    assert!(msg.contains(r#"exec: "no-such-cmd": executable file not found in $PATH"#), "{msg}");
}

#[test]
fn missing_container_does_not_exist() {
    let fx = Fixture::new();
    let out = fx.isorun(&["delete", "never-created-xyz"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("does not exist"), "{}", text(&out.stderr));
}
