//! `start`, `kill`, `delete`, `state`, `list`: operations on an existing container.

use std::collections::HashMap;
use std::fs;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::stat::Mode;
use nix::unistd::{write, Pid};
use serde::Serialize;

use super::{errno_of, host, ContainerError};
use crate::state::{process_alive, ContainerRecord, StateError, StateStore, Status, EXEC_FIFO};
use crate::sys::process::{pidfd_open, pidfd_send_signal};

/// The state as `isorun state` prints it: runtime-spec's fields plus runc's extras.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    /// runtime-spec version of the config.
    pub oci_version: String,
    /// Container id.
    pub id: String,
    /// creating, created, running, paused or stopped.
    pub status: Status,
    /// Init's pid on the host (0 once stopped, as runc reports it).
    pub pid: i32,
    /// Absolute bundle path.
    pub bundle: PathBuf,
    /// Absolute rootfs path.
    pub rootfs: PathBuf,
    /// Creation time.
    pub created: String,
    /// Owner.
    pub owner: String,
    /// Annotations from config.json.
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

fn to_state(store: &StateStore, rec: ContainerRecord) -> OciState {
    let status = store.status(&rec);
    OciState {
        oci_version: rec.oci_version,
        id: rec.id,
        status,
        pid: if status == Status::Stopped { 0 } else { rec.pid },
        bundle: rec.bundle,
        rootfs: rec.rootfs,
        created: rec.created,
        owner: rec.owner,
        annotations: rec.annotations,
    }
}

/// The state of container `id`.
pub fn state(store: &StateStore, id: &str) -> Result<OciState, ContainerError> {
    Ok(to_state(store, store.load(id)?))
}

