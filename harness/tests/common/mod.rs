//! Shared by the catalogue tests: run one assertion against isorun on this host, normally or
//! with its negative control, and insist on PASS / FAIL.
#![allow(dead_code)]

use std::path::PathBuf;

use isolab_harness::catalogue::{self, Ctx, Need};
use isolab_harness::protocol::Outcome;

/// The isorun binary of this workspace (built by `cargo build`/nextest), or the runtime
/// named by `ISOLAB_TEST_RUNTIME` (e.g. /usr/sbin/runc) to check another runtime.
pub fn isorun() -> PathBuf {
    if let Some(p) = std::env::var_os("ISOLAB_TEST_RUNTIME") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    for profile in ["debug", "release"] {
        let p = target.join(profile).join("isorun");
        if p.exists() {
            return p;
        }
    }
    panic!("isorun is not built under {} (cargo build -p isolab-runtime)", target.display());
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Run assertion `id` (weakened or not); its outcome and detail.
pub fn run(id: &str, weakened: bool) -> (Outcome, String) {
    assert!(is_root(), "the catalogue runs real containers and needs root");
    let all = catalogue::catalogue();
    let a = all.iter().find(|a| a.id == id).unwrap_or_else(|| panic!("no assertion {id}"));
    let dir = tempfile::Builder::new().prefix("isolab-cat-").tempdir_in("/tmp").unwrap();
    let mut ctx = Ctx::new(&isorun(), dir.path(), std::path::Path::new("/bin/busybox")).unwrap();
    if weakened {
        ctx.weaken = Some(a.weaken);
    }
    let v = catalogue::run_one(a, &mut ctx);
    (v.outcome, v.detail)
}

/// The assertion PASSes, and FAILs against its negative control. A SKIP is accepted only
/// when this host lacks a cgroup layout the assertion needs (v1-only or v2-only checks);
/// any other SKIP fails the test, loudly.
pub fn passes_and_control_fails(id: &str) {
    let (outcome, detail) = run(id, false);
    if outcome == Outcome::Skip {
        let a = catalogue::catalogue().into_iter().find(|a| a.id == id).unwrap();
        let layout_only = a.needs.iter().any(|n| matches!(n, Need::CgroupV1 | Need::CgroupV2));
        assert!(layout_only, "{id} skipped on this host: {detail}");
        eprintln!("SKIP {id}: {detail}");
        return;
    }
    assert_eq!(outcome, Outcome::Pass, "{id}: {detail}");
    let (weak, detail) = run(id, true);
    eprintln!("{id} against its negative control: {detail}");
    assert_eq!(weak, Outcome::Fail, "{id} against its weakened config must FAIL: {detail}");
}
