//! Container state under `--root`: one directory per container holding `state.json`
//! (written atomically: temp file + rename) and, while the container is `created`, the exec
//! fifo. The status is derived, never trusted from disk: a dead init means `stopped`.
//!
//! A container's directory appears whole: `create` makes it in [`STAGING_DIR`] under a name
//! no id can have (`<id>~<pid>-<start>.new`), writes the first record (what it is about to
//! make: the cgroup path, no pid yet) and locks it there, then renames it into place with
//! `RENAME_NOREPLACE`. `remove` renames it back into the staging directory (`.del`) before
//! emptying it. A command killed half-way leaves a record `delete --force` can undo, or a `~`
//! directory no container owns, which `delete --force <id>` sweeps: it reads the staging
//! directory only, which holds what commands in flight (or killed) made, not the root,
//! which holds an entry per container. Every state-changing command holds the directory's `flock`
//! ([`StateStore::lock`]); a waiter whose directory was replaced meanwhile gets `NotFound`.

use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::kill;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// The state file's name inside a container's directory.
pub const STATE_FILE: &str = "state.json";
/// The exec fifo's name inside a container's directory.
pub const EXEC_FIFO: &str = "exec.fifo";
/// A container's seccomp profile, beside its state.json.
pub const SECCOMP_FILE: &str = "seccomp.json";
/// The directory under `--root` where containers' directories are made and emptied (`@` is
/// not allowed in an id, so it is never a container's).
pub const STAGING_DIR: &str = "@staging";
/// Where `restore` binds the rootfs inside a container's directory for CRIU, while it runs.
pub const RESTORE_ROOT: &str = "criu-root";

/// Errors of the state store, each naming the path or the container.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The id breaks the rules (empty, `/`, `..`, too long, odd characters).
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId {
        /// The id given.
        id: String,
        /// Why.
        reason: &'static str,
    },
    /// A container with this id exists already.
    #[error("container {0:?} already exists")]
    Exists(String),
    /// No container with this id.
    #[error("container {0:?} does not exist")]
    NotFound(String),
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// state.json did not parse.
    #[error("parse {path}: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The error.
        source: serde_json::Error,
    },
}

/// OCI status (runtime-spec runtime.md "State"), plus `paused` as runc reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Being created.
    Creating,
    /// Created, user process waiting on the exec fifo.
    Created,
    /// User process running.
    Running,
    /// Frozen (cgroup freezer).
    Paused,
    /// Init exited.
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        };
        f.write_str(s)
    }
}

/// What we keep about a container between invocations.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerRecord {
    /// Container id.
    pub id: String,
    /// Init's pid in the host's pid namespace.
    pub pid: i32,
    /// Init's start time (field 22 of `/proc/<pid>/stat`), to tell a reused pid from ours.
    pub pid_start_time: u64,
    /// Absolute bundle path.
    pub bundle: PathBuf,
    /// Absolute rootfs path.
    pub rootfs: PathBuf,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Owner (user name or uid) for `list`.
    pub owner: String,
    /// Annotations from config.json.
    #[serde(default)]
    pub annotations: std::collections::HashMap<String, String>,
    /// ociVersion of the config.
    pub oci_version: String,
    /// The container has its own pid namespace (killing init kills everything).
    pub own_pid_ns: bool,
    /// The container's cgroup path (rebuilds its `CgroupManager`).
    #[serde(default)]
    pub cgroup_path: Option<String>,
    /// The config's hooks (poststart runs at `start`, poststop at `delete`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// The config's process: the defaults of `exec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<oci_spec::runtime::Process>,
    /// The config's seccomp profile: `exec`'d processes get it too. Kept in its own file
    /// ([`SECCOMP_FILE`], written once at create, read only by `exec`: see
    /// [`StateStore::seccomp_of`]), not in state.json, which every command reads and several
    /// write: an engine's profile is most of a config's bytes. Read from state.json when an
    /// older isorun put it there.
    #[serde(default, skip_serializing)]
    pub seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
    /// linux.netDevices moved into the container: given back on delete.
    #[serde(default, skip_serializing_if = "std::collections::HashMap::is_empty")]
    pub net_devices: std::collections::HashMap<String, oci_spec::runtime::LinuxNetDevice>,
    /// No mount namespace: the rootfs is bound onto itself in the caller's mount namespace,
    /// with the container's mounts under it; `delete` detaches it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rootfs_bound: bool,
    /// Set while `create` is under way: the creating isorun (pid, start time). A record that
    /// still has it after its creator died is a half-made container `delete` undoes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<(i32, u64)>,
}

