//! One `spec.mounts` entry onto the rootfs: resolve the destination inside it, create it,
//! mount, then apply bind flags and propagation with separate calls.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{self, MsFlags};
use nix::sys::stat::{self, SFlag};
use nix::sys::statvfs::{self, FsFlags};
use oci_spec::runtime::Mount;

use crate::config::mount_options::{parse_mount_options, MountOptions};
use crate::sys::mount::mount_setattr_recursive;

use super::paths::{self, Target};
use super::{cgroupfs, copyup, flag_names, pivot, RootfsError, RootfsOptions};

/// What the mount steps share.
#[derive(Debug)]
pub struct Ctx {
    /// Canonical host path of the rootfs.
    pub rootfs: PathBuf,
    /// Bundle directory, for relative bind sources.
    pub bundle: PathBuf,
    /// In a user namespace.
    pub in_user_ns: bool,
    /// In a cgroup namespace.
    pub in_cgroup_ns: bool,
    /// See [`RootfsOptions::host_cgroup_view`].
    pub host_cgroup_view: Option<cgroupfs::HostCgroupView>,
    /// `/dev` was asked `ro`: mounted rw for the device nodes, remounted ro at the end.
    pub dev_readonly: Option<PathBuf>,
}

impl Ctx {
    /// From the options, with the rootfs already canonicalised.
    pub fn new(rootfs: PathBuf, opts: &RootfsOptions) -> Self {
        Self {
            rootfs,
            bundle: opts.bundle.clone(),
            in_user_ns: opts.in_user_ns,
            in_cgroup_ns: opts.in_cgroup_ns,
            host_cgroup_view: opts.host_cgroup_view.clone(),
            dev_readonly: None,
        }
    }

    /// Resolve a container path to a host path inside the rootfs.
    pub fn resolve(&self, dest: &Path) -> Result<PathBuf, RootfsError> {
        paths::resolve_in_root(&self.rootfs, dest).map_err(|errno| RootfsError::Resolve {
            root: self.rootfs.clone(),
            path: dest.to_path_buf(),
            errno,
        })
    }

    /// Resolve, `mkdir -p`, open as a checked target.
    pub fn dir_target(&self, dest: &Path) -> Result<Target, RootfsError> {
        let host = self.resolve(dest)?;
        paths::mkdir_all_in_root(&self.rootfs, &host).map_err(RootfsError::fs("mkdir", &host))?;
        self.open(&host)
    }

    /// Open an already resolved and created host path as a checked target.
    pub fn open(&self, host: &Path) -> Result<Target, RootfsError> {
        Target::open(&self.rootfs, host).map_err(RootfsError::fs("open mount target", host))
    }
}

/// A bind mount of `/dev` means the host's devices are used as they are: no device setup.
pub fn dev_is_bind_mounted(mounts: &[Mount]) -> bool {
    mounts.iter().any(|m| {
        let bind = m.typ().as_deref() == Some("bind")
            || m.options().iter().flatten().any(|o| o == "bind" || o == "rbind");
        bind && clean(m.destination()) == Path::new("/dev")
    })
}

fn clean(p: &Path) -> PathBuf {
    Path::new("/")
        .join(p.components().filter(|c| !matches!(c, std::path::Component::RootDir)).collect::<PathBuf>())
}

