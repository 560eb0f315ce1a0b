//! Resolving container paths inside the rootfs without ever leaving it, creating mount
//! destinations, and opening them as `/proc/self/fd/N` targets so a symlink swapped in after
//! resolution cannot redirect a mount.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{self, OFlag};
use nix::sys::stat::{self, Mode, SFlag};

/// Most symlinks followed while resolving one path, as the kernel's MAXSYMLINKS (40) would
/// be too tight for deep images; runc's securejoin uses 255.
const MAX_SYMLINKS: usize = 255;

/// Resolve the container path `unsafe_path` inside `root` (a host path) and return the host
/// path it designates. Every existing component is resolved with lstat/readlink; absolute
/// symlink targets restart at `root`, and `..` stops at `root`, as if the process were
/// chrooted there. Components that do not exist (yet) are kept literally. A symlink loop
/// gives `ELOOP`; other lstat errors are returned as is.
pub fn resolve_in_root(root: &Path, unsafe_path: &Path) -> Result<PathBuf, Errno> {
    let mut queue: VecDeque<OsString> = components(unsafe_path).collect();
    // Resolved, symlink-free path relative to `root`, as a stack of names.
    let mut current: Vec<OsString> = Vec::new();
    let mut followed = 0usize;
    while let Some(part) = queue.pop_front() {
        if part == ".." {
            current.pop();
            continue;
        }
        let host = join_host(root, &current).join(&part);
        match stat::lstat(&host) {
            Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK => {
                followed += 1;
                if followed > MAX_SYMLINKS {
                    return Err(Errno::ELOOP);
                }
                let target = PathBuf::from(fcntl::readlink(&host)?);
                if target.is_absolute() {
                    current.clear();
                }
                for (i, c) in components(&target).enumerate() {
                    queue.insert(i, c);
                }
            }
            Ok(_) | Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => current.push(part),
            Err(e) => return Err(e),
        }
    }
    Ok(join_host(root, &current))
}

/// The normal and `..` components of a path, as names (`/`, `.` dropped).
fn components(path: &Path) -> impl Iterator<Item = OsString> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(n) => Some(n.to_owned()),
        Component::ParentDir => Some(OsString::from("..")),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

fn join_host(root: &Path, parts: &[OsString]) -> PathBuf {
    let mut p = root.to_path_buf();
    p.extend(parts);
    p
}

