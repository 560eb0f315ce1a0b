//! Escapes whose protection is the runtime's behaviour, not a config field: the negative
//! control is a deliberately weakened runtime, a wrapper script around isorun that
//! - opens the host's `/` as fd 3 and passes it on with `--preserve-fds 1` (what a runtime
//!   leaking a host fd into the container does: CVE-2024-21626), or
//! - adds `--no-new-keyring` to `run`/`create` (the container keeps the caller's session
//!   keyring), while `exec` keeps isorun's behaviour.
//!
//! Against the plain runtime each PASSes, against the wrapper each must FAIL.

mod common;
mod vm_support;

use std::path::{Path, PathBuf};

use isolab_harness::catalogue::{self, Ctx};
use isolab_harness::protocol::Outcome;
use test_case::test_case;

/// Write an executable wrapper of `real` into `dir`: `$1 $2` are `--root STATE`, `$3` the
/// subcommand; `inject` is inserted after the subcommands it names.
fn wrapper(dir: &Path, real: &Path, prelude: &str, subcommands: &str, inject: &str) -> PathBuf {
    let path = dir.join("weakened-runtime");
    let script = format!(
        "#!/bin/sh\nroot=\"$2\"; sub=\"$3\"; shift 3\ncase \"$sub\" in\n  {subcommands}) {prelude}\n    \
         exec {real} --root \"$root\" \"$sub\" {inject} \"$@\";;\n  *) exec {real} --root \"$root\" \"$sub\" \"$@\";;\nesac\n",
        real = real.display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path
}

/// Run `id` against `runtime` (not weakened: the weakness is in the runtime).
fn run_with(id: &str, runtime: &Path) -> (Outcome, String) {
    let all = catalogue::catalogue();
    let a = all.iter().find(|a| a.id == id).unwrap();
    let dir = tempfile::Builder::new().prefix("isolab-cat-").tempdir_in("/tmp").unwrap();
    let mut ctx = Ctx::new(runtime, dir.path(), Path::new("/bin/busybox")).unwrap();
    let v = catalogue::run_one(a, &mut ctx);
    (v.outcome, v.detail)
}

fn passes_and_fails_wrapped(id: &str, prelude: &str, subcommands: &str, inject: &str) {
    vm_support::agent(); // the static agent carries the probes into the rootfs
    let real = common::isorun();
    let (outcome, detail) = run_with(id, &real);
    assert_eq!(outcome, Outcome::Pass, "{id}: {detail}");
    let dir = tempfile::tempdir().unwrap();
    let weak = wrapper(dir.path(), &real, prelude, subcommands, inject);
    let (outcome, detail) = run_with(id, &weak);
    eprintln!("{id} against the weakened runtime: {detail}");
    assert_eq!(outcome, Outcome::Fail, "{id} against a runtime that {inject}: {detail}");
}

#[test_case("escape.cve_2024_21626_fds")]
#[test_case("escape.cve_2024_21626_cwd")]
fn passes_and_a_runtime_leaking_a_host_fd_fails(id: &str) {
    passes_and_fails_wrapped(id, "exec 3</", "run|create|exec", "--preserve-fds 1");
}

#[test]
fn keyring_passes_and_a_runtime_keeping_the_callers_keyring_fails() {
    passes_and_fails_wrapped("escape.keyring_session", "", "run|create", "--no-new-keyring");
}
