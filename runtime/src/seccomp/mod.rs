//! OCI seccomp profile (`linux.seccomp`) → classic-BPF filter, installed as the last step
//! before exec.
//!
//! # How
//!
//! The profile is translated rule by rule into a `libseccomp` filter context
//! ([`libseccomp::ScmpFilterContext`], bindings to the C libseccomp that runc and crun use),
//! which generates the classic-BPF program; `compile` exports it (`seccomp_export_bpf`, into a
//! memfd) and checks it with [`verify_program`]. [`install`] hands that program to seccomp(2)
//! itself (`sys.rs`) instead of calling `seccomp_load`, because:
//!
//! * `seccomp_load` regenerates the program in C (it allocates) at load time, while `install`
//!   runs in the forked container init, where allocation-free is the rule;
//! * `seccomp_load` also sets no_new_privs (libseccomp's `CtlNnp` default), which must stay
//!   `process.noNewPrivileges`'s decision;
//! * a [`Filter`] stays plain data (the context is a C pointer, neither `Send` nor `Sync`),
//!   and its instructions can be inspected, verified and fuzzed.
//!
//! `isorun` thus links `libseccomp.so.2` (Debian's `libseccomp2`; `libseccomp-dev` to build).
//! Cost: a docker-sized profile (453 names, x86_64 + x86 + x32, 1201 instructions) compiles in
//! ~13 ms with libseccomp 2.5.4 (~5 ms building the context, ~8 ms exporting), where the former
//! hand-written compiler took ~0.2 ms; `SCMP_FLTATR_CTL_OPTIMIZE=2` (binary tree) is slower
//! still (~28 ms), so libseccomp's default is kept. `create` and `exec` therefore go through
//! [`cache::compile_cached`]: the compiled program is kept under `--root`, keyed by the
//! profile, architecture, libseccomp version, kernel and isorun binary, checksummed and
//! verified on every use, and only a miss compiles.
//!
//! The kernel converts and JITs every instruction of a filter on every container start
//! (docker's 960: 0.72–0.84 ms here, quiet; 279 after shrinking: 0.17 ms). libseccomp tests
//! syscall numbers one `jeq` at a time; [`shrink`] turns each run of `jeq`s to one place into
//! range tests (docker's profile: 960 → 279 instructions) and `compile` keeps the result only when
//! [`shrink::decide_alike`] finds it decides as libseccomp's program on every architecture the
//! filter knows and one it does not, and on every syscall number where a decision can change
//! ([`interp`] runs both).
//!
//! # Semantics (runtime-spec 1.3 config-linux.md "Seccomp", runc where the spec is silent)
//!
//! * Architectures: the native one always, plus every listed one (`seccomp_arch_add`, as runc),
//!   except those of the other endianness, which libseccomp refuses to mix (`EDOM`) and the
//!   kernel never reports: they are skipped (`tracing::debug!`).
//!   A syscall from an ABI not in the filter is killed (`SECCOMP_RET_KILL_THREAD`, libseccomp's
//!   default bad-arch action, which runc keeps).
//! * `SCMP_ACT_ERRNO`/`SCMP_ACT_TRACE` without `errnoRet` return `EPERM` (runc).
//! * Syscall names are resolved for the native architecture (`seccomp_syscall_resolve_name`,
//!   which knows the names of the other architectures too); unknown names are skipped
//!   (`tracing::debug!`, runc). libseccomp maps each rule onto every architecture of the
//!   filter, including the i386 `socketcall`/`ipc` multiplexers.
//! * Per syscall, libseccomp decides (as in runc): the first unconditional rule wins over later
//!   rules; conditional rules with different actions become branches of one decision tree.
//! * Conditions of one rule are AND-ed, except (runc) when an argument index appears twice:
//!   each condition is then its own rule. `SCMP_CMP_MASKED_EQ` is `(arg & value) == valueTwo`.
//! * Rules whose action equals the default action are dropped (libseccomp refuses them, runc
//!   skips them).
//! * Flags `SECCOMP_FILTER_FLAG_{TSYNC,LOG,SPEC_ALLOW}` are set on the context
//!   (`seccomp_attr_set`) and passed to seccomp(2).
//! * `SCMP_ACT_NOTIFY` (runc 1.1): the filter is loaded with `SECCOMP_FILTER_FLAG_NEW_LISTENER`
//!   and the notify fd is sent over SCM_RIGHTS to the unix socket at `listenerPath`
//!   (connected by the runtime before clone) with runc's `ContainerProcessState` JSON
//!   (`fds: ["seccompFd"]`, `pid`, `metadata` = `listenerMetadata`, `state`). Refused (an
//!   error naming the JSON path): without `listenerPath`, with TSYNC, for `sendmsg`, `write`
//!   or `close`, and `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`.
//!
//! # Installed last
//!
//! [`install`] runs in the container's init after everything else (credentials, fds, LSM
//! labels, the exec fifo wait, startContainer hooks, signal dispositions), right before
//! execve, whose pointer arrays are built beforehand so nothing allocates under the filter.
//! With noNewPrivileges only execve follows the filter (runc 1.1 still writes its sync pipe,
//! opens and writes the exec fifo and runs startContainer hooks under it). Without it, loading the
//! filter needs CAP_SYS_ADMIN: the init keeps it until then, and one allocation-free
//! `capset` to the final sets follows the filter; a profile that denies capset makes the
//! start fail with that said (runc, which loads such filters before dropping capabilities,
//! needs capset, setgroups, setresuid, prctl, close_range, ... allowed).

