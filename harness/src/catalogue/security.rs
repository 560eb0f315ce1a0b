//! Process security: capabilities, no_new_privs, seccomp, rlimits, and the host resources a
//! container must not reach (sysrq-trigger, kmsg, device nodes, outside processes, the
//! runtime binary through /proc/1/exe — CVE-2019-5736).

use serde_json::{json, Value};

use super::util::{add_cap, add_mount, drop_namespace, has_cap, status_field, HostSleeper};
use super::{Assertion, Container, Ctx, Need, RunOutput, Verdict};
use crate::v;

/// Capability names by bit number (linux/capability.h).
const CAPS: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

macro_rules! a {
    ($id:literal, $desc:literal, $needs:expr, $check:expr, $weaken:expr) => {
        Assertion { id: $id, description: $desc, needs: $needs, check: $check, weaken: $weaken }
    };
}

/// The security assertions.
pub fn assertions() -> Vec<Assertion> {
    vec![
        a!(
            "security.cap_sys_admin_dropped",
            "without CAP_SYS_ADMIN, mount fails EPERM",
            &[],
            sys_admin_dropped,
            with_sys_admin
        ),
        a!(
            "security.capabilities_match_config",
            "CapBnd/CapEff/CapPrm are exactly the config's sets",
            &[],
            caps_match,
            with_sys_admin
        ),
        a!("security.no_new_privs", "noNewPrivileges sets NoNewPrivs: 1", &[], no_new_privs, nnp_off),
        a!(
            "security.seccomp_errno",
            "a seccomp ERRNO rule makes mkdir fail with its errno (ENOSYS)",
            &[Need::Seccomp],
            seccomp_errno,
            no_seccomp
        ),
        a!(
            "security.rlimits_apply",
            "RLIMIT_NOFILE soft/hard are the config's (777/888)",
            &[],
            rlimits_apply,
            other_rlimits
        ),
        a!(
            "security.sysrq_trigger_denied",
            "/proc/sysrq-trigger cannot be opened for writing",
            &[],
            sysrq_denied,
            sysrq_open
        ),
        a!("security.kmsg_denied", "/dev/kmsg cannot be read inside", &[], kmsg_denied, kmsg_open),
        a!(
            "security.mknod_denied",
            "mknod of a character device fails inside",
            &[],
            mknod_denied,
            mknod_allowed
        ),
        a!(
            "security.ptrace_outside_denied",
            "a host process's /proc/<pid>/environ cannot be read inside",
            &[Need::Namespace("pid")],
            ptrace_denied,
            ptrace_allowed
        ),
        a!(
            "security.cve_2019_5736",
            "the host runtime binary cannot be read (hence not overwritten) through /proc/1/exe",
            &[],
            cve_2019_5736,
            exec_with_ptrace
        ),
    ]
}

fn with_sys_admin(cfg: &mut Value) {
    add_cap(cfg, "CAP_SYS_ADMIN");
}

fn nnp_off(cfg: &mut Value) {
    cfg["process"]["noNewPrivileges"] = json!(false);
}

fn no_seccomp(cfg: &mut Value) {
    if let Some(linux) = cfg["linux"].as_object_mut() {
        linux.remove("seccomp");
    }
}

