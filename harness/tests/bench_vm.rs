//! `isolab bench startup --vm` end to end in a real TCG guest: the bench runs inside a
//! debian-6.1 VM (cgroup v2), crun really runs there (the host's, packed into the image),
//! bench.json comes back with one series per runtime, each with a positive median, and the
//! cell; a baseline in which isorun was twice as fast relative to the floor makes the same
//! run a regression (exit 1).

mod vm_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The floor program: $ISOLAB_FLOOR or the workspace's release or debug build.
fn floor() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ISOLAB_FLOOR") {
        return Some(PathBuf::from(p));
    }
    let target = isolab_harness::lab::workspace_root().join("target");
    ["release", "debug"].iter().map(|p| target.join(p).join("isolab-floor")).find(|p| p.is_file())
}

fn bench(out: &Path, floor: &Path, extra: &[&str]) -> Output {
    let o = vm_support::options();
    let _ = vm_support::kernel("debian-6.1", &o);
    Command::new(env!("CARGO_BIN_EXE_isolab"))
        .env("ISOLAB_FLOOR", floor)
        .arg("--runtime")
        .arg(o.runtime.expect("a runtime to pack"))
        .arg("--agent")
        .arg(&o.agent)
        .args(["--accel", "tcg", "bench", "startup", "--vm", "debian-6.1", "--cgroup", "v2"])
        .args(["--runtimes", "isorun,crun,floor", "--runs", "3", "--warmup", "1"])
        // The test profile's isorun and floor may be debug builds: the plumbing is tested here.
        .arg("--allow-debug-build")
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("run isolab")
}

#[test]
fn startup_runs_in_a_debian_6_1_guest_with_crun_and_a_baseline_gates_it() {
    // SAFETY: geteuid(2) has no arguments and cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "the guest bench boots VMs and needs root");
    let Some(floor) = floor() else {
        eprintln!("SKIP: no isolab-floor (build it: cargo build --release -p isolab-benches)");
        return;
    };
    if !Path::new("/usr/bin/crun").is_file() {
        eprintln!("SKIP: crun is not installed on this host (apt-get install crun): nothing to pack");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = bench(dir.path(), &floor, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let path = dir.path().join("bench.json");
    let mut j: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let series = j["series"].as_array().unwrap();
    let names: Vec<&str> = series.iter().map(|s| s["runtime"].as_str().unwrap()).collect();
    assert_eq!(names, ["isorun", "crun", "floor", "unshare (floor)"], "{j}");
    for s in series {
        assert!(s["error"].is_null(), "{} did not run in the guest: {}", s["runtime"], s["error"]);
        assert!(s["summary"]["median"].as_f64().unwrap() > 0.0, "{s}");
        assert_eq!(s["samples_ms"].as_array().unwrap().len(), 3, "{s}");
    }
    assert_eq!(series[1]["path"], "/usr/bin/crun", "crun ran from the image: {j}");
    assert_eq!(j["vm"]["kernel"], "debian-6.1", "{j}");
    assert_eq!(j["vm"]["cgroup"], "v2", "{j}");
    assert!(j["vm"]["release"].as_str().unwrap().starts_with("6.1."), "{j}");
    assert_eq!(j["host"]["cgroup"], "unified", "the guest's layout: {j}");
    assert!(std::fs::read_to_string(dir.path().join("startup.svg")).unwrap().starts_with("<svg"));
    assert!(stdout.contains("absolute times are slow"), "{stdout}");

    // A baseline in which isorun's median was half of today's: today is a slower start.
    let m = j["series"][0]["summary"]["median"].as_f64().unwrap();
    j["series"][0]["summary"]["median"] = (m / 2.0).into();
    let base = dir.path().join("baseline.json");
    std::fs::write(&base, serde_json::to_vec(&j).unwrap()).unwrap();
    let again = tempfile::tempdir().unwrap();
    let out = bench(again.path(), &floor, &["--baseline", base.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.lines().any(|l| l.starts_with("REGRESSION debian-6.1/v2 isorun:")), "{stdout}");
}
