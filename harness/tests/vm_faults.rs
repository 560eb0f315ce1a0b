//! Faults in the VM harness, for real under TCG: QEMU killed at each stage (while it boots,
//! while the agent runs a request, while a snapshot is built, while a VM is restored), the
//! snapshot store's disk full, a snapshot's RAM file truncated while a VM runs from it. Each
//! is an error that says why, and nothing is left: no QEMU, no VM temp dir, no half-built
//! snapshot; a damaged snapshot is rebuilt on its next use.
//!
//! QEMU is started through a wrapper script that records its pid, so a test can SIGKILL the
//! n-th QEMU at the moment it chooses. Every VM temp dir of the test process goes under the
//! test's own TMPDIR, so leftovers are counted exactly (nextest runs each test in its own
//! process).

mod vm_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use isolab_harness::lab;
use isolab_harness::lab::LabOptions;
use isolab_harness::launch::{self, LaunchError, Restored};
use isolab_harness::protocol::{Action, CgroupMode, Event, Request, PROTOCOL_VERSION};
use isolab_harness::snapshot::{Outcome, SnapshotError, Why};
use isolab_harness::vm::{guard, VmError};

const KERNEL: &str = "debian-6.1";

/// One test's scene: its temp dir (TMPDIR of the VMs, the snapshot store), the QEMU wrapper
/// and the file it records pids in.
struct Scene {
    dir: tempfile::TempDir,
    pids: PathBuf,
    wrapper: PathBuf,
}

impl Scene {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        std::env::set_var("TMPDIR", &tmp);
        let pids = dir.path().join("qemu.pids");
        let wrapper = dir.path().join("qemu-wrapper");
        let script = format!(
            "#!/bin/sh\ncase \"$*\" in *-machine*) echo $$ >> '{}' ;; esac\nexec qemu-system-x86_64 \"$@\"\n",
            pids.display()
        );
        std::fs::write(&wrapper, script).unwrap();
        Command::new("chmod").arg("755").arg(&wrapper).status().unwrap();
        std::fs::create_dir(dir.path().join("store")).unwrap();
        Scene { dir, pids, wrapper }
    }

    fn options(&self) -> LabOptions {
        let mut o = vm_support::options();
        o.qemu = self.wrapper.display().to_string();
        o
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// The pids of the VMs started so far, in order.
    fn started(&self) -> Vec<u32> {
        std::fs::read_to_string(&self.pids)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// From a thread: SIGKILL the `nth` QEMU (0-based) `after` it started. Returns its pid.
    fn kill_nth_after(&self, nth: usize, after: Duration) -> std::thread::JoinHandle<u32> {
        let pids = self.pids.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(300);
            let pid = loop {
                let all: Vec<u32> = std::fs::read_to_string(&pids)
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect();
                if let Some(p) = all.get(nth) {
                    break *p;
                }
                assert!(Instant::now() < deadline, "QEMU #{nth} never started");
                std::thread::sleep(Duration::from_millis(20));
            };
            std::thread::sleep(after);
            sigkill(pid);
            pid
        })
    }

    /// What is left: QEMU processes still alive, VM temp dirs, half-built snapshots.
    fn leftovers(&self) -> Vec<String> {
        let mut left: Vec<String> =
            self.started().into_iter().filter(|p| alive(*p)).map(|p| format!("QEMU pid {p} alive")).collect();
        if guard::live_count() != 0 {
            left.push(format!("{} QEMU in the guard", guard::live_count()));
        }
        for (dir, what) in [(self.dir.path().join("tmp"), "VM temp dir"), (self.store(), "store entry")] {
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if what == "VM temp dir" || name.starts_with(".build-") || name.starts_with(".old-") {
                    left.push(format!("{what} {name}"));
                }
            }
        }
        left
    }
}

fn sigkill(pid: u32) {
    let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
}

/// Alive and not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

fn exec(script: &str) -> Request {
    Request {
        protocol_version: PROTOCOL_VERSION,
        action: Action::Exec {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: vec![],
            timeout_secs: 0,
        },
    }
}

