//! What exists once a flow has made its process, shared by `create`, `run`, `restore` and
//! `exec`: the cgroup made for it and the process itself, each undone on drop until kept
//! ([`Spawned`]); the seccomp filter and listener a process is given; the ready handshake
//! with a process of ours; the pid file.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxResources, LinuxSeccomp};

use super::bundle::bundle_err;
use super::shared_mount::RootfsBind;
use super::{host, ContainerError};
use crate::cgroups::CgroupManager;
use crate::channel::{self, ChildMsg};
use crate::state::{self, StateStore};

/// How long libseccomp may take to compile a profile (a docker-sized one takes ~13 ms).
pub(crate) const SECCOMP_COMPILE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A cgroup made for a container: removed on drop unless kept.
#[derive(Debug)]
pub(crate) struct MadeCgroup {
    cgroup: CgroupManager,
    armed: bool,
}

impl MadeCgroup {
    /// Make `cgroup` with `resources` applied.
    pub(crate) fn make(
        cgroup: CgroupManager,
        resources: Option<&LinuxResources>,
    ) -> Result<Self, ContainerError> {
        cgroup.create(resources)?;
        Ok(MadeCgroup { cgroup, armed: true })
    }

    /// The cgroup.
    pub(crate) fn cgroup(&self) -> &CgroupManager {
        &self.cgroup
    }

    fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for MadeCgroup {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.cgroup.remove();
        }
    }
}

/// A process this one cloned: killed and reaped on drop unless disarmed.
#[derive(Debug)]
pub(crate) struct ChildGuard {
    pid: Pid,
    armed: bool,
}

impl ChildGuard {
    /// Guard `pid`, a child of this process.
    pub(crate) fn new(pid: Pid) -> Self {
        ChildGuard { pid, armed: true }
    }

    /// The child.
    pub(crate) fn pid(&self) -> Pid {
        self.pid
    }

    /// Leave the child alone; its pid.
    pub(crate) fn disarm(mut self) -> Pid {
        self.armed = false;
        self.pid
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = kill(self.pid, Signal::SIGKILL);
            let _ = waitpid(self.pid, None);
        }
    }
}

/// A container's init and what was made for it. Undone on drop in this order: the init
/// killed (when it is our child), the rootfs bind detached, the cgroup removed.
#[derive(Debug)]
pub(crate) struct Spawned {
    /// The init's pid.
    pub(crate) pid: Pid,
    init: Option<ChildGuard>,
    rootfs_bind: Option<RootfsBind>,
    cgroup: MadeCgroup,
}

impl Spawned {
    /// `init`, cloned by this process, with what was made for it.
    pub(crate) fn child(init: ChildGuard, rootfs_bind: Option<RootfsBind>, cgroup: MadeCgroup) -> Self {
        Spawned { pid: init.pid(), init: Some(init), rootfs_bind, cgroup }
    }

    /// An init this process did not clone (CRIU's), in `cgroup`.
    pub(crate) fn adopted(pid: Pid, cgroup: MadeCgroup) -> Self {
        Spawned { pid, init: None, rootfs_bind: None, cgroup }
    }

    /// The cgroup made for the init.
    pub(crate) fn cgroup(&self) -> &CgroupManager {
        self.cgroup.cgroup()
    }

    /// The init died: nothing to kill, only to reap; how it ended.
    pub(crate) fn init_died(&mut self) -> String {
        match self.init.take() {
            Some(guard) => {
                let pid = guard.disarm();
                waitpid(pid, None).map(|s| format!("{s:?}")).unwrap_or_else(|e| e.to_string())
            }
            None => "not a child of isorun".into(),
        }
    }

    /// The container is whole: keep everything.
    pub(crate) fn keep(self) {
        if let Some(init) = self.init {
            init.disarm();
        }
        self.rootfs_bind.into_iter().for_each(RootfsBind::keep);
        self.cgroup.keep();
    }
}

/// The seccomp filter of `profile` (compiled or from the cache under `store`'s root) and,
/// for `SCMP_ACT_NOTIFY`, the socket connected to its `listenerPath`, from the host: the
/// process sends the notify fd over it once the filter is on.
pub(crate) fn seccomp_for(
    store: &StateStore,
    profile: Option<&LinuxSeccomp>,
) -> Result<(Option<crate::seccomp::Filter>, Option<OwnedFd>), ContainerError> {
    let filter = profile
        .map(|p| crate::seccomp::cache::compile_cached(store.root(), p, SECCOMP_COMPILE_LIMIT))
        .transpose()?;
    let path = match (&filter, profile.and_then(|p| p.listener_path().as_ref())) {
        (Some(f), Some(p)) if f.needs_listener() => p,
        _ => return Ok((filter, None)),
    };
    let sock = UnixStream::connect(path).map_err(bundle_err("linux.seccomp.listenerPath", path))?;
    Ok((filter, Some(OwnedFd::from(sock))))
}

/// The error for what a process of ours answered instead of what it was asked for: its
/// failed step, else `InitDied(otherwise)`.
pub(crate) fn unexpected(answer: Option<ChildMsg>, otherwise: &str) -> ContainerError {
    match answer {
        Some(ChildMsg::Failed { step, message }) => ContainerError::Init { step, message },
        _ => ContainerError::InitDied(otherwise.into()),
    }
}

/// Receive the next message of a process of ours.
pub(crate) fn receive(sock: &OwnedFd, who: &str) -> Result<Option<ChildMsg>, ContainerError> {
    channel::recv_child(sock).map_err(host(format!("receive from {who}")))
}

/// Write the pid file atomically, as runc does (temp file + rename).
pub(crate) fn write_pid_file(path: &Path, pid: Pid) -> Result<(), ContainerError> {
    state::write_atomic(path, pid.to_string().as_bytes()).map_err(bundle_err("pid file", path))
}