impl ContainerRecord {
    /// The container's cgroup, if it has one.
    pub fn cgroup(&self) -> Option<crate::cgroups::CgroupManager> {
        let path = self.cgroup_path.as_deref()?;
        crate::cgroups::CgroupManager::new(&self.id, Some(path)).ok()
    }
}

/// Validate a container id like runc: `^[\w+\-\.]+$`, not `.`/`..`, at most 1024 bytes.
pub fn validate_id(id: &str) -> Result<(), StateError> {
    let bad = |reason| Err(StateError::InvalidId { id: id.to_owned(), reason });
    if id.is_empty() {
        return bad("empty");
    }
    if id.len() > 1024 {
        return bad("longer than 1024 bytes");
    }
    if id == "." || id == ".." {
        return bad("is . or ..");
    }
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.')) {
        return bad("only letters, digits, _ + - . are allowed");
    }
    Ok(())
}

/// The state store rooted at `--root`.
#[derive(Debug, Clone)]
pub struct StateStore {
    root: PathBuf,
}

impl StateStore {
    /// A store at `root` (created on first use).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The `--root` directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of container `id` (id must be validated).
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// [`STAGING_DIR`] under the root, made if missing.
    fn staging(&self) -> Result<PathBuf, StateError> {
        let dir = self.root.join(STAGING_DIR);
        fs::create_dir_all(&dir).map_err(|source| io("mkdir", &dir, source))?;
        Ok(dir)
    }

