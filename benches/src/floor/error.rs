//! The floor program's errors: each names the step and the path it failed on.

use std::path::{Path, PathBuf};

use nix::errno::Errno;

/// Why the floor program could not start (or clean up after) its container.
#[derive(Debug, thiserror::Error)]
pub enum FloorError {
    /// The cgroup name is not one directory name.
    #[error("cgroup name {name:?}: {reason}")]
    CgroupName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No cgroup filesystem, or /proc/self/mountinfo unreadable.
    #[error("cgroup layout from /proc/self/mountinfo: {0}")]
    Layout(String),
    /// A syscall failed.
    #[error("{step} {}: {errno}", path.display())]
    Sys {
        /// What was being done (`mkdir`, `pivot_root`, ...).
        step: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The kernel's answer.
        errno: Errno,
    },
}

impl FloorError {
    /// A [`FloorError::Sys`] maker for `map_err`; it allocates only on error (the cloned
    /// child runs without allocating on its success path).
    pub fn sys<P: AsRef<Path>>(step: &'static str, path: P) -> impl FnOnce(Errno) -> FloorError {
        move |errno| FloorError::Sys { step, path: path.as_ref().to_owned(), errno }
    }

    /// As [`FloorError::sys`], from a `std::io::Error`.
    pub fn io<P: AsRef<Path>>(step: &'static str, path: P) -> impl FnOnce(std::io::Error) -> FloorError {
        move |e| FloorError::Sys {
            step,
            path: path.as_ref().to_owned(),
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        }
    }
}