fn other_rlimits(cfg: &mut Value) {
    cfg["process"]["rlimits"] = json!([{ "type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024 }]);
}

fn sysrq_open(cfg: &mut Value) {
    if let Some(list) = cfg["linux"]["readonlyPaths"].as_array_mut() {
        list.retain(|p| p != "/proc/sysrq-trigger");
    }
    add_cap(cfg, "CAP_SYS_ADMIN");
}

fn kmsg_open(cfg: &mut Value) {
    add_mount(
        cfg,
        json!({ "destination": "/dev/kmsg", "type": "bind", "source": "/dev/kmsg", "options": ["bind", "rw"] }),
    );
    allow_device(cfg, json!({ "allow": true, "type": "c", "major": 1, "minor": 11, "access": "rwm" }));
    add_cap(cfg, "CAP_SYSLOG");
}

fn mknod_allowed(cfg: &mut Value) {
    add_cap(cfg, "CAP_MKNOD");
    allow_device(cfg, json!({ "allow": true, "access": "rwm" }));
}

fn ptrace_allowed(cfg: &mut Value) {
    drop_namespace(cfg, "pid");
    add_cap(cfg, "CAP_SYS_PTRACE");
}

/// The CVE control: the exec'd process gets CAP_SYS_PTRACE (what `exec --cap CAP_SYS_PTRACE`
/// does, through the config so it works with any runtime), so /proc/1/exe becomes readable.
/// (runc 1.1 re-execs itself through a read-only bind mount of its binary, so with runc the
/// control still PASSes: there the protection is not a config matter.)
fn exec_with_ptrace(cfg: &mut Value) {
    add_cap(cfg, "CAP_SYS_PTRACE");
}

fn allow_device(cfg: &mut Value, rule: Value) {
    if let Some(list) = cfg["linux"]["resources"]["devices"].as_array_mut() {
        list.push(rule);
    } else {
        cfg["linux"]["resources"]["devices"] = json!([rule]);
    }
}

/// Run `script` in a container of `cfg` (inside view), then start `cfg` detached running
/// `sleep 300` (host view); both outputs.
fn inside_and_host(ctx: &mut Ctx, cfg: Value, script: &str) -> Result<(RunOutput, Container), Verdict> {
    let mut inside = cfg.clone();
    inside["process"]["args"] = json!(["sh", "-c", script]);
    let out = ctx.run_ok(inside)?;
    let mut host = cfg;
    host["process"]["args"] = json!(["sleep", "300"]);
    Ok((out, ctx.start(host)?))
}

/// Run `sh -c script` in a container of `cfg`; its stdout, trimmed.
fn inside(ctx: &mut Ctx, mut cfg: Value, script: &str) -> Result<String, Verdict> {
    cfg["process"]["args"] = json!(["sh", "-c", script]);
    Ok(ctx.run_ok(cfg)?.stdout.trim().to_owned())
}

fn sys_admin_dropped(ctx: &mut Ctx) -> Verdict {
    let cfg = ctx.config(&[]);
    let (out, c) = v!(inside_and_host(ctx, cfg, "mount -t tmpfs x /mnt 2>&1; echo rc=$?"));
    let eff =
        status_field(c.pid, "CapEff").and_then(|h| u64::from_str_radix(&h, 16).ok()).unwrap_or(u64::MAX);
    let s = out.stdout.to_lowercase();
    let eperm = !s.contains("rc=0") && (s.contains("not permitted") || s.contains("permission denied"));
    Verdict::check(eperm && eff & (1 << 21) == 0, || {
        format!("mount inside: {:?}; host CapEff of init {eff:#x}", out.stdout.trim())
    })
}

fn cap_mask(cfg: &Value, set: &str) -> u64 {
    let names = cfg["process"]["capabilities"][set].as_array().cloned().unwrap_or_default();
    names
        .iter()
        .filter_map(|n| n.as_str()?.strip_prefix("CAP_"))
        .filter_map(|n| CAPS.iter().position(|c| *c == n))
        .fold(0, |m, bit| m | (1 << bit))
}

fn caps_match(ctx: &mut Ctx) -> Verdict {
    let cfg = ctx.config(&[]);
    let want = [
        ("CapBnd", cap_mask(&cfg, "bounding")),
        ("CapEff", cap_mask(&cfg, "effective")),
        ("CapPrm", cap_mask(&cfg, "permitted")),
        ("CapInh", cap_mask(&cfg, "inheritable")),
        ("CapAmb", cap_mask(&cfg, "ambient")),
    ];
    let (out, c) = v!(inside_and_host(ctx, cfg, "grep ^Cap /proc/self/status"));
    let parse = |s: &str| u64::from_str_radix(s.trim(), 16).ok();
    let mut bad = Vec::new();
    for (key, mask) in want {
        let ins = out.stdout.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':')).and_then(parse);
        let host = status_field(c.pid, key).as_deref().and_then(parse);
        if ins != Some(mask) || host != Some(mask) {
            bad.push(format!("{key}: want {mask:#x}, inside {ins:x?}, host {host:x?}"));
        }
    }
    Verdict::check(bad.is_empty(), || bad.join("; "))
}

fn no_new_privs(ctx: &mut Ctx) -> Verdict {
    let cfg = ctx.config(&[]);
    let note = ctx.base_note(cfg["process"]["noNewPrivileges"] != true, "process.noNewPrivileges unset");
    let (out, c) = v!(inside_and_host(ctx, cfg, "grep ^NoNewPrivs /proc/self/status"));
    let host = status_field(c.pid, "NoNewPrivs").unwrap_or_default();
    let ins = out.stdout.split(':').nth(1).unwrap_or("").trim().to_owned();
    Verdict::check(ins == "1" && host == "1", || format!("NoNewPrivs inside {ins:?}, host {host:?}{note}"))
}

fn seccomp_errno(ctx: &mut Ctx) -> Verdict {
    let mut cfg = ctx.config(&[]);
    cfg["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{ "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38 }],
    });
    let (out, c) = v!(inside_and_host(ctx, cfg, "mkdir /tmp/x 2>&1; echo rc=$?"));
    let mode = status_field(c.pid, "Seccomp").unwrap_or_default();
    let enosys = !out.stdout.contains("rc=0") && out.stdout.contains("Function not implemented");
    Verdict::check(enosys && mode == "2", || {
        format!("mkdir inside: {:?}; host Seccomp: {mode:?}", out.stdout.trim())
    })
}

