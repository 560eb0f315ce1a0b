//! `linux.seccomp` (oci-spec types) → libseccomp filter context → exported BPF program.

use std::io::{Read, Seek, SeekFrom};

use libseccomp::error::SeccompErrno;
use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction as Act, LinuxSeccompFilterFlag as Flag,
    LinuxSeccompOperator as Op, LinuxSyscall,
};

use super::{Filter, SeccompError, BPF_MAXINSNS};

/// runc's errno for `SCMP_ACT_ERRNO`/`SCMP_ACT_TRACE` without `errnoRet`.
const DEFAULT_ERRNO: u32 = libc::EPERM as u32;

/// A libseccomp error at `path` while doing `what`.
fn lib(path: &str, what: impl Into<String>) -> impl FnOnce(libseccomp::error::SeccompError) -> SeccompError {
    let (path, what) = (path.to_string(), what.into());
    move |source| SeccompError::Libseccomp { path, what, source }
}

/// The libseccomp action of an OCI action; `errno_path` names its errnoRet.
fn action(a: Act, errno: Option<u32>, errno_path: &str) -> Result<ScmpAction, SeccompError> {
    // SECCOMP_RET_DATA is 16 bits; libseccomp would silently truncate.
    let data = || {
        let e = errno.unwrap_or(DEFAULT_ERRNO);
        u16::try_from(e).map_err(|_| SeccompError::Invalid {
            path: errno_path.into(),
            reason: format!("{e} does not fit in 16 bits"),
        })
    };
    Ok(match a {
        Act::ScmpActKill | Act::ScmpActKillThread => ScmpAction::KillThread,
        Act::ScmpActKillProcess => ScmpAction::KillProcess,
        Act::ScmpActTrap => ScmpAction::Trap,
        Act::ScmpActErrno => ScmpAction::Errno(i32::from(data()?)),
        Act::ScmpActTrace => ScmpAction::Trace(data()?),
        Act::ScmpActLog => ScmpAction::Log,
        Act::ScmpActAllow => ScmpAction::Allow,
        Act::ScmpActNotify => ScmpAction::Notify,
    })
}

