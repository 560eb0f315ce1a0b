//! OCI seccomp profile (`linux.seccomp`) → classic-BPF filter, installed as one of the last
//! steps before exec.
//!
//! # Why our own compiler (no `libseccomp`, no `seccompiler`)
//!
//! * `libseccomp` (C, via the `libseccomp` crate) is what runc uses, but it makes `isorun`
//!   depend on `libseccomp.so` (the VM images would need it beside a static binary, or a
//!   static `libseccomp.a` from `libseccomp-dev`), adds a C build dependency to CI, and
//!   builds its rule database in C at every start (cost not measured here).
//! * `seccompiler` (rust-vmm) is pure Rust, but builds one filter for ONE architecture, kills
//!   on any other architecture instead of handling x86 and x32, has no `SCMP_ACT_NOTIFY`/flags,
//!   and keeps its syscall tables private.
//! * What OCI needs is small: a name → number table per ABI (`tables.rs`, generated), a linear
//!   program per ABI (`bpf.rs`), and one `seccomp(2)` call (`sys.rs`). That is ~700 lines, no
//!   new dependency, a static-friendly binary, and compiles a profile bigger than docker's
//!   default (~450 names × x86_64, x86 and x32, 1252 instructions) in ~0.2 ms (release).
//!   The tables are regenerated with `gen_tables.py` when new syscalls appear.
//!
//! # Semantics (runtime-spec 1.3 config-linux.md "Seccomp", runc where the spec is silent)
//!
//! * ABIs: the native one (x86_64) plus `SCMP_ARCH_X86`/`SCMP_ARCH_X32` when listed;
//!   architectures that cannot run on an x86_64 kernel are skipped (their rules could never
//!   apply). A syscall from an ABI not in the filter is killed (`SECCOMP_RET_KILL_THREAD`),
//!   libseccomp's default bad-arch action, which runc keeps.
//! * `SCMP_ACT_ERRNO`/`SCMP_ACT_TRACE` without `errnoRet` return `EPERM` (runc).
//! * Per syscall: rules with argument conditions are tried first, in profile order, the first
//!   match wins; then the first unconditional rule; then `defaultAction`. Conditions of one
//!   rule are AND-ed, except (runc) when an argument index appears twice: each condition is
//!   then its own alternative. `SCMP_CMP_MASKED_EQ` is `(arg & value) == valueTwo`.
//!   On the 32-bit x86 ABI only the low 32 bits of arguments and values are compared.
//! * Rules whose action equals the default action are dropped (libseccomp/runc).
//! * Syscall names unknown for every ABI of the filter are skipped (`tracing::debug!`).
//! * Not supported (an error naming the JSON path): `SCMP_ACT_NOTIFY`, `listenerPath` with
//!   it, and `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`; hosts other than x86_64. libseccomp's
//!   i386 `socketcall`/`ipc` multiplexer rewriting is not done.
//!
//! # The profile is the user's responsibility
//!
//! Like runc, the filter applies to the rest of the container's init too: after [`install`]
//! it still calls `prctl`, `capset`, `setgroups`/`setresgid`/`setresuid` (when
//! noNewPrivileges is false the filter goes on before capabilities are dropped),
//! `close_range`, `openat`/`read` on the exec fifo, `write`, then `execve`. A profile that
//! denies those makes `create`/`start` fail.

mod bpf;
mod sys;
mod tables;
#[cfg(test)]
mod tests;
mod translate;

use oci_spec::runtime::LinuxSeccomp;

pub use bpf::{verify_program, BPF_MAXINSNS};
pub use libc::sock_filter;

/// `linux.seccomp` actions isorun implements (for `isorun features`).
pub const SUPPORTED_ACTIONS: [&str; 8] = [
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];

/// `linux.seccomp.syscalls[].args[].op` values isorun implements (all of the spec's).
pub const SUPPORTED_OPERATORS: [&str; 7] = [
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];

/// Architectures whose rules isorun puts in a filter (on an x86_64 host; others are skipped).
pub const SUPPORTED_ARCHES: [&str; 3] = ["SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_X86_64"];

/// `linux.seccomp.flags` values isorun passes to seccomp(2).
pub const SUPPORTED_FLAGS: [&str; 3] =
    ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"];