fn rlimits_apply(ctx: &mut Ctx) -> Verdict {
    let mut cfg = ctx.config(&[]);
    cfg["process"]["rlimits"] = json!([{ "type": "RLIMIT_NOFILE", "soft": 777, "hard": 888 }]);
    let (out, c) = v!(inside_and_host(ctx, cfg, "ulimit -n; ulimit -Hn"));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", c.pid)).unwrap_or_default();
    let host: Vec<String> = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .map(|v| v.split_whitespace().take(2).map(str::to_owned).collect())
        .unwrap_or_default();
    let ok = out.lines() == ["777", "888"] && host == ["777", "888"];
    Verdict::check(ok, || format!("inside ulimit -n/-Hn {:?}, host /proc/pid/limits {host:?}", out.lines()))
}

fn sysrq_denied(ctx: &mut Ctx) -> Verdict {
    if !super::Facts::has_path("/proc/sysrq-trigger") {
        let release = &ctx.facts.kernel_release;
        return Verdict::skip(format!(
            "kernel {release} has no /proc/sysrq-trigger (CONFIG_MAGIC_SYSRQ unset)"
        ));
    }
    // Opening for write (with no data) is enough to know; writing nothing triggers nothing.
    let out = v!(inside(ctx, ctx.config(&[]), "(: > /proc/sysrq-trigger) 2>&1; echo rc=$?"));
    Verdict::check(!out.contains("rc=0"), || format!("open /proc/sysrq-trigger for write inside: {out:?}"))
}

fn kmsg_denied(ctx: &mut Ctx) -> Verdict {
    let script = "timeout 5 dd if=/dev/kmsg of=/dev/null bs=8192 count=1 2>&1; echo rc=$?";
    let out = v!(inside(ctx, ctx.config(&[]), script));
    Verdict::check(!out.contains("rc=0"), || format!("read /dev/kmsg inside: {out:?}"))
}

fn mknod_denied(ctx: &mut Ctx) -> Verdict {
    let cfg = ctx.config(&[]);
    let note = ctx.base_note(has_cap(&cfg, "CAP_MKNOD"), "CAP_MKNOD granted");
    let out = v!(inside(ctx, cfg, "mknod /tmp/n c 1 3 2>&1; echo rc=$?; ls /tmp"));
    Verdict::check(!out.contains("rc=0") && !out.lines().any(|l| l.trim() == "n"), || {
        format!("mknod /tmp/n c 1 3 inside: {out:?}{note}")
    })
}

