//! Seccomp filters on real processes: compiled in the test, installed in a forked child which
//! reports what its syscalls returned through its exit status; and end to end through `isorun`.

mod common;

use common::Fixture;
use isolab_runtime::seccomp::{compile, install, parse, Filter};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use serde_json::{json, Value};

fn filter(v: Value) -> Filter {
    compile(&parse(&v).unwrap()).unwrap()
}

#[derive(Debug, PartialEq)]
enum End {
    Exit(i32),
    Signal(Signal),
}

/// Forks; the child sets no_new_privs, installs `f` and exits with `body()`'s value.
/// The child only makes raw syscalls (no allocation on the success path).
fn in_child(f: &Filter, body: fn() -> i32) -> End {
    // SAFETY: the child only calls async-signal-safe functions (prctl, seccomp, raw
    // syscalls, _exit); `install` does not allocate on success.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: plain prctl with integer arguments.
        let nnp = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        let code = if nnp != 0 {
            200
        } else if install(f).is_err() {
            201
        } else {
            body()
        };
        // SAFETY: ends the forked child without running the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    match waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap() {
        WaitStatus::Exited(_, code) => End::Exit(code),
        WaitStatus::Signaled(_, sig, _) => End::Signal(sig),
        other => panic!("child: {other:?}"),
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `mkdir("/proc/self/seccomp-test")`: its errno (the kernel itself would say ENOENT).
fn mkdir_errno() -> i32 {
    // SAFETY: a valid NUL-terminated path.
    let r = unsafe { libc::syscall(libc::SYS_mkdir, c"/proc/self/seccomp-test".as_ptr(), 0o700) };
    if r == 0 {
        0
    } else {
        errno()
    }
}

fn deny_mkdir(action: &str, errno: Option<i32>) -> Filter {
    let mut rule = json!({"names": ["mkdir"], "action": action});
    if let Some(e) = errno {
        rule["errnoRet"] = json!(e);
    }
    filter(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"], "syscalls": [rule]}),
    )
}

#[test]
fn without_filter_mkdir_fails_with_enoent() {
    assert_eq!(mkdir_errno(), libc::ENOENT);
}

#[test]
fn errno_action_returns_errno_ret() {
    assert_eq!(
        in_child(&deny_mkdir("SCMP_ACT_ERRNO", Some(libc::ENOSYS)), mkdir_errno),
        End::Exit(libc::ENOSYS)
    );
}

#[test]
fn errno_action_defaults_to_eperm() {
    assert_eq!(in_child(&deny_mkdir("SCMP_ACT_ERRNO", None), mkdir_errno), End::Exit(libc::EPERM));
}

#[test]
fn allow_and_log_let_the_syscall_through() {
    assert_eq!(in_child(&deny_mkdir("SCMP_ACT_LOG", None), mkdir_errno), End::Exit(libc::ENOENT));
    let f = filter(
        json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["mkdir", "exit_group", "exit"], "action": "SCMP_ACT_ALLOW"}]}),
    );
    assert_eq!(in_child(&f, mkdir_errno), End::Exit(libc::ENOENT));
}

#[test]
fn kill_actions_kill_with_sigsys() {
    for action in ["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP"] {
        assert_eq!(in_child(&deny_mkdir(action, None), mkdir_errno), End::Signal(Signal::SIGSYS), "{action}");
    }
}

#[test]
fn argument_conditions() {
    // getpid ignores its arguments, but seccomp sees them: arg0 == 42 or arg1 > 2^32 → EACCES.
    let f = filter(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EACCES, "args": [{"index": 0, "value": 42, "op": "SCMP_CMP_EQ"}]},
        {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EBADF, "args": [{"index": 1, "value": 0x1_0000_0000u64, "op": "SCMP_CMP_GT"}]}]}));
    fn body() -> i32 {
        let call = |a: u64, b: u64| {
            // SAFETY: getpid has no arguments; the extra registers are ignored by the kernel.
            let r = unsafe { libc::syscall(libc::SYS_getpid, a, b) };
            if r > 0 {
                0
            } else {
                errno()
            }
        };
        match (call(42, 0), call(41, 0), call(0, 0x1_0000_0001), call(0, 0x1_0000_0000)) {
            (libc::EACCES, 0, libc::EBADF, 0) => 0,
            (a, b, c, d) => {
                100 + (a != libc::EACCES) as i32
                    + 2 * (b != 0) as i32
                    + 4 * (c != libc::EBADF) as i32
                    + 8 * (d != 0) as i32
            }
        }
    }
    assert_eq!(in_child(&f, body), End::Exit(0));
}

#[test]
fn flags_are_accepted_by_the_kernel() {
    let f = filter(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EXDEV}]}),
    );
    assert_eq!(in_child(&f, mkdir_errno), End::Exit(libc::EXDEV));
}

