//! The container's cgroup on v1, v2 and hybrid hosts (cgroupfs driver).
//!
//! [`layout`] reads the host's hierarchies once per process; [`path`] resolves
//! `linux.cgroupsPath`; [`resources`] turns `linux.resources` into file writes (runc's
//! conversions); [`CgroupManager`] creates, fills, freezes and removes the directories;
//! [`stats`] reads runc-style `events --stats` numbers. Hybrid hosts use the v1 controllers
//! and get a matching directory in the cgroup2 mount when it is writable.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

mod devices;
mod error;
mod fsio;
pub mod layout;
pub mod path;
mod prime;
pub mod resources;
pub mod stats;
mod sub;
mod sys;

pub use error::CgroupError;
pub use layout::{Hierarchies, Layout};
pub use prime::{prime_attach, prime_target, Primed};
pub use resources::Setting;
pub use stats::{Event, Stats};
pub use sub::{parse_sub_cgroups, SubCgroups};

/// The cgroup of one container.
#[derive(Debug, Clone)]
pub struct CgroupManager {
    path: String,
    hier: Arc<Hierarchies>,
}

impl CgroupManager {
    /// The cgroup for container `id` at `cgroups_path` (linux.cgroupsPath; absolute, or
    /// relative to the runtime's own cgroup; default `/isorun/<id>`), on this host's layout
    /// (read from /proc once per process). Creates nothing.
    pub fn new(id: &str, cgroups_path: Option<&str>) -> Result<Self, CgroupError> {
        Self::with_hierarchies(Hierarchies::host()?, id, cgroups_path)
    }

    /// As [`CgroupManager::new`], on the given hierarchies (tests use a fake root).
    pub fn with_hierarchies(
        hier: Arc<Hierarchies>,
        id: &str,
        cgroups_path: Option<&str>,
    ) -> Result<Self, CgroupError> {
        let path = path::resolve(id, cgroups_path, hier.own_cgroup())?;
        Ok(Self { path, hier })
    }

    /// No cgroup at all (a rootless container where the hierarchy is not writable and nothing
    /// asks for one): every operation is a no-op, and nothing is recorded.
    pub fn none() -> Self {
        let hier = Hierarchies { layout: Layout::V1, v1: Vec::new(), unified: None, unified_own: "/".into() };
        Self { path: String::new(), hier: Arc::new(hier) }
    }

    /// The first directory this process could not write to make this cgroup and move a
    /// process in, in the hierarchy of `controller` (`None`: every hierarchy used, the v1
    /// ones and, on v2, the cgroup2 one; a hybrid host's cgroup2 directory is optional): the
    /// cgroup's `cgroup.procs` if the cgroup exists, else its nearest existing ancestor.
    /// `None`: all writable.
    pub fn unwritable_dir(&self, controller: Option<&str>) -> Option<PathBuf> {
        let unified = self.hier.unified.as_deref().filter(|_| self.hier.layout == Layout::Unified);
        let roots: Vec<&Path> = match controller {
            Some(c) if unified.is_none() => {
                self.hier.v1_mount(c).map(|h| h.mount.as_path()).into_iter().collect()
            }
            Some(_) => unified.into_iter().collect(),
            None => self.hier.v1.iter().map(|h| h.mount.as_path()).chain(unified).collect(),
        };
        roots.into_iter().find_map(|root| {
            let leaf = root.join(self.rel());
            let probe = match leaf.is_dir() {
                true => leaf.join("cgroup.procs"),
                false => leaf.ancestors().find(|a| a.is_dir()).unwrap_or(root).to_owned(),
            };
            nix::unistd::access(&probe, nix::unistd::AccessFlags::W_OK).is_err().then_some(probe)
        })
    }

    /// The resolved absolute cgroup path, to store in the state record; `new` given it
    /// rebuilds this manager.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The host layout this manager works on.
    pub fn layout(&self) -> Layout {
        self.hier.layout
    }

    fn rel(&self) -> &str {
        self.path.trim_start_matches('/')
    }

