//! The container's filesystem view, set up inside the child in its new mount namespace (or,
//! without one, in the caller's: see [`RootfsOptions::shared_mount_ns`]).
//!
//! Order (runc's): `/` rslave (or `rootfsPropagation`) → rootfs bound onto itself →
//! `spec.mounts` in order (`mounts`, `cgroupfs`) → default and `linux.devices`
//! (`devices`) → pivot_root or MS_MOVE+chroot (`pivot`) → `linux.sysctl` →
//! readonlyPaths, maskedPaths (`masked`) → `/dev` and `/` read-only.
//! Every destination is resolved inside the rootfs ([`paths`]): no symlink leads out.

pub(crate) mod cgroupfs;
pub use cgroupfs::HostCgroupView;
mod copyup;
mod devices;
mod masked;
mod mounts;
pub mod paths;
mod pivot;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;
use oci_spec::runtime::Spec;

/// What the rootfs setup needs to know beyond the spec.
#[derive(Debug, Clone)]
pub struct RootfsOptions {
    /// Absolute path of the rootfs on the host (bundle + root.path, canonicalised).
    pub rootfs: PathBuf,
    /// The bundle directory: relative bind-mount sources are taken from here.
    pub bundle: PathBuf,
    /// The container has its own user namespace (devices must be bind-mounted, not mknod'ed).
    pub in_user_ns: bool,
    /// The container has its own cgroup namespace.
    pub in_cgroup_ns: bool,
    /// The host's cgroup layout as the init saw it in its own cgroups, just before it made its
    /// cgroup namespace: v1 hierarchies are then bound from its own directories (see
    /// [`cgroupfs::HostCgroupView`]). None: read when mounting, and mounted fresh in a cgroup
    /// namespace.
    pub host_cgroup_view: Option<HostCgroupView>,
    /// Never pivot_root: MS_MOVE the rootfs onto `/` and chroot (runc's `--no-pivot`).
    pub no_pivot: bool,
    /// No mount namespace: the caller's is shared. The parent has already bound the rootfs
    /// onto itself (rprivate); `/` is left as it is and the init chroots (runc's `chroot()`).
    pub shared_mount_ns: bool,
}

/// Failure of one step of the rootfs setup, with the path and the errno.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// A hook run just before pivot_root failed (prestart, createRuntime, createContainer).
    #[error("{0}")]
    BeforePivot(String),
    /// mount(2) of a filesystem failed.
    #[error("mount {fstype} on {target}: {errno}")]
    Mount {
        /// Filesystem type (`proc`, `tmpfs`, `cgroup2`, ...).
        fstype: String,
        /// Where it was mounted (host path before pivot_root, container path after).
        target: PathBuf,
        /// The errno.
        errno: Errno,
    },
    /// A bind mount failed.
    #[error("bind {from} on {target}: {errno}")]
    Bind {
        /// What was bound.
        from: PathBuf,
        /// Where.
        target: PathBuf,
        /// The errno.
        errno: Errno,
    },
    /// A remount (to apply `ro`, `nosuid`, ... to a bind mount) failed.
    #[error("remount {target} {flags}: {errno}")]
    Remount {
        /// The mount point.
        target: PathBuf,
        /// The flags asked for, like `ro,nosuid`.
        flags: String,
        /// The errno.
        errno: Errno,
    },
    /// Changing mount propagation failed.
    #[error("make {target} {propagation}: {errno}")]
    Propagation {
        /// The mount point.
        target: PathBuf,
        /// `rslave`, `private`, ...
        propagation: String,
        /// The errno.
        errno: Errno,
    },
    /// umount2(2) failed.
    #[error("umount {target}: {errno}")]
    Unmount {
        /// The mount point.
        target: PathBuf,
        /// The errno.
        errno: Errno,
    },
    /// A destination could not be resolved inside the rootfs (`ELOOP`, `EXDEV` if it left it).
    #[error("resolve {path} in {root}: {errno}")]
    Resolve {
        /// The rootfs.
        root: PathBuf,
        /// The container path.
        path: PathBuf,
        /// The errno.
        errno: Errno,
    },
    /// A filesystem operation (`mkdir`, `mknod`, `symlink`, `open`, `chdir`, ...) failed.
    #[error("{step} {path}: {errno}")]
    Fs {
        /// The operation.
        step: &'static str,
        /// The path.
        path: PathBuf,
        /// The errno.
        errno: Errno,
    },
    /// pivot_root(2) failed (other than the initramfs case, which falls back to MS_MOVE).
    #[error("pivot_root into {rootfs}: {errno}")]
    PivotRoot {
        /// The new root.
        rootfs: PathBuf,
        /// The errno.
        errno: Errno,
    },
    /// A mount entry that cannot be honoured as written.
    #[error("mount {destination}: {reason}")]
    InvalidMount {
        /// The entry's destination.
        destination: PathBuf,
        /// Why.
        reason: String,
    },
    /// A `linux.devices` entry that cannot be created as written.
    #[error("device {path}: {reason}")]
    InvalidDevice {
        /// The device path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `linux.rootfsPropagation` is not a propagation mode.
    #[error("rootfsPropagation {0:?}: not one of shared, slave, private, unbindable (or r-)")]
    InvalidPropagation(String),
    /// The host's cgroup layout could not be read or used.
    #[error("mount cgroup on {target}: {reason}")]
    CgroupLayout {
        /// The cgroup mount destination.
        target: PathBuf,
        /// Why.
        reason: String,
    },
    /// Writing a sysctl failed.
    #[error("sysctl {key}: write {path}: {errno}")]
    Sysctl {
        /// The sysctl key (`net.ipv4.ip_forward`).
        key: String,
        /// The file under /proc/sys.
        path: PathBuf,
        /// The errno.
        errno: Errno,
    },
}

