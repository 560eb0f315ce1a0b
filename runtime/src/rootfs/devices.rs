//! Default devices (config-linux.md "Default Devices"), `linux.devices`, and the /dev
//! symlinks. mknod, or in a user namespace a bind of the host node onto an empty file.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{self, OFlag};
use nix::sys::stat::{self, Mode, SFlag};
use nix::unistd::{self, Gid, Uid};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::mounts::{self, Ctx};
use super::{io_errno, paths, RootfsError};

/// A device node to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dev {
    /// Path in the container (also the host node bound in a user namespace).
    pub path: PathBuf,
    /// `S_IFCHR`, `S_IFBLK` or `S_IFIFO`.
    pub kind: SFlag,
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// /dev/null, zero, full, random, urandom, tty: character devices, mode 0666, root-owned.
pub fn default_devices() -> Vec<Dev> {
    [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)]
        .into_iter()
        .map(|(n, major, minor)| Dev {
            path: Path::new("/dev").join(n),
            kind: SFlag::S_IFCHR,
            major,
            minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        })
        .collect()
}

/// A `linux.devices` entry as a node to create (fileMode defaults to 0666, as in runc).
pub fn from_spec(d: &LinuxDevice) -> Result<Dev, RootfsError> {
    let invalid = |reason: &str| RootfsError::InvalidDevice { path: d.path().clone(), reason: reason.into() };
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => return Err(invalid("type \"a\" is not a device node")),
    };
    if !d.path().is_absolute() {
        return Err(invalid("path is not absolute"));
    }
    let num = |n: i64| u64::try_from(n).map_err(|_| invalid("negative major or minor"));
    Ok(Dev {
        path: d.path().clone(),
        kind,
        major: num(d.major())?,
        minor: num(d.minor())?,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

/// The defaults, each replaced by a `linux.devices` entry of the same path, then the rest.
pub fn merge(spec: &[LinuxDevice]) -> Result<Vec<Dev>, RootfsError> {
    let spec: Vec<Dev> = spec.iter().map(from_spec).collect::<Result<_, _>>()?;
    let mut all: Vec<Dev> =
        default_devices().into_iter().filter(|d| !spec.iter().any(|s| s.path == d.path)).collect();
    all.extend(spec);
    Ok(all)
}

/// Restores the umask when dropped.
struct UmaskGuard(Mode);
impl Drop for UmaskGuard {
    fn drop(&mut self) {
        stat::umask(self.0);
    }
}

/// Create the default devices and `spec` under the rootfs, with umask 0.
pub fn create_devices(ctx: &Ctx, spec: &[LinuxDevice]) -> Result<(), RootfsError> {
    let devs = merge(spec)?;
    let _umask = UmaskGuard(stat::umask(Mode::empty()));
    for d in &devs {
        create_device(ctx, d)?;
    }
    Ok(())
}

/// Host path for `container_path`: its parent resolved in the rootfs (and created), plus the
/// last name unresolved, so an existing symlink there is replaced or kept, never followed.
fn host_node_path(ctx: &Ctx, container_path: &Path) -> Result<PathBuf, RootfsError> {
    let name = container_path.file_name().ok_or_else(|| RootfsError::InvalidDevice {
        path: container_path.into(),
        reason: "no file name".into(),
    })?;
    let parent = ctx.resolve(container_path.parent().unwrap_or(Path::new("/")))?;
    paths::mkdir_all_in_root(&ctx.rootfs, &parent).map_err(RootfsError::fs("mkdir", &parent))?;
    Ok(parent.join(name))
}

fn create_device(ctx: &Ctx, d: &Dev) -> Result<(), RootfsError> {
    let host = host_node_path(ctx, &d.path)?;
    if !ctx.in_user_ns {
        let dev = stat::makedev(d.major, d.minor);
        match stat::mknod(&host, d.kind, Mode::from_bits_truncate(d.mode), dev) {
            Ok(()) => {
                let (uid, gid) = (Some(Uid::from_raw(d.uid)), Some(Gid::from_raw(d.gid)));
                return unistd::fchownat(
                    fcntl::AT_FDCWD,
                    &host,
                    uid,
                    gid,
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(RootfsError::fs("chown", &host));
            }
            Err(Errno::EEXIST) => return Ok(()),
            Err(Errno::EPERM) => {} // not allowed after all: bind, as runc does
            Err(errno) => return Err(RootfsError::Fs { step: "mknod", path: host, errno }),
        }
    }
    paths::create_file_in_root(&ctx.rootfs, &host).map_err(RootfsError::fs("create", &host))?;
    mounts::bind_onto(ctx, &d.path, &host, false)
}

/// /dev/fd, stdin, stdout, stderr, /dev/core (if the container's /proc has kcore), and
/// /dev/ptmx → pts/ptmx (replacing whatever was there).
pub fn create_dev_symlinks(ctx: &Ctx) -> Result<(), RootfsError> {
    let mut links = vec![
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
    ];
    if ctx.resolve(Path::new("/proc/kcore")).map(|p| stat::lstat(&p).is_ok()).unwrap_or(false) {
        links.push(("/proc/kcore", "/dev/core"));
    }
    for (to, link) in links {
        let at = host_node_path(ctx, Path::new(link))?;
        symlink(to, &at, false)?;
    }
    let ptmx = host_node_path(ctx, Path::new("/dev/ptmx"))?;
    symlink("pts/ptmx", &ptmx, true)
}

fn symlink(to: &str, at: &Path, replace: bool) -> Result<(), RootfsError> {
    if replace {
        match unistd::unlink(at) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(errno) => return Err(RootfsError::Fs { step: "remove", path: at.into(), errno }),
        }
    }
    match std::os::unix::fs::symlink(to, at) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(RootfsError::Fs { step: "symlink", path: at.into(), errno: io_errno(&e) })
        }
        _ => Ok(()),
    }
}

