//! The state record of a container being made, the same for `create`, `run` and `restore`:
//! written (`creating`, under the id's lock) before anything is made, so that a flow killed
//! at any instant leaves a record `delete --force` undoes; the init's pid added as soon as
//! it exists; completed once the container is whole.

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use super::bundle::Bundle;
use super::plan::Plan;
use super::ContainerError;
use crate::state::{self, ContainerRecord, IdLock, StateStore};

/// A record being written: removed with its directory on drop unless [`Recording::keep`].
#[derive(Debug)]
pub(crate) struct Recording<'a> {
    store: &'a StateStore,
    record: ContainerRecord,
    dir: PathBuf,
    lock: Option<IdLock>,
    armed: bool,
}

impl<'a> Recording<'a> {
    /// Record container `id` of `bundle`, planned as `plan`, with its cgroup at
    /// `cgroup_path` (not made yet): status `creating`, no pid. `Exists` when `id` is taken.
    pub(crate) fn begin(
        store: &'a StateStore,
        id: &str,
        bundle: &Bundle,
        plan: &Plan,
        cgroup_path: Option<String>,
    ) -> Result<Self, ContainerError> {
        let spec = bundle.config().spec();
        let record = ContainerRecord {
            id: id.to_owned(),
            pid: 0,
            pid_start_time: 0,
            bundle: bundle.dir().to_owned(),
            rootfs: bundle.rootfs().to_owned(),
            created: humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
            owner: owner_name(),
            annotations: spec.annotations().clone().unwrap_or_default().into_iter().collect(),
            oci_version: spec.version().clone(),
            own_pid_ns: plan.namespaces.own_pid_ns,
            cgroup_path,
            hooks: spec.hooks().clone(),
            process: spec.process().clone(),
            seccomp: spec.linux().as_ref().and_then(|l| l.seccomp().clone()),
            net_devices: plan.net_devices.clone(),
            rootfs_bound: plan.shared_mount_ns,
            creator: Some(state::self_identity()),
        };
        let (dir, lock) = store.create_locked(&record)?;
        Ok(Recording { store, record, dir, lock: Some(lock), armed: true })
    }

    /// The container's state directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The locked descriptor of the id, for a forked child to close.
    pub(crate) fn lock_fd(&self) -> Option<RawFd> {
        self.lock.as_ref().map(IdLock::raw_fd)
    }

    /// Record the init's pid (with its start time), before anything else is done with it;
    /// `InitDied(gone)` when it is already gone.
    pub(crate) fn record_pid(&mut self, pid: i32, gone: &str) -> Result<(), ContainerError> {
        let (_, start_time) = state::proc_stat(pid).ok_or_else(|| ContainerError::InitDied(gone.into()))?;
        self.record.pid = pid;
        self.record.pid_start_time = start_time;
        Ok(self.store.save(&self.record)?)
    }

    /// The container is whole: record it as such (no creator). Still removed on drop until
    /// [`Recording::keep`].
    pub(crate) fn complete(&mut self) -> Result<(), ContainerError> {
        self.record.creator = None;
        Ok(self.store.save(&self.record)?)
    }

    /// Keep the record and release the id's lock.
    pub(crate) fn keep(mut self) {
        self.armed = false;
        self.lock = None;
    }
}

impl Drop for Recording<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.store.remove(&self.record.id);
        }
    }
}

fn owner_name() -> String {
    let uid = nix::unistd::geteuid();
    nix::unistd::User::from_uid(uid).ok().flatten().map(|u| u.name).unwrap_or_else(|| uid.to_string())
}