impl RootfsError {
    pub(crate) fn fs(step: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(Errno) -> Self {
        let path = path.into();
        move |errno| Self::Fs { step, path, errno }
    }
}

/// The errno of an `io::Error` (EIO if it carries none).
pub(crate) fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// `ro,nosuid,...` for messages.
pub(crate) fn flag_names(flags: MsFlags) -> String {
    const NAMES: &[(MsFlags, &str)] = &[
        (MsFlags::MS_RDONLY, "ro"),
        (MsFlags::MS_NOSUID, "nosuid"),
        (MsFlags::MS_NODEV, "nodev"),
        (MsFlags::MS_NOEXEC, "noexec"),
        (MsFlags::MS_SYNCHRONOUS, "sync"),
        (MsFlags::MS_DIRSYNC, "dirsync"),
        (MsFlags::MS_MANDLOCK, "mand"),
        (MsFlags::MS_NOATIME, "noatime"),
        (MsFlags::MS_NODIRATIME, "nodiratime"),
        (MsFlags::MS_RELATIME, "relatime"),
        (MsFlags::MS_STRICTATIME, "strictatime"),
        (MsFlags::MS_BIND, "bind"),
        (MsFlags::MS_REC, "rec"),
        (MsFlags::MS_REMOUNT, "remount"),
        (MsFlags::MS_PRIVATE, "private"),
        (MsFlags::MS_SLAVE, "slave"),
        (MsFlags::MS_SHARED, "shared"),
        (MsFlags::MS_UNBINDABLE, "unbindable"),
    ];
    let names: Vec<&str> = NAMES.iter().filter(|(f, _)| flags.contains(*f)).map(|(_, n)| *n).collect();
    if names.is_empty() {
        "defaults".into()
    } else {
        names.join(",")
    }
}

/// Set up the whole filesystem view: make `/` private (or `rootfsPropagation`), bind the
/// rootfs onto itself, mount every `spec.mounts` entry, create default devices and
/// `linux.devices`, pivot_root into it (MS_MOVE+chroot fallback when the current root is an
/// initramfs), apply maskedPaths and readonlyPaths, and remount `/` readonly if
/// `root.readonly`. Must be called in the child, already in its own mount namespace.
/// After it returns, the process's root and cwd are the container's `/`.
///
/// `linux.sysctl` is written here too, after pivot_root and before readonlyPaths (which
/// usually include `/proc/sys`), as runc does; a later [`write_sysctls`] of the same map is a
/// no-op.
pub fn setup_rootfs(spec: &Spec, opts: &RootfsOptions) -> Result<(), RootfsError> {
    setup_rootfs_with(spec, opts, &mut || Ok(()))
}

/// [`setup_rootfs`], calling `before_pivot` once every mount and device is in place and
/// before pivot_root: the moment of the prestart, createRuntime and createContainer hooks.
pub fn setup_rootfs_with(
    spec: &Spec,
    opts: &RootfsOptions,
    before_pivot: &mut dyn FnMut() -> Result<(), String>,
) -> Result<(), RootfsError> {
    let rootfs = std::fs::canonicalize(&opts.rootfs).map_err(|e| RootfsError::Fs {
        step: "canonicalize rootfs",
        path: opts.rootfs.clone(),
        errno: io_errno(&e),
    })?;
    let linux = spec.linux().as_ref();
    let propagation = match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        None | Some("") => None,
        Some(p) => match crate::config::parse_mount_options(&[p]).propagation.as_slice() {
            [one] => Some(*one),
            _ => return Err(RootfsError::InvalidPropagation(p.into())),
        },
    };
    if !opts.shared_mount_ns {
        pivot::prepare_root(&rootfs, propagation)?;
    }