    /// Make the directory of a new container holding `rec` as its first state, already
    /// locked: it appears under `rec.id` whole (renamed into place), or not at all. `Exists`
    /// when the id is taken.
    pub fn create_locked(&self, rec: &ContainerRecord) -> Result<(PathBuf, IdLock), StateError> {
        validate_id(&rec.id)?;
        let (pid, start) = self_identity();
        let tmp = self.staging()?.join(format!("{}~{pid}-{start}.new", rec.id));
        // A leftover of an earlier process with our pid and start time cannot exist; of
        // another one with our pid, it is stale.
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir(&tmp).map_err(|source| io("mkdir", &tmp, source))?;
        let made = open_dir(&tmp).and_then(|fd| {
            let lock =
                Flock::lock(fd, FlockArg::LockExclusive).map_err(|(_, e)| io("flock", &tmp, e.into()))?;
            write_state(&tmp, rec)?;
            if let Some(profile) = &rec.seccomp {
                let path = tmp.join(SECCOMP_FILE);
                let bytes = serde_json::to_vec(profile)
                    .map_err(|source| StateError::Corrupt { path: path.clone(), source })?;
                fs::write(&path, bytes).map_err(|source| io("write", &path, source))?;
            }
            Ok(lock)
        });
        let dir = self.dir(&rec.id);
        let renamed = made.and_then(|lock| match rename_noreplace(&tmp, &dir) {
            Ok(()) => Ok(lock),
            Err(Errno::EEXIST | Errno::ENOTEMPTY) => Err(StateError::Exists(rec.id.clone())),
            Err(e) => Err(io("rename", &dir, e.into())),
        });
        match renamed {
            Ok(lock) => Ok((dir, IdLock(lock))),
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                Err(e)
            }
        }
    }

    /// Create the directory of a new container; `Exists` when the id is taken.
    pub fn create_dir(&self, id: &str) -> Result<PathBuf, StateError> {
        validate_id(id)?;
        fs::create_dir_all(&self.root).map_err(|source| io("mkdir", &self.root, source))?;
        let dir = self.dir(id);
        match fs::create_dir(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(StateError::Exists(id.to_owned())),
            Err(source) => Err(io("mkdir", &dir, source)),
        }
    }

    /// Take the exclusive lock of container `id` for a state-changing operation: commands on
    /// one id are serialised. `NotFound` when there is no such container, also when it was
    /// deleted (its directory renamed away) while this waited for the lock.
    pub fn lock(&self, id: &str) -> Result<IdLock, StateError> {
        validate_id(id)?;
        let dir = self.dir(id);
        let fd = open_dir(&dir).map_err(|e| match e {
            StateError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                StateError::NotFound(id.to_owned())
            }
            e => e,
        })?;
        let lock = Flock::lock(fd, FlockArg::LockExclusive).map_err(|(_, e)| io("flock", &dir, e.into()))?;
        let held = nix::sys::stat::fstat(&*lock).map_err(|e| io("fstat", &dir, e.into()))?;
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.ino() == held.st_ino && m.dev() == held.st_dev => Ok(IdLock(lock)),
            Ok(_) => Err(StateError::NotFound(id.to_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StateError::NotFound(id.to_owned())),
            Err(source) => Err(io("stat", &dir, source)),
        }
    }

    /// Write the record atomically (temp file + rename).
    pub fn save(&self, rec: &ContainerRecord) -> Result<(), StateError> {
        write_state(&self.dir(&rec.id), rec)
    }

    /// Load a container's record; `NotFound` when there is no such container.
    pub fn load(&self, id: &str) -> Result<ContainerRecord, StateError> {
        validate_id(id)?;
        let path = self.dir(id).join(STATE_FILE);
        let bytes = fs::read(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => StateError::NotFound(id.to_owned()),
            _ => io("read", &path, source),
        })?;
        serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt { path, source })
    }

    /// The seccomp profile of the container of `rec`: its [`SECCOMP_FILE`], or (a record of an
    /// older isorun) the one in its state.json; `None` when it has none.
    pub fn seccomp_of(
        &self,
        rec: &ContainerRecord,
    ) -> Result<Option<oci_spec::runtime::LinuxSeccomp>, StateError> {
        if let Some(profile) = &rec.seccomp {
            return Ok(Some(profile.clone()));
        }
        let path = self.dir(&rec.id).join(SECCOMP_FILE);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| StateError::Corrupt { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(io("read", &path, source)),
        }
    }

    /// Ids of every container under the root, sorted.
    pub fn ids(&self) -> Result<Vec<String>, StateError> {
        let rd = match fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(io("read dir", &self.root, source)),
        };
        let mut ids: Vec<String> = rd
            .filter_map(Result::ok)
            .filter(|e| e.path().join(STATE_FILE).exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| validate_id(name).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Remove a container's directory and everything in it: renamed away first, so the id
    /// is gone at once and a removal cut short leaves no half directory under the id.
    pub fn remove(&self, id: &str) -> Result<(), StateError> {
        validate_id(id)?;
        let dir = self.dir(id);
        detach_restore_root(&dir)?;
        let (pid, start) = self_identity();
        let gone = self.staging()?.join(format!("{id}~{pid}-{start}.del"));
        match fs::rename(&dir, &gone) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(io("rename", &dir, source)),
        }
        fs::remove_dir_all(&gone).map_err(|source| io("remove", &gone, source))
    }

    /// Remove what commands on `id` that were killed left in [`STAGING_DIR`]: `<id>~…`
    /// directories (a create killed before its rename, a delete killed while emptying) whose
    /// process is gone. They hold no resources: a create records before it makes anything.
    pub fn sweep_stale(&self, id: &str) -> Result<(), StateError> {
        validate_id(id)?;
        sweep_dir(&self.root.join(STAGING_DIR), id)
    }

    /// [`StateStore::sweep_stale`], and the same directly under the root, where an isorun
    /// before the staging directory made them: for `delete --force` of an id that has no
    /// container, which is how such leftovers are cleaned up (it reads every entry of the
    /// root, so a delete of a container does not).
    pub fn sweep_stale_everywhere(&self, id: &str) -> Result<(), StateError> {
        self.sweep_stale(id)?;
        sweep_dir(&self.root, id)
    }

    /// The status of a container, derived from its init process and the exec fifo. A record
    /// still being made is `creating` while its creator or its init lives, else `stopped`.
    pub fn status(&self, rec: &ContainerRecord) -> Status {
        if let Some((pid, start)) = rec.creator {
            let alive = process_alive(pid, start) || process_alive(rec.pid, rec.pid_start_time);
            return if alive { Status::Creating } else { Status::Stopped };
        }
        if !process_alive(rec.pid, rec.pid_start_time) {
            return Status::Stopped;
        }
        if self.dir(&rec.id).join(EXEC_FIFO).exists() {
            Status::Created
        } else if rec.cgroup().is_some_and(|cg| cg.is_frozen()) {
            Status::Paused
        } else {
            Status::Running
        }
    }
}

