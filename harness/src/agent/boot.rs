//! Guest boot steps: leave the initramfs root, mount the API filesystems, cgroups, modules.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::protocol::CgroupMode;
use crate::sys;

/// A boot step that failed, with the path or module involved.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// A mount failed.
    #[error("mount {fstype} on {target}: {source}")]
    Mount {
        /// Filesystem type.
        fstype: String,
        /// Mount point.
        target: PathBuf,
        /// errno.
        source: io::Error,
    },
    /// Copying the initramfs into the new root failed.
    #[error("copy {path} into the new root: {source}")]
    Copy {
        /// The file being copied.
        path: PathBuf,
        /// errno.
        source: io::Error,
    },
    /// chroot/chdir into the new root failed.
    #[error("switch root into {path}: {source}")]
    SwitchRoot {
        /// The new root.
        path: PathBuf,
        /// errno.
        source: io::Error,
    },
}

const NEW_ROOT: &str = "/newroot";

/// Reads the kernel command line before anything is mounted (mounts /proc briefly).
pub fn early_cmdline() -> String {
    let proc = Path::new("/proc");
    let _ = fs::create_dir_all(proc);
    if sys::mount("proc", proc, "proc", 0, "").is_err() {
        return String::new();
    }
    let s = fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let _ = sys::umount(proc);
    s
}

/// Moves off the initramfs root so containers can `pivot_root`: the initial rootfs is the
/// root of the mount tree and has no parent, which `pivot_root(2)` refuses. Bind-mounting `/`
/// onto `/newroot` and moving that mount over `/` (then `chroot`) gives a root that is a real,
/// attached mount of the same files — without copying them (copying the ~20 MB image into a
/// fresh tmpfs cost 70–200 ms under TCG). The bind mount is made private first.
pub fn switch_to_bind_root() -> Result<(), BootError> {
    let new_root = Path::new(NEW_ROOT);
    mkdir(new_root)?;
    mount("/", new_root, "", libc::MS_BIND | libc::MS_REC, "")?;
    mount("", new_root, "", libc::MS_PRIVATE | libc::MS_REC, "")?;
    enter(new_root)?;
    // The initramfs root directory is world-writable (1777); make it a normal root.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions("/", fs::Permissions::from_mode(0o755))
        .map_err(|source| BootError::SwitchRoot { path: "/".into(), source })
}

fn enter(new_root: &Path) -> Result<(), BootError> {
    let switch = |source| BootError::SwitchRoot { path: new_root.to_path_buf(), source };
    std::env::set_current_dir(new_root).map_err(switch)?;
    sys::mount(".", Path::new("/"), "", libc::MS_MOVE, "").map_err(switch)?;
    std::os::unix::fs::chroot(".").map_err(switch)?;
    std::env::set_current_dir("/").map_err(switch)
}

/// The classic `switch_root`: copies the initramfs into a tmpfs and makes that `/`.
/// Slower than [`switch_to_bind_root`]; kept for `isolab.root=copy` on the kernel command line.
pub fn switch_to_tmpfs_root() -> Result<(), BootError> {
    let new_root = Path::new(NEW_ROOT);
    mkdir(new_root)?;
    mount("tmpfs", new_root, "tmpfs", 0, "mode=0755")?;
    for entry in read_dir(Path::new("/"))? {
        let name = entry.file_name();
        if name == "newroot" || name == "proc" || name == "sys" || name == "dev" {
            continue;
        }
        copy_tree(&entry.path(), &new_root.join(&name))?;
    }
    for d in ["proc", "sys", "dev"] {
        mkdir(&new_root.join(d))?;
    }
    enter(new_root)
}

fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>, BootError> {
    let err = |source| BootError::Copy { path: dir.to_path_buf(), source };
    fs::read_dir(dir).map_err(err)?.collect::<Result<Vec<_>, _>>().map_err(err)
}

