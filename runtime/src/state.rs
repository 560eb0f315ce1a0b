//! Container state under `--root`: one directory per container holding `state.json`
//! (written atomically: temp file + rename) and, while the container is `created`, the exec
//! fifo. The status is derived, never trusted from disk: a dead init means `stopped`.

use std::fs;
use std::io::Write;
use std::os::fd::OwnedFd;
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
    /// Init's start time (field 22 of /proc/<pid>/stat), to tell a reused pid from ours.
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
    /// The config's seccomp profile: `exec`'d processes get it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
    /// linux.netDevices moved into the container: given back on delete.
    #[serde(default, skip_serializing_if = "std::collections::HashMap::is_empty")]
    pub net_devices: std::collections::HashMap<String, oci_spec::runtime::LinuxNetDevice>,
    /// No mount namespace: the rootfs is bound onto itself in the caller's mount namespace,
    /// with the container's mounts under it; `delete` detaches it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rootfs_bound: bool,
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

    /// Take an exclusive lock on a container's directory for a state-changing operation.
    pub fn lock(&self, id: &str) -> Result<Flock<OwnedFd>, StateError> {
        validate_id(id)?;
        let dir = self.dir(id);
        let fd = nix::fcntl::open(
            &dir,
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::ENOENT => StateError::NotFound(id.to_owned()),
            e => io("open", &dir, e.into()),
        })?;
        Flock::lock(fd, FlockArg::LockExclusive).map_err(|(_, e)| io("flock", &dir, e.into()))
    }

    /// Write the record atomically (temp file + rename, no fsync: /run is tmpfs).
    pub fn save(&self, rec: &ContainerRecord) -> Result<(), StateError> {
        let dir = self.dir(&rec.id);
        let tmp = dir.join(".state.json.tmp");
        let path = dir.join(STATE_FILE);
        let bytes =
            serde_json::to_vec(rec).map_err(|source| StateError::Corrupt { path: path.clone(), source })?;
        let mut f = fs::File::create(&tmp).map_err(|source| io("create", &tmp, source))?;
        f.write_all(&bytes).map_err(|source| io("write", &tmp, source))?;
        fs::rename(&tmp, &path).map_err(|source| io("rename", &path, source))
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
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Remove a container's directory and everything in it.
    pub fn remove(&self, id: &str) -> Result<(), StateError> {
        validate_id(id)?;
        let dir = self.dir(id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(io("remove", &dir, source)),
        }
    }

    /// The status of a container, derived from its init process and the exec fifo.
    pub fn status(&self, rec: &ContainerRecord) -> Status {
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

fn io(op: &'static str, path: &Path, source: std::io::Error) -> StateError {
    StateError::Io { op, path: path.to_owned(), source }
}

/// Field 22 (starttime) and field 3 (state) of /proc/<pid>/stat.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&s)
}

/// Parse state and starttime out of a /proc/<pid>/stat line (comm may hold spaces and parens).
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
        };
        store.save(&rec).unwrap();
        assert_eq!(store.load("c1").unwrap(), rec);
        assert_eq!(store.ids().unwrap(), vec!["c1".to_owned()]);
        store.remove("c1").unwrap();
        assert!(matches!(store.load("c1"), Err(StateError::NotFound(_))));
    }
}