/// Failures of translating or installing a profile. Each names the JSON path or syscall.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// A value of the profile is invalid (`path` is e.g. `linux.seccomp.syscalls[3].action`).
    #[error("{path}: {reason}")]
    Invalid {
        /// JSON path of the offending value.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A valid value that isorun does not implement.
    #[error("{path}: {what} is not supported by isorun")]
    Unsupported {
        /// JSON path of the offending value.
        path: String,
        /// The feature.
        what: String,
    },
    /// isorun's seccomp compiler only knows the x86 family.
    #[error("linux.seccomp: seccomp filters are not supported on {arch} hosts yet")]
    UnsupportedHost {
        /// `std::env::consts::ARCH`.
        arch: &'static str,
    },
    /// The program exceeds the kernel's 4096 instructions.
    #[error("linux.seccomp: the filter has {len} instructions, more than the kernel's limit of 4096")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// A generated program failed [`verify_program`] (a bug of the compiler).
    #[error("linux.seccomp: invalid BPF program at instruction {at}: {reason}")]
    Program {
        /// Index of the instruction.
        at: usize,
        /// What is wrong.
        reason: String,
    },
    /// The kernel refused the filter.
    #[error("{call} with flags {flags:#x}: {errno}{}", install_hint(*.errno))]
    Install {
        /// The syscall.
        call: &'static str,
        /// `SECCOMP_FILTER_FLAG_*` bits passed.
        flags: libc::c_ulong,
        /// Its error.
        errno: nix::errno::Errno,
    },
    /// `SECCOMP_FILTER_FLAG_TSYNC` could not synchronise a thread.
    #[error(
        "seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC): thread {tid} could not be synchronised"
    )]
    Tsync {
        /// The thread id the kernel returned.
        tid: libc::c_long,
    },
}

fn install_hint(errno: nix::errno::Errno) -> &'static str {
    match errno {
        nix::errno::Errno::EACCES => " (loading a filter needs noNewPrivileges or CAP_SYS_ADMIN)",
        nix::errno::Errno::EINVAL => " (a linux.seccomp.flags value this kernel does not support?)",
        _ => "",
    }
}

/// A compiled filter, ready to install.
pub struct Filter {
    program: Vec<sock_filter>,
    flags: libc::c_ulong,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("instructions", &self.program.len())
            .field("flags", &self.flags)
            .finish()
    }
}

impl Filter {
    /// The BPF program.
    pub fn instructions(&self) -> &[sock_filter] {
        &self.program
    }

    /// Its number of instructions.
    pub fn len(&self) -> usize {
        self.program.len()
    }

    /// Never true for a compiled filter (kept for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        self.program.is_empty()
    }

    /// The `SECCOMP_FILTER_FLAG_*` bits passed to seccomp(2).
    pub fn flags(&self) -> libc::c_ulong {
        self.flags
    }
}

/// Translate the profile (in the child, before `Ready`, so errors reach `create`).
pub fn compile(profile: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    translate::compile(profile)
}

/// Install the filter on this process (and its future children). Loading needs
/// no_new_privs or CAP_SYS_ADMIN. Does not allocate on success.
pub fn install(filter: &Filter) -> Result<(), SeccompError> {
    sys::load(&filter.program, filter.flags)
}

/// Parses a `linux.seccomp` JSON object into the oci-spec type; errors name the JSON path
/// (`linux.seccomp.syscalls[3].action: unknown action "SCMP_ACT_FOO"`). For tests, fuzzing
/// and tools; `isorun` itself gets the profile from the validated config.
pub fn parse(json: &serde_json::Value) -> Result<LinuxSeccomp, SeccompError> {
    serde_path_to_error::deserialize(json).map_err(|e| {
        let at = e.path().to_string();
        let path = if at == "." { "linux.seccomp".to_string() } else { format!("linux.seccomp.{at}") };
        let msg = e.inner().to_string();
        let reason = match msg.strip_prefix("unknown variant `").and_then(|r| r.split_once('`')) {
            Some((value, _)) => format!("unknown {} {value:?}", kind(&at)),
            None => msg,
        };
        SeccompError::Invalid { path, reason }
    })
}

fn kind(path: &str) -> &'static str {
    let leaf = path.rsplit('.').next().unwrap_or(path);
    match leaf.split('[').next().unwrap_or(leaf) {
        "action" | "defaultAction" => "action",
        "op" => "operator",
        "architectures" => "architecture",
        "flags" => "flag",
        _ => "value",
    }
}
