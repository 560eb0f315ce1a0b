//! The create-time side of running as an unprivileged user ([`crate::rootless`] has the
//! rules): the checks before anything is made, and the cgroup the container gets.

use nix::unistd::{getegid, geteuid};
use oci_spec::runtime::LinuxResources;

use super::bundle::Bundle;
use super::plan::Plan;
use super::ContainerError;
use crate::cgroups::{CgroupManager, Layout};
use crate::config::idmap::IdMapEntry;
use crate::rootless::{self, CgroupChoice, RootlessError};

/// The cgroup a create makes: the manager, the path to record (`None`: no cgroup) and the
/// resources to apply.
pub(crate) struct CgroupToMake {
    /// The cgroup ([`CgroupManager::none`] when there is none).
    pub(crate) manager: CgroupManager,
    /// What the state record gets.
    pub(crate) recorded_path: Option<String>,
    /// `linux.resources`, without `devices` when rootless.
    pub(crate) resources: Option<LinuxResources>,
}

/// Whether this process is unprivileged (euid not 0): the id-map and namespace rules apply.
pub(crate) fn is_rootless() -> bool {
    !geteuid().is_root()
}

/// Whether the rootless cgroup rules apply: unprivileged, or root of a user namespace other
/// than the initial one (runc: `RootlessCgroups`).
pub(crate) fn rootless_cgroups() -> bool {
    is_rootless() || rootless::running_in_user_namespace()
}

/// The checks of an unprivileged create (none for root): a new user namespace whose id maps
/// this user may write itself.
pub(crate) fn check(bundle: &Bundle, plan: &Plan) -> Result<(), ContainerError> {
    if !is_rootless() {
        return Ok(());
    }
    if !plan.in_user_ns {
        return Err(RootlessError::Namespaces {
            field: "linux.namespaces",
            reason: "an unprivileged user needs a user namespace (add {\"type\": \"user\"}) to \
                     make the others",
        }
        .into());
    }
    if !plan.namespaces.new_user_ns {
        return Ok(()); // joined: its maps exist already
    }
    let linux = bundle.config().spec().linux().as_ref();
    let entries = |maps: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| -> Vec<IdMapEntry> {
        maps.map(|m| m.iter().map(IdMapEntry::from).collect()).unwrap_or_default()
    };
    let uids = entries(linux.and_then(|l| l.uid_mappings().as_ref()));
    let gids = entries(linux.and_then(|l| l.gid_mappings().as_ref()));
    rootless::check_unprivileged_maps(geteuid().as_raw(), getegid().as_raw(), &uids, &gids)?;
    Ok(())
}

/// The cgroup of container `id`: as planned for root; rootless ([`rootless_cgroups`]), the same
/// where the hierarchy is writable (without device rules), none where it is not and nothing
/// asks for one, else an error naming the field and the directory.
pub(crate) fn cgroup_for(id: &str, bundle: &Bundle, plan: &Plan) -> Result<CgroupToMake, ContainerError> {
    let manager = CgroupManager::new(id, plan.cgroups_path.as_deref())?;
    let resources = bundle.config().spec().linux().as_ref().and_then(|l| l.resources().clone());
    if !rootless_cgroups() {
        let recorded_path = Some(manager.path().to_owned());
        return Ok(CgroupToMake { manager, recorded_path, resources });
    }
    let v2 = manager.layout() == Layout::Unified;
    let settings = resources.as_ref().map(|r| crate::cgroups::resources::plan(r, v2)).transpose()?;
    let fields: Vec<(&str, &str)> = settings.iter().flatten().map(|s| (s.field, s.controller)).collect();
    let unwritable = |controller: Option<&str>| manager.unwritable_dir(controller);
    let choice =
        rootless::rootless_cgroup(geteuid().as_raw(), unwritable, plan.cgroups_path.is_some(), &fields)?;
    let resources = resources.map(|mut r| {
        r.set_devices(None);
        r
    });
    Ok(match choice {
        CgroupChoice::Make => {
            let recorded_path = Some(manager.path().to_owned());
            CgroupToMake { manager, recorded_path, resources }
        }
        CgroupChoice::Skip => {
            CgroupToMake { manager: CgroupManager::none(), recorded_path: None, resources: None }
        }
    })
}
