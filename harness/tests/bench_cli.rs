//! `isolab bench` end to end with real containers: startup writes its table, bench.json and
//! plot and reports a runtime that is not there instead of dropping it; density interrupted
//! by SIGTERM deletes every container it made and its temp dirs, and exits 130; `--variants`
//! measures each runtime × variant (startup and density), the variant bundles take effect
//! (seccomp, capabilities, uid map), and nothing is left behind.

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
            // ci/test's isorun is the debug build.
            "--allow-debug-build",
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
    let build = isorun_build(&common::isorun());
    assert_eq!(j["builds"]["isorun"], build.as_str(), "{j}");
    assert!(stdout.lines().any(|l| l == format!("isorun: {build} build")), "{stdout}");
}

/// `--state-dir DIR`: the state roots are in a temp dir in DIR, bench.json names it and its
/// filesystem, and it is gone afterwards; a DIR that cannot hold one is an error naming it.
#[test]
fn startup_keeps_the_state_roots_where_told_and_removes_them() {
    let parent = tempfile::tempdir_in("/tmp").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = |state_dir: &std::path::Path| {
        let out = dir.path().to_string_lossy().into_owned();
        let args =
            ["--runtimes", "isorun", "--runs", "2", "--warmup", "0", "--no-floor", "--allow-debug-build"];
        isolab()
            .args(["bench", "startup"])
            .args(args)
            .args(["--out", &out])
            .arg("--state-dir")
            .arg(state_dir)
            .output()
            .unwrap()
    };
    let out = run(parent.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("bench.json")).unwrap()).unwrap();
    let state = j["state_roots"].as_str().unwrap();
    let want = format!("{}/isolab-bench-state-", parent.path().display());
    assert!(
        state.starts_with(&want) && state.ends_with(')') && !state.ends_with("(unknown filesystem)"),
        "{state}"
    );
    assert!(stderr.contains(&format!("state roots in {state}")), "{stderr}");
    assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0, "the state roots' temp dir was left");
    let missing = parent.path().join("no-such-dir");
    let out = run(&missing);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("create temp dir in {}", missing.display())), "{stderr}");
}

/// The `build:` line of `isorun --version`.
fn isorun_build(bin: &std::path::Path) -> String {
    let out = Command::new(bin).arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("build: "))
        .unwrap_or_else(|| panic!("no build line: {text}"))
        .to_owned()
}

/// `isolab bench startup` with `--runtime BIN`; its output.
fn startup_with(bin: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_isolab"))
        .arg("--runtime")
        .arg(bin)
        .args([
            "bench",
            "startup",
            "--runtimes",
            "isorun",
            "--runs",
            "1",
            "--warmup",
            "0",
            "--no-floor",
            "--out",
        ])
        .arg(dir.path())
        .args(extra)
        .output()
        .unwrap()
}

/// A stand-in `isorun` that only answers `--version` (with `version`) and fails anything else.
fn fake_isorun(dir: &std::path::Path, version: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("isorun");
    let script = format!("#!/bin/sh\n[ \"$1\" = --version ] || exit 99\nprintf '{version}'\n");
    std::fs::write(&bin, script).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn startup_refuses_a_debug_isorun_naming_it_and_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    for version in ["isorun 0.1.0\\nbuild: debug\\n", "isorun 0.1.0\\n"] {
        let bin = fake_isorun(dir.path(), version);
        let out = startup_with(&bin, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{version}: measured:\n{stderr}");
        assert!(stderr.contains(&bin.display().to_string()), "{stderr}");
        assert!(stderr.contains("--allow-debug-build"), "{stderr}");
        assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    }
}

/// The real debug build is refused the same way (skips loudly when the isorun under test is
/// the release build).
#[test]
fn startup_refuses_the_real_debug_isorun() {
    let bin = common::isorun();
    if isorun_build(&bin) != "debug" {
        eprintln!("SKIP: {} is not a debug build", bin.display());
        return;
    }
    let out = startup_with(&bin, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "measured:\n{stderr}");
    assert!(stderr.contains("is a debug build") && stderr.contains("--allow-debug-build"), "{stderr}");
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
        .args(["bench", "density", "--runtimes", "isorun", "--n", "400", "--allow-debug-build"])
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
    assert_eq!(ws.len(), expected_workspaces(), "{ws:?}");
    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted; deleted"), "{stderr}");
    assert_eq!(leftovers(pid), Vec::<String>::new(), "{stderr}");
    assert_eq!(workspaces(pid), Vec::<String>::new(), "{stderr}");
}

/// The bench's temp dirs of an isolab process: its bundles' (in /tmp) and its state roots'
/// (on a tmpfs where there is one, see `state_dir`).
fn workspaces(pid: u32) -> Vec<String> {
    let prefixes = [format!("isolab-bench-{pid}-"), format!("isolab-bench-state-{pid}-")];
    let mut found = Vec::new();
    for parent in ["/tmp", "/run", "/dev/shm"] {
        for e in std::fs::read_dir(parent).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if prefixes.iter().any(|p| name.starts_with(p.as_str())) {
                found.push(format!("{parent}/{name}"));
            }
        }
    }
    found
}