fn copy_tree(src: &Path, dst: &Path) -> Result<(), BootError> {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let err = |source| BootError::Copy { path: src.to_path_buf(), source };
    let meta = fs::symlink_metadata(src).map_err(err)?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        symlink(fs::read_link(src).map_err(err)?, dst).map_err(err)?;
    } else if ft.is_dir() {
        fs::create_dir(dst).map_err(err)?;
        for entry in read_dir(src)? {
            copy_tree(&entry.path(), &dst.join(entry.file_name()))?;
        }
        fs::set_permissions(dst, fs::Permissions::from_mode(meta.permissions().mode())).map_err(err)?;
    } else if ft.is_file() {
        fs::copy(src, dst).map_err(err)?;
    }
    // Device nodes and fifos are not carried over: devtmpfs provides /dev.
    Ok(())
}

fn mkdir(p: &Path) -> Result<(), BootError> {
    fs::create_dir_all(p).map_err(|source| BootError::Copy { path: p.to_path_buf(), source })
}

fn mount(src: &str, target: &Path, fstype: &str, flags: libc::c_ulong, data: &str) -> Result<(), BootError> {
    sys::mount(src, target, fstype, flags, data).map_err(|source| BootError::Mount {
        fstype: fstype.to_string(),
        target: target.to_path_buf(),
        source,
    })
}

/// Mounts proc, sys, devtmpfs, devpts, /dev/shm, /run and /tmp.
pub fn mount_api_filesystems() -> Result<(), BootError> {
    let nosuid_nodev = libc::MS_NOSUID | libc::MS_NODEV;
    let table: [(&str, &str, &str, libc::c_ulong, &str); 7] = [
        ("proc", "/proc", "proc", nosuid_nodev | libc::MS_NOEXEC, ""),
        ("sysfs", "/sys", "sysfs", nosuid_nodev | libc::MS_NOEXEC, ""),
        ("devtmpfs", "/dev", "devtmpfs", libc::MS_NOSUID, "mode=0755"),
        ("devpts", "/dev/pts", "devpts", libc::MS_NOSUID | libc::MS_NOEXEC, "ptmxmode=0666,mode=0620"),
        ("tmpfs", "/dev/shm", "tmpfs", nosuid_nodev, "mode=1777"),
        ("tmpfs", "/run", "tmpfs", nosuid_nodev, "mode=0755"),
        ("tmpfs", "/tmp", "tmpfs", nosuid_nodev, "mode=1777"),
    ];
    for (src, target, fstype, flags, data) in table {
        mkdir(Path::new(target))?;
        mount(src, Path::new(target), fstype, flags, data)?;
    }
    Ok(())
}

/// Reads `isolab.cgroup=` from the kernel command line (default v2).
pub fn cgroup_mode_from_cmdline(cmdline: &str) -> CgroupMode {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("isolab.cgroup="))
        .and_then(CgroupMode::parse)
        .unwrap_or_default()
}

/// Groups v1 controllers into the hierarchies systemd uses (cpu+cpuacct, net_cls+net_prio).
pub fn v1_hierarchies(enabled: &[String]) -> Vec<String> {
    let has = |c: &str| enabled.iter().any(|e| e == c);
    let mut out = Vec::new();
    for c in enabled {
        let name = match c.as_str() {
            "cpu" | "cpuacct" if has("cpu") && has("cpuacct") => "cpu,cpuacct".to_string(),
            "net_cls" | "net_prio" if has("net_cls") && has("net_prio") => "net_cls,net_prio".to_string(),
            other => other.to_string(),
        };
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// Parses /proc/cgroups into the enabled controller names.
pub fn enabled_controllers(proc_cgroups: &str) -> Vec<String> {
    proc_cgroups
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4 && f[3] == "1").then(|| f[0].to_string())
        })
        .collect()
}