fn enosys_mkdir(spec: &mut Value) {
    spec["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]});
}

#[test]
fn isorun_applies_the_profile() {
    let mut f = Fixture::new();
    let (code, out, err) = f.run(&["sh", "-c", "mkdir /tmp/x; echo rc=$?"], enosys_mkdir);
    assert_eq!(code, 0, "stderr: {err}");
    assert!(err.contains("Function not implemented"), "stderr: {err}");
    assert_eq!(out.trim(), "rc=1");
}

#[test]
fn isorun_applies_the_profile_without_no_new_privileges() {
    let mut f = Fixture::new();
    let (code, out, err) = f.run(&["sh", "-c", "mkdir /tmp/x; echo rc=$?"], |s| {
        enosys_mkdir(s);
        s["process"]["noNewPrivileges"] = json!(false);
    });
    assert_eq!(code, 0, "stderr: {err}");
    assert!(err.contains("Function not implemented"), "stderr: {err}");
    assert_eq!(out.trim(), "rc=1");
}

#[test]
fn isorun_rejects_an_unknown_action_with_its_path() {
    let mut f = Fixture::new();
    let (code, _, err) = f.run(&["true"], |s| {
        s["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_LOG"},
            {"names": ["mkdir"], "action": "SCMP_ACT_FOO"}]});
    });
    assert_ne!(code, 0);
    assert!(err.contains("linux.seccomp.syscalls[1].action"), "stderr: {err}");
}

#[test]
fn isorun_names_an_unreachable_notify_listener() {
    let mut f = Fixture::new();
    let (code, _, err) = f.run(&["true"], |s| {
        s["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/none.sock",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]});
    });
    assert_ne!(code, 0);
    assert!(err.contains("linux.seccomp.listenerPath /run/none.sock"), "stderr: {err}");
}

/// getpid through the i386 ABI (`int $0x80`, eax = 20): the pid, or -errno.
fn i386_getpid() -> i64 {
    let mut eax: i64 = 20;
    // SAFETY: `int $0x80` with eax = 20 (i386 getpid) takes no arguments and only writes eax;
    // the kernel preserves every other register except r8–r11 on this path, declared clobbered.
    unsafe {
        std::arch::asm!("int 0x80", inout("rax") eax, out("r8") _, out("r9") _, out("r10") _, out("r11") _, options(nostack));
    }
    eax
}

#[test]
fn other_abis_are_killed_unless_listed() {
    // SAFETY: plain getpid.
    let pid = i64::from(unsafe { libc::getpid() });
    if i386_getpid() != pid {
        // ia32 emulation disabled (ia32_emulation=0 or !CONFIG_IA32_EMULATION): nothing to test.
        eprintln!("SKIP: no i386 ABI on this kernel");
        return;
    }
    fn body() -> i32 {
        // SAFETY: plain getpid.
        let pid = i64::from(unsafe { libc::getpid() });
        i32::from(i386_getpid() != pid)
    }
    let native_only = filter(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}),
    );
    assert_eq!(in_child(&native_only, body), End::Signal(Signal::SIGSYS));
    assert_eq!(in_child(&deny_mkdir("SCMP_ACT_ERRNO", None), body), End::Exit(0), "x86 is listed: allowed");
}

/// Docker 20.10's default profile and capabilities, as captured from a real `docker run`
/// (`vm-images/engine-configs/docker.json`), with mkdir answered ENOSYS (a rule first in the
/// list wins in libseccomp, so the profile's own allow of mkdir comes later).
fn docker_profile_enosys_mkdir(spec: &mut Value) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../vm-images/engine-configs/docker.json");
    let docker: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut profile = docker["linux"]["seccomp"].clone();
    let deny = json!({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS});
    profile["syscalls"].as_array_mut().unwrap().insert(0, deny);
    spec["linux"]["seccomp"] = profile;
    spec["process"]["capabilities"] = docker["process"]["capabilities"].clone();
}

/// `create` and `exec` compile the profile on a worker thread (on a miss of the compile
/// cache), then clone3; `clone_into` refuses a process with more than one thread (`clone3
/// refused: the process has N threads`), so each of these getting through shows the worker
/// was gone at clone time. Each run's profile differs (an `acct` rule with its own errno) and
/// the cache is emptied before each exec, so every one of them compiles.
#[test]
fn create_and_exec_with_a_profile_clone_from_one_thread() {
    let mut f = Fixture::new();
    let cache = f.root().join(isolab_runtime::seccomp::cache::CACHE_DIR);
    for i in 0..5 {
        let (code, out, err) = f.run(&["sh", "-c", "mkdir /tmp/x; echo rc=$?"], |s| {
            docker_profile_enosys_mkdir(s);
            let acct = json!({"names": ["acct"], "action": "SCMP_ACT_ERRNO", "errnoRet": 100 + i});
            s["linux"]["seccomp"]["syscalls"].as_array_mut().unwrap().insert(0, acct);
        });
        assert_eq!(code, 0, "stderr: {err}");
        assert!(!err.contains("clone3 refused"), "stderr: {err}");
        assert!(err.contains("Function not implemented"), "stderr: {err}");
        assert_eq!(out.trim(), "rc=1");
    }
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 5, "one entry per profile");
    let id = f.running_sleep(docker_profile_enosys_mkdir);
    for _ in 0..3 {
        std::fs::remove_dir_all(&cache).unwrap();
        let out = f.isorun(&["exec", &id, "sh", "-c", "mkdir /tmp/y; echo rc=$?"]);
        let err = common::text(&out.stderr);
        assert!(out.status.success(), "exec: {err}");
        assert!(err.contains("Function not implemented"), "stderr: {err}");
        assert_eq!(common::text(&out.stdout).trim(), "rc=1");
    }
}

