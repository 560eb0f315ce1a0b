//! The outputs for CI systems, end to end: KCIDB JSON validated against KCIDB's own schema
//! (the `kcidb-io` Python package, installed by ci/setup), annotations pointing at the real
//! catalogue sources, and `isolab report merge` saying the wall time (the longest shard) and
//! the summed assertion time apart.

use std::path::Path;
use std::process::Command;

use isolab_harness::catalogue;
use isolab_harness::check::assertion_sources;
use isolab_harness::lab::workspace_root;
use isolab_harness::protocol::Outcome;
use isolab_harness::report::kcidb::{render_kcidb, KcidbOptions};
use isolab_harness::report::timing::{run_timing, Results, RESULTS_FORMAT};
use isolab_harness::report::Record;

fn record(kernel: &str, cgroup: &str, assertion: &str, status: Outcome, ms: u64) -> Record {
    Record {
        kernel: kernel.into(),
        kernel_release: format!("{}.0-1-cloud-amd64", kernel.trim_start_matches("debian-")),
        cgroup: cgroup.into(),
        runtime: "isorun".into(),
        runtime_version: "isorun 0.1.0".into(),
        assertion: assertion.into(),
        status,
        detail: if status == Outcome::Pass {
            String::new()
        } else {
            format!("why {assertion}\nconsole: <x> \"q\"")
        },
        duration_ms: ms,
        base_config: "spec".into(),
        advisory: None,
    }
}

/// Validates `doc` with kcidb-io's latest schema; Err(the validator's message) when invalid.
fn kcidb_validate(doc: &serde_json::Value) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kcidb.json");
    std::fs::write(&path, serde_json::to_vec(doc).unwrap()).unwrap();
    let script = "import json, sys, kcidb_io\n\
                  kcidb_io.schema.LATEST.validate_exactly(json.load(open(sys.argv[1])))\n";
    let out = Command::new("python3").args(["-c", script]).arg(&path).output().unwrap_or_else(|e| {
        panic!("python3 with kcidb-io is needed to validate KCIDB output (ci/setup installs it): {e}")
    });
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("No module named 'kcidb_io'"),
        "kcidb-io is not installed: run ci/setup (pip install kcidb-io)\n{stderr}"
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(stderr)
    }
}

#[test]
fn kcidb_output_of_the_whole_catalogue_is_valid_against_kcidb_s_schema() {
    let mut records = Vec::new();
    let statuses = [Outcome::Pass, Outcome::Fail, Outcome::Skip, Outcome::Error];
    for (i, a) in catalogue::catalogue().iter().enumerate() {
        for (kernel, cgroup) in [("debian-6.1", "v1"), ("debian-6.1", "v2"), ("debian-7.2", "v2")] {
            records.push(record(kernel, cgroup, a.id, statuses[i % 4], 1234));
        }
    }
    let o = KcidbOptions { origin: "isolab".into(), run_id: "gh123.1".into() };
    let doc = render_kcidb(&records, &o);
    kcidb_validate(&doc).unwrap_or_else(|e| panic!("KCIDB output rejected by kcidb-io:\n{e}"));
    let tests = doc["tests"].as_array().unwrap();
    assert_eq!(tests.len(), records.len());
    for (t, r) in tests.iter().zip(&records) {
        assert_eq!(t["path"], r.assertion.as_str(), "path = the assertion id, unchanged");
    }
    // The validator really validates: a path with a space and a bad status are refused.
    let mut bad = doc.clone();
    bad["tests"][0]["path"] = "not a path".into();
    assert!(kcidb_validate(&bad).is_err(), "kcidb-io accepted a path with spaces");
    let mut bad = doc;
    bad["tests"][0]["status"] = "OK".into();
    assert!(kcidb_validate(&bad).is_err(), "kcidb-io accepted status OK");
}

#[test]
fn every_catalogue_assertion_has_a_source_line_for_annotations() {
    let root = workspace_root();
    let sources = assertion_sources(&root);
    for a in catalogue::catalogue() {
        let (file, line) =
            sources.get(a.id).unwrap_or_else(|| panic!("{} not found in the catalogue sources", a.id));
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let at = text.lines().nth(*line as usize - 1).unwrap();
        assert!(at.contains(&format!("\"{}\"", a.id)), "{file}:{line} is `{at}`, not {}", a.id);
    }
}

