//! The container side of the floor: its root becomes the rootfs (private /, bind the rootfs
//! onto itself, pivot_root, detach the old root), then execve `/bin/true`. Runs in the
//! cloned child only; returns only on failure.

use std::ffi::{CStr, CString};
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, execve, pivot_root};

use super::FloorError;

/// The program the container runs.
pub const TRUE: &CStr = c"/bin/true";

/// Enters `rootfs` and execs [`TRUE`] with an empty environment; the error if a step fails.
pub fn enter_and_exec(rootfs: &Path) -> FloorError {
    match enter(rootfs) {
        Err(e) => e,
        Ok(()) => {
            let args: [&CStr; 1] = [TRUE];
            let env: [CString; 0] = [];
            match execve(TRUE, &args, &env) {
                Err(errno) => FloorError::Sys { step: "execve", path: "/bin/true".into(), errno },
                Ok(never) => match never {},
            }
        }
    }
}

fn enter(rootfs: &Path) -> Result<(), FloorError> {
    let none = None::<&str>;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(FloorError::sys("make / private (mount MS_REC|MS_PRIVATE)", "/"))?;
    mount(Some(rootfs), rootfs, none, MsFlags::MS_BIND | MsFlags::MS_REC, none)
        .map_err(FloorError::sys("bind-mount the rootfs onto itself", rootfs))?;
    chdir(rootfs).map_err(FloorError::sys("chdir", rootfs))?;
    // pivot_root(".", "."): the old root ends up stacked on the new one, then is detached;
    // no put_old directory is needed (runc does the same).
    pivot_root(".", ".").map_err(FloorError::sys("pivot_root", rootfs))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(FloorError::sys("umount the old root", "/"))?;
    chdir("/").map_err(FloorError::sys("chdir", "/"))
}