/// Remove the `<id>~<pid>-<start>.new|.del` directories in `dir` whose process is gone.
fn sweep_dir(dir: &Path, id: &str) -> Result<(), StateError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(io("read dir", dir, source)),
    };
    for name in rd.filter_map(Result::ok).filter_map(|e| e.file_name().into_string().ok()) {
        let Some((owner, start)) = stale_owner(&name, id) else { continue };
        if !process_alive(owner, start) {
            let path = dir.join(&name);
            match fs::remove_dir_all(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(io("remove", &path, source)),
            }
        }
    }
    Ok(())
}

/// A restore killed while its root was bound on [`RESTORE_ROOT`] left the container's rootfs
/// mounted in the state directory: detach it and remove the (then empty) mount point, so the
/// directory's removal never reaches into the rootfs. A mount point that cannot be removed
/// (still mounted, not empty) is an error and the directory is left alone.
fn detach_restore_root(dir: &Path) -> Result<(), StateError> {
    let root = dir.join(RESTORE_ROOT);
    let _ = nix::mount::umount2(&root, nix::mount::MntFlags::MNT_DETACH);
    match fs::remove_dir(&root) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(io("remove", &root, source)),
    }
}

fn io(op: &'static str, path: &Path, source: std::io::Error) -> StateError {
    StateError::Io { op, path: path.to_owned(), source }
}

/// The exclusive lock of one container id, held until dropped (or until every copy of its
/// descriptor is closed: a process forked while it is held must close [`IdLock::raw_fd`]).
#[derive(Debug)]
pub struct IdLock(Flock<OwnedFd>);

impl IdLock {
    /// The locked descriptor, for a forked child to close (never to unlock: that would
    /// release the parent's lock too).
    pub fn raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

fn open_dir(dir: &Path) -> Result<OwnedFd, StateError> {
    use nix::fcntl::OFlag;
    nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| io("open", dir, e.into()))
}

fn rename_noreplace(from: &Path, to: &Path) -> Result<(), Errno> {
    use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
    match renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE) {
        // A filesystem without RENAME_NOREPLACE: a plain rename fails on a non-empty target.
        Err(Errno::EINVAL) => nix::fcntl::renameat(AT_FDCWD, from, AT_FDCWD, to),
        r => r,
    }
}

fn write_state(dir: &Path, rec: &ContainerRecord) -> Result<(), StateError> {
    let path = dir.join(STATE_FILE);
    let bytes =
        serde_json::to_vec(rec).map_err(|source| StateError::Corrupt { path: path.clone(), source })?;
    write_atomic(&path, &bytes).map_err(|source| io("write", &path, source))
}