/// How many temp dirs a bench makes here: the bundles', and the state roots' where a tmpfs
/// is found for them (else they are in the bundles').
fn expected_workspaces() -> usize {
    1 + usize::from(state_tmpfs().is_some())
}

/// Where the bench puts its state roots' temp dir by default here.
fn state_tmpfs() -> Option<std::path::PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    isolab_harness::bench::state_dir::choose(None, &mountinfo)
}

/// The floor program of this workspace, built beside isolab with the documented command when
/// missing (a `cargo nextest run -p isolab-harness` alone does not build other packages).
fn floor_bin() -> std::path::PathBuf {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_isolab")).with_file_name("isolab-floor");
    if !bin.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "isolab-benches", "--bin", "isolab-floor"])
            .status()
            .expect("run cargo to build isolab-floor");
        assert!(status.success(), "cargo build -p isolab-benches --bin isolab-floor failed");
    }
    assert!(bin.is_file(), "{} is not built (cargo build -p isolab-benches)", bin.display());
    bin
}

/// Which `isolab-bench-<pid>-*` cgroup directories an isolab process left in any hierarchy.
fn floor_cgroups_left(pid: u32) -> Vec<String> {
    let prefix = format!("isolab-bench-{pid}-");
    let mut bases = vec![std::path::PathBuf::from("/sys/fs/cgroup")];
    bases.extend(std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten().map(|e| e.path()));
    bases
        .iter()
        .flat_map(|b| std::fs::read_dir(b).into_iter().flatten().flatten())
        .map(|e| e.path().display().to_string())
        .filter(|p| p.rsplit('/').next().is_some_and(|n| n.starts_with(&prefix)))
        .collect()
}

#[test]
fn startup_measures_the_floor_program_and_divides_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let child = isolab()
        .env("ISOLAB_FLOOR", floor_bin())
        .args(["bench", "startup", "--runtimes", "isorun,floor", "--runs", "3", "--warmup", "1"])
        .args(["--no-floor", "--allow-debug-build", "--out"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = |name: &str| stdout.lines().find(|l| l.starts_with(name)).unwrap_or_default().to_owned();
    assert!(line("runtime").trim_end().ends_with("÷ floor"), "{stdout}");
    assert!(line("floor").trim_end().ends_with("1.00×"), "{stdout}");
    let isorun_ratio: f64 =
        line("isorun").trim_end().rsplit(' ').next().unwrap().trim_end_matches('×').parse().unwrap();
    assert!(isorun_ratio > 1.0, "isorun is not slower than the floor:\n{stdout}");
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("bench.json")).unwrap()).unwrap();
    assert_eq!(j["series"][1]["runtime"], "floor", "{j}");
    assert_eq!(j["series"][1]["samples_ms"].as_array().unwrap().len(), 3, "{j}");
    assert_eq!(floor_cgroups_left(pid), Vec::<String>::new());
}

#[test]
fn startup_reports_a_missing_floor_program_and_divides_by_isorun() {
    let dir = tempfile::tempdir().unwrap();
    let out = isolab()
        .env("ISOLAB_FLOOR", "/nonexistent/isolab-floor")
        .args(["bench", "startup", "--runtimes", "isorun,floor", "--runs", "1", "--warmup", "0"])
        .args(["--no-floor", "--allow-debug-build", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let floor = stdout.lines().find(|l| l.starts_with("floor")).unwrap_or_default();
    assert!(floor.contains("ERROR: ISOLAB_FLOOR=/nonexistent/isolab-floor: no such file"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("isorun") && l.trim_end().ends_with("1.00×")), "{stdout}");
}

/// The startup containers' cgroups (isorun's default parent) an isolab process left.
fn startup_cgroups_left(pid: u32) -> Vec<String> {
    let prefix = format!("isolab-bench-{pid}-");
    let mut left = Vec::new();
    let hierarchies = std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten().map(|e| e.path());
    for base in hierarchies.chain([std::path::PathBuf::from("/sys/fs/cgroup")]) {
        for e in std::fs::read_dir(base.join("isorun")).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                left.push(e.path().display().to_string());
            }
        }
    }
    left
}

