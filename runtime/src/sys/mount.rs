//! Raw mount-related syscalls that `nix` does not wrap (mount_setattr).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

/// `struct mount_attr` of linux/mount.h (`MOUNT_ATTR_SIZE_VER0`).
#[repr(C)]
#[derive(Debug, Default)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(2) with `AT_RECURSIVE` on the mount at `path` and every mount below it:
/// set the `MOUNT_ATTR_*` bits of `attr_set`, clear those of `attr_clr` (Linux 5.12+;
/// `ENOSYS` before).
pub fn mount_setattr_recursive(path: &Path, attr_set: u64, attr_clr: u64) -> Result<(), Errno> {
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let attr = MountAttr { attr_set, attr_clr, ..MountAttr::default() };
    let flags = libc::AT_RECURSIVE as libc::c_uint;
    // SAFETY: `c_path` is a NUL-terminated string and `attr` a properly laid out
    // `struct mount_attr`; both outlive the call, and the size passed is the struct's own.
    // The kernel only reads them.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c_path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(ret).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_is_ver0_size() {
        assert_eq!(std::mem::size_of::<MountAttr>(), 32);
    }

    #[test]
    fn nul_in_path_is_einval() {
        assert_eq!(mount_setattr_recursive(Path::new("a\0b"), 0, 0), Err(Errno::EINVAL));
    }
}
