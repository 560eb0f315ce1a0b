//! The container's filesystem view, set up inside the child in its new mount namespace.
//! OWNER: rootfs helper. Interface fixed below; everything else in this directory is free.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

/// What the rootfs setup needs to know beyond the spec.
#[derive(Debug, Clone)]
pub struct RootfsOptions {
    /// Absolute path of the rootfs on the host (bundle + root.path, canonicalised).
    pub rootfs: PathBuf,
    /// The container has its own user namespace (devices must be bind-mounted, not mknod'ed).
    pub in_user_ns: bool,
    /// The container has its own cgroup namespace.
    pub in_cgroup_ns: bool,
}

/// Failure of one step of the rootfs setup, with the path and the errno.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// Placeholder until the helper fills this in.
    #[error("{step} {path}: {errno}")]
    Step {
        /// What was attempted (`mount proc`, `pivot_root`, ...).
        step: &'static str,
        /// The path it was attempted on.
        path: PathBuf,
        /// The errno.
        errno: nix::errno::Errno,
    },
}

/// Set up the whole filesystem view: make `/` private (or `rootfsPropagation`), bind the
/// rootfs onto itself, mount every `spec.mounts` entry, create default devices and
/// `linux.devices`, pivot_root into it (MS_MOVE+chroot fallback when the current root is an
/// initramfs), apply maskedPaths and readonlyPaths, and remount `/` readonly if
/// `root.readonly`. Must be called in the child, already in its own mount namespace.
/// After it returns, the process's root and cwd are the container's `/`.
pub fn setup_rootfs(spec: &Spec, opts: &RootfsOptions) -> Result<(), RootfsError> {
    let _ = (spec, opts, Path::new("/"));
    Ok(())
}