    let mut ctx = mounts::Ctx::new(rootfs.clone(), opts);
    let spec_mounts = spec.mounts().as_deref().unwrap_or_default();
    for m in spec_mounts {
        mounts::mount_entry(&mut ctx, m)?;
    }
    if !mounts::dev_is_bind_mounted(spec_mounts) {
        let devs = linux.and_then(|l| l.devices().as_deref()).unwrap_or_default();
        devices::create_devices(&ctx, devs)?;
        devices::create_dev_symlinks(&ctx)?;
    }

    before_pivot().map_err(RootfsError::BeforePivot)?;
    pivot::enter_rootfs(&rootfs, opts.no_pivot, opts.shared_mount_ns)?;
    if let Some(p) = propagation.filter(|p| !p.contains(MsFlags::MS_PRIVATE)) {
        pivot::set_propagation(Path::new("/"), p)?;
    }
    devices::reopen_dev_null();

    if let Some(sysctl) = linux.and_then(|l| l.sysctl().as_ref()) {
        write_sysctls(sysctl)?;
    }
    for p in linux.and_then(|l| l.readonly_paths().as_deref()).unwrap_or_default() {
        masked::readonly_path(Path::new(p))?;
    }
    for p in linux.and_then(|l| l.masked_paths().as_deref()).unwrap_or_default() {
        masked::mask_path(Path::new(p))?;
    }
    if let Some(dev) = ctx.dev_readonly.take() {
        masked::remount_readonly(&dev)?;
    }
    if spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false) {
        masked::remount_readonly(Path::new("/"))?;
    }
    Ok(())
}

/// Write each `key = value` to `/proc/sys/<key with . → />`. Call after [`setup_rootfs`].
/// A key whose current value already equals the wanted one (compared word by word) is not
/// written, so repeating what [`setup_rootfs`] already did works even with `/proc/sys`
/// read-only.
pub fn write_sysctls(sysctl: &HashMap<String, String>) -> Result<(), RootfsError> {
    let mut keys: Vec<&String> = sysctl.keys().collect();
    keys.sort();
    for key in keys {
        let value = &sysctl[key];
        let path = sysctl_path(key).ok_or_else(|| RootfsError::Sysctl {
            key: key.clone(),
            path: PathBuf::from("/proc/sys"),
            errno: Errno::EINVAL,
        })?;
        if let Ok(cur) = std::fs::read_to_string(&path) {
            if cur.split_whitespace().eq(value.split_whitespace()) {
                continue;
            }
        }
        std::fs::write(&path, value.as_bytes()).map_err(|e| RootfsError::Sysctl {
            key: key.clone(),
            path: path.clone(),
            errno: io_errno(&e),
        })?;
    }
    Ok(())
}

/// `/proc/sys/net/ipv4/ip_forward` for `net.ipv4.ip_forward`; `None` for keys that would
/// leave /proc/sys (`..`, empty components).
fn sysctl_path(key: &str) -> Option<PathBuf> {
    let rel = key.replace('.', "/");
    let ok = !rel.is_empty() && rel.split('/').all(|c| !c.is_empty() && c != "..");
    ok.then(|| Path::new("/proc/sys").join(rel))
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("net.ipv4.ip_forward", Some("/proc/sys/net/ipv4/ip_forward") ; "dotted")]
    #[test_case("kernel/shmmax", Some("/proc/sys/kernel/shmmax") ; "slashed")]
    #[test_case("a..b", None ; "empty component")]
    #[test_case("", None ; "empty")]
    fn sysctl_paths(key: &str, want: Option<&str>) {
        assert_eq!(sysctl_path(key), want.map(PathBuf::from));
    }

    #[test]
    fn error_reads_like_the_brief() {
        let e = RootfsError::Mount {
            fstype: "proc".into(),
            target: "/run/x/rootfs/proc".into(),
            errno: Errno::EPERM,
        };
        assert!(e.to_string().starts_with("mount proc on /run/x/rootfs/proc: EPERM"));
    }

    #[test]
    fn flag_names_render() {
        assert_eq!(flag_names(MsFlags::MS_RDONLY | MsFlags::MS_NOSUID), "ro,nosuid");
        assert_eq!(flag_names(MsFlags::empty()), "defaults");
    }
}
