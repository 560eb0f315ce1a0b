//! The container lifecycle, runtime-spec runtime.md: create → created → start → running →
//! stopped → delete. No daemon and no monitor process: the status is derived from the init
//! process and the exec fifo each time it is asked for.

pub mod bundle;
mod create;
mod exec;
mod init;
mod ops;
pub mod plan;
pub(crate) mod record;
mod resources;
mod rootless;
mod run;
mod shared_mount;
mod signals;
pub(crate) mod spawn;

use std::path::PathBuf;

pub use bundle::Bundle;
pub use create::{create, CreateOptions, Created};
pub use exec::{exec, exec_process, ExecOptions, ExecOverrides};
pub use ops::{delete, kill, list, start, state, OciState};
pub use plan::Plan;
pub use resources::{parse_size, pause, ps, resume, stats, update, ProcessEntry};
pub use run::run;
pub use signals::parse_signal;

use crate::config::ConfigErrors;
use crate::state::{StateError, Status};

/// Errors of lifecycle operations, each naming the container, path or step.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// config.json has problems; all of them are listed.
    #[error("invalid {path}: {}", errors.0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Config {
        /// The config file.
        path: PathBuf,
        /// Every problem, `json.path: reason` one per line.
        errors: ConfigErrors,
    },
    /// A file of the bundle could not be read.
    #[error("{what} {path}: {source}")]
    Bundle {
        /// What it is (`bundle`, `config`, `root.path`).
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A host-side step failed.
    #[error("{step}: {errno}")]
    Host {
        /// The step with its argument, e.g. `write /proc/42/uid_map`.
        step: String,
        /// The errno.
        errno: nix::errno::Errno,
    },
    /// The container's init reported a failed step.
    #[error("container init failed at {step}: {message}")]
    Init {
        /// The step.
        step: String,
        /// The error with its context.
        message: String,
    },
    /// The container's init died before reporting.
    #[error("container init exited before it was ready ({0})")]
    InitDied(String),
    /// The operation is not allowed in the container's current status.
    #[error("container {id:?} is {status}: cannot {op}{}", runc_words(*.status, .op))]
    WrongStatus {
        /// The container.
        id: String,
        /// Its status.
        status: Status,
        /// What was attempted.
        op: &'static str,
    },
    /// The container's cgroup could not be set up or removed.
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
    /// Running as an unprivileged user, the config asks for what this user cannot make.
    #[error(transparent)]
    Rootless(#[from] crate::rootless::RootlessError),
    /// A hook failed (prestart, createRuntime, createContainer, startContainer).
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    /// The container has no cgroup (it was created without one).
    #[error("container {0:?} has no cgroup")]
    NoCgroup(String),
    /// A capability name that is not one.
    #[error("unknown capability {0:?}")]
    BadCapability(String),
    /// An AppArmor/SELinux request the host cannot honour.
    #[error(transparent)]
    Lsm(#[from] crate::lsm::LsmError),
    /// A config field (or flag) isorun cannot honour on this host; never accepted and ignored.
    #[error("{field}: {reason}")]
    Unsupported {
        /// The JSON path or flag.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A signal name or number that is not a signal.
    #[error("invalid signal {0:?}")]
    BadSignal(String),
    /// linux.netDevices could not be moved in or out.
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    /// linux.seccomp could not be compiled (before anything is created).
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    /// The init (or exec'd process) could not be cloned; `clone3 refused: ...` when this
    /// process was not single-threaded.
    #[error(transparent)]
    Clone(#[from] crate::sys::process::CloneError),
}

/// runc's words for a wrong status, which callers match on: containerd's shim treats a
/// kill answered "container not running" as "already finished".
fn runc_words(status: Status, op: &str) -> &'static str {
    match status {
        Status::Stopped => ": container not running",
        Status::Paused => ": container paused",
        Status::Running | Status::Created if op.starts_with("delete") => ": container still running",
        Status::Running if op.starts_with("resume") => ": container not paused",
        _ => "",
    }
}

/// The errno inside an io::Error (EIO when it carries none).
fn errno_of(e: &std::io::Error) -> nix::errno::Errno {
    nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

fn host(step: impl Into<String>) -> impl FnOnce(nix::errno::Errno) -> ContainerError {
    let step = step.into();
    move |errno| ContainerError::Host { step, errno }
}

/// `process.oomScoreAdj` of a process that will live in a user namespace, written by the
/// parent: the process itself, non-dumpable and with its mm from the host's user namespace,
/// cannot write its own `/proc/self/oom_score_adj` (the file is the host root's), so runc's
/// nsexec writes it before the namespaces and isorun from the host after the clone.
pub(crate) fn write_oom_score_adj(pid: nix::unistd::Pid, adj: Option<i32>) -> Result<(), ContainerError> {
    let Some(adj) = adj else { return Ok(()) };
    let path = format!("/proc/{pid}/oom_score_adj");
    std::fs::write(&path, adj.to_string()).map_err(|e| ContainerError::Host {
        step: format!("write {path} ({adj}, process.oomScoreAdj)"),
        errno: errno_of(&e),
    })
}

/// `process.rlimits` of a process that will live in a user namespace, set by the parent with
/// prlimit(2), as runc does once its init is ready: inside, raising a hard limit needs
/// CAP_SYS_RESOURCE in the host's user namespace, which the process no longer has (podman's
/// RLIMIT_NOFILE 1048576 failed every container of its config with a user namespace).
pub(crate) fn write_rlimits(
    pid: nix::unistd::Pid,
    process: Option<&oci_spec::runtime::Process>,
) -> Result<(), ContainerError> {
    for rl in process.and_then(|p| p.rlimits().as_ref()).into_iter().flatten() {
        let resource = init::creds::resource_of(rl.typ()) as libc::__rlimit_resource_t;
        crate::sys::process::prlimit(pid, resource, rl.soft(), rl.hard()).map_err(|errno| {
            ContainerError::Host {
                step: format!(
                    "prlimit({pid}, {:?}, {}, {}) (process.rlimits)",
                    rl.typ(),
                    rl.soft(),
                    rl.hard()
                ),
                errno,
            }
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case(
        Status::Stopped,
        "kill (not running)",
        "container \"c\" is stopped: cannot kill (not running): container not running"
    )]
    #[test_case(
        Status::Paused,
        "exec (not running)",
        "container \"c\" is paused: cannot exec (not running): container paused"
    )]
    #[test_case(
        Status::Running,
        "delete (not stopped; use --force)",
        "container \"c\" is running: cannot delete (not stopped; use --force): container still running"
    )]
    #[test_case(
        Status::Running,
        "resume (not paused)",
        "container \"c\" is running: cannot resume (not paused): container not paused"
    )]
    #[test_case(
        Status::Created,
        "pause (not running)",
        "container \"c\" is created: cannot pause (not running)"
    )]
    fn wrong_status_reads_like_runc(status: Status, op: &'static str, want: &str) {
        assert_eq!(ContainerError::WrongStatus { id: "c".into(), status, op }.to_string(), want);
    }
}
