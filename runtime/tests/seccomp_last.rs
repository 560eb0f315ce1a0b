//! The seccomp filter is the last step before execve: a profile that allows only what the
//! payload needs (busybox's own syscalls, found with strace) runs, with default action errno
//! and with default action kill, for `run` and for `exec`. Without noNewPrivileges the one
//! syscall isorun still makes after the filter is capset (dropping the CAP_SYS_ADMIN the
//! filter needed).

mod common;

use common::{text, Fixture};
use serde_json::{json, Value};

/// What static busybox needs to start and run `true` (strace -f of `busybox true`).
const BUSYBOX_START: &[&str] = &[
    "arch_prctl",
    "brk",
    "execve",
    "exit_group",
    "getrandom",
    "getuid",
    "mprotect",
    "prctl",
    "prlimit64",
    "readlink",
    "rseq",
    "set_robust_list",
    "set_tid_address",
];

/// `grep` of a file on top: open, read, write.
const GREP: &[&str] = &["close", "ioctl", "newfstatat", "openat", "read", "write"];

fn profile(default: &str, extra: &[&str]) -> Value {
    let names: Vec<&str> = BUSYBOX_START.iter().chain(extra).copied().collect();
    json!({
        "defaultAction": default,
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]
    })
}

fn run_with(default: &str, nnp: bool, extra: &[&str], args: &[&str]) -> (i32, String, String) {
    let mut fx = Fixture::new();
    fx.run(args, |s| {
        s["process"]["noNewPrivileges"] = json!(nnp);
        s["linux"]["seccomp"] = profile(default, extra);
    })
}

#[test]
fn payload_only_profile_runs_with_errno_default_and_nnp() {
    let (code, out, err) = run_with("SCMP_ACT_ERRNO", true, &[], &["true"]);
    assert_eq!(code, 0, "stdout {out}\nstderr {err}");
}

#[test]
fn payload_only_profile_runs_with_kill_default_and_nnp() {
    let (code, out, err) = run_with("SCMP_ACT_KILL", true, &[], &["true"]);
    assert_eq!(code, 0, "stdout {out}\nstderr {err}");
    let (code, out, err) = run_with("SCMP_ACT_KILL_PROCESS", true, &[], &["true"]);
    assert_eq!(code, 0, "stdout {out}\nstderr {err}");
}

#[test]
fn without_nnp_only_capset_follows_the_filter_errno_default() {
    let (code, out, err) = run_with(
        "SCMP_ACT_ERRNO",
        false,
        &[&["capset"], GREP].concat(),
        &["grep", "-E", "CapEff|Seccomp:", "/proc/self/status"],
    );
    assert_eq!(code, 0, "stdout {out}\nstderr {err}");
    // The filter is on, and CAP_SYS_ADMIN (bit 21), kept to load it, is gone again: the
    // default spec's effective set is AUDIT_WRITE, KILL, NET_BIND_SERVICE.
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("CapEff:\t0000000020000420"), "{out}");
}

#[test]
fn without_nnp_only_capset_follows_the_filter_kill_default() {
    let (code, out, err) = run_with("SCMP_ACT_KILL", false, &["capset"], &["true"]);
    assert_eq!(code, 0, "stdout {out}\nstderr {err}");
}

#[test]
fn without_nnp_a_profile_denying_capset_fails_and_says_why() {
    let (code, _, err) = run_with("SCMP_ACT_ERRNO", false, &["write"], &["true"]);
    assert_ne!(code, 0);
    assert!(err.contains("capset") && err.contains("seccomp"), "{err}");
}

#[test]
fn exec_under_a_payload_only_profile() {
    let mut fx = Fixture::new();
    fx.config(&["sleep", "30"], |s| {
        s["process"]["noNewPrivileges"] = json!(true);
        s["linux"]["seccomp"] = profile("SCMP_ACT_KILL", &["clock_nanosleep"]);
    });
    let id = fx.id("seclast");
    let bundle = fx.bundle();
    let out = fx.isorun(&["run", "-d", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = fx.isorun(&["exec", &id, "true"]);
    assert!(out.status.success(), "exec: {:?} {}", out.status, text(&out.stderr));
    assert_eq!(fx.state(&id)["status"], "running");
}