/// Every container under the root, with its state.
pub fn list(store: &StateStore) -> Result<Vec<OciState>, ContainerError> {
    let mut out = Vec::new();
    for id in store.ids()? {
        match store.load(&id) {
            Ok(rec) => out.push(to_state(store, rec)),
            Err(StateError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// The status of a container whose exec fifo lost its reader: the init closes its files
/// before the kernel marks it dead, so this waits up to a second for it to be seen gone.
fn settled_status(store: &StateStore, rec: &ContainerRecord) -> Status {
    for _ in 0..100 {
        let status = store.status(rec);
        if status != Status::Created {
            return status;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Status::Created
}

/// `start`: release a created container's init from the exec fifo.
pub fn start(store: &StateStore, id: &str) -> Result<(), ContainerError> {
    let lock = store.lock(id)?;
    let rec = store.load(id)?;
    let status = store.status(&rec);
    if status != Status::Created {
        return Err(ContainerError::WrongStatus { id: id.to_owned(), status, op: "start (not created)" });
    }
    let fifo = store.dir(id).join(EXEC_FIFO);
    // The init holds the fifo open for reading: a non-blocking open for writing succeeds at
    // once, and fails with ENXIO if the init is gone.
    let released = open(&fifo, OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| ("open", e))
        .and_then(|fd| write(&fd, b"0").map(drop).map_err(|e| ("write", e)));
    if let Err((op, errno)) = released {
        // ENXIO (no reader) or EPIPE (the reader left): the init died after the status check,
        // e.g. by its parent-death signal when its `create` was killed after recording it.
        let status = match errno {
            Errno::ENXIO | Errno::EPIPE => settled_status(store, &rec),
            _ => Status::Created,
        };
        if status != Status::Created {
            return Err(ContainerError::WrongStatus {
                id: id.to_owned(),
                status,
                op: "start (its init exited)",
            });
        }
        return Err(host(format!("{op} {}", fifo.display()))(errno));
    }
    fs::remove_file(&fifo).map_err(|e| host(format!("remove {}", fifo.display()))(errno_of(&e)))?;
    // The hooks run unlocked: one that calls isorun on this container must not wait for us.
    drop(lock);
    // poststart: after the user process was released; a failure is only a warning.
    if let Some(list) = rec.hooks.as_ref().and_then(|h| h.poststart().as_deref()) {
        let state = serde_json::to_vec(&to_state(store, rec.clone())).unwrap_or_default();
        if let Err(e) = crate::hooks::run_hooks("poststart", list, &state) {
            tracing::warn!("{e}");
            eprintln!("isorun: warning: {e}");
        }
    }
    Ok(())
}

/// `kill`: send `signal` to the init (or, with `all`, to every process of the container).
/// With `all`, a stopped container's cgroup is signalled too (runc): with a shared pid
/// namespace (`--pid host`, `--pid container:X`) processes outlive the init there.
pub fn kill(store: &StateStore, id: &str, signal: i32, all: bool) -> Result<(), ContainerError> {
    let _lock = store.lock(id)?;
    let rec = store.load(id)?;
    let status = store.status(&rec);
    if status == Status::Creating {
        return Err(ContainerError::WrongStatus {
            id: id.to_owned(),
            status,
            op: "kill (still being created)",
        });
    }
    if status == Status::Stopped {
        if all {
            if let Some(cg) = rec.cgroup() {
                signal_cgroup(&cg, signal);
            }
            return Ok(());
        }
        return Err(ContainerError::WrongStatus { id: id.to_owned(), status, op: "kill (not running)" });
    }
    signal_container(&rec, signal, all)
}

fn signal_container(rec: &ContainerRecord, signal: i32, all: bool) -> Result<(), ContainerError> {
    let pidfd = pidfd_open(Pid::from_raw(rec.pid)).map_err(host(format!("pidfd_open({})", rec.pid)))?;
    // The pidfd pins the process; recheck it is still ours before signalling.
    if !process_alive(rec.pid, rec.pid_start_time) {
        return Err(ContainerError::WrongStatus { id: rec.id.clone(), status: Status::Stopped, op: "kill" });
    }
    signal_pinned(rec, pidfd.as_fd(), signal, all)
}

/// Signal every process in `cg` as runc's `signalAllProcesses`: frozen meanwhile, so none
/// forks away; thawed after (a paused cgroup stays frozen, except for SIGKILL, which only
/// kills thawed processes). Failures to signal one process only warn; returns how many
/// processes were signalled.
fn signal_cgroup(cg: &crate::cgroups::CgroupManager, signal: i32) -> usize {
    let was_frozen = cg.is_frozen();
    let froze = !was_frozen && cg.freeze().map_err(|e| tracing::warn!("{e}")).is_ok();
    let pids = cg.pids().unwrap_or_else(|e| {
        tracing::warn!("{e}");
        Vec::new()
    });
    let sig = nix::sys::signal::Signal::try_from(signal).ok();
    for pid in &pids {
        if let Err(e) = nix::sys::signal::kill(Pid::from_raw(*pid), sig) {
            tracing::debug!("kill({pid}, {signal}): {e}");
        }
    }
    if froze || (was_frozen && signal == libc::SIGKILL) {
        if let Err(e) = cg.thaw() {
            tracing::warn!("{e}");
        }
    }
    pids.len()
}

/// Signal the init through its (already checked) pidfd, and with `all` every other process.
fn signal_pinned(
    rec: &ContainerRecord,
    pidfd: BorrowedFd<'_>,
    signal: i32,
    all: bool,
) -> Result<(), ContainerError> {
    if all {
        // Every process of the container: its cgroup knows them all; without one, its pid
        // namespace does (when it has its own).
        match rec.cgroup() {
            Some(cg) => {
                signal_cgroup(&cg, signal);
            }
            None if rec.own_pid_ns => {
                for pid in pids_in_ns_of(rec.pid).into_iter().filter(|p| *p != rec.pid) {
                    let _ = nix::sys::signal::kill(
                        Pid::from_raw(pid),
                        nix::sys::signal::Signal::try_from(signal).ok(),
                    );
                }
            }
            None => {}
        }
    }
    match pidfd_send_signal(pidfd, signal) {
        // Already signalled through the cgroup and gone: that is what was asked.
        Err(Errno::ESRCH) if all => Ok(()),
        r => r.map_err(host(format!("kill({}, {signal})", rec.pid))),
    }
}

/// SIGKILL whatever is left in the cgroup of a stopped container and wait (bounded) until it
/// is empty, so it can be removed (runc's destroy does the same).
fn kill_leftovers(cg: &crate::cgroups::CgroupManager) -> Result<(), ContainerError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match cg.pids() {
            Ok(p) if p.is_empty() => return Ok(()),
            Err(_) => return Ok(()), // gone already: remove() says what is wrong, if anything
            Ok(p) if std::time::Instant::now() >= deadline => {
                return Err(ContainerError::Host {
                    step: format!("wait for {} process(es) of {} to die after SIGKILL", p.len(), cg.path()),
                    errno: Errno::ETIMEDOUT,
                })
            }
            Ok(_) => {
                signal_cgroup(cg, libc::SIGKILL);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Every host pid whose pid namespace is the one of `pid`.
fn pids_in_ns_of(pid: i32) -> Vec<i32> {
    let ns_of = |p: &str| fs::metadata(format!("/proc/{p}/ns/pid")).ok().map(|m| (m.dev(), m.ino()));
    let Some(target) = ns_of(&pid.to_string()) else { return Vec::new() };
    let Ok(rd) = fs::read_dir("/proc") else { return Vec::new() };
    rd.filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        .filter(|n| ns_of(n) == Some(target))
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// `delete`: remove a stopped container; with `force`, kill it first. Deleting a container
/// that does not exist is an error, except with `force` (as runc), which also sweeps what
/// killed commands on the id left under the root (in its staging directory; when there is
/// no such container, also directly under the root, where an older isorun left them). A
/// container whose `create` was killed (its record still names its creator) is undone from
/// its record: its init and whatever is in its cgroup killed, the cgroup and the rootfs bind
/// removed; it gets no poststop hooks.
pub fn delete(store: &StateStore, id: &str, force: bool) -> Result<(), ContainerError> {
    let lock = match store.lock(id) {
        Ok(l) => l,
        Err(StateError::NotFound(_)) if force => return Ok(store.sweep_stale_everywhere(id)?),
        Err(e) => return Err(e.into()),
    };
    let rec = match store.load(id) {
        Ok(rec) => rec,
        // A directory without state (made by an older isorun): force removes it.
        Err(StateError::NotFound(_)) if force => {
            store.remove(id)?;
            drop(lock);
            return Ok(store.sweep_stale_everywhere(id)?);
        }
        Err(e) => return Err(e.into()),
    };
    if force && rec.net_devices.is_empty() {
        // Killed at once, whatever its status: reading the status first (its /proc entry,
        // the exec fifo, the freezer) would only delay the SIGKILL, and `kill_and_wait`
        // checks what it needs (a dead or reused pid, a frozen cgroup) while the init dies.
        kill_and_wait(&rec)?;
    } else {
        let status = store.status(&rec);
        if status != Status::Stopped {
            if !force {
                return Err(ContainerError::WrongStatus {
                    id: id.to_owned(),
                    status,
                    op: "delete (not stopped; use --force)",
                });
            }
            // Devices moved in go back first: a virtual one dies with the namespace.
            if !rec.net_devices.is_empty() && rec.pid > 0 {
                let moved_out =
                    crate::net::netns_of(rec.pid).and_then(|ns| crate::net::move_out(&ns, &rec.net_devices));
                if let Err(e) = moved_out {
                    tracing::warn!("{e}");
                    eprintln!("isorun: warning: linux.netDevices of {id}: {e}");
                }
            }
            kill_and_wait(&rec)?;
        }
    }
    if let Some(cgroup) = rec.cgroup() {
        kill_leftovers(&cgroup)?;
        cgroup.remove()?;
    }
    if rec.rootfs_bound {
        super::shared_mount::detach(&rec.rootfs)?;
    }
    // Removed (renamed away) under the lock: a command waiting for it finds no container.
    let state = serde_json::to_vec(&to_state(store, rec.clone())).unwrap_or_default();
    store.remove(id)?;
    drop(lock);
    if force {
        store.sweep_stale(id)?;
    }
    // poststop: after the container is deleted, before delete returns (runtime-spec), unlocked;
    // failures only warn.
    let hooks = rec.hooks.as_ref().filter(|_| rec.creator.is_none());
    if let Some(list) = hooks.and_then(|h| h.poststop().as_deref()) {
        if let Err(e) = crate::hooks::run_hooks("poststop", list, &state) {
            tracing::warn!("{e}");
            eprintln!("isorun: warning: {e}");
        }
    }
    Ok(())
}

/// SIGKILL every process of the container and wait until the init has exited.
fn kill_and_wait(rec: &ContainerRecord) -> Result<(), ContainerError> {
    if rec.pid <= 0 {
        // Killed before its init was cloned: whatever exists is in its cgroup.
        return Ok(());
    }
    let pidfd = match pidfd_open(Pid::from_raw(rec.pid)) {
        Ok(fd) => fd,
        Err(Errno::ESRCH) => return Ok(()),
        Err(e) => return Err(host(format!("pidfd_open({})", rec.pid))(e)),
    };
    if !process_alive(rec.pid, rec.pid_start_time) {
        return Ok(());
    }
    // With its own pid namespace, the init's death kills every process in it: runc's destroy
    // signals the cgroup only for a shared pid namespace (freezing it costs two freezer
    // writes, each a kernel text patch). What else is in the cgroup, `kill_leftovers` kills.
    signal_pinned(rec, pidfd.as_fd(), libc::SIGKILL, !rec.own_pid_ns)?;
    // A frozen process only dies once thawed.
    if let Some(cg) = rec.cgroup().filter(|cg| cg.is_frozen()) {
        let _ = cg.thaw();
    }
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    let timeout = PollTimeout::try_from(Duration::from_secs(10)).unwrap_or(PollTimeout::MAX);
    match poll(&mut fds, timeout) {
        Ok(0) => Err(ContainerError::Host {
            step: format!("wait for {} to die after SIGKILL", rec.pid),
            errno: Errno::ETIMEDOUT,
        }),
        Ok(_) => Ok(()),
        Err(e) => Err(host(format!("poll pidfd of {}", rec.pid))(e)),
    }
}
