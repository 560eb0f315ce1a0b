//! The two kinds of snapshot users share one cache without evicting each other: the tests'
//! library calls (as under `ci/test`, with the tests' options) and `isolab matrix` (as under
//! `ci/matrix`, with no `--accel`: auto, which is TCG here), alternating on debian-5.10. Every
//! snapshot is built once, when first missing; after that nothing is rebuilt. (Before, the
//! snapshot directory was named by cell and size only, and the two callers' keys differed —
//! `snapshot debian-5.10-v2-2c-512m: built (stale (kernel_sha256, machine_args changed))`.)
//!
//! The cache is a fresh directory with the kernels (and their apt state) and images linked in
//! from the real one. One cause of the differing keys was a race: two VMs of one matrix
//! extracting the same PVH vmlinux at once through one partial file name, one of them failing
//! and booting the bzImage (another `kernel_sha256`); the second test runs that race.

mod vm_support;

use std::path::Path;
use std::process::Command;

use isolab_harness::launch::{boot_restored, describe};
use isolab_harness::matrix::assert_request;
use isolab_harness::protocol::CgroupMode;
use isolab_harness::snapshot::Outcome;

const KERNEL: &str = "debian-5.10";
const ASSERTION: &str = "uts.hostname_and_domainname";

/// `isolab matrix` on both cgroup modes: its `snapshot …: built (…)` lines.
fn matrix_cli(cache: &Path, out: &Path) -> Vec<String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_isolab"));
    cmd.args(["matrix", "--kernels", KERNEL, "--cgroup", "v1,v2", "--only", ASSERTION, "--out"])
        .arg(out)
        .env("ISOLAB_CACHE_DIR", cache)
        .env("ISOLAB_RUNTIME", vm_support::runtime());
    let kvm_works = std::env::var("ISOLAB_KVM_WORKS").is_ok_and(|v| v == "1");
    if kvm_works {
        // The tests' options use TCG: compare like with like.
        cmd.args(["--accel", "tcg"]);
    }
    let o = cmd.output().expect("run isolab matrix");
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    eprintln!("--- isolab matrix ---\n{stdout}{stderr}");
    assert_eq!(o.status.code(), Some(0), "isolab matrix failed:\n{stdout}\n{stderr}");
    if !kvm_works {
        assert!(
            stderr.contains("isolab: accel auto: tcg ("),
            "no --accel: auto, TCG on this host:\n{stderr}"
        );
    }
    assert_eq!(stderr.matches("isolab: accel ").count(), 1, "the choice is said once:\n{stderr}");
    stderr.lines().filter(|l| l.contains(": built (")).map(str::to_string).collect()
}

/// A snapshot user as the tests are: the library with the tests' options (2 vCPUs like the
/// matrix cells), one restored VM on cgroup v2.
fn library_caller(cache: &Path) -> Outcome {
    let mut o = vm_support::options();
    o.cache = cache.to_path_buf();
    o.cpus = 2;
    let k = vm_support::kernel(KERNEL, &o);
    let r = boot_restored(
        &k,
        CgroupMode::V2,
        &assert_request(&[ASSERTION.to_string()], &Default::default()),
        &o,
        &mut |_| {},
    )
    .expect("snapshot");
    eprintln!("--- library ---\n{}", describe(&r));
    assert!(r.report.error.is_none(), "{:?}\n{}", r.report.error, r.report.console_tail.join("\n"));
    r.outcome
}

#[test]
fn tests_and_matrix_reuse_each_other_s_snapshots() {
    let real = isolab_harness::cache::cache_root();
    vm_support::kernel(KERNEL, &vm_support::options()); // fetched into the real cache if needed
    let cache = tempfile::Builder::new().prefix("isolab-snapcache-test-").tempdir_in(&real).unwrap();
    for d in ["kernels", "apt", "debs", "images"] {
        std::fs::create_dir_all(real.join(d)).unwrap();
        std::os::unix::fs::symlink(real.join(d), cache.path().join(d)).unwrap();
    }
    let out = cache.path().join("out");
    let mut built: Vec<String> = Vec::new();
    // Round 1: each caller builds what is missing for it, and only that.
    let m1 = matrix_cli(cache.path(), &out);
    assert!(m1.iter().all(|l| l.contains("(none cached)")), "built for another reason: {m1:?}");
    assert_eq!(m1.len(), 2, "v1 and v2, first use: {m1:?}");
    built.extend(m1);
    let l1 = library_caller(cache.path());
    assert_eq!(l1, Outcome::Reused, "the tests' caller reuses the matrix's v2 snapshot");
    // Rounds 2 and 3: nothing is built again, by either.
    for round in 2..=3 {
        let m = matrix_cli(cache.path(), &out);
        assert!(m.is_empty(), "round {round}: the matrix rebuilt after the tests: {m:?}");
        let l = library_caller(cache.path());
        assert_eq!(l, Outcome::Reused, "round {round}: the tests rebuilt after the matrix");
        built.extend(m);
        if let Outcome::Built(why) = l {
            built.push(format!("library: {why}"));
        }
    }
    let rebuilds: Vec<&String> = built.iter().filter(|l| !l.contains("(none cached)")).collect();
    assert_eq!(rebuilds.len(), 0, "rebuilds: {rebuilds:?}");
    let snaps: Vec<String> = std::fs::read_dir(cache.path().join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    assert_eq!(snaps.len(), 2, "one snapshot per cell, shared by both callers: {snaps:?}");
}

#[test]
fn parallel_pvh_extractions_of_one_kernel_all_get_the_vmlinux() {
    let o = vm_support::options();
    let k = vm_support::kernel(KERNEL, &o);
    let dir = tempfile::tempdir().unwrap();
    let got: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| isolab_harness::image::vmlinux::pvh_vmlinux(&k.files.vmlinuz, dir.path())))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let first = got[0].as_ref().expect("extraction").clone();
    for g in &got {
        assert_eq!(g.as_ref().expect("every extraction succeeds"), &first);
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left.len(), 1, "the vmlinux and no partial file: {left:?}");
}