    /// This cgroup's directory in every hierarchy it uses (v1 ones, then the cgroup2 one).
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self.hier.v1.iter().map(|h| h.mount.join(self.rel())).collect();
        v.extend(self.unified_dir());
        v
    }

    fn unified_dir(&self) -> Option<PathBuf> {
        self.hier.unified.as_ref().map(|u| u.join(self.rel()))
    }

    /// The directory holding `controller`'s files (`memory`, `pids`, ...): its v1 hierarchy's
    /// on v1/hybrid, the cgroup2 one on v2. None if that controller is not mounted (v1).
    pub fn dir(&self, controller: &str) -> Option<PathBuf> {
        match self.hier.layout {
            Layout::Unified => self.unified_dir(),
            _ => self.hier.v1_mount(controller).map(|h| h.mount.join(self.rel())),
        }
    }

    fn controller_dir(&self, field: &str, controller: &str) -> Result<PathBuf, CgroupError> {
        self.dir(controller).ok_or_else(|| CgroupError::MissingController {
            field: field.to_owned(),
            controller: controller.to_owned(),
            detail: "no v1 hierarchy has it in",
            path: PathBuf::from("/proc/self/mountinfo"),
        })
    }

    /// Create the cgroup (in every hierarchy) and apply `resources`. On error nothing is left.
    pub fn create(&self, resources: Option<&LinuxResources>) -> Result<(), CgroupError> {
        let v2 = self.hier.layout == Layout::Unified;
        let settings = resources.map(|r| resources::plan(r, v2)).transpose()?.unwrap_or_default();
        if !v2 {
            for s in &settings {
                self.controller_dir(s.field, s.controller)?; // fail before mkdir
            }
        }
        let r = self.make_dirs().and_then(|()| self.apply(&settings)).and_then(|()| match resources {
            Some(res) if v2 => self.devices_v2(res),
            _ => Ok(()),
        });
        if r.is_err() {
            let _ = self.remove();
        }
        r
    }

    fn make_dirs(&self) -> Result<(), CgroupError> {
        for h in &self.hier.v1 {
            let created = fsio::mkdir_p(&h.mount, self.rel())?;
            if h.controllers.iter().any(|c| c == "cpuset") {
                let leaf = h.mount.join(self.rel());
                for dir in &created {
                    fsio::inherit_cpuset(dir)?;
                    // A parent made here (`/isorun`) has its children's cpus and mems filled
                    // in by the kernel as they are made: a write of `cpuset.cpus` checks every
                    // sibling and rebuilds the scheduler domains, O(containers) each.
                    if *dir != leaf {
                        fsio::write(&dir.join("cgroup.clone_children"), "1")?;
                    }
                }
            }
        }
        let Some(unified) = &self.hier.unified else { return Ok(()) };
        match fsio::mkdir_p(unified, self.rel()) {
            Ok(_) if self.hier.layout == Layout::Unified => fsio::enable_controllers(unified, self.rel()),
            Ok(_) => Ok(()),
            // Hybrid: the cgroup2 directory is a courtesy (like runc), only where writable.
            Err(CgroupError::Io { errno: Errno::EACCES | Errno::EPERM | Errno::EROFS, .. })
                if self.hier.layout == Layout::Hybrid =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Apply `resources` to the existing cgroup (`isorun update`); only set fields are written.
    pub fn update(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        let v2 = self.hier.layout == Layout::Unified;
        let settings = resources::plan(resources, v2)?;
        self.check_before_update(resources)?;
        self.apply(&settings)?;
        if v2 {
            self.devices_v2(resources)?;
        }
        Ok(())
    }

    /// `memory.checkBeforeUpdate` (runc 1.2): refuse a new memory limit below the current
    /// usage instead of letting the kernel reclaim or OOM-kill.
    fn check_before_update(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        let Some(m) = resources.memory().as_ref().filter(|m| m.check_before_update() == Some(true)) else {
            return Ok(());
        };
        let Some(limit) = m.limit().filter(|l| *l > 0) else { return Ok(()) };
        let file =
            if self.hier.layout == Layout::Unified { "memory.current" } else { "memory.usage_in_bytes" };
        let path = self.controller_dir("linux.resources.memory.checkBeforeUpdate", "memory")?.join(file);
        let usage: i64 = fsio::read(&path)?.trim().parse().unwrap_or(0);
        if usage > limit {
            return Err(CgroupError::Unsupported {
                field: "linux.resources.memory.checkBeforeUpdate".into(),
                reason: format!(
                    "the new limit {limit} is below the current usage {usage} ({})",
                    path.display()
                ),
            });
        }
        Ok(())
    }

    /// v2: compile `linux.resources.devices` (plus runc's default allowed devices) to a BPF
    /// device program and attach it to the cgroup, replacing an earlier one.
    fn devices_v2(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        let Some(rules) = resources.devices().as_ref().filter(|d| !d.is_empty()) else { return Ok(()) };
        let dir = self.unified_dir().unwrap_or_default();
        let insns = devices::program(rules, resources::DEFAULT_DEVICES.iter().copied())?;
        let prog = sys::load_device_program(&insns).map_err(|errno| CgroupError::Io {
            op: "load BPF device program for",
            path: dir.clone(),
            errno,
        })?;
        let cg = std::fs::File::open(&dir).map_err(|e| CgroupError::io("open", &dir, &e))?;
        sys::attach_device_program(std::os::fd::AsFd::as_fd(&prog), std::os::fd::AsFd::as_fd(&cg))
            .map_err(|errno| CgroupError::Io { op: "attach BPF device program to", path: dir, errno })
    }

    /// Write `settings` (see [`resources::plan`]), checking each controller first.
    pub fn apply(&self, settings: &[Setting]) -> Result<(), CgroupError> {
        if settings.is_empty() {
            return Ok(());
        }
        let available = match (self.hier.layout, self.unified_dir()) {
            (Layout::Unified, Some(d)) => Some((fsio::read(&d.join("cgroup.controllers"))?, d)),
            _ => None,
        };
        let mut done = vec![false; settings.len()];
        for (i, s) in settings.iter().enumerate() {
            if done[i] {
                continue;
            }
            let dir = match &available {
                Some((ctrls, d)) => {
                    if !s.controller.is_empty() && !ctrls.split_whitespace().any(|c| c == s.controller) {
                        return Err(CgroupError::MissingController {
                            field: s.field.to_owned(),
                            controller: s.controller.to_owned(),
                            detail: "not listed in",
                            path: d.join("cgroup.controllers"),
                        });
                    }
                    d.clone()
                }
                None => self.controller_dir(s.field, s.controller)?,
            };
            match write_setting(&dir, s) {
                // v1: a new limit above the current memsw limit needs memsw raised first.
                Err(CgroupError::Write { errno: Errno::EINVAL, .. }) if s.file == "memory.limit_in_bytes" => {
                    if let Some(j) = settings.iter().position(|x| x.file == "memory.memsw.limit_in_bytes") {
                        write_setting(&dir, &settings[j])?;
                        done[j] = true;
                    }
                    write_setting(&dir, s)?;
                }
                r => r?,
            }
        }
        Ok(())
    }

    /// An fd of the v2 cgroup directory for clone3's CLONE_INTO_CGROUP, on pure v2 hosts
    /// only; None means the core calls `add_task` instead.
    pub fn clone_into_fd(&self) -> Option<OwnedFd> {
        if self.hier.layout != Layout::Unified {
            return None;
        }
        std::fs::File::open(self.unified_dir()?).ok().map(OwnedFd::from)
    }

    /// On a hybrid host, an fd of the cgroup2 directory made for this cgroup (`None` where
    /// it was not made, and on v1 and v2 hosts): a new init is cloned into it
    /// (CLONE_INTO_CGROUP only places a process in the cgroup2 hierarchy; the v1 ones are
    /// joined after clone, [`CgroupManager::add_task_v1`] or [`CgroupManager::self_tasks`]).
    pub fn hybrid_clone_into_fd(&self) -> Option<OwnedFd> {
        if self.hier.layout != Layout::Hybrid {
            return None;
        }
        std::fs::File::open(self.unified_dir()?).ok().map(OwnedFd::from)
    }

    /// The `tasks` file of this cgroup in every v1 hierarchy: a single-threaded process that
    /// writes `0` into each joins the cgroup there itself. Moving the calling thread does not
    /// take the global threadgroup lock that a `cgroup.procs` write takes, so it does not
    /// wait for an RCU grace period (5–15 ms here; see the `prime` module). Empty on v2.
    pub fn self_tasks(&self) -> Vec<PathBuf> {
        if self.hier.layout == Layout::Unified {
            return Vec::new();
        }
        self.hier.v1.iter().map(|h| h.mount.join(self.rel()).join("tasks")).collect()
    }

    /// Move `pid` into the cgroup in every v1 hierarchy (its cgroup2 directory on a hybrid
    /// host was joined at clone).
    pub fn add_task_v1(&self, pid: Pid) -> Result<(), CgroupError> {
        let v = pid.to_string();
        for h in &self.hier.v1 {
            fsio::write(&h.mount.join(self.rel()).join("cgroup.procs"), &v)?;
        }
        Ok(())
    }

    /// Move `pid` into the cgroup (every hierarchy; on hybrid hosts also the cgroup2
    /// directory when it was created).
    pub fn add_task(&self, pid: Pid) -> Result<(), CgroupError> {
        let v = pid.to_string();
        self.add_task_v1(pid)?;
        if let Some(d) = self.unified_dir() {
            if self.hier.layout == Layout::Unified || d.is_dir() {
                fsio::write(&d.join("cgroup.procs"), &v)?;
            }
        }
        Ok(())
    }

    /// Remove the cgroup (and child cgroups) in every hierarchy; the caller has killed its
    /// processes. Already gone is fine; EBUSY is retried briefly. Parents are left.
    pub fn remove(&self) -> Result<(), CgroupError> {
        let mut first = Ok(());
        for d in self.dirs() {
            if let Err(e) = fsio::remove_tree(&d) {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }

    /// Every process in the cgroup and its child cgroups (sorted, for `isorun ps`).
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let dir = match self.hier.layout {
            Layout::Unified => self.unified_dir(),
            _ => self.dir("pids").or_else(|| self.hier.v1.first().map(|h| h.mount.join(self.rel()))),
        };
        let mut out = Vec::new();
        if let Some(d) = dir {
            fsio::procs_recursive(&d, &mut out)?;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Freeze every process (`isorun pause`); returns once the kernel reports the cgroup
    /// frozen (v1 `freezer.state` FROZEN, v2 `cgroup.events` frozen 1).
    pub fn freeze(&self) -> Result<(), CgroupError> {
        if self.hier.layout == Layout::Unified {
            let d = self.unified_dir().unwrap_or_default();
            fsio::write(&d.join("cgroup.freeze"), "1")?;
            let events = d.join("cgroup.events");
            return fsio::wait_for(&events, |e| fsio::flat_key(e, "frozen") == Some(1), || Ok(()));
        }
        let state = self.controller_dir("freezer", "freezer")?.join("freezer.state");
        fsio::write(&state, "FROZEN")?;
        let r = fsio::wait_for(&state, |s| s.trim() == "FROZEN", || fsio::write(&state, "FROZEN"));
        if r.is_err() {
            let _ = fsio::write(&state, "THAWED");
        }
        r
    }

    /// Thaw the cgroup (`isorun resume`).
    pub fn thaw(&self) -> Result<(), CgroupError> {
        if self.hier.layout == Layout::Unified {
            return fsio::write(&self.unified_dir().unwrap_or_default().join("cgroup.freeze"), "0");
        }
        fsio::write(&self.controller_dir("freezer", "freezer")?.join("freezer.state"), "THAWED")
    }

    /// Whether the cgroup is frozen (state `paused`); false when it cannot be read.
    pub fn is_frozen(&self) -> bool {
        match self.hier.layout {
            Layout::Unified => self
                .unified_dir()
                .and_then(|d| fsio::read(&d.join("cgroup.freeze")).ok())
                .is_some_and(|s| s.trim() == "1"),
            _ => self
                .dir("freezer")
                .and_then(|d| fsio::read(&d.join("freezer.state")).ok())
                .is_some_and(|s| s.trim() == "FROZEN"),
        }
    }

    /// runc-style statistics of the controllers the host has (see [`Stats`]).
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        match self.hier.layout {
            Layout::Unified => stats::read_v2(&self.unified_dir().unwrap_or_default()),
            _ => stats::read_v1(&|c| self.dir(c)),
        }
    }
}

/// Write one setting into `dir`, trying its fallback file when the first is absent.
fn write_setting(dir: &Path, s: &Setting) -> Result<(), CgroupError> {
    let path = dir.join(&s.file);
    match fsio::write_raw(&path, &s.value) {
        Ok(()) => Ok(()),
        Err(Errno::ENOENT) if s.optional => Ok(()),
        Err(Errno::ENOENT) => match s.fallback.map(|f| dir.join(f)).filter(|p| p.exists()) {
            Some(alt) => fsio::write(&alt, &s.value),
            None => Err(CgroupError::MissingFile {
                field: s.field.to_owned(),
                controller: s.controller.to_owned(),
                path,
            }),
        },
        Err(errno) => Err(CgroupError::Write { path, value: s.value.clone(), errno }),
    }
}

#[cfg(test)]
mod tests;
