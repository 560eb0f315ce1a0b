//! `linux.seccomp` (oci-spec types) → per-ABI rule maps → program.

use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction as Act, LinuxSeccompFilterFlag as Flag};

use super::bpf::{self, AbiRules, Cmp};
use super::{tables, Filter, SeccompError};

/// An ABI the filter can check, on an x86_64 host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Abi {
    X86_64,
    X86,
    X32,
}

impl Abi {
    fn table(self) -> &'static [(&'static str, u32)] {
        match self {
            Abi::X86_64 => tables::X86_64,
            Abi::X86 => tables::X86,
            Abi::X32 => tables::X32,
        }
    }

    fn wide(self) -> bool {
        self != Abi::X86
    }

    fn lookup(self, name: &str) -> Option<u32> {
        let t = self.table();
        t.binary_search_by(|(n, _)| n.cmp(&name)).ok().map(|i| t[i].1)
    }
}

/// `AUDIT_ARCH_X86_64` (x86_64 and x32) and `AUDIT_ARCH_I386`.
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;

/// What an ABI not in the filter gets: libseccomp's (and so runc's) default bad-arch action.
/// Not the profile's default action: with `defaultAction: SCMP_ACT_ALLOW` that would let
/// 32-bit syscalls (`int $0x80`) bypass a deny list written for x86_64.
pub(super) const BAD_ARCH: u32 = libc::SECCOMP_RET_KILL_THREAD;

/// runc's errno for `SCMP_ACT_ERRNO`/`SCMP_ACT_TRACE` without `errnoRet`.
const DEFAULT_ERRNO: u32 = libc::EPERM as u32;

/// The kernel return value of an action. `path` names the action, `errno_path` its errnoRet.
pub(super) fn action(a: Act, errno: Option<u32>, path: &str, errno_path: &str) -> Result<u32, SeccompError> {
    let data = || match errno.unwrap_or(DEFAULT_ERRNO) {
        e if e <= libc::SECCOMP_RET_DATA => Ok(e),
        e => Err(SeccompError::Invalid {
            path: errno_path.into(),
            reason: format!("{e} does not fit in 16 bits"),
        }),
    };
    Ok(match a {
        Act::ScmpActKill | Act::ScmpActKillThread => libc::SECCOMP_RET_KILL_THREAD,
        Act::ScmpActKillProcess => libc::SECCOMP_RET_KILL_PROCESS,
        Act::ScmpActTrap => libc::SECCOMP_RET_TRAP,
        Act::ScmpActErrno => libc::SECCOMP_RET_ERRNO | data()?,
        Act::ScmpActTrace => libc::SECCOMP_RET_TRACE | data()?,
        Act::ScmpActLog => libc::SECCOMP_RET_LOG,
        Act::ScmpActAllow => libc::SECCOMP_RET_ALLOW,
        Act::ScmpActNotify => {
            return Err(SeccompError::Unsupported {
                path: path.into(),
                what: "SCMP_ACT_NOTIFY (seccomp user notification)".into(),
            })
        }
    })
}

fn abis(profile: &LinuxSeccomp) -> Result<Vec<Abi>, SeccompError> {
    if !cfg!(target_arch = "x86_64") {
        return Err(SeccompError::UnsupportedHost { arch: std::env::consts::ARCH });
    }
    let mut out = vec![Abi::X86_64]; // libseccomp always includes the native ABI.
    for (i, arch) in profile.architectures().iter().flatten().enumerate() {
        let abi = match arch {
            Arch::ScmpArchNative | Arch::ScmpArchX86_64 => Abi::X86_64,
            Arch::ScmpArchX86 => Abi::X86,
            Arch::ScmpArchX32 => Abi::X32,
            other => {
                // The kernel never reports it on this host: its rules could never apply.
                tracing::debug!(
                    "linux.seccomp.architectures[{i}]: {other} cannot run on an x86_64 kernel, skipped"
                );
                continue;
            }
        };
        if !out.contains(&abi) {
            out.push(abi);
        }
    }
    out.sort();
    Ok(out)
}

