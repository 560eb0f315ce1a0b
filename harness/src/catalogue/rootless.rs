//! The rootless cell (`--rootless`, base config `podman-rootless`): the runtime run as rootless
//! podman runs it, as root of a user namespace owned by an unprivileged uid.
//!
//! A holder process (podman's "pause" process: `busybox sleep`) drops to the uid and makes the
//! user namespace; its maps are the single self-mapping (`0 UID 1`, `setgroups` denied) an
//! unprivileged user may write without newuidmap/newgidmap, as podman makes for a user without
//! a subuid range (the mapping `podman-rootless.json` was captured with). Every runtime
//! command then drops to the uid and joins that namespace ([`Rootless::prepare`]); the agent
//! stays root. The shared rootfs and the state root belong to the uid (podman's storage does);
//! on cgroup v2, `/sys/fs/cgroup/isorun` is delegated to it as systemd delegates
//! `user@UID.service` (owned, with its `cgroup.procs`, `cgroup.subtree_control` and
//! `cgroup.threads`), and each runtime command starts in its leaf `isolab-runtime`, so moving
//! a container into its own cgroup needs nothing the uid does not own.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The delegated cgroup (v2) and the runtime commands' leaf in it.
const DELEGATED: &str = "/sys/fs/cgroup/isorun";
const RUNTIME_LEAF: &str = "isolab-runtime";
/// The files of a delegated cgroup its owner must be able to write (systemd's list).
const DELEGATED_FILES: [&str; 3] = ["cgroup.procs", "cgroup.subtree_control", "cgroup.threads"];

/// Setting up the rootless user context failed.
#[derive(Debug, thiserror::Error)]
pub enum RootlessError {
    /// A file or directory could not be made, written or given to the uid.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The kernel refused the unprivileged user namespace: this kernel cannot do rootless.
    #[error(
        "this kernel refuses an unprivileged user namespace: unshare(CLONE_NEWUSER) as uid {uid}: {source}"
    )]
    UserNs {
        /// The uid.
        uid: u32,
        /// The error.
        source: std::io::Error,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> RootlessError + use<'a> {
    move |source| RootlessError::Io { op, path: path.to_owned(), source }
}

/// The unprivileged uid (and gid): the first from 1000 up with no entry in `passwd` (a guest
/// has none: 1000; a host's real users are left alone).
pub fn pick_uid(passwd: &str) -> u32 {
    let taken: Vec<u32> = passwd.lines().filter_map(|l| l.split(':').nth(2)?.parse().ok()).collect();
    (1000..).find(|u| !taken.contains(u)).unwrap_or(1000)
}

/// The uid map (and gid map) of the holder's user namespace: the single self-mapping.
pub fn self_map(uid: u32) -> String {
    format!("0 {uid} 1\n")
}

/// The resource of an OCI rlimit name (`RLIMIT_NOFILE`), for the ones an engine sends.
pub fn rlimit_resource(name: &str) -> Option<libc::__rlimit_resource_t> {
    Some(match name {
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        _ => return None,
    })
}

/// The session limits of the rootless user: the base config's `process.rlimits` (rootless
/// podman sends its own limits, which its user's session gave it; an unprivileged process
/// cannot raise a hard limit, so the runtime commands start with these, set while still root).
pub fn session_limits(cfg: &serde_json::Value) -> Vec<(libc::__rlimit_resource_t, u64, u64)> {
    let rlimits = cfg["process"]["rlimits"].as_array().into_iter().flatten();
    rlimits
        .filter_map(|r| {
            let res = rlimit_resource(r["type"].as_str()?)?;
            Some((res, r["soft"].as_u64()?, r["hard"].as_u64()?))
        })
        .collect()
}

/// The rootless user context of one catalogue run.
#[derive(Debug)]
pub struct Rootless {
    /// The unprivileged uid (= gid).
    pub uid: u32,
    holder: Child,
    userns: OwnedFd,
    runtime_procs: Option<CString>,
    delegated: bool,
    xdg: PathBuf,
    limits: Vec<(libc::__rlimit_resource_t, u64, u64)>,
}

