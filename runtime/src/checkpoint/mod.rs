//! `checkpoint` and `restore` through CRIU's command line (`criu dump` / `criu restore`).
//!
//! Why the command line and not the swrk RPC (`rust-criu`): every option isorun needs is a
//! flag of the `criu` binary of the distribution, the argument lists are pure functions
//! table-tested in [`plan`], and the failure reason is in CRIU's log file either way (the RPC
//! answers only "dump failed"); the RPC would add a protobuf dependency pinned to one CRIU
//! version for no capability isorun uses.
//!
//! Before anything changes, [`preflight`] finds `criu` (`$ISORUN_CRIU`, else `PATH`, else
//! /usr/sbin), checks its version ([`plan::MIN_CRIU`]) and runs `criu check`, whose first
//! error line is the reason given when the kernel lacks what CRIU needs.

mod driver;
pub mod plan;

use std::path::{Path, PathBuf};

pub use driver::{checkpoint, restore, CheckpointOptions, RestoreOptions};

/// Errors of checkpoint and restore, each naming the path, the container or CRIU's reason.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// No `criu` binary.
    #[error("criu not found (looked at {looked}): install it (apt-get install criu) or set ISORUN_CRIU")]
    CriuMissing {
        /// Where it was looked for.
        looked: String,
    },
    /// `criu --version` failed or printed something unexpected.
    #[error("{criu} --version: {detail}")]
    CriuVersion {
        /// The binary.
        criu: PathBuf,
        /// What happened.
        detail: String,
    },
    /// CRIU is older than isorun needs.
    #[error("{criu} is version {found}; isorun needs CRIU {}.{}.{} or newer", plan::MIN_CRIU.0, plan::MIN_CRIU.1, plan::MIN_CRIU.2)]
    CriuTooOld {
        /// The binary.
        criu: PathBuf,
        /// Its version.
        found: String,
    },
    /// `criu check` says this kernel cannot checkpoint (the reason is CRIU's own line).
    #[error("criu check failed on kernel {kernel}: {reason}")]
    KernelUnsupported {
        /// `uname -r`.
        kernel: String,
        /// CRIU's first error line.
        reason: String,
    },
    /// A lifecycle problem (no such container, wrong status, cgroup, config).
    #[error(transparent)]
    Container(#[from] crate::container::ContainerError),
    /// The state store failed.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// The image directory is not an isorun checkpoint, or does not match the bundle.
    #[error("image directory {path}: {reason}")]
    Image {
        /// The image directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Something isorun cannot describe to CRIU.
    #[error("container {id:?}: {what} cannot be checkpointed by isorun")]
    Unsupported {
        /// The container.
        id: String,
        /// What.
        what: String,
    },
    /// `criu dump` failed; the container was left running as it was.
    #[error("criu dump failed: {reason} (log: {log}); the container is still running")]
    Dump {
        /// CRIU's first error line.
        reason: String,
        /// The full log.
        log: PathBuf,
    },
    /// `criu restore` failed; nothing of the container is left.
    #[error("criu restore failed: {reason} (log: {log})")]
    Restore {
        /// CRIU's first error line.
        reason: String,
        /// The full log.
        log: PathBuf,
    },
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CheckpointError + 'a {
    move |source| CheckpointError::Io { op, path: path.to_path_buf(), source }
}

/// A usable CRIU.
#[derive(Debug, Clone)]
pub struct Criu {
    /// The binary.
    pub path: PathBuf,
    /// Its version line (`3.17.1`).
    pub version: String,
}

fn find_criu() -> Result<PathBuf, CheckpointError> {
    if let Some(p) = std::env::var_os("ISORUN_CRIU") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(CheckpointError::CriuMissing { looked: p.display().to_string() })
        };
    }
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    dirs.extend(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from));
    dirs.iter().map(|d| d.join("criu")).find(|p| p.is_file()).ok_or_else(|| CheckpointError::CriuMissing {
        looked: dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(":"),
    })
}

/// Finds CRIU, checks its version and runs `criu check`; nothing is changed.
pub fn preflight() -> Result<Criu, CheckpointError> {
    let path = find_criu()?;
    let out = std::process::Command::new(&path)
        .arg("--version")
        .output()
        .map_err(|e| CheckpointError::CriuVersion { criu: path.clone(), detail: e.to_string() })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(v) = plan::parse_criu_version(&text).filter(|_| out.status.success()) else {
        let detail = format!("{}: {:?}", out.status, text.trim());
        return Err(CheckpointError::CriuVersion { criu: path, detail });
    };
    let version = format!("{}.{}.{}", v.0, v.1, v.2);
    if v < plan::MIN_CRIU {
        return Err(CheckpointError::CriuTooOld { criu: path, found: version });
    }
    let check = std::process::Command::new(&path)
        .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| driver::DEFAULT_PATH.into()))
        .arg("check")
        .output()
        .map_err(|e| CheckpointError::CriuVersion { criu: path.clone(), detail: e.to_string() })?;
    if !check.status.success() {
        let all =
            format!("{}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
        let reason = plan::criu_error_line(&all).unwrap_or_else(|| format!("exit {}", check.status));
        let kernel = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_else(|_| "?".into());
        return Err(CheckpointError::KernelUnsupported { kernel, reason });
    }
    Ok(Criu { path, version })
}