fn flags(profile: &LinuxSeccomp) -> Result<libc::c_ulong, SeccompError> {
    let mut bits = 0;
    for (i, f) in profile.flags().iter().flatten().enumerate() {
        bits |= match f {
            Flag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            Flag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            Flag::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            Flag::SeccompFilterFlagWaitKillableRecv => {
                return Err(SeccompError::Unsupported {
                    path: format!("linux.seccomp.flags[{i}]"),
                    what: "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (it needs SCMP_ACT_NOTIFY)".into(),
                })
            }
        };
    }
    Ok(bits)
}

/// The argument conditions of `syscalls[i]`, as one AND-ed list, or (runc's rule) one
/// single-condition alternative per condition when an argument index appears twice.
fn conditions(rule: &oci_spec::runtime::LinuxSyscall, path: &str) -> Result<Vec<Vec<Cmp>>, SeccompError> {
    let mut cmps = Vec::new();
    let mut seen = [0u8; 6];
    for (j, arg) in rule.args().iter().flatten().enumerate() {
        let index =
            u8::try_from(arg.index()).ok().filter(|ix| *ix < 6).ok_or_else(|| SeccompError::Invalid {
                path: format!("{path}.args[{j}].index"),
                reason: format!("{} is not a syscall argument index (0..=5)", arg.index()),
            })?;
        seen[usize::from(index)] += 1;
        cmps.push(Cmp { index, op: arg.op(), a: arg.value(), b: arg.value_two().unwrap_or(0) });
    }
    Ok(if seen.iter().any(|n| *n > 1) { cmps.into_iter().map(|c| vec![c]).collect() } else { vec![cmps] })
}

/// Translates and compiles `profile`.
pub(super) fn compile(profile: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    let default = action(
        profile.default_action(),
        profile.default_errno_ret(),
        "linux.seccomp.defaultAction",
        "linux.seccomp.defaultErrnoRet",
    )?;
    let flags = flags(profile)?;
    let abis = abis(profile)?;
    let mut rules: Vec<AbiRules> = abis.iter().map(|_| AbiRules::new()).collect();
    for (i, rule) in profile.syscalls().iter().flatten().enumerate() {
        let path = format!("linux.seccomp.syscalls[{i}]");
        let act =
            action(rule.action(), rule.errno_ret(), &format!("{path}.action"), &format!("{path}.errnoRet"))?;
        let alternatives = conditions(rule, &path)?;
        if act == default {
            // libseccomp refuses such rules and runc skips them: they change nothing.
            continue;
        }
        for name in rule.names() {
            let mut known = false;
            for (abi, map) in abis.iter().zip(rules.iter_mut()) {
                let Some(nr) = abi.lookup(name) else { continue };
                known = true;
                let calls = map.entry(nr).or_default();
                for cmps in &alternatives {
                    if cmps.is_empty() {
                        calls.unconditional.get_or_insert(act);
                    } else {
                        calls.conditional.push((cmps.clone(), act));
                    }
                }
            }
            if !known {
                tracing::debug!("{path}: syscall {name:?} is unknown on {abis:?}, skipped");
            }
        }
    }
    if let Some(p) = profile.listener_path() {
        tracing::debug!("linux.seccomp.listenerPath {p:?} ignored: no rule uses SCMP_ACT_NOTIFY");
    }
    let checks = |abi: Abi| -> Option<Vec<libc::sock_filter>> {
        let ix = abis.iter().position(|a| *a == abi)?;
        let mut out = Vec::new();
        bpf::abi_checks(&rules[ix], default, abi.wide(), &mut out);
        Some(out)
    };
    let mut sections =
        vec![(AUDIT_ARCH_X86_64, bpf::x86_64_family(checks(Abi::X86_64), checks(Abi::X32), BAD_ARCH))];
    if let Some(code) = checks(Abi::X86) {
        let mut s = vec![bpf::load_nr()];
        s.extend(code);
        sections.push((AUDIT_ARCH_I386, s));
    }
    let program = bpf::program(&sections, BAD_ARCH);
    if program.len() > bpf::BPF_MAXINSNS {
        return Err(SeccompError::TooLarge { len: program.len() });
    }
    bpf::verify_program(&program)?;
    Ok(Filter { program, flags })
}