fn idle() -> Request {
    Request { protocol_version: PROTOCOL_VERSION, action: Action::Idle }
}

fn restored(
    s: &Scene,
    o: &LabOptions,
    req: &Request,
    on_event: &mut dyn FnMut(&Event),
) -> Result<Restored, Box<LaunchError>> {
    let k = vm_support::kernel(KERNEL, o);
    launch::boot_restored_in(&s.store(), &k, CgroupMode::V2, req, o, on_event).map_err(Box::new)
}

fn assert_killed(e: &Option<VmError>) {
    match e {
        Some(VmError::QemuDied { status, .. }) => assert!(status.contains("signal: 9"), "{status}"),
        other => panic!("expected QEMU's death by SIGKILL as the error, got {other:?}"),
    }
}

#[test]
fn qemu_killed_while_it_boots_is_an_error_and_leaves_nothing() {
    let s = Scene::new();
    let o = s.options();
    let k = vm_support::kernel(KERNEL, &o);
    let img = lab::image_for(&k, &o, None, &|_, _| {}).expect("image");
    let killer = s.kill_nth_after(0, Duration::from_millis(300));
    let r = lab::boot(&k, &img, CgroupMode::V2, &idle(), &o, false, &mut |_| {});
    killer.join().unwrap();
    assert!(r.hello.is_none(), "the agent said hello before the kill: retime the test");
    assert_killed(&r.error);
    assert_eq!(s.leftovers(), Vec::<String>::new());
}

#[test]
fn qemu_killed_while_the_agent_runs_a_request_is_an_error_and_leaves_nothing() {
    let s = Scene::new();
    let o = s.options();
    let k = vm_support::kernel(KERNEL, &o);
    let img = lab::image_for(&k, &o, None, &|_, _| {}).expect("image");
    let started = s.pids.clone();
    let mut on_event = |ev: &Event| {
        if matches!(ev, Event::Hello { .. }) {
            let pid = std::fs::read_to_string(&started).unwrap().trim().parse().unwrap();
            sigkill(pid);
        }
    };
    let r = lab::boot(&k, &img, CgroupMode::V2, &exec("sleep 30"), &o, false, &mut on_event);
    assert!(r.hello.is_some());
    assert_killed(&r.error);
    assert_eq!(s.leftovers(), Vec::<String>::new());
}

#[test]
fn qemu_killed_while_a_snapshot_is_built_fails_the_build_with_its_reason_and_leaves_no_half_snapshot() {
    let s = Scene::new();
    let o = s.options();
    let killer = s.kill_nth_after(0, Duration::from_millis(300));
    let r = restored(&s, &o, &exec("echo unreachable"), &mut |_| {});
    killer.join().unwrap();
    match r {
        Err(e) if matches!(*e, LaunchError::Snapshot(SnapshotError::Save { .. })) => {
            let detail = e.to_string();
            assert!(detail.contains("QEMU exited before the agent finished (signal: 9"), "{detail}")
        }
        Err(other) => panic!("expected a snapshot save error, got {other}"),
        Ok(r) => panic!("expected a snapshot save error, got a VM: {:?}", r.report.error),
    }
    assert_eq!(s.started().len(), 1, "no VM may start from a snapshot whose build failed");
    let entries: Vec<String> = std::fs::read_dir(s.store())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    assert_eq!(entries, Vec::<String>::new(), "the store holds only locks after a failed build");
    assert_eq!(s.leftovers(), Vec::<String>::new());
}

#[test]
fn qemu_killed_while_restoring_is_an_error_and_the_snapshot_stays_good() {
    let s = Scene::new();
    let o = s.options();
    let first = restored(&s, &o, &idle(), &mut |_| {}).expect("build and restore");
    assert!(first.report.error.is_none(), "{:?}", first.report.error);
    let n = s.started().len();
    let killer = s.kill_nth_after(n, Duration::from_millis(50));
    let killed = restored(&s, &o, &exec("sleep 30"), &mut |_| {}).expect("a restored VM, killed");
    let pid = killer.join().unwrap();
    eprintln!("started {:?}, killed {pid}", s.started());
    assert_killed(&killed.report.error);
    assert_eq!(killed.outcome, Outcome::Reused);
    assert_eq!(s.leftovers(), Vec::<String>::new());
    let again = restored(&s, &o, &exec("echo again"), &mut |_| {}).expect("restore after the kill");
    assert!(again.report.error.is_none(), "{:?}", again.report.error);
    assert_eq!(again.outcome, Outcome::Reused, "a killed restore must not damage the snapshot");
    assert_eq!(s.leftovers(), Vec::<String>::new());
}