/// Drop to `uid` (gid `uid`, no supplementary groups). Only async-signal-safe calls: it runs
/// between fork and exec.
fn drop_to(uid: u32) -> std::io::Result<()> {
    let check = |r: libc::c_int| if r == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) };
    // SAFETY: a zero count: setgroups reads no memory.
    check(unsafe { libc::setgroups(0, std::ptr::null()) })?;
    // SAFETY: plain ids, no memory.
    check(unsafe { libc::setresgid(uid, uid, uid) })?;
    // SAFETY: plain ids, no memory.
    check(unsafe { libc::setresuid(uid, uid, uid) })
}

/// Spawn the holder: `busybox sleep` as `uid` in a new user namespace, maps not written yet.
fn spawn_holder(busybox: &Path, uid: u32) -> Result<Child, RootlessError> {
    let mut cmd = Command::new(busybox);
    cmd.args(["sleep", "2147483647"]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let in_new_userns = move || {
        drop_to(uid)?;
        // SAFETY: unshare takes a flag word and touches no memory of ours.
        if unsafe { libc::unshare(libc::CLONE_NEWUSER) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the closure only makes async-signal-safe calls (drop_to, unshare).
    unsafe { cmd.pre_exec(in_new_userns) };
    cmd.spawn().map_err(|source| RootlessError::UserNs { uid, source })
}

/// Write `pid`'s maps as an unprivileged process may: `setgroups` denied, then the self-maps.
fn write_maps(pid: u32, uid: u32) -> Result<OwnedFd, RootlessError> {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    for (file, text) in
        [("setgroups", "deny".to_owned()), ("uid_map", self_map(uid)), ("gid_map", self_map(uid))]
    {
        let path = proc.join(file);
        std::fs::write(&path, text).map_err(io("write", &path))?;
    }
    let ns = proc.join("ns/user");
    Ok(std::fs::File::open(&ns).map_err(io("open", &ns))?.into())
}

impl Rootless {
    /// Make the user namespace (the kernel's refusal is [`RootlessError::UserNs`]), give the
    /// uid `rootfs` (recursively), `owned` (created; the first is `XDG_RUNTIME_DIR`) and, on a
    /// pure v2 host (`v2`), the delegated cgroup.
    pub fn setup(
        busybox: &Path,
        rootfs: &Path,
        owned: &[&Path],
        v2: bool,
        limits: Vec<(libc::__rlimit_resource_t, u64, u64)>,
    ) -> Result<Self, RootlessError> {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let uid = pick_uid(&passwd);
        let mut holder = spawn_holder(busybox, uid)?;
        let userns = match write_maps(holder.id(), uid) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = holder.kill();
                let _ = holder.wait();
                return Err(e);
            }
        };
        let xdg = owned.first().map(|p| p.to_path_buf()).unwrap_or_default();
        let mut me = Self { uid, holder, userns, runtime_procs: None, delegated: false, xdg, limits };
        chown_tree(rootfs, uid)?;
        for p in owned {
            std::fs::create_dir_all(p).map_err(io("mkdir", p))?;
            chown(p, uid)?;
        }
        if v2 {
            me.delegate()?;
        }
        Ok(me)
    }

    /// Delegate [`DELEGATED`] to the uid, controllers enabled down to it, and make the leaf the
    /// runtime commands start in.
    fn delegate(&mut self) -> Result<(), RootlessError> {
        let root = Path::new("/sys/fs/cgroup");
        let dir = Path::new(DELEGATED);
        std::fs::create_dir_all(dir).map_err(io("mkdir", dir))?;
        let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        for parent in [root, dir] {
            for c in controllers.split_whitespace() {
                // One at a time: a controller the kernel will not enable here leaves the others.
                let _ = std::fs::write(parent.join("cgroup.subtree_control"), format!("+{c}"));
            }
        }
        chown(dir, self.uid)?;
        for f in DELEGATED_FILES {
            chown(&dir.join(f), self.uid)?;
        }
        self.delegated = true;
        let leaf = dir.join(RUNTIME_LEAF);
        std::fs::create_dir_all(&leaf).map_err(io("mkdir", &leaf))?;
        chown(&leaf, self.uid)?;
        let procs = leaf.join("cgroup.procs");
        chown(&procs, self.uid)?;
        self.runtime_procs = CString::new(procs.to_string_lossy().into_owned()).ok();
        Ok(())
    }

    /// Whether the uid has a delegated cgroup (v2) the runtime can make containers' in.
    pub fn cgroup_delegated(&self) -> bool {
        self.delegated
    }

    /// Make `cmd` run as the uid in the user namespace (as root of it), in the delegated
    /// cgroup's leaf when there is one, with the session limits and `XDG_RUNTIME_DIR` the
    /// uid's.
    pub fn prepare(&self, cmd: &mut Command) {
        cmd.env("XDG_RUNTIME_DIR", &self.xdg);
        let (uid, userns, procs) = (self.uid, self.userns.as_raw_fd(), self.runtime_procs.clone());
        let limits = self.limits.clone();
        let join = move || {
            if let Some(p) = &procs {
                enter_cgroup(p)?;
            }
            for &(res, soft, hard) in &limits {
                let lim = libc::rlimit { rlim_cur: soft, rlim_max: hard };
                // SAFETY: setrlimit reads the rlimit on our stack.
                if unsafe { libc::setrlimit(res, &lim) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            drop_to(uid)?;
            // SAFETY: `userns` is an open fd of a user namespace, owned by `self`, which
            // outlives the spawn; setns reads nothing else.
            if unsafe { libc::setns(userns, libc::CLONE_NEWUSER) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        };
        // SAFETY: the closure only makes async-signal-safe calls (open, write, close,
        // setrlimit, drop_to, setns) on memory allocated before the fork.
        unsafe { cmd.pre_exec(join) };
    }
}

/// Move this process into the cgroup whose `cgroup.procs` is `procs` (between fork and exec).
fn enter_cgroup(procs: &CString) -> std::io::Result<()> {
    // SAFETY: `procs` is a valid NUL-terminated path; the fd is closed on every path below.
    let fd = unsafe { libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: writes one byte from a static buffer to the fd just opened.
    let n = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
    let err = std::io::Error::last_os_error();
    // SAFETY: closes the fd opened above, once.
    unsafe { libc::close(fd) };
    if n < 0 {
        return Err(err);
    }
    Ok(())
}

impl Drop for Rootless {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
        if self.delegated {
            // Give the cgroup back to root (a host's `isorun` dir stays as it was).
            let dir = Path::new(DELEGATED);
            let _ = std::fs::remove_dir(dir.join(RUNTIME_LEAF));
            for p in DELEGATED_FILES.iter().map(|f| dir.join(f)).chain([dir.to_owned()]) {
                let _ = std::os::unix::fs::lchown(&p, Some(0), Some(0));
            }
        }
    }
}

fn chown(p: &Path, uid: u32) -> Result<(), RootlessError> {
    std::os::unix::fs::lchown(p, Some(uid), Some(uid)).map_err(io("chown", p))
}

/// Give `p` and everything under it (symlinks themselves) to `uid`.
pub(super) fn chown_tree(p: &Path, uid: u32) -> Result<(), RootlessError> {
    chown(p, uid)?;
    let meta = std::fs::symlink_metadata(p).map_err(io("stat", p))?;
    if meta.is_dir() {
        for e in std::fs::read_dir(p).map_err(io("read", p))?.flatten() {
            chown_tree(&e.path(), uid)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("", 1000 ; "a guest has no passwd")]
    #[test_case("root:x:0:0::/root:/bin/sh\n", 1000 ; "only root")]
    #[test_case("root:x:0:0::/:/bin/sh\nu:x:1000:1000::/:/bin/sh\nv:x:1001:1001::/:/bin/sh\n", 1002 ; "real users kept")]
    #[test_case("u:x:1001:1001::/:/bin/sh\nbroken line\n", 1000 ; "a gap and junk")]
    fn the_uid_is_the_first_free_from_1000(passwd: &str, want: u32) {
        assert_eq!(pick_uid(passwd), want);
    }

    #[test]
    fn session_limits_are_the_configs_known_rlimits() {
        let cfg = serde_json::json!({"process": {"rlimits": [
            {"type": "RLIMIT_NOFILE", "soft": 20000, "hard": 20000},
            {"type": "RLIMIT_NPROC", "soft": 32768, "hard": 32768},
            {"type": "RLIMIT_RTTIME", "soft": 1, "hard": 1},
            {"type": "RLIMIT_CORE", "soft": 1}
        ]}});
        let want = vec![(libc::RLIMIT_NOFILE, 20000, 20000), (libc::RLIMIT_NPROC, 32768, 32768)];
        assert_eq!(session_limits(&cfg), want);
        assert!(session_limits(&serde_json::json!({})).is_empty());
    }

    #[test]
    fn the_map_is_the_single_self_mapping() {
        assert_eq!(self_map(1000), "0 1000 1\n");
    }
}
