//! `isolab bench` end to end with real containers: startup writes its table, bench.json and
//! plot and reports a runtime that is not there instead of dropping it; density interrupted
//! by SIGTERM deletes every container it made and its temp dirs, and exits 130.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn isolab() -> Command {
    // SAFETY: geteuid(2) has no arguments and cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "the bench tests run real containers and need root");
    let mut c = Command::new(env!("CARGO_BIN_EXE_isolab"));
    c.arg("--runtime").arg(common::isorun());
    c
}

#[test]
fn startup_writes_table_json_and_plot_and_reports_a_missing_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let out = isolab()
        .args([
            "bench",
            "startup",
            "--runtimes",
            "isorun,no-such-runtime-xyz",
            "--runs",
            "3",
            "--warmup",
            "1",
        ])
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = |name: &str| stdout.lines().find(|l| l.starts_with(name)).unwrap_or_default().to_owned();
    assert!(line("isorun").trim_end().ends_with("1.00×"), "{stdout}");
    assert!(line("no-such-runtime-xyz").contains("ERROR: no-such-runtime-xyz: not found"), "{stdout}");
    assert!(line("unshare (floor)").contains("3"), "{stdout}");
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("bench.json")).unwrap()).unwrap();
    assert_eq!(j["series"][0]["samples_ms"].as_array().unwrap().len(), 3);
    assert!(std::fs::read_to_string(dir.path().join("startup.svg")).unwrap().starts_with("<svg"));
}

/// The container cgroups of an isolab process's density bench (isorun's default parent).
fn leftovers(pid: u32) -> Vec<String> {
    let prefix = format!("isolab-dens-{pid}-");
    let mut left = Vec::new();
    for base in ["/sys/fs/cgroup/pids/isorun", "/sys/fs/cgroup/unified/isorun", "/sys/fs/cgroup/isorun"] {
        for e in std::fs::read_dir(base).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) {
                left.push(format!("{base}/{name}"));
            }
        }
    }
    left
}

#[test]
fn density_interrupted_by_sigterm_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let child = isolab()
        .args(["bench", "density", "--runtimes", "isorun", "--n", "400"])
        .arg("--out")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let t = Instant::now();
    while leftovers(pid).len() < 3 {
        assert!(t.elapsed() < Duration::from_secs(60), "no container appeared in 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ws = workspaces(pid);
    assert_eq!(ws.len(), 1, "{ws:?}");
    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted; deleted"), "{stderr}");
    assert_eq!(leftovers(pid), Vec::<String>::new(), "{stderr}");
    assert_eq!(workspaces(pid), Vec::<String>::new(), "{stderr}");
}

/// The bench's temp dirs (bundle and state roots) of an isolab process.
fn workspaces(pid: u32) -> Vec<String> {
    let prefix = format!("isolab-bench-{pid}-");
    std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect()
}