/// Mount one entry of `spec.mounts`.
pub fn mount_entry(ctx: &mut Ctx, m: &Mount) -> Result<(), RootfsError> {
    let dest = clean(m.destination());
    let opts = parse_mount_options(m.options().as_deref().unwrap_or_default());
    if opts.idmap.is_some() || m.uid_mappings().is_some() || m.gid_mappings().is_some() {
        let reason = "id-mapped mounts (idmap, ridmap, uidMappings) are not supported".into();
        return Err(RootfsError::InvalidMount { destination: dest, reason });
    }
    let typ = m.typ().as_deref().unwrap_or("");
    if matches!(typ, "proc" | "sysfs") {
        check_ordinary_directory(&ctx.rootfs, &dest, typ)?;
    }
    // Judge where the destination really lands, after symlinks.
    let inside = ctx.resolve(&dest)?;
    let inside = Path::new("/").join(inside.strip_prefix(&ctx.rootfs).unwrap_or(Path::new("")));
    check_proc_destination(&inside, typ, opts.bind || typ == "bind")?;
    if opts.bind || typ == "bind" {
        let source = m.source().as_ref().ok_or_else(|| RootfsError::InvalidMount {
            destination: dest.clone(),
            reason: "bind mount without a source".into(),
        })?;
        return bind_entry(ctx, &ctx.bundle.join(source), &dest, &opts);
    }
    match typ {
        "" => Err(RootfsError::InvalidMount {
            destination: dest,
            reason: "no type and not a bind mount".into(),
        }),
        "cgroup" => cgroupfs::mount_cgroup(ctx, &dest, &opts),
        "sysfs" => match mount_fs(ctx, m, &dest, "sysfs", &opts) {
            // In a user namespace that does not own the network namespace sysfs cannot be
            // mounted: bind the host's /sys instead (runc does the same).
            Err(RootfsError::Mount { errno: Errno::EPERM | Errno::EBUSY, .. }) => {
                bind_entry(ctx, Path::new("/sys"), &dest, &as_rbind(&opts))
            }
            r => r,
        },
        _ => {
            let mut opts = opts;
            if dest == Path::new("/dev") && opts.flags.contains(MsFlags::MS_RDONLY) {
                opts.flags.remove(MsFlags::MS_RDONLY);
                ctx.dev_readonly = Some(dest.clone());
            }
            mount_fs(ctx, m, &dest, typ, &opts)
        }
    }
}

/// The same options as a recursive bind mount.
pub fn as_rbind(opts: &MountOptions) -> MountOptions {
    let flags = opts.flags | MsFlags::MS_BIND | MsFlags::MS_REC;
    MountOptions { bind: true, rec: true, flags, ..opts.clone() }
}