#[test]
fn startup_measures_every_variant_side_by_side_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let child = isolab()
        .args(["bench", "startup", "--runtimes", "isorun", "--variants", "default,docker,userns"])
        .args(["--runs", "2", "--warmup", "0", "--allow-debug-build", "--out"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("bench.json")).unwrap()).unwrap();
    let series = j["series"].as_array().unwrap();
    for (name, variant) in [("isorun", "default"), ("isorun+docker", "docker"), ("isorun+userns", "userns")] {
        let s = series.iter().find(|s| s["runtime"] == name).unwrap_or_else(|| panic!("no {name}: {j}"));
        assert_eq!(s["variant"], variant, "{j}");
        assert_eq!(s["error"], serde_json::Value::Null, "{j}");
        assert_eq!(s["samples_ms"].as_array().unwrap().len(), 2, "{j}");
        let line = stdout.lines().find(|l| l.split("  ").next() == Some(name)).unwrap_or_default();
        assert!(line.trim_end().ends_with('×'), "{name}:\n{stdout}");
    }
    // The `unshare` floor runs the default variant only, and says so for the others.
    for v in ["docker", "userns"] {
        let name = format!("unshare (floor)+{v}");
        let s = series.iter().find(|s| s["runtime"] == name.as_str()).unwrap_or_else(|| panic!("{j}"));
        assert!(s["samples_ms"].as_array().unwrap().is_empty(), "{j}");
        let note = format!("n/a for variant {v}");
        assert!(s["note"].as_str().unwrap_or_default().starts_with(&note), "{j}");
        assert!(stdout.lines().any(|l| l.starts_with(&name) && l.contains(&note)), "{stdout}");
    }
    assert!(stdout.lines().next().unwrap_or_default().contains("Δ default ms"), "{stdout}");
    assert_eq!(startup_cgroups_left(pid), Vec::<String>::new());
    assert_eq!(workspaces(pid), Vec::<String>::new());
}

/// Deletes a test container on every exit path.
struct ContainerGuard<'a> {
    root: &'a std::path::Path,
    id: String,
}

impl Drop for ContainerGuard<'_> {
    fn drop(&mut self) {
        let _ = Command::new(common::isorun())
            .arg("--root")
            .arg(self.root)
            .args(["delete", "--force", &self.id])
            .output();
    }
}

/// `isorun run` of the variant's bundle in a fresh workspace whose command is `args`; its
/// stdout.
fn run_variant(v: isolab_harness::bench::Variant, args: &[&str]) -> String {
    use isolab_harness::bench::{Variant, Workspace};
    let variants = [Variant::Default, v];
    let ws = Workspace::new(&common::isorun(), std::path::Path::new("/bin/busybox"), (args, &variants), None)
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let guard = ContainerGuard {
        root: root.path(),
        id: format!("isolab-variant-{}-{}", std::process::id(), v.name()),
    };
    let out = Command::new(common::isorun())
        .arg("--root")
        .arg(root.path())
        .args(["run", "-b"])
        .arg(ws.bundle(v))
        .arg(&guard.id)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The variants' bundles take effect: `docker` runs under a seccomp filter with Docker's 14
/// capabilities (the default bundle: none and runc's 3), `userns` as host uid 100000.
#[test]
fn variant_bundles_apply_docker_seccomp_and_caps_and_the_user_namespace() {
    use isolab_harness::bench::Variant;
    let _root = isolab(); // asserts root
    let field = |status: &str, key: &str| {
        status.lines().find_map(|l| l.strip_prefix(key)).map(|v| v.trim().to_owned()).unwrap_or_default()
    };
    let default = run_variant(Variant::Default, &["cat", "/proc/self/status"]);
    assert_eq!(field(&default, "Seccomp:"), "0", "{default}");
    let docker = run_variant(Variant::Docker, &["cat", "/proc/self/status"]);
    assert_eq!(field(&docker, "Seccomp:"), "2", "{docker}");
    // CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW
    // SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
    assert_eq!(field(&docker, "CapEff:"), "00000000a80425fb", "{docker}");
    assert_ne!(field(&default, "CapEff:"), field(&docker, "CapEff:"), "{default}");
    let map = run_variant(Variant::Userns, &["cat", "/proc/self/uid_map"]);
    assert_eq!(map.split_whitespace().collect::<Vec<_>>(), ["0", "100000", "65536"], "{map}");
}

#[test]
fn density_measures_every_variant_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let child = isolab()
        .args(["bench", "density", "--runtimes", "isorun", "--variants", "default,docker,userns"])
        .args(["--n", "2", "--allow-debug-build", "--out"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("bench.json")).unwrap()).unwrap();
    let points = j["density"].as_array().unwrap();
    let got: Vec<(&str, &str, u64)> = points
        .iter()
        .map(|p| {
            (p["runtime"].as_str().unwrap(), p["variant"].as_str().unwrap(), p["started"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(
        got,
        [("isorun", "default", 2), ("isorun+docker", "docker", 2), ("isorun+userns", "userns", 2)]
    );
    assert!(points.iter().all(|p| p["error"].is_null()), "{j}");
    assert!(stdout.lines().any(|l| l.starts_with("isorun+userns")), "{stdout}");
    let state = j["state_roots"].as_str().unwrap();
    match state_tmpfs() {
        Some(parent) => assert!(
            state.starts_with(&format!("{}/isolab-bench-state-{pid}-", parent.display()))
                && state.ends_with(" (tmpfs)"),
            "{state}"
        ),
        None => assert!(state.starts_with(&format!("/tmp/isolab-bench-{pid}-")), "{state}"),
    }
    assert_eq!(leftovers(pid), Vec::<String>::new());
    assert_eq!(workspaces(pid), Vec::<String>::new());
}
