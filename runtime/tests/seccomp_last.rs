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

/// SCMP_ACT_NOTIFY (runc 1.1): the notify fd reaches `listenerPath` with runc's
/// ContainerProcessState; once the listener closes it, the notified syscall fails ENOSYS.
#[test]
fn notify_fd_goes_to_the_listener_with_the_state() {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    let mut fx = Fixture::new();
    let sock = fx.tmp.path().join("listener.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let got = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 64 << 10];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = nix::sys::socket::recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            nix::sys::socket::MsgFlags::empty(),
        )
        .unwrap();
        let fds: Vec<RawFd> = msg
            .cmsgs()
            .unwrap()
            .filter_map(|c| match c {
                nix::sys::socket::ControlMessageOwned::ScmRights(f) => Some(f),
                _ => None,
            })
            .flatten()
            .collect();
        let len = msg.bytes;
        let state: Value = serde_json::from_slice(&buf[..len]).unwrap();
        let fd = fds.first().map(|f| {
            // SAFETY: the fd was just received; nothing else owns it.
            unsafe { OwnedFd::from_raw_fd(*f) }
        });
        let kind =
            fd.as_ref().map(|f| std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd())).unwrap());
        (state, kind) // the fd is closed here: notified syscalls now fail ENOSYS
    });
    let (code, _, err) = fx.run(&["mkdir", "/tmp/notified"], |s| {
        s["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": sock,
            "listenerMetadata": "meta", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]});
    });
    let (state, kind) = got.join().unwrap();
    assert_eq!(state["fds"], json!(["seccompFd"]), "{state}");
    assert_eq!(state["metadata"], "meta");
    assert_eq!(state["state"]["status"], "creating");
    assert!(state["pid"].as_i64().is_some_and(|p| p > 0), "{state}");
    assert_eq!(kind.unwrap().to_string_lossy(), "anon_inode:seccomp notify");
    assert_ne!(code, 0);
    assert!(err.contains("Function not implemented"), "{err}");
}
