//! Making `/` not propagate to the host, and switching root: pivot_root(".", ".") and the
//! MS_MOVE+chroot fallback for an initramfs root.

use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{self, OFlag};
use nix::mount::{self, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use nix::unistd;

use super::{flag_names, RootfsError};
use crate::sys::mountinfo;

/// Apply a propagation change to one mount point.
pub fn set_propagation(target: &Path, flags: MsFlags) -> Result<(), RootfsError> {
    mount::mount(None::<&str>, target, None::<&str>, flags, None::<&str>).map_err(|errno| {
        RootfsError::Propagation { target: target.to_path_buf(), propagation: flag_names(flags), errno }
    })
}

/// Make `/` recursively slave (or `propagation`), make the rootfs' parent mount private so
/// pivot_root accepts it and the next bind does not propagate, then bind the rootfs onto
/// itself so it is a mount point.
pub fn prepare_root(rootfs: &Path, propagation: Option<MsFlags>) -> Result<(), RootfsError> {
    let flags = propagation.unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    set_propagation(Path::new("/"), flags)?;
    parent_mount_private(rootfs)?;
    let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
    mount::mount(Some(rootfs), rootfs, None::<&str>, bind, None::<&str>).map_err(|errno| RootfsError::Bind {
        from: rootfs.to_path_buf(),
        target: rootfs.to_path_buf(),
        errno,
    })
}

/// Walk up from `path` to the first mount point (EINVAL means "not a mount point") and make
/// it private.
fn parent_mount_private(path: &Path) -> Result<(), RootfsError> {
    let mut cur = path;
    loop {
        match mount::mount(None::<&str>, cur, None::<&str>, MsFlags::MS_PRIVATE, None::<&str>) {
            Ok(()) => return Ok(()),
            Err(Errno::EINVAL) if cur.parent().is_some() => cur = cur.parent().unwrap_or(cur),
            Err(errno) => {
                return Err(RootfsError::Propagation {
                    target: cur.to_path_buf(),
                    propagation: "private".into(),
                    errno,
                })
            }
        }
    }
}

/// Make `rootfs` the process's root and cwd: pivot_root, or MS_MOVE+chroot when `no_pivot`
/// or when pivot_root says EINVAL because `/` is the initramfs (a mount without a parent);
/// a plain chroot in the caller's mount namespace (`shared_mount_ns`), as runc.
pub fn enter_rootfs(rootfs: &Path, no_pivot: bool, shared_mount_ns: bool) -> Result<(), RootfsError> {
    unistd::chdir(rootfs).map_err(RootfsError::fs("chdir", rootfs))?;
    if shared_mount_ns {
        unistd::chroot(".").map_err(RootfsError::fs("chroot", rootfs))?;
        return unistd::chdir("/").map_err(RootfsError::fs("chdir", "/"));
    }
    if no_pivot {
        return move_root(rootfs);
    }
    match pivot(rootfs) {
        Err(RootfsError::PivotRoot { errno: Errno::EINVAL, .. }) if root_is_initramfs() => {
            tracing::debug!("pivot_root: EINVAL on an initramfs root, using MS_MOVE+chroot");
            move_root(rootfs)
        }
        r => r,
    }
}

/// The root mount is rootfs/ramfs/tmpfs with no parent: what pivot_root refuses.
fn root_is_initramfs() -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    mountinfo::parse(&text)
        .iter()
        .filter(|m| m.mount_point == Path::new("/"))
        .take(1)
        .any(|m| matches!(m.fstype.as_str(), "rootfs" | "ramfs" | "tmpfs"))
}

/// runc's pivot_root(".", "."): the old root ends up stacked under the new one, reachable as
/// "."; make it rslave so the detach does not propagate, then lazily unmount it.
fn pivot(rootfs: &Path) -> Result<(), RootfsError> {
    let dir = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    let old_root = fcntl::open("/", dir, Mode::empty()).map_err(RootfsError::fs("open", "/"))?;
    unistd::pivot_root(".", ".")
        .map_err(|errno| RootfsError::PivotRoot { rootfs: rootfs.to_path_buf(), errno })?;
    unistd::fchdir(&old_root).map_err(RootfsError::fs("fchdir to old root", "."))?;
    set_propagation(Path::new("."), MsFlags::MS_SLAVE | MsFlags::MS_REC)?;
    mount::umount2(".", MntFlags::MNT_DETACH)
        .map_err(|errno| RootfsError::Unmount { target: "old root".into(), errno })?;
    unistd::chdir("/").map_err(RootfsError::fs("chdir", "/"))
}

/// runc's msMoveRoot: first get rid of every host mount outside the rootfs (so no full
/// procfs/sysfs stays in the namespace, which the kernel would count as "visible" and which
/// an fd could reach), then move the rootfs onto `/` and chroot into it.
fn move_root(rootfs: &Path) -> Result<(), RootfsError> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| RootfsError::fs("read", "/proc/self/mountinfo")(super::io_errno(&e)))?;
    let infos = mountinfo::parse(&text);
    // Deepest first, so children go before their parents.
    let mut doomed: Vec<&mountinfo::MountInfo> = infos
        .iter()
        .filter(|m| !m.mount_point.starts_with(rootfs) && !rootfs.starts_with(&m.mount_point))
        .collect();
    doomed.sort_by_key(|m| std::cmp::Reverse(m.mount_point.components().count()));
    for m in doomed {
        let p = m.mount_point.as_path();
        match mount::mount(None::<&str>, p, None::<&str>, MsFlags::MS_SLAVE | MsFlags::MS_REC, None::<&str>) {
            Ok(()) => {}
            Err(Errno::ENOENT | Errno::EINVAL) => continue, // already gone with a parent
            Err(errno) => {
                return Err(RootfsError::Propagation {
                    target: p.into(),
                    propagation: "rslave".into(),
                    errno,
                })
            }
        }
        match mount::umount2(p, MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::ENOENT) => {}
            // Locked in a user namespace: cover a full proc/sysfs instead, as runc does.
            Err(Errno::EINVAL | Errno::EPERM) if matches!(m.fstype.as_str(), "proc" | "sysfs") => {
                mount::mount(Some("tmpfs"), p, Some("tmpfs"), MsFlags::MS_RDONLY, None::<&str>).map_err(
                    |errno| RootfsError::Mount { fstype: "tmpfs".into(), target: p.into(), errno },
                )?;
            }
            Err(errno) => tracing::debug!("umount {}: {errno} (left in place, unreachable)", p.display()),
        }
    }
    mount::mount(Some(rootfs), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .map_err(|errno| RootfsError::Bind { from: rootfs.into(), target: "/".into(), errno })?;
    unistd::chroot(".").map_err(RootfsError::fs("chroot", rootfs))?;
    unistd::chdir("/").map_err(RootfsError::fs("chdir", "/"))
}