/// procfs and sysfs go on an ordinary directory, never through a symlink (runc refuses: "has
/// been a fun attack scenario"): every component of `dest` in `rootfs` that exists must be a
/// directory, not a link.
fn check_ordinary_directory(rootfs: &Path, dest: &Path, typ: &str) -> Result<(), RootfsError> {
    let mut host = rootfs.to_path_buf();
    for c in dest.components().filter(|c| matches!(c, std::path::Component::Normal(_))) {
        host.push(c);
        match std::fs::symlink_metadata(&host) {
            Err(_) => return Ok(()), // created as a directory later
            Ok(m) if m.is_dir() => {}
            Ok(m) => {
                let what = if m.file_type().is_symlink() { "a symlink" } else { "not a directory" };
                return Err(RootfsError::InvalidMount {
                    destination: dest.to_path_buf(),
                    reason: format!(
                        "filesystem {typ:?} must be mounted on ordinary directory: {} is {what}",
                        host.display()
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Only a procfs may sit on /proc, and below it only the files lxcfs-style tools replace.
fn check_proc_destination(dest: &Path, typ: &str, bind: bool) -> Result<(), RootfsError> {
    const ALLOWED: &[&str] = &[
        "/proc/cpuinfo",
        "/proc/diskstats",
        "/proc/meminfo",
        "/proc/stat",
        "/proc/swaps",
        "/proc/uptime",
        "/proc/loadavg",
        "/proc/slabinfo",
        "/proc/net/dev",
        "/proc/sys/kernel/ns_last_pid",
    ];
    let bad = if dest == Path::new("/proc") {
        typ != "proc" && !bind
    } else {
        dest.starts_with("/proc") && !ALLOWED.iter().any(|a| dest == Path::new(a))
    };
    if bad {
        return Err(RootfsError::InvalidMount {
            destination: dest.to_path_buf(),
            reason: "only procfs may be mounted on /proc, and only known files below it".into(),
        });
    }
    Ok(())
}

/// Mount a filesystem of type `typ` (not a bind) at `dest`.
fn mount_fs(ctx: &Ctx, m: &Mount, dest: &Path, typ: &str, opts: &MountOptions) -> Result<(), RootfsError> {
    let host = ctx.resolve(dest)?;
    let mut data: Vec<&str> = vec![];
    let mode;
    if typ == "tmpfs" {
        // A tmpfs over an existing directory keeps its mode unless `mode=` says otherwise.
        if let Ok(st) = stat::stat(&host) {
            mode = format!("mode={:04o}", st.st_mode & 0o7777);
            data.push(&mode);
        }
    }
    data.extend(Some(opts.data.as_str()).filter(|d| !d.is_empty()));
    paths::mkdir_all_in_root(&ctx.rootfs, &host).map_err(RootfsError::fs("mkdir", &host))?;
    let target = ctx.open(&host)?;
    // tmpcopyup: keep a handle on the directory about to be covered, to copy from.
    let lower = (opts.tmpcopyup && typ == "tmpfs").then(|| copyup::open_lower(&host)).transpose()?;
    let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
    let data = (!data.is_empty()).then(|| data.join(","));
    let flags = opts.flags - (MsFlags::MS_BIND | MsFlags::MS_REC);
    mount::mount(Some(&source), &target.proc_path(), Some(typ), flags, data.as_deref())
        .map_err(|errno| RootfsError::Mount { fstype: typ.into(), target: host.clone(), errno })?;
    if let Some(lower) = lower {
        copyup::copy_up(&lower, &ctx.open(&host)?)?;
    }
    finish(ctx, &host, opts)
}

/// Bind `source` (a host path) onto `dest`, then remount with the flags, then propagation.
pub fn bind_entry(ctx: &Ctx, source: &Path, dest: &Path, opts: &MountOptions) -> Result<(), RootfsError> {
    let st = stat::stat(source).map_err(RootfsError::fs("stat bind source", source))?;
    let is_dir = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
    let host = ctx.resolve(dest)?;
    if is_dir {
        paths::mkdir_all_in_root(&ctx.rootfs, &host).map_err(RootfsError::fs("mkdir", &host))?;
    } else {
        paths::create_file_in_root(&ctx.rootfs, &host).map_err(RootfsError::fs("create", &host))?;
    }
    bind_onto(ctx, source, &host, opts.rec)?;
    let extra = opts.flags - (MsFlags::MS_REC | MsFlags::MS_REMOUNT | MsFlags::MS_BIND);
    if !extra.is_empty() {
        remount_bind(&ctx.open(&host)?, extra, opts.clear_flags)?;
    }
    finish(ctx, &host, opts)
}

/// Bind `source` onto the already created host path `host` inside the rootfs.
pub fn bind_onto(ctx: &Ctx, source: &Path, host: &Path, recursive: bool) -> Result<(), RootfsError> {
    let target = ctx.open(host)?;
    let flags = if recursive { MsFlags::MS_BIND | MsFlags::MS_REC } else { MsFlags::MS_BIND };
    mount::mount(Some(source), &target.proc_path(), None::<&str>, flags, None::<&str>)
        .map_err(|errno| RootfsError::Bind { from: source.into(), target: host.into(), errno })
}

/// The flags a mount already has that an unprivileged remount may not drop (in a user
/// namespace they are locked): nosuid, nodev, noexec and the atime mode.
pub fn locked_flags(path: &Path) -> MsFlags {
    let Ok(st) = statvfs::statvfs(path) else { return MsFlags::empty() };
    let f = st.flags();
    [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ]
    .into_iter()
    .filter(|(st, _)| f.contains(*st))
    .fold(MsFlags::empty(), |acc, (_, ms)| acc | ms)
}

/// MS_REMOUNT|MS_BIND with `flags`; on EPERM, again with the mount's locked flags kept
/// (except those the options explicitly `cleared`, which then stays an error).
pub fn remount_bind(target: &Target, flags: MsFlags, cleared: MsFlags) -> Result<(), RootfsError> {
    let path = target.proc_path();
    let base = MsFlags::MS_REMOUNT | MsFlags::MS_BIND;
    let err =
        |errno, f: MsFlags| RootfsError::Remount { target: target.path.clone(), flags: flag_names(f), errno };
    match mount::mount(None::<&str>, &path, None::<&str>, base | flags, None::<&str>) {
        Err(Errno::EPERM) => {
            let mut kept = flags | (locked_flags(&path) - cleared);
            if kept.intersects(MsFlags::MS_NOATIME | MsFlags::MS_RELATIME) {
                kept.remove(MsFlags::MS_STRICTATIME);
            }
            mount::mount(None::<&str>, &path, None::<&str>, base | kept, None::<&str>)
                .map_err(|e| err(e, kept))
        }
        r => r.map_err(|e| err(e, flags)),
    }
}

/// After the mount at `host`: recursive attributes (`rro`, `rnosuid`, ...) with
/// mount_setattr(2), then one mount(2) call per propagation flag.
fn finish(ctx: &Ctx, host: &Path, opts: &MountOptions) -> Result<(), RootfsError> {
    if opts.propagation.is_empty() && opts.rec_attr_set == 0 && opts.rec_attr_clr == 0 {
        return Ok(());
    }
    let target = ctx.open(host)?;
    if opts.rec_attr_set != 0 || opts.rec_attr_clr != 0 {
        mount_setattr_recursive(&target.proc_path(), opts.rec_attr_set, opts.rec_attr_clr).map_err(
            |errno| RootfsError::Fs { step: "mount_setattr (recursive options)", path: host.into(), errno },
        )?;
    }
    for p in &opts.propagation {
        pivot::set_propagation(&target.proc_path(), *p).map_err(|e| match e {
            RootfsError::Propagation { propagation, errno, .. } => {
                RootfsError::Propagation { target: host.into(), propagation, errno }
            }
            other => other,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::MountBuilder;
    use test_case::test_case;

    #[test_case("/proc", "proc", false, true ; "proc on proc")]
    #[test_case("/proc", "tmpfs", false, false ; "tmpfs on proc")]
    #[test_case("/proc", "", true, true ; "bind on proc")]
    #[test_case("/proc/meminfo", "", true, true ; "lxcfs file")]
    #[test_case("/proc/sys", "", true, false ; "proc sys")]
    #[test_case("/procfoo", "tmpfs", false, true ; "prefix is not proc")]
    fn proc_destinations(dest: &str, typ: &str, bind: bool, ok: bool) {
        assert_eq!(check_proc_destination(Path::new(dest), typ, bind).is_ok(), ok);
    }

    #[test]
    fn proc_and_sys_only_on_ordinary_directories() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("real/sys")).unwrap();
        std::os::unix::fs::symlink("/proc", r.join("proc")).unwrap();
        std::os::unix::fs::symlink("real", r.join("up")).unwrap();
        std::fs::write(r.join("file"), "").unwrap();
        let check =
            |d: &str, t: &str| check_ordinary_directory(r, Path::new(d), t).map_err(|e| e.to_string());
        let err = check("/proc", "proc").unwrap_err();
        assert!(err.contains(&format!("{}/proc is a symlink", r.display())), "{err}");
        assert!(check("/up/sys", "sysfs").unwrap_err().contains("/up is a symlink"));
        assert!(check("/file", "sysfs").unwrap_err().contains("is not a directory"));
        assert!(check("/real/sys", "sysfs").is_ok());
        assert!(check("/missing/sys", "sysfs").is_ok());
    }

    #[test]
    fn dev_bind_detected() {
        let m = |d: &str, t: &str, o: &[&str]| {
            MountBuilder::default()
                .destination(d)
                .typ(t)
                .options(o.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .build()
                .unwrap()
        };
        assert!(dev_is_bind_mounted(&[m("/dev/", "none", &["rbind"])]));
        assert!(dev_is_bind_mounted(&[m("/dev", "bind", &[])]));
        assert!(!dev_is_bind_mounted(&[m("/dev", "tmpfs", &["mode=755"])]));
        assert!(!dev_is_bind_mounted(&[m("/dev/shm", "bind", &[])]));
    }

    #[test_case("dev", "/dev" ; "relative")]
    #[test_case("/dev/", "/dev" ; "trailing slash")]
    #[test_case("/a/./b", "/a/b" ; "dot")]
    fn clean_paths(p: &str, want: &str) {
        assert_eq!(clean(Path::new(p)), PathBuf::from(want));
    }
}