/// The other half: the check does refuse a caller with a second live thread (this test
/// process, with one more thread parked), and no child is made.
#[test]
fn clone_into_refuses_a_caller_with_another_thread() {
    use isolab_runtime::sys::process::{clone_into, CloneError, Forked};
    use isolab_runtime::sys::threads::ThreadsError;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let parked = std::thread::spawn(move || rx.recv().ok());
    match clone_into(0, None) {
        Err(CloneError::NotSingleThreaded(ThreadsError::MultiThreaded { threads })) => {
            assert!(threads >= 2, "{threads}")
        }
        Err(e) => panic!("expected the multi-threaded refusal, got {e}"),
        Ok(Forked::Child) => {
            // SAFETY: ends the wrongly cloned child at once, running nothing of the parent's.
            unsafe { libc::_exit(99) }
        }
        Ok(Forked::Parent(pid)) => panic!("cloned child {pid} from a multi-threaded process"),
    }
    let err = clone_into(0, None).unwrap_err().to_string();
    assert!(err.starts_with("clone3 refused: the process has "), "{err}");
    drop(tx);
    parked.join().unwrap();
}

/// `isorun --log FILE --log-level debug run` of the fixture's bundle; (exit code, stdout,
/// stderr, the debug log of this run).
fn run_logged(f: &mut Fixture) -> (i32, String, String, String) {
    let id = f.id("cache");
    let log = f.tmp.path().join(format!("{id}.log"));
    let bundle = f.bundle();
    let out = f.isorun(&[
        "--log",
        log.to_str().unwrap(),
        "--log-level",
        "debug",
        "run",
        "--bundle",
        bundle.to_str().unwrap(),
        &id,
    ]);
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    (out.status.code().unwrap_or(-1), common::text(&out.stdout), common::text(&out.stderr), log)
}

fn cache_entries(f: &Fixture) -> Vec<std::path::PathBuf> {
    let dir = f.root().join(isolab_runtime::seccomp::cache::CACHE_DIR);
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// The second `run` of a profile uses the entry the first one stored; a corrupted entry is
/// detected, recompiled and rewritten; the filter is right each time (mkdir gets ENOSYS);
/// `list` does not see the cache directory.
#[test]
fn isorun_caches_the_compiled_profile_and_replaces_a_corrupt_entry() {
    let mut f = Fixture::new();
    f.config(&["sh", "-c", "mkdir /tmp/x; echo rc=$?"], docker_profile_enosys_mkdir);
    let denied = |code: i32, out: &str, err: &str, log: &str| {
        assert_eq!(code, 0, "stderr: {err}\nlog: {log}");
        assert!(err.contains("Function not implemented"), "stderr: {err}");
        assert_eq!(out.trim(), "rc=1");
    };

    let (code, out, err, log) = run_logged(&mut f);
    denied(code, &out, &err, &log);
    assert!(log.contains("seccomp cache miss") && log.contains("no entry"), "log: {log}");
    assert!(log.contains("seccomp cache: stored"), "log: {log}");
    let entries = cache_entries(&f);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].to_string_lossy().ends_with(".bpf"), "{entries:?}");
    let good = std::fs::read(&entries[0]).unwrap();

    let (code, out, err, log) = run_logged(&mut f);
    denied(code, &out, &err, &log);
    assert!(log.contains("seccomp cache hit"), "log: {log}");
    assert!(!log.contains("seccomp cache miss"), "log: {log}");

    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x5a;
    std::fs::write(&entries[0], &bad).unwrap();
    let (code, out, err, log) = run_logged(&mut f);
    denied(code, &out, &err, &log);
    assert!(log.contains("seccomp cache miss") && log.contains("corrupt: checksum mismatch"), "log: {log}");
    assert!(log.contains("seccomp cache: stored"), "log: {log}");
    assert_eq!(cache_entries(&f), entries);
    assert_eq!(std::fs::read(&entries[0]).unwrap(), good, "the entry was not rewritten");

    let id = f.running_sleep(docker_profile_enosys_mkdir);
    let out = f.isorun(&["list", "-q"]);
    assert!(out.status.success(), "list: {}", common::text(&out.stderr));
    assert_eq!(common::text(&out.stdout).lines().collect::<Vec<_>>(), [id.as_str()]);
    let out = f.isorun(&["list", "--format", "json"]);
    assert!(out.status.success(), "list: {}", common::text(&out.stderr));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = listed.as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [id.as_str()]);
}
