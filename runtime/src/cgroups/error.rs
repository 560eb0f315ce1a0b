//! [`CgroupError`]: every variant names the file, directory or config field, and the errno.

use std::path::{Path, PathBuf};

use nix::errno::Errno;

use super::fsio;

/// Failures of cgroup operations, each naming the file, directory or config field.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CgroupError {
    /// A syscall on a cgroup file or directory failed.
    #[error("{op} {}: {errno}", path.display())]
    Io {
        /// What was done (`mkdir`, `read`, `rmdir`, ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The errno.
        errno: Errno,
    },
    /// Writing a value to a cgroup file failed.
    #[error("write {value} to {}: {errno}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The value written.
        value: String,
        /// The errno.
        errno: Errno,
    },
    /// A resource needs a controller the host does not offer to this cgroup.
    #[error("{field}: the {controller} controller is not available: {detail} {}", path.display())]
    MissingController {
        /// The config field (`linux.resources.hugepageLimits`).
        field: String,
        /// The controller.
        controller: String,
        /// Why (`no v1 hierarchy has it in`, `not listed in`).
        detail: &'static str,
        /// /proc/self/mountinfo (v1) or the cgroup's `cgroup.controllers` (v2).
        path: PathBuf,
    },
    /// A resource's file does not exist (e.g. memsw without swap accounting).
    #[error("{field}: {} does not exist (ENOENT): the host's {controller} controller cannot enforce it", path.display())]
    MissingFile {
        /// The config field.
        field: String,
        /// The controller.
        controller: String,
        /// The missing file.
        path: PathBuf,
    },
    /// `linux.cgroupsPath` (or the id it defaults from) is not usable.
    #[error("linux.cgroupsPath {}: {reason}", path.display())]
    InvalidPath {
        /// The path as given.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A config field this cgroup version (or isorun) cannot enforce.
    #[error("{field}: {reason}")]
    Unsupported {
        /// The config field.
        field: String,
        /// Why.
        reason: String,
    },
    /// A cgroup file had unexpected content.
    #[error("parse {}: {reason}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The host's cgroup layout could not be determined.
    #[error("cgroup layout from {}: {reason}", path.display())]
    Layout {
        /// The file it was read from.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Freezing did not complete.
    #[error("freeze {}: {reason}", path.display())]
    Freeze {
        /// The freezer file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl CgroupError {
    pub(crate) fn io(op: &'static str, path: impl AsRef<Path>, e: &std::io::Error) -> Self {
        Self::Io { op, path: path.as_ref().to_owned(), errno: fsio::errno(e) }
    }
}