/// `mkdir -p` of an already resolved host path below `root`, mode 0755. Fails with `ENOTDIR`
/// if a component exists and is not a directory, and with `ELOOP` if one turned into a symlink
/// after resolution.
pub fn mkdir_all_in_root(root: &Path, resolved: &Path) -> Result<(), Errno> {
    let rel = resolved.strip_prefix(root).map_err(|_| Errno::EXDEV)?;
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match stat::lstat(&cur) {
            Ok(st) => match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
                SFlag::S_IFDIR => {}
                SFlag::S_IFLNK => return Err(Errno::ELOOP),
                _ => return Err(Errno::ENOTDIR),
            },
            Err(Errno::ENOENT) => match nix::unistd::mkdir(&cur, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Create an empty file at the resolved host path (and its parent directories) unless
/// something already exists there. Never follows a symlink in the last component.
pub fn create_file_in_root(root: &Path, resolved: &Path) -> Result<(), Errno> {
    if let Some(parent) = resolved.parent() {
        if parent.starts_with(root) {
            mkdir_all_in_root(root, parent)?;
        }
    }
    match stat::lstat(resolved) {
        Ok(_) => Ok(()),
        Err(Errno::ENOENT) => {
            let flags = OFlag::O_CREAT | OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            fcntl::open(resolved, flags, Mode::from_bits_truncate(0o644)).map(drop)
        }
        Err(e) => Err(e),
    }
}

/// An opened mount destination: an `O_PATH` descriptor checked to lie inside the rootfs.
/// Mounting onto [`Target::proc_path`] acts on exactly the inode that was checked.
#[derive(Debug)]
pub struct Target {
    fd: OwnedFd,
    /// The host path, for messages.
    pub path: PathBuf,
    via_proc: bool,
}

impl Target {
    /// Open `resolved` (already resolved by [`resolve_in_root`]) and check, through
    /// `/proc/self/fd`, that it is still inside `root`. Without a usable `/proc` the check is
    /// skipped and the plain path is used.
    pub fn open(root: &Path, resolved: &Path) -> Result<Self, Errno> {
        let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = fcntl::open(resolved, flags, Mode::empty())?;
        // A symlink swapped in after resolution: O_NOFOLLOW gave us the link itself.
        if SFlag::from_bits_truncate(stat::fstat(&fd)?.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK {
            return Err(Errno::ELOOP);
        }
        let proc = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        let via_proc = match fcntl::readlink(&proc) {
            Ok(real) if Path::new(&real).starts_with(root) => true,
            Ok(_) => return Err(Errno::EXDEV),
            Err(_) => false,
        };
        Ok(Self { fd, path: resolved.to_path_buf(), via_proc })
    }

    /// What to hand to mount(2) as the target.
    pub fn proc_path(&self) -> PathBuf {
        if self.via_proc {
            PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
        } else {
            self.path.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use test_case::test_case;

    /// A rootfs with hostile links: absolute, escaping relative, loops, chains.
    fn hostile_root() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::create_dir_all(r.join("usr/lib")).unwrap();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        symlink("/etc", r.join("abs_etc")).unwrap();
        symlink("../../../../../../..", r.join("a/b/up")).unwrap();
        symlink("../../../../etc", r.join("rel_etc")).unwrap();
        symlink("loop2", r.join("loop1")).unwrap();
        symlink("loop1", r.join("loop2")).unwrap();
        symlink("self", r.join("self")).unwrap();
        symlink("/abs_etc/../usr", r.join("chain")).unwrap();
        symlink("lib", r.join("usr/l")).unwrap();
        std::fs::write(r.join("file"), b"").unwrap();
        tmp
    }

    #[test_case("/etc/passwd", "etc/passwd" ; "plain")]
    #[test_case("/abs_etc", "etc" ; "absolute link stays inside")]
    #[test_case("/abs_etc/new/dir", "etc/new/dir" ; "absolute link then missing")]
    #[test_case("/rel_etc", "etc" ; "dotdot link clamped at root")]
    #[test_case("/a/b/up", "" ; "deep dotdot link is root")]
    #[test_case("/a/b/up/etc/x", "etc/x" ; "through dotdot link")]
    #[test_case("/../../../etc", "etc" ; "literal dotdot clamped")]
    #[test_case("/chain/l/x", "usr/lib/x" ; "chain of links")]
    #[test_case("/missing/../etc", "etc" ; "dotdot after missing")]
    #[test_case("relative/p", "relative/p" ; "relative taken from root")]
    #[test_case("/file/below", "file/below" ; "component below a file kept")]
    fn resolves_inside(path: &str, want: &str) {
        let tmp = hostile_root();
        let got = resolve_in_root(tmp.path(), Path::new(path)).unwrap();
        assert_eq!(got, tmp.path().join(want));
        assert!(got.starts_with(tmp.path()));
    }

    #[test_case("/loop1" ; "two link loop")]
    #[test_case("/self/x" ; "self loop")]
    fn loops_are_errors(path: &str) {
        let tmp = hostile_root();
        assert_eq!(resolve_in_root(tmp.path(), Path::new(path)), Err(Errno::ELOOP));
    }

    #[test]
    fn mkdir_through_absolute_link_stays_inside() {
        let tmp = hostile_root();
        let name = format!("isolab-test-{}", std::process::id());
        let resolved = resolve_in_root(tmp.path(), &Path::new("/abs_etc").join(&name)).unwrap();
        mkdir_all_in_root(tmp.path(), &resolved).unwrap();
        assert!(tmp.path().join("etc").join(&name).is_dir());
        assert!(!Path::new("/etc").join(&name).exists());
    }

    #[test]
    fn mkdir_refuses_unresolved_link_and_files() {
        let tmp = hostile_root();
        assert_eq!(mkdir_all_in_root(tmp.path(), &tmp.path().join("abs_etc/x")), Err(Errno::ELOOP));
        assert_eq!(mkdir_all_in_root(tmp.path(), &tmp.path().join("file/x")), Err(Errno::ENOTDIR));
        assert_eq!(mkdir_all_in_root(tmp.path(), Path::new("/elsewhere")), Err(Errno::EXDEV));
    }

    #[test]
    fn create_file_makes_parents_and_keeps_existing() {
        let tmp = hostile_root();
        let p = tmp.path().join("new/dir/f");
        create_file_in_root(tmp.path(), &p).unwrap();
        assert!(p.is_file());
        create_file_in_root(tmp.path(), &tmp.path().join("abs_etc")).unwrap();
        assert!(tmp.path().join("abs_etc").is_symlink());
    }

    #[test]
    fn target_checks_containment() {
        let tmp = hostile_root();
        let t = Target::open(tmp.path(), &tmp.path().join("etc")).unwrap();
        assert!(t.proc_path().starts_with("/proc/self/fd"));
        assert_eq!(Target::open(tmp.path(), &tmp.path().join("abs_etc")).unwrap_err(), Errno::ELOOP);
        let other = tempfile::tempdir().unwrap();
        assert_eq!(Target::open(tmp.path(), other.path()).unwrap_err(), Errno::EXDEV);
    }
}
