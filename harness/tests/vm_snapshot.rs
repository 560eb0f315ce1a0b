//! Snapshots for real under TCG: a restored VM runs a request end to end with the runtime
//! from its payload, restored copies are independent (random bytes, clock), a stale or
//! damaged snapshot is rebuilt, never used, and another image gets a snapshot of its own.
//! Each test keeps its snapshots in its own temp dir.

mod vm_support;

use std::path::Path;

use isolab_harness::lab::LabOptions;
use isolab_harness::launch::{boot_restored_in, Restored};
use isolab_harness::protocol::{Action, CgroupMode, Event, Request, Stream, PROTOCOL_VERSION};
use isolab_harness::snapshot::{Outcome, Why};

fn exec(script: &str) -> Request {
    Request {
        protocol_version: PROTOCOL_VERSION,
        action: Action::Exec {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: vec![],
            timeout_secs: 60,
        },
    }
}

fn stdout(r: &Restored) -> Vec<String> {
    r.report
        .events
        .iter()
        .filter_map(|e| match e {
            Event::CommandOutput { stream: Stream::Stdout, line } => Some(line.clone()),
            _ => None,
        })
        .collect()
}

fn run(store: &Path, o: &LabOptions, req: &Request) -> Restored {
    let k = vm_support::kernel("debian-6.1", o);
    let r = boot_restored_in(store, &k, CgroupMode::V2, req, o, &mut |_| {}).expect("snapshot");
    assert!(r.report.error.is_none(), "{:?}\n{}", r.report.error, r.report.console_tail.join("\n"));
    r
}

#[test]
fn restored_vms_run_requests_with_their_own_random_state_and_clock() {
    let store = tempfile::tempdir().unwrap();
    let o = vm_support::options();
    let script = "cat /proc/sys/kernel/random/uuid; head -c 16 /dev/random | od -An -tx1 | tr -d ' '; \
                  date +%s; /isolab/runtime --version | head -1";
    let a = run(store.path(), &o, &exec(script));
    assert_eq!(a.outcome, Outcome::Built(Why::Missing));
    let b = run(store.path(), &o, &exec(script));
    assert_eq!(b.outcome, Outcome::Reused, "the second VM starts from the same snapshot");
    let (oa, ob) = (stdout(&a), stdout(&b));
    assert_eq!((oa.len(), ob.len()), (4, 4), "{oa:?} {ob:?}");
    assert_ne!(oa[0], ob[0], "two copies of one snapshot gave the same uuid");
    assert_ne!(oa[1], ob[1], "two copies of one snapshot read the same /dev/random bytes");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    for out in [&oa, &ob] {
        let guest: i64 = out[2].parse().expect("date +%s");
        assert!((now - guest).abs() < 60, "guest clock {guest} vs host {now}: not set on restore");
    }
    let rt = o.runtime.as_ref().unwrap().file_name().unwrap().to_string_lossy().into_owned();
    assert!(oa[3].contains(&rt) || oa[3].contains("version"), "runtime from the payload: {:?}", oa[3]);
    assert_eq!(a.report.exit_code(), Some(0));
    let Some(Event::Hello { kernel_release, phases_ms, boot_warnings, .. }) = &b.report.hello else {
        panic!("no hello")
    };
    assert!(kernel_release.starts_with("6.1."), "{kernel_release}");
    assert!(
        boot_warnings.is_empty(),
        "entropy, clock and payload applied without a problem: {boot_warnings:?}"
    );
    assert_eq!(phases_ms.last().map(|p| p.0.as_str()), Some("restored"));
    eprintln!(
        "restored: QEMU start -> agent ready {:.3}s, {:.3}s",
        a.report.boot_time.unwrap().as_secs_f64(),
        b.report.boot_time.unwrap().as_secs_f64()
    );
}

#[test]
fn stale_or_damaged_snapshots_are_rebuilt_never_used() {
    let store = tempfile::tempdir().unwrap();
    let mut o = vm_support::options();
    let idle = Request { protocol_version: PROTOCOL_VERSION, action: Action::Idle };
    let r = run(store.path(), &o, &idle);
    assert_eq!(r.outcome, Outcome::Built(Why::Missing));
    let dir = store.path().join(&r.name);
    let edit_manifest = |f: &dyn Fn(&mut serde_json::Value)| {
        let p = dir.join("manifest.json");
        let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        f(&mut m);
        std::fs::write(&p, serde_json::to_vec(&m).unwrap()).unwrap();
    };

    // Built for another QEMU: stale.
    edit_manifest(&|m| m["key"]["qemu_version"] = "QEMU emulator version 6.0.0".into());
    let r = run(store.path(), &o, &idle);
    assert_eq!(r.outcome, Outcome::Built(Why::Stale(vec!["qemu_version".into()])));

    // The image changed (module signatures kept: other bytes, another initramfs): another key,
    // a snapshot of its own beside the first, which is still there when the image is back.
    o.strip_module_signatures = false;
    let other = run(store.path(), &o, &idle);
    assert_eq!(other.outcome, Outcome::Built(Why::Missing));
    assert_ne!(other.name, r.name, "a key of its own, a directory of its own");
    o.strip_module_signatures = true;
    let back = run(store.path(), &o, &idle);
    assert_eq!(back.outcome, Outcome::Reused, "back to the first image: its snapshot was kept");

    // Damaged files.
    std::fs::write(dir.join("state"), b"not a migration stream").unwrap();
    let r = run(store.path(), &o, &idle);
    assert!(matches!(&r.outcome, Outcome::Built(Why::Damaged(w)) if w.contains("sha256")), "{:?}", r.outcome);
    std::fs::File::options().write(true).open(dir.join("ram")).unwrap().set_len(4096).unwrap();
    let r = run(store.path(), &o, &idle);
    assert!(matches!(&r.outcome, Outcome::Built(Why::Damaged(w)) if w.contains("ram")), "{:?}", r.outcome);

    // A state QEMU refuses although its hash matches the manifest: caught at restore, rebuilt.
    let junk = b"QEVM junk that is no migration stream".to_vec();
    std::fs::write(dir.join("state"), &junk).unwrap();
    let sha = isolab_harness::cache::sha256_file(&dir.join("state")).unwrap();
    edit_manifest(&|m| m["state_sha256"] = sha.clone().into());
    let r = run(store.path(), &o, &idle);
    assert!(
        matches!(&r.outcome, Outcome::Built(Why::Damaged(w)) if w.contains("QEMU could not restore")),
        "{:?}",
        r.outcome
    );
    assert_eq!(run(store.path(), &o, &idle).outcome, Outcome::Reused, "and the rebuilt one is used");
}
