//! Where the runtimes' private state roots (`--root`) and pid files go. An engine keeps its
//! runtime's state in /run (Docker: /run/docker/runtime-runc, containerd:
//! /run/containerd/runc), a tmpfs on its host, so by default the bench does the same: in /run
//! when it is a tmpfs, else in /dev/shm when it is one, else in the bench's temp dir in /tmp.
//! A disk's costs (an inode allocation and, on a filesystem mounted `discard`, a synchronous
//! discard per removed file) would otherwise be charged to the runtime. `--state-dir` picks
//! the parent; the filesystem chosen is printed and written to `bench.json` (`state_roots`).

use std::path::{Path, PathBuf};

/// The places tried, in order, when no `--state-dir` is given.
pub const TMPFS_CANDIDATES: [&str; 2] = ["/run", "/dev/shm"];

/// The parent of the state roots' temp dir: `explicit` when given, else the first of
/// [`TMPFS_CANDIDATES`] whose filesystem in `mountinfo` is a tmpfs, else `None` (the
/// bench's own temp dir).
pub fn choose(explicit: Option<&Path>, mountinfo: &str) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    TMPFS_CANDIDATES
        .iter()
        .map(Path::new)
        .find(|p| fs_type(mountinfo, p).as_deref() == Some("tmpfs"))
        .map(Path::to_path_buf)
}

/// The filesystem type of the mount that holds `path` (absolute, no symlinks): the one with
/// the longest mount point that is `path` or one of its ancestors, the last mounted where
/// several share that point (it hides the others).
pub fn fs_type(mountinfo: &str, path: &Path) -> Option<String> {
    let mut best: Option<(usize, &str)> = None;
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let (Some(point), Some(fstype)) = (left.split(' ').nth(4), right.split(' ').next()) else {
            continue;
        };
        let point = unescape(point);
        if path.starts_with(&point) && best.is_none_or(|(len, _)| point.len() >= len) {
            best = Some((point.len(), fstype));
        }
    }
    best.map(|(_, t)| t.to_owned())
}

/// mountinfo's octal escapes (`\040` for a space) undone.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 4).and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(char::from(c));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `PATH (FSTYPE)` of the directory `dir`, its filesystem looked up in `mountinfo`, for the
/// bench's output.
pub fn describe(mountinfo: &str, dir: &Path) -> String {
    let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let fs = fs_type(mountinfo, &real).unwrap_or_else(|| "unknown filesystem".into());
    format!("{} ({fs})", dir.display())
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    /// This project's machines: / is ext4 and /run is not a mount of its own.
    const NO_RUN: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 8:1 / / rw,relatime - ext4 /dev/vda1 rw,discard
28 27 0:25 / /dev rw - devtmpfs devtmpfs rw
29 28 0:26 / /dev/shm rw,relatime - tmpfs tmpfs rw
";
    /// A systemd host: /run is a tmpfs.
    const SYSTEMD: &str = "\
27 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
30 27 0:24 / /run rw,nosuid - tmpfs tmpfs rw,mode=755
31 30 0:30 / /run/user/1000 rw - tmpfs tmpfs rw
29 28 0:26 / /dev/shm rw,relatime - tmpfs tmpfs rw
";
    /// A guest without /dev/shm, and a mount point with a space in it.
    const BARE: &str = "\
1 1 0:2 / / rw - rootfs rootfs rw
5 1 0:5 / /tmp\\040dir rw - tmpfs tmpfs rw
";

    #[test_case(NO_RUN, "/run/isorun", Some("ext4"); "a directory on the root filesystem")]
    #[test_case(NO_RUN, "/dev/shm", Some("tmpfs"); "the mount point itself")]
    #[test_case(NO_RUN, "/dev/shmx", Some("devtmpfs"); "a sibling sharing a prefix is not under it")]
    #[test_case(SYSTEMD, "/run/user/1000/x", Some("tmpfs"); "nested mounts: the deepest")]
    #[test_case(SYSTEMD, "/runner", Some("ext4"); "a name that starts like the mount point")]
    #[test_case(BARE, "/tmp dir/a", Some("tmpfs"); "an escaped space")]
    #[test_case("", "/x", None; "no mountinfo")]
    fn fs_type_of_a_path(mountinfo: &str, path: &str, want: Option<&str>) {
        assert_eq!(fs_type(mountinfo, Path::new(path)).as_deref(), want);
    }

    #[test]
    fn the_last_mount_on_a_point_hides_the_others() {
        let m = "1 1 0:2 / / rw - ext4 a rw\n2 1 0:3 / /run rw - ext4 b rw\n3 2 0:4 / /run rw - tmpfs c rw\n";
        assert_eq!(fs_type(m, Path::new("/run/x")).as_deref(), Some("tmpfs"));
    }

    #[test_case(None, NO_RUN, Some("/dev/shm"); "no tmpfs /run: /dev/shm")]
    #[test_case(None, SYSTEMD, Some("/run"); "a tmpfs /run first")]
    #[test_case(None, BARE, None; "no tmpfs: the bench's temp dir")]
    #[test_case(Some("/var/tmp"), SYSTEMD, Some("/var/tmp"); "--state-dir wins")]
    fn choice(explicit: Option<&str>, mountinfo: &str, want: Option<&str>) {
        assert_eq!(choose(explicit.map(Path::new), mountinfo), want.map(PathBuf::from));
    }
}