/// After pivot_root: stdio still open on the host's /dev/null gets the container's instead.
/// Best effort, as in runc.
pub fn reopen_dev_null() {
    let Ok(null) = fcntl::open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()) else { return };
    let Ok(null_st) = stat::fstat(&null) else { return };
    let is_null = |fd: std::os::fd::BorrowedFd<'_>| {
        stat::fstat(fd).map(|st| st.st_rdev == null_st.st_rdev && st.st_mode & libc::S_IFMT == libc::S_IFCHR)
    };
    if is_null(std::io::stdin().as_fd()).unwrap_or(false) {
        let _ = unistd::dup2_stdin(&null);
    }
    if is_null(std::io::stdout().as_fd()).unwrap_or(false) {
        let _ = unistd::dup2_stdout(&null);
    }
    if is_null(std::io::stderr().as_fd()).unwrap_or(false) {
        let _ = unistd::dup2_stderr(&null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceBuilder;

    #[test]
    fn defaults_are_the_six() {
        let d = default_devices();
        let names: Vec<_> = d.iter().map(|d| d.path.to_str().unwrap()).collect();
        assert_eq!(names, ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"]);
        assert!(d.iter().all(|d| d.mode == 0o666 && d.kind == SFlag::S_IFCHR));
        assert_eq!((d[5].major, d[5].minor), (5, 0));
    }

    #[test]
    fn spec_device_overrides_default_and_adds() {
        let null = LinuxDeviceBuilder::default()
            .path("/dev/null")
            .typ(LinuxDeviceType::C)
            .major(1)
            .minor(3)
            .file_mode(0o600u32)
            .build()
            .unwrap();
        let fuse = LinuxDeviceBuilder::default()
            .path("/dev/fuse")
            .typ(LinuxDeviceType::C)
            .major(10)
            .minor(229)
            .uid(7u32)
            .build()
            .unwrap();
        let all = merge(&[null, fuse]).unwrap();
        assert_eq!(all.len(), 7);
        assert_eq!(all.iter().filter(|d| d.path == Path::new("/dev/null")).count(), 1);
        let n = all.iter().find(|d| d.path == Path::new("/dev/null")).unwrap();
        assert_eq!(n.mode, 0o600);
        let f = all.last().unwrap();
        assert_eq!((f.major, f.minor, f.mode, f.uid), (10, 229, 0o666, 7));
    }

    #[test]
    fn bad_devices_rejected() {
        let all = LinuxDeviceBuilder::default().path("/dev/x").typ(LinuxDeviceType::A).build().unwrap();
        assert!(matches!(from_spec(&all), Err(RootfsError::InvalidDevice { .. })));
        let rel = LinuxDeviceBuilder::default().path("dev/x").typ(LinuxDeviceType::C).build().unwrap();
        assert!(matches!(from_spec(&rel), Err(RootfsError::InvalidDevice { .. })));
        let fifo = LinuxDeviceBuilder::default().path("/dev/f").typ(LinuxDeviceType::P).build().unwrap();
        assert_eq!(from_spec(&fifo).unwrap().kind, SFlag::S_IFIFO);
    }
}
