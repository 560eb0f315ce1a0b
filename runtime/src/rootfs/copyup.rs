//! `tmpcopyup` (a runc extension): a tmpfs mounted over a directory starts with a copy of
//! what that directory held. The covered directory stays reachable through an fd opened
//! before the mount (`/proc/self/fd/N`).

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{lchown, symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{self, OFlag};
use nix::sys::stat::{self, Mode, SFlag};

use super::paths::Target;
use super::{io_errno, RootfsError};

/// The directory about to be covered by the tmpfs.
#[derive(Debug)]
pub struct Lower {
    fd: OwnedFd,
    path: PathBuf,
}

/// Open the directory at `host` before a tmpfs covers it.
pub fn open_lower(host: &Path) -> Result<Lower, RootfsError> {
    let flags = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = fcntl::open(host, flags, Mode::empty()).map_err(RootfsError::fs("open for tmpcopyup", host))?;
    Ok(Lower { fd, path: host.to_path_buf() })
}

/// Copy everything under `lower` into the new mount `upper`, keeping modes and owners and
/// never following symlinks.
pub fn copy_up(lower: &Lower, upper: &Target) -> Result<(), RootfsError> {
    let src = PathBuf::from(format!("/proc/self/fd/{}", lower.fd.as_raw_fd()));
    copy_tree(&src, &upper.proc_path()).map_err(|e| RootfsError::Fs {
        step: "tmpcopyup",
        path: lower.path.clone(),
        errno: io_errno(&e),
    })
}

fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let meta = fs::symlink_metadata(&from)?;
        let ft = meta.file_type();
        if ft.is_dir() {
            fs::create_dir(&to)?;
            copy_tree(&from, &to)?;
        } else if ft.is_symlink() {
            symlink(fs::read_link(&from)?, &to)?;
        } else if ft.is_file() {
            fs::copy(&from, &to)?;
        } else {
            let kind = SFlag::from_bits_truncate(meta.mode()) & SFlag::S_IFMT;
            stat::mknod(&to, kind, Mode::from_bits_truncate(meta.mode()), meta.rdev())
                .map_err(io::Error::from)?;
        }
        lchown(&to, Some(meta.uid()), Some(meta.gid()))?;
        if !ft.is_symlink() {
            fs::set_permissions(&to, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_files_dirs_links_and_modes() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        fs::create_dir(src.path().join("d")).unwrap();
        fs::write(src.path().join("d/f"), "x").unwrap();
        fs::set_permissions(src.path().join("d/f"), fs::Permissions::from_mode(0o640)).unwrap();
        symlink("/etc/passwd", src.path().join("l")).unwrap();
        copy_tree(src.path(), dst.path()).unwrap();
        assert_eq!(fs::read_to_string(dst.path().join("d/f")).unwrap(), "x");
        assert_eq!(fs::metadata(dst.path().join("d/f")).unwrap().mode() & 0o777, 0o640);
        assert_eq!(fs::read_link(dst.path().join("l")).unwrap(), Path::new("/etc/passwd"));
    }
}