#[test]
fn a_ram_file_truncated_while_a_vm_runs_from_it_is_an_error_or_harmless_and_is_rebuilt_next_time() {
    let s = Scene::new();
    let o = s.options();
    let first = restored(&s, &o, &idle(), &mut |_| {}).expect("build and restore");
    assert!(first.report.error.is_none(), "{:?}", first.report.error);
    let ram = snapshot_ram(&s.store());
    let mut on_event = |ev: &Event| {
        if matches!(ev, Event::Hello { .. }) {
            std::fs::File::options().write(true).open(&ram).unwrap().set_len(0).unwrap();
        }
    };
    // The guest touches fresh memory after the truncation (a 64 MiB tmpfs file).
    let during = restored(
        &s,
        &o,
        &exec("mount -t tmpfs -o size=80m t /mnt && dd if=/dev/zero of=/mnt/f bs=1M count=64 2>&1; echo survived"),
        &mut on_event,
    )
    .expect("a restored VM");
    match &during.report.error {
        // Pages of the private mapping past the new end of file: QEMU gets SIGBUS.
        Some(VmError::QemuDied { status, .. }) => {
            eprintln!("QEMU died: {status}");
            assert!(status.contains("signal"), "{status}")
        }
        Some(other) => panic!("an error that does not say QEMU died: {other}"),
        None => eprintln!("the guest never touched a page past the truncation: harmless this time"),
    }
    assert_eq!(s.leftovers(), Vec::<String>::new());
    let next = restored(&s, &o, &exec("echo rebuilt"), &mut |_| {}).expect("the next restore");
    match &next.outcome {
        Outcome::Built(Why::Damaged(why)) => assert!(why.contains("ram is 0 bytes"), "{why}"),
        other => panic!("expected a rebuild of the damaged snapshot, got {other:?}"),
    }
    assert!(next.report.error.is_none(), "{:?}", next.report.error);
    assert_eq!(s.leftovers(), Vec::<String>::new());
}

#[test]
fn a_full_snapshot_disk_fails_the_build_with_its_reason_and_leaves_nothing() {
    let s = Scene::new();
    // A 48 MiB tmpfs as the store, in a mount namespace of this test process only.
    vm_support::private_mount_namespace();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=48m", "isolab-full"])
        .arg(s.store())
        .status()
        .unwrap();
    assert!(status.success(), "mount a small tmpfs on the store");
    let o = s.options();
    let r = restored(&s, &o, &exec("echo unreachable"), &mut |_| {});
    match r {
        Err(e) if matches!(*e, LaunchError::Snapshot(_)) => {
            let text = e.to_string();
            eprintln!("the build's error: {text}");
            assert!(text.contains("(is the disk full?)"), "the reason is not named: {text}");
        }
        Err(other) => panic!("expected a snapshot error, got {other}"),
        Ok(r) => panic!("a 48 MiB store held a 512 MiB snapshot? {:?}", r.report.error),
    }
    assert_eq!(s.leftovers(), Vec::<String>::new());
    let used = Command::new("df").args(["--output=used", "-B1"]).arg(s.store()).output().unwrap();
    let used: u64 = String::from_utf8_lossy(&used.stdout).lines().nth(1).unwrap().trim().parse().unwrap();
    assert!(used < 1 << 20, "the failed build left {used} bytes in the store");
}

/// The RAM file of the store's only snapshot.
fn snapshot_ram(store: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(store)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.join("manifest.json").is_file())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].join("ram")
}