fn write_shard(dir: &Path, records: &[Record], wall: f64) {
    std::fs::create_dir_all(dir).unwrap();
    let doc =
        Results { format: RESULTS_FORMAT, timing: run_timing(records, wall), records: records.to_vec() };
    std::fs::write(dir.join("results.json"), serde_json::to_vec(&doc).unwrap()).unwrap();
}

#[test]
fn report_merge_gives_the_longest_shard_as_wall_time_and_the_summed_time_apart() {
    let t = tempfile::tempdir().unwrap();
    let a = vec![record("debian-6.1", "v1", "pid.init_is_pid1", Outcome::Pass, 300_000)];
    let b = vec![
        record("debian-6.1", "v2", "pid.init_is_pid1", Outcome::Pass, 400_000),
        record("debian-6.1", "v2", "uts.hostname_and_domainname", Outcome::Fail, 51_100),
    ];
    write_shard(&t.path().join("s1"), &a, 394.1);
    write_shard(&t.path().join("s2"), &b, 201.0);
    let out = t.path().join("merged");
    let o = Command::new(env!("CARGO_BIN_EXE_isolab"))
        .args(["report", "merge"])
        .arg(t.path().join("s1"))
        .arg(t.path().join("s2"))
        .arg("--out")
        .arg(&out)
        .env("ISOLAB_KCIDB_RUN_ID", "test")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "a FAIL: exit 1\n{stdout}");
    assert!(stdout.contains("2 pass, 1 fail, 0 skip, 0 error in 394.1 s"), "{stdout}");
    assert!(
        stdout.contains("time: 394.1 s wall (the longest of 2 shards), 751.1 s of assertions summed"),
        "{stdout}"
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(doc["timing"]["wall_secs"], 394.1);
    assert_eq!(doc["timing"]["assertion_secs"], 751.1);
    assert_eq!(doc["timing"]["shards"], 2);
    assert_eq!(doc["records"].as_array().unwrap().len(), 3);
    let ann = std::fs::read_to_string(out.join("annotations.txt")).unwrap();
    assert!(
        ann.starts_with("::error file=harness/src/catalogue/uts_ipc.rs,line=")
            && ann.contains("title=isolab FAIL uts.hostname_and_domainname on debian-6.1/v2::"),
        "{ann}"
    );
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        md.contains("time: 394.1 s wall (the longest of 2 shards), 751.1 s of assertions summed"),
        "{md}"
    );
    let kcidb: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("kcidb.json")).unwrap()).unwrap();
    kcidb_validate(&kcidb).unwrap_or_else(|e| panic!("merged kcidb.json rejected:\n{e}"));
    // A merged report merged again keeps the wall time it said.
    let again = t.path().join("again");
    let o = Command::new(env!("CARGO_BIN_EXE_isolab"))
        .args(["report", "merge"])
        .arg(&out)
        .arg("--out")
        .arg(&again)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("time: 394.1 s wall (the longest of 1 shard)"));
}

#[test]
fn report_merge_and_baseline_update_need_no_kernels_toml() {
    let t = tempfile::tempdir().unwrap();
    let a = vec![record("debian-6.1", "v1", "pid.init_is_pid1", Outcome::Pass, 300)];
    write_shard(&t.path().join("s1"), &a, 1.5);
    let no_toml = t.path().join("no-kernels.toml");
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_isolab"))
            .args(args)
            .current_dir(t.path())
            .env("ISOLAB_KERNELS", &no_toml)
            .output()
            .unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (code, stderr) = run(&["report", "merge", "s1", "--out", "merged"]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = run(&["baseline", "update", "--from", "merged/results.json", "--to", "base.json"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(t.path().join("base.json").is_file());
    // A command that boots kernels still needs the file, and says which.
    let (code, stderr) = run(&["kernels", "list"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("no-kernels.toml"), "{stderr}");
}