fn ptrace_denied(ctx: &mut Ctx) -> Verdict {
    let host = v!(HostSleeper::start().map_err(|e| Verdict::error(format!("start a host sleep: {e}"))));
    let script = format!("cat /proc/{}/environ >/dev/null 2>&1; echo rc=$?", host.pid());
    let out = v!(inside(ctx, ctx.config(&[]), &script));
    let host_alive = std::path::Path::new(&format!("/proc/{}", host.pid())).exists();
    Verdict::check(!out.contains("rc=0") && host_alive, || {
        format!("read /proc/{}/environ of a host process inside: {out:?}", host.pid())
    })
}

fn cve_2019_5736(ctx: &mut Ctx) -> Verdict {
    let before =
        v!(std::fs::read(&ctx.runtime).map_err(|e| Verdict::error(format!("read the runtime: {e}"))));
    let (c, _) = v!(super::lifecycle::create(ctx, ctx.config(&["sleep", "300"])));
    let verdict = exe_probe(ctx, &c);
    ctx.delete(&c.id);
    let after = std::fs::read(&ctx.runtime).unwrap_or_default();
    if after != before {
        return Verdict::fail(format!("the runtime binary {} changed on the host", ctx.runtime.display()));
    }
    verdict
}

fn exe_probe(ctx: &Ctx, c: &Container) -> Verdict {
    use std::os::unix::fs::MetadataExt;
    // PID 1 must still be the runtime (created, not started) for the probe to mean anything.
    let cmd = std::fs::read(format!("/proc/{}/cmdline", c.pid)).unwrap_or_default();
    if c.pid <= 0 || cmd.starts_with(b"sleep\0") {
        return Verdict::error(format!(
            "PID 1 of the created container ({}) already runs the user process",
            c.pid
        ));
    }
    let Ok(host) = std::fs::metadata(&ctx.runtime) else {
        return Verdict::error(format!("stat {}", ctx.runtime.display()));
    };
    let host_id = format!("{}:{}", host.dev(), host.ino());
    // Read only: never write. `stat -L` tells which file /proc/1/exe is: the host binary, or
    // a copy (a runtime may re-exec itself from a sealed memfd precisely against this CVE).
    let probe =
        "cat /proc/1/exe >/dev/null 2>&1; echo read=$?; echo id=$(stat -L -c %d:%i /proc/1/exe 2>/dev/null)";
    let out = ctx.exec(c, &["sh", "-c", probe]);
    if out.code != 0 {
        return Verdict::fail(format!(
            "exec into the created container failed ({}): {}",
            out.code,
            out.stderr.trim()
        ));
    }
    let l = out.lines();
    let readable = l.first() == Some(&"read=0");
    let target = l.get(1).and_then(|t| t.strip_prefix("id=")).unwrap_or("");
    // From the host: is the file PID 1 runs on a read-only mount (runc 1.1 re-execs itself
    // through a read-only bind mount of its binary, so the inode is the host's but unwritable)?
    let exe_ro = read_only_mount(&format!("/proc/{}/exe", c.pid));
    // Readable, the host file (or unknown which) and writable is the failure; a copy or a
    // read-only mount of it is harmless.
    let exposed = readable && (target.is_empty() || target == host_id) && exe_ro != Some(true);
    Verdict::check(!exposed && l.len() == 2, || {
        format!(
            "/proc/1/exe inside: {l:?}; the host runtime {} is {host_id}; on a read-only mount: {exe_ro:?}",
            ctx.runtime.display()
        )
    })
}

/// Whether the mount `path` resolves to is read-only (statvfs ST_RDONLY); None if unknown.
fn read_only_mount(path: &str) -> Option<bool> {
    let c = std::ffi::CString::new(path).ok()?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and outlives the call; `st` is a valid, writable statvfs.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc == 0).then_some(st.f_flag & libc::ST_RDONLY != 0)
}