/// Write `bytes` to `path` atomically, the one way every state and pid file is written: a
/// temp file beside it (named for this process, so concurrent writers do not share one),
/// then rename. A reader sees the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written =
        fs::File::create(&tmp).and_then(|mut f| f.write_all(bytes)).and_then(|()| fs::rename(&tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// This process's pid and start time (a pid alone may be reused): a record's `creator`.
pub fn self_identity() -> (i32, u64) {
    let pid = std::process::id() as i32;
    (pid, proc_stat(pid).map_or(0, |(_, start)| start))
}

/// The (pid, start time) of a `<id>~<pid>-<start>.new|.del` name left by a command on `id`.
pub fn stale_owner(name: &str, id: &str) -> Option<(i32, u64)> {
    let rest = name.strip_prefix(id)?.strip_prefix('~')?;
    let rest = rest.strip_suffix(".new").or_else(|| rest.strip_suffix(".del"))?;
    let (pid, start) = rest.split_once('-')?;
    Some((pid.parse().ok()?, start.parse().ok()?))
}

/// Field 22 (starttime) and field 3 (state) of `/proc/<pid>/stat`.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&s)
}

/// Parse state and starttime out of a `/proc/<pid>/stat` line (comm may hold spaces and parens).
pub fn parse_stat(s: &str) -> Option<(char, u64)> {
    let rest = &s[s.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // After ")" the fields are 3.. ; starttime is field 22, i.e. the 20th one here.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// The process exists, is not a zombie, and is the one we started (same start time).
pub fn process_alive(pid: i32, start_time: u64) -> bool {
    if pid <= 0 || kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    matches!(proc_stat(pid), Some((state, start)) if state != 'Z' && state != 'X' && start == start_time)
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("abc", true; "plain")]
    #[test_case("a-b_c.d+e", true; "punctuation")]
    #[test_case("", false; "empty")]
    #[test_case(".", false; "dot")]
    #[test_case("..", false; "dotdot")]
    #[test_case("a/b", false; "slash")]
    #[test_case("../x", false; "escape")]
    #[test_case("a b", false; "space")]
    fn ids(id: &str, ok: bool) {
        assert_eq!(validate_id(id).is_ok(), ok, "{id:?}");
    }

    #[test]
    fn stat_line_with_odd_comm() {
        let line = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 123456 1000 10";
        assert_eq!(parse_stat(line), Some(('S', 123456)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn save_load_roundtrip_and_ids() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::new(tmp.path().join("root"));
        store.create_dir("c1").unwrap();
        assert!(matches!(store.create_dir("c1"), Err(StateError::Exists(_))));
        let rec = ContainerRecord {
            id: "c1".into(),
            pid: 1,
            pid_start_time: 0,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "2026-01-01T00:00:00Z".into(),
            owner: "root".into(),
            annotations: Default::default(),
            oci_version: "1.2.0".into(),
            own_pid_ns: true,
            cgroup_path: Some("/isorun/c1".into()),
            hooks: None,
            process: None,
            seccomp: None,
            net_devices: Default::default(),
            rootfs_bound: false,
            creator: None,
        };
        store.save(&rec).unwrap();
        assert_eq!(store.load("c1").unwrap(), rec);
        assert_eq!(store.ids().unwrap(), vec!["c1".to_owned()]);
        store.remove("c1").unwrap();
        assert!(matches!(store.load("c1"), Err(StateError::NotFound(_))));
    }

    fn record(id: &str) -> ContainerRecord {
        ContainerRecord {
            id: id.into(),
            pid: 0,
            pid_start_time: 0,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "2026-01-01T00:00:00Z".into(),
            owner: "root".into(),
            annotations: Default::default(),
            oci_version: "1.2.0".into(),
            own_pid_ns: true,
            cgroup_path: Some(format!("/isorun/{id}")),
            hooks: None,
            process: None,
            seccomp: None,
            net_devices: Default::default(),
            rootfs_bound: false,
            creator: Some(self_identity()),
        }
    }

    #[test]
    fn create_locked_appears_whole_and_once() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::new(tmp.path().join("root"));
        let (dir, lock) = store.create_locked(&record("c1")).unwrap();
        assert_eq!(store.load("c1").unwrap(), record("c1"));
        assert!(matches!(store.create_locked(&record("c1")), Err(StateError::Exists(_))));
        // Only the container's directory is left under the root: no temp directory.
        assert_eq!(names(store.root()), vec![STAGING_DIR.to_owned(), "c1".into()]);
        assert!(names(&store.root().join(STAGING_DIR)).is_empty());
        // Held: a second lock would block; a non-blocking try on the same directory fails.
        let fd = open_dir(&dir).unwrap();
        assert!(Flock::lock(fd, FlockArg::LockExclusiveNonblock).is_err());
        drop(lock);
        drop(store.lock("c1").unwrap());
    }

    /// The profile goes to seccomp.json, not state.json; `seccomp_of` finds it there, and in
    /// the state.json of an older isorun.
    #[test]
    fn the_seccomp_profile_lives_beside_the_state() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::new(tmp.path().join("root"));
        let profile: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]
        }))
        .unwrap();
        let rec = ContainerRecord { seccomp: Some(profile.clone()), ..record("s1") };
        let (dir, lock) = store.create_locked(&rec).unwrap();
        drop(lock);
        let state: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join(STATE_FILE)).unwrap()).unwrap();
        assert!(state.get("seccomp").is_none(), "{state}");
        let loaded = store.load("s1").unwrap();
        assert_eq!(loaded.seccomp, None);
        assert_eq!(store.seccomp_of(&loaded).unwrap(), Some(profile.clone()));
        assert_eq!(store.seccomp_of(&record("s1")).unwrap(), Some(profile.clone()));
        // An older isorun's record: the profile inside state.json, no seccomp.json.
        fs::remove_file(dir.join(SECCOMP_FILE)).unwrap();
        let mut old = serde_json::to_value(&loaded).unwrap();
        old["seccomp"] = serde_json::to_value(&profile).unwrap();
        fs::write(dir.join(STATE_FILE), serde_json::to_vec(&old).unwrap()).unwrap();
        assert_eq!(store.seccomp_of(&store.load("s1").unwrap()).unwrap(), Some(profile));
        // None anywhere: none.
        let (_, lock) = store.create_locked(&record("s2")).unwrap();
        drop(lock);
        assert_eq!(store.seccomp_of(&store.load("s2").unwrap()).unwrap(), None);
    }

    /// A restore's mount point is removed with the directory when it is empty (detached);
    /// when something is still under it (a rootfs still there), nothing is removed.
    #[test]
    fn remove_never_reaches_under_a_restore_root() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::new(tmp.path().join("root"));
        let (dir, lock) = store.create_locked(&record("r1")).unwrap();
        drop(lock);
        fs::create_dir(dir.join(RESTORE_ROOT)).unwrap();
        store.remove("r1").unwrap();
        assert!(!dir.exists());

        let (dir, lock) = store.create_locked(&record("r2")).unwrap();
        drop(lock);
        let file = dir.join(RESTORE_ROOT).join("bin/sh");
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, b"x").unwrap();
        let err = store.remove("r2").unwrap_err().to_string();
        assert!(err.contains(RESTORE_ROOT), "{err}");
        assert_eq!(fs::read(&file).unwrap(), b"x", "a file under the restore root was touched");
        assert!(dir.join(STATE_FILE).exists(), "the record went without its restore root");
    }

    #[test]
    fn a_record_being_created_is_creating_until_its_creator_dies() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::new(tmp.path().join("root"));
        let mut rec = record("c2");
        assert_eq!(store.status(&rec), Status::Creating);
        // A creator that is gone (start time that cannot be ours), no init: stopped.
        rec.creator = Some((std::process::id() as i32, u64::MAX));
        assert_eq!(store.status(&rec), Status::Stopped);
    }

    #[test]
    fn a_waiter_on_a_removed_container_gets_not_found() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::new(tmp.path().join("root"));
        let (_, lock) = store.create_locked(&record("c3")).unwrap();
        let waiter = {
            let store = store.clone();
            std::thread::spawn(move || store.lock("c3").map(drop))
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        store.remove("c3").unwrap();
        drop(lock);
        assert!(matches!(waiter.join().unwrap(), Err(StateError::NotFound(_))));
        assert!(store.ids().unwrap().is_empty());
        assert_eq!(names(store.root()), vec![STAGING_DIR.to_owned()], "remove left its .del directory");
    }

    /// The names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    }

    #[test]
    fn sweep_removes_only_dead_leftovers_of_that_id_in_the_staging_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::new(tmp.path().join("root"));
        let (me, start) = self_identity();
        let staged = [
            format!("c4~{me}-{start}.new"),        // ours: alive, kept
            format!("c4~{me}-{}.del", start + 1),  // a dead process with our pid
            format!("c4x~{me}-{}.new", start + 1), // another id
        ];
        for name in &staged {
            fs::create_dir_all(store.root().join(STAGING_DIR).join(name)).unwrap();
        }
        // Directly under the root: where an older isorun left them.
        let older = format!("c4~{me}-{}.new", start + 2);
        for name in [older.as_str(), "@seccomp-cache"] {
            fs::create_dir_all(store.root().join(name)).unwrap();
        }
        store.sweep_stale("c4").unwrap();
        let kept = vec![staged[2].clone(), staged[0].clone()];
        assert_eq!(names(&store.root().join(STAGING_DIR)), kept);
        assert_eq!(names(store.root()), vec!["@seccomp-cache".into(), STAGING_DIR.into(), older.clone()]);
        store.sweep_stale_everywhere("c4").unwrap();
        assert_eq!(names(&store.root().join(STAGING_DIR)), kept);
        assert_eq!(names(store.root()), vec!["@seccomp-cache".to_owned(), STAGING_DIR.into()]);
        assert!(store.ids().unwrap().is_empty(), "directories without a state file are no containers");
    }

    #[test]
    fn create_and_remove_leave_nothing_but_the_empty_staging_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::new(tmp.path().join("root"));
        let (dir, lock) = store.create_locked(&record("c5")).unwrap();
        assert_eq!(dir, store.root().join("c5"));
        assert!(names(&store.root().join(STAGING_DIR)).is_empty(), "create left its .new directory");
        store.remove("c5").unwrap();
        drop(lock);
        assert_eq!(names(store.root()), vec![STAGING_DIR.to_owned()]);
        assert!(names(&store.root().join(STAGING_DIR)).is_empty(), "remove left its .del directory");
    }

    #[test_case("c~12-34.new", "c", Some((12, 34)); "new")]
    #[test_case("c~12-34.del", "c", Some((12, 34)); "del")]
    #[test_case("c~12-34.tmp", "c", None; "other suffix")]
    #[test_case("cd~12-34.new", "c", None; "longer id")]
    #[test_case("c", "c", None; "the container itself")]
    #[test_case("c~x-34.new", "c", None; "bad pid")]
    fn stale_names(name: &str, id: &str, want: Option<(i32, u64)>) {
        assert_eq!(stale_owner(name, id), want);
    }

    #[test]
    fn write_atomic_replaces_whole_and_leaves_no_temp() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("pid");
        write_atomic(&path, b"123").unwrap();
        write_atomic(&path, b"45").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"45");
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
        assert!(write_atomic(&tmp.path().join("missing/pid"), b"1").is_err());
    }
}