/// Mounts the cgroup hierarchy for `mode`; returns the usable controllers and warnings.
pub fn mount_cgroups(mode: CgroupMode) -> Result<(Vec<String>, Vec<String>), BootError> {
    let root = Path::new("/sys/fs/cgroup");
    let mut warnings = Vec::new();
    match mode {
        CgroupMode::V2 => {
            mount("cgroup2", root, "cgroup2", libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC, "")?;
            let ctrls = fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
            let ctrls: Vec<String> = ctrls.split_whitespace().map(str::to_string).collect();
            for c in &ctrls {
                if let Err(e) = fs::write(root.join("cgroup.subtree_control"), format!("+{c}")) {
                    warnings.push(format!("enable cgroup v2 controller {c}: {e}"));
                }
            }
            Ok((ctrls, warnings))
        }
        CgroupMode::V1 => {
            mount("tmpfs", root, "tmpfs", libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC, "mode=0755")?;
            let enabled = enabled_controllers(&fs::read_to_string("/proc/cgroups").unwrap_or_default());
            let mut mounted = Vec::new();
            for h in v1_hierarchies(&enabled) {
                let dir = root.join(&h);
                mkdir(&dir)?;
                match sys::mount(
                    "cgroup",
                    &dir,
                    "cgroup",
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    &h,
                ) {
                    Ok(()) => {
                        for part in h.split(',').filter(|p| *p != h) {
                            let _ = std::os::unix::fs::symlink(&h, root.join(part));
                        }
                        mounted.extend(h.split(',').map(str::to_string));
                    }
                    Err(e) => {
                        warnings.push(format!("mount cgroup v1 {h} on {}: {e}", dir.display()));
                        let _ = fs::remove_dir(&dir);
                    }
                }
            }
            Ok((mounted, warnings))
        }
    }
}

/// Loads the modules listed in `list` (lines `name path`, in dependency order).
/// Returns the names loaded (or already present) and one warning per failure.
pub fn load_modules(list: &str) -> (Vec<String>, Vec<String>) {
    let (mut loaded, mut warnings) = (Vec::new(), Vec::new());
    for line in list.lines().filter(|l| !l.trim().is_empty()) {
        let mut it = line.split_whitespace();
        let (Some(name), Some(path)) = (it.next(), it.next()) else {
            warnings.push(format!("bad modules.list line {line:?}"));
            continue;
        };
        let res = fs::File::open(path).and_then(|f| sys::finit_module(&f));
        match res {
            Ok(()) => loaded.push(name.to_string()),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => loaded.push(name.to_string()),
            Err(e) => warnings.push(format!("load module {name} from {path}: {e}")),
        }
    }
    (loaded, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("console=ttyS0 isolab.cgroup=v1 quiet", CgroupMode::V1 ; "v1")]
    #[test_case("isolab.cgroup=v2", CgroupMode::V2 ; "v2")]
    #[test_case("console=ttyS0", CgroupMode::V2 ; "default")]
    #[test_case("isolab.cgroup=bogus", CgroupMode::V2 ; "bogus")]
    fn cmdline_cgroup(cmdline: &str, want: CgroupMode) {
        assert_eq!(cgroup_mode_from_cmdline(cmdline), want);
    }

    #[test_case(&["cpuset", "cpu", "cpuacct", "memory"], &["cpuset", "cpu,cpuacct", "memory"] ; "cpu pair")]
    #[test_case(&["net_cls", "net_prio", "pids"], &["net_cls,net_prio", "pids"] ; "net pair")]
    #[test_case(&["cpu", "pids"], &["cpu", "pids"] ; "lonely cpu")]
    fn hierarchies(enabled: &[&str], want: &[&str]) {
        let enabled: Vec<String> = enabled.iter().map(|s| s.to_string()).collect();
        assert_eq!(v1_hierarchies(&enabled), want);
    }

    #[test]
    fn proc_cgroups_parse() {
        let s = "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t0\t1\t1\nmemory\t0\t1\t0\npids\t0\t1\t1\n";
        assert_eq!(enabled_controllers(s), vec!["cpuset", "pids"]);
    }
}