fn arch(a: Arch) -> ScmpArch {
    match a {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`: seccomp(2) returns the notify fd.
pub(super) const NEW_LISTENER: libc::c_ulong = 1 << 3;

/// `SCMP_ACT_NOTIFY` needs a listener to send the fd to, cannot go with TSYNC (the kernel
/// refuses both), and cannot catch what isorun itself calls to hand the fd over (runc
/// forbids `write` for the same reason; isorun sends with sendmsg).
fn notify_allowed(
    profile: &LinuxSeccomp,
    rule: &LinuxSyscall,
    path: &str,
    flags: libc::c_ulong,
) -> Result<(), SeccompError> {
    let bad =
        |reason: &str| Err(SeccompError::Invalid { path: format!("{path}.action"), reason: reason.into() });
    if profile.listener_path().as_ref().is_none_or(|p| p.as_os_str().is_empty()) {
        return bad("SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath");
    }
    if flags & libc::SECCOMP_FILTER_FLAG_TSYNC != 0 {
        return bad("SCMP_ACT_NOTIFY cannot be combined with SECCOMP_FILTER_FLAG_TSYNC");
    }
    if let Some(n) = rule.names().iter().find(|n| matches!(n.as_str(), "sendmsg" | "write" | "close")) {
        return bad(&format!(
            "SCMP_ACT_NOTIFY cannot be used for {n}: isorun uses it to hand the fd to the listener"
        ));
    }
    Ok(())
}

/// Sets the flags' attributes on `ctx`; returns the `SECCOMP_FILTER_FLAG_*` bits for seccomp(2).
fn flags(profile: &LinuxSeccomp, ctx: &mut ScmpFilterContext) -> Result<libc::c_ulong, SeccompError> {
    let mut bits = 0;
    for (i, f) in profile.flags().iter().flatten().enumerate() {
        let path = format!("linux.seccomp.flags[{i}]");
        bits |= match f {
            Flag::SeccompFilterFlagTsync => {
                ctx.set_ctl_tsync(true).map_err(lib(&path, "SCMP_FLTATR_CTL_TSYNC"))?;
                libc::SECCOMP_FILTER_FLAG_TSYNC
            }
            Flag::SeccompFilterFlagLog => {
                ctx.set_ctl_log(true).map_err(lib(&path, "SCMP_FLTATR_CTL_LOG"))?;
                libc::SECCOMP_FILTER_FLAG_LOG
            }
            Flag::SeccompFilterFlagSpecAllow => {
                ctx.set_ctl_ssb(true).map_err(lib(&path, "SCMP_FLTATR_CTL_SSB"))?;
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            Flag::SeccompFilterFlagWaitKillableRecv => {
                return Err(SeccompError::Unsupported {
                    path,
                    what: "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (libseccomp 2.5 cannot set it)".into(),
                })
            }
        };
    }
    Ok(bits)
}

/// The argument conditions of a rule, as one AND-ed list, or (runc's rule) one single-condition
/// alternative per condition when an argument index appears twice.
fn conditions(rule: &LinuxSyscall, path: &str) -> Result<Vec<Vec<ScmpArgCompare>>, SeccompError> {
    let mut cmps = Vec::new();
    let mut seen = [0u8; 6];
    for (j, arg) in rule.args().iter().flatten().enumerate() {
        let index =
            u32::try_from(arg.index()).ok().filter(|ix| *ix < 6).ok_or_else(|| SeccompError::Invalid {
                path: format!("{path}.args[{j}].index"),
                reason: format!("{} is not a syscall argument index (0..=5)", arg.index()),
            })?;
        seen[index as usize] += 1;
        let (op, datum) = match arg.op() {
            Op::ScmpCmpNe => (ScmpCompareOp::NotEqual, arg.value()),
            Op::ScmpCmpLt => (ScmpCompareOp::Less, arg.value()),
            Op::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, arg.value()),
            Op::ScmpCmpEq => (ScmpCompareOp::Equal, arg.value()),
            Op::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, arg.value()),
            Op::ScmpCmpGt => (ScmpCompareOp::Greater, arg.value()),
            Op::ScmpCmpMaskedEq => (ScmpCompareOp::MaskedEqual(arg.value()), arg.value_two().unwrap_or(0)),
        };
        cmps.push(ScmpArgCompare::new(index, op, datum));
    }
    Ok(if seen.iter().any(|n| *n > 1) { cmps.into_iter().map(|c| vec![c]).collect() } else { vec![cmps] })
}

/// Translates `profile` into a libseccomp context; returns it with the seccomp(2) flags.
pub(super) fn context(profile: &LinuxSeccomp) -> Result<(ScmpFilterContext, libc::c_ulong), SeccompError> {
    if profile.default_action() == Act::ScmpActNotify {
        return Err(SeccompError::Invalid {
            path: "linux.seccomp.defaultAction".into(),
            reason: "SCMP_ACT_NOTIFY cannot be the default action".into(),
        });
    }
    let default =
        action(profile.default_action(), profile.default_errno_ret(), "linux.seccomp.defaultErrnoRet")?;
    let mut ctx = ScmpFilterContext::new(default).map_err(lib("linux.seccomp", "seccomp_init"))?;
    // The native architecture is in a new context already; seccomp_arch_add of it is EEXIST.
    let native = ScmpArch::native();
    for (i, a) in profile.architectures().iter().flatten().enumerate() {
        let a = arch(*a);
        let path = format!("linux.seccomp.architectures[{i}]");
        if ctx.is_arch_present(a).map_err(lib(&path, "seccomp_arch_exist"))? {
            continue;
        }
        match ctx.add_arch(a) {
            Err(e) if e.errno() == Some(SeccompErrno::EDOM) => {
                // Another endianness than the native one: libseccomp cannot put both in one
                // filter, and this kernel never reports such an architecture anyway.
                tracing::debug!("{path}: {a:?} cannot share a filter with {native:?}, skipped");
            }
            r => {
                r.map_err(lib(&path, "seccomp_arch_add"))?;
            }
        }
    }
    let flags = flags(profile, &mut ctx)?;
    for (i, rule) in profile.syscalls().iter().flatten().enumerate() {
        let path = format!("linux.seccomp.syscalls[{i}]");
        let act = action(rule.action(), rule.errno_ret(), &format!("{path}.errnoRet"))?;
        let alternatives = conditions(rule, &path)?;
        if act == ScmpAction::Notify {
            notify_allowed(profile, rule, &path, flags)?;
        }
        if act == default {
            // libseccomp refuses such rules and runc skips them: they change nothing.
            continue;
        }
        for name in rule.names() {
            let Ok(nr) = ScmpSyscall::from_name(name) else {
                tracing::debug!("{path}: syscall {name:?} is unknown to libseccomp, skipped");
                continue;
            };
            for cmps in &alternatives {
                ctx.add_rule_conditional(act, nr, cmps)
                    .map_err(lib(&path, format!("seccomp_rule_add({name}, {act:?})")))?;
            }
        }
    }
    let notify = profile.syscalls().iter().flatten().any(|r| r.action() == Act::ScmpActNotify);
    if let (Some(p), false) = (profile.listener_path(), notify) {
        tracing::debug!("linux.seccomp.listenerPath {p:?} unused: no rule uses SCMP_ACT_NOTIFY");
    }
    Ok((ctx, if notify { flags | NEW_LISTENER } else { flags }))
}

/// The program libseccomp generates for `ctx` (`seccomp_export_bpf` into a memfd).
pub(super) fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, SeccompError> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    let fd = memfd_create(c"isorun-seccomp", MFdFlags::MFD_CLOEXEC)
        .map_err(|e| SeccompError::Export(std::io::Error::from(e)))?;
    ctx.export_bpf(&fd).map_err(lib("linux.seccomp", "seccomp_export_bpf"))?;
    let mut file = std::fs::File::from(fd);
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0)).and_then(|_| file.read_to_end(&mut bytes)).map_err(SeccompError::Export)?;
    let size = std::mem::size_of::<libc::sock_filter>();
    if bytes.len() % size != 0 {
        let e = format!("{} bytes is not a whole number of instructions", bytes.len());
        return Err(SeccompError::Export(std::io::Error::new(std::io::ErrorKind::InvalidData, e)));
    }
    Ok(bytes
        .chunks_exact(size)
        .map(|b| libc::sock_filter {
            code: u16::from_ne_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        })
        .collect())
}

/// Translates and compiles `profile`.
pub(super) fn compile(profile: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    let (ctx, flags) = context(profile)?;
    let long = export(&ctx)?;
    if long.len() > BPF_MAXINSNS {
        return Err(SeccompError::TooLarge { len: long.len() });
    }
    super::verify_program(&long)?;
    let short = super::shrink::shrink(&long);
    if short.len() == long.len() {
        return Ok(Filter { program: long, flags });
    }
    // The shrunk program only when it decides alike and is as valid; else libseccomp's (a
    // debug build, as the fuzzer runs it, stops on it).
    let program = match (super::shrink::decide_alike(&long, &short), super::verify_program(&short)) {
        (Ok(()), Ok(())) => {
            tracing::debug!("seccomp: {} instructions shrunk to {}", long.len(), short.len());
            short
        }
        (alike, valid) => {
            debug_assert!(false, "the shrunk program is not libseccomp's: {alike:?} {valid:?}");
            let why = format!("{alike:?}, {valid:?}");
            tracing::warn!("seccomp: the shrunk program is not libseccomp's ({why}); libseccomp's is kept");
            long
        }
    };
    Ok(Filter { program, flags })
}