pub mod cache;
mod context;
pub mod interp;
pub mod shrink;
mod sys;
#[cfg(test)]
mod tests;
mod verify;

use oci_spec::runtime::LinuxSeccomp;

pub use libc::sock_filter;
pub use verify::{verify_program, BPF_MAXINSNS};

/// `linux.seccomp` actions isorun implements (for `isorun features`).
pub const SUPPORTED_ACTIONS: [&str; 9] = [
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
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

/// `linux.seccomp.architectures` values isorun accepts: those libseccomp 2.5 knows
/// (`SCMP_ARCH_NATIVE` too, always in the filter). Those of the native endianness are added
/// to the filter (runc), the others skipped (libseccomp cannot mix them, the kernel never
/// reports them). `SCMP_ARCH_LOONGARCH64`, `SCMP_ARCH_M68K`, `SCMP_ARCH_SH` and `SCMP_ARCH_SHEB`
/// need libseccomp 2.6: with Debian 12's 2.5 they are an error naming their path.
pub const SUPPORTED_ARCHES: [&str; 19] = [
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
];

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
    /// libseccomp refused a call (`what` names it and the JSON path or syscall).
    #[error("{path}: {what}: libseccomp: {source}")]
    Libseccomp {
        /// JSON path of the value being translated (`linux.seccomp` for the whole filter).
        path: String,
        /// The operation, e.g. `seccomp_rule_add(mkdir)`.
        what: String,
        /// libseccomp's error.
        source: libseccomp::error::SeccompError,
    },
    /// libseccomp did not finish translating the profile in time.
    #[error(
        "linux.seccomp: libseccomp did not finish compiling the profile within {limit:?} (libseccomp \
         2.5.x loops forever on some rule sets, e.g. two rules for one syscall whose conditions \
         compare different arguments)"
    )]
    Stuck {
        /// How long it was given.
        limit: std::time::Duration,
    },
    /// The compile worker thread could not be started.
    #[error("linux.seccomp: starting the compile worker thread: {0}")]
    Worker(#[source] std::io::Error),
    /// The compile worker panicked (its message).
    #[error("linux.seccomp: the compile worker panicked: {0}")]
    WorkerPanicked(String),
    /// The exported program could not be read back.
    #[error("linux.seccomp: reading the exported BPF program: {0}")]
    Export(#[source] std::io::Error),
    /// The program exceeds the kernel's 4096 instructions.
    #[error("linux.seccomp: the filter has {len} instructions, more than the kernel's limit of 4096")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// A program failed [`verify_program`].
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

    /// The filter uses `SCMP_ACT_NOTIFY`: its fd goes to `linux.seccomp.listenerPath`.
    pub fn needs_listener(&self) -> bool {
        self.flags & context::NEW_LISTENER != 0
    }
}

/// Translate the profile (in the parent, before clone: see [`compile_within`]).
pub fn compile(profile: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    context::compile(profile)
}

/// [`compile`] on a worker thread, given at most `limit`: libseccomp can loop forever on
/// some profiles (found by fuzzing; reproduced in C alone), and a config.json must not hang
/// `create`. The worker is joined once it has answered, so the caller is single-threaded
/// again when it returns (its next step is a fork-like clone3, see
/// [`crate::sys::threads`]). On timeout the worker is abandoned and [`SeccompError::Stuck`]
/// returned: the caller must fail (and exit) without cloning.
pub fn compile_within(profile: &LinuxSeccomp, limit: std::time::Duration) -> Result<Filter, SeccompError> {
    use std::sync::mpsc::RecvTimeoutError;
    let (tx, rx) = std::sync::mpsc::channel();
    let profile = profile.clone();
    let worker = std::thread::Builder::new()
        .name("seccomp-compile".into())
        .spawn(move || {
            let _ = tx.send(compile(&profile));
        })
        .map_err(SeccompError::Worker)?;
    match rx.recv_timeout(limit) {
        Ok(compiled) => {
            // It has sent its answer: only its exit is left, which join waits for.
            worker.join().map_err(|p| SeccompError::WorkerPanicked(panic_text(&p)))?;
            compiled
        }
        Err(RecvTimeoutError::Disconnected) => {
            Err(SeccompError::WorkerPanicked(worker.join().err().map(|p| panic_text(&p)).unwrap_or_default()))
        }
        Err(RecvTimeoutError::Timeout) => Err(SeccompError::Stuck { limit }),
    }
}

fn panic_text(payload: &Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic".into())
}

/// Install the filter on this process (and its future children). Loading needs
/// no_new_privs or CAP_SYS_ADMIN. Does not allocate on success. Returns the notify fd when
/// the filter uses `SCMP_ACT_NOTIFY`.
pub fn install(filter: &Filter) -> Result<Option<std::os::fd::OwnedFd>, SeccompError> {
    sys::load(&filter.program, filter.flags)
}

/// runc's `ContainerProcessState`, sent with the notify fd to `listenerPath`: `state` is the
/// container's OCI state JSON, `pid` the process the filter is on.
pub fn listener_message(state: &[u8], pid: Option<i32>, metadata: Option<&str>) -> Vec<u8> {
    let state: serde_json::Value = serde_json::from_slice(state).unwrap_or(serde_json::Value::Null);
    let pid = pid.map_or_else(|| state["pid"].clone(), serde_json::Value::from);
    serde_json::json!({
        "ociVersion": state["ociVersion"],
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": metadata.unwrap_or(""),
        "state": state,
    })
    .to_string()
    .into_bytes()
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
