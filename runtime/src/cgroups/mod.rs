//! The container's cgroup on v1, v2 and hybrid hosts.
//! OWNER: cgroups helper. The interface below is what the core calls; fill it in.

use std::os::fd::OwnedFd;

use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

/// Failures of cgroup operations, each naming the path or controller.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Placeholder.
    #[error("cgroup {0}")]
    Other(String),
}

/// The cgroup of one container.
#[derive(Debug, Clone)]
pub struct CgroupManager {
    path: String,
}

impl CgroupManager {
    /// The cgroup for container `id` at `cgroups_path` (linux.cgroupsPath; absolute, or
    /// relative to the runtime's own cgroup; default `/isorun/<id>`), on this host's layout.
    pub fn new(id: &str, cgroups_path: Option<&str>) -> Result<Self, CgroupError> {
        Ok(Self { path: cgroups_path.map(str::to_owned).unwrap_or_else(|| format!("/isorun/{id}")) })
    }

    /// The path to store in the state record, from which `new` rebuilds this manager.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Create the cgroup (in every hierarchy needed) and apply `resources`.
    pub fn create(&self, resources: Option<&LinuxResources>) -> Result<(), CgroupError> {
        let _ = resources;
        Ok(())
    }

    /// An fd of the v2 cgroup directory for clone3's CLONE_INTO_CGROUP, when the layout
    /// allows it (pure v2); None means the core calls `add_task` instead.
    pub fn clone_into_fd(&self) -> Option<OwnedFd> {
        None
    }

    /// Move `pid` into the cgroup (every hierarchy).
    pub fn add_task(&self, pid: Pid) -> Result<(), CgroupError> {
        let _ = pid;
        Ok(())
    }

    /// Remove the cgroup (every hierarchy). The caller has killed its processes.
    pub fn remove(&self) -> Result<(), CgroupError> {
        Ok(())
    }

    /// Whether the cgroup is frozen (state `paused`).
    pub fn is_frozen(&self) -> bool {
        false
    }
}
