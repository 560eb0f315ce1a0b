//! After pivot_root: `linux.maskedPaths`, `linux.readonlyPaths`, and read-only remounts of
//! `/dev` and `/`. Paths are container paths now; missing ones are skipped.

use std::path::Path;

use nix::errno::Errno;
use nix::mount::{self, MsFlags};
use nix::sys::stat::{self, SFlag};

use super::mounts::locked_flags;
use super::{flag_names, RootfsError};

/// Hide `path`: an empty read-only tmpfs over a directory, /dev/null bound over anything else.
pub fn mask_path(path: &Path) -> Result<(), RootfsError> {
    let st = match stat::stat(path) {
        Ok(st) => st,
        Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(()),
        Err(errno) => return Err(RootfsError::Fs { step: "stat masked path", path: path.into(), errno }),
    };
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
        mount::mount(Some("tmpfs"), path, Some("tmpfs"), MsFlags::MS_RDONLY, None::<&str>)
            .map_err(|errno| RootfsError::Mount { fstype: "tmpfs".into(), target: path.into(), errno })
    } else {
        mount::mount(Some("/dev/null"), path, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(|errno| RootfsError::Bind { from: "/dev/null".into(), target: path.into(), errno })
    }
}

/// Make `path` read-only: bind it onto itself, then remount that bind read-only.
pub fn readonly_path(path: &Path) -> Result<(), RootfsError> {
    let rbind = MsFlags::MS_BIND | MsFlags::MS_REC;
    match mount::mount(Some(path), path, None::<&str>, rbind, None::<&str>) {
        Ok(()) => remount_readonly(path),
        Err(Errno::ENOENT | Errno::ENOTDIR) => Ok(()),
        Err(errno) => Err(RootfsError::Bind { from: path.into(), target: path.into(), errno }),
    }
}

/// MS_BIND|MS_REMOUNT|MS_RDONLY on the mount at `path`, keeping the nosuid/nodev/noexec and
/// atime flags it already has (dropping them is EPERM when they are locked in a user ns).
pub fn remount_readonly(path: &Path) -> Result<(), RootfsError> {
    let flags = MsFlags::MS_RDONLY | locked_flags(path);
    let all = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags;
    mount::mount(None::<&str>, path, None::<&str>, all, None::<&str>).map_err(|errno| RootfsError::Remount {
        target: path.into(),
        flags: flag_names(flags),
        errno,
    })
}
