//! The create-time side of running as an unprivileged user ([`crate::rootless`] has the
//! rules): the checks before anything is made, and the cgroup the container gets.

use std::path::{Path, PathBuf};

use nix::unistd::{getegid, geteuid};
use oci_spec::runtime::LinuxResources;

use super::bundle::Bundle;
use super::plan::Plan;
use super::ContainerError;
use crate::cgroups::{CgroupManager, Layout};
use crate::config::idmap::IdMapEntry;
use crate::rootless::{self, CgroupChoice, MapWriters, RootlessError};

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

/// The checks of an unprivileged create (none for root), and who writes the id maps: a
/// user namespace, new or joined; of a new one, maps this user may write itself, or
/// newuidmap/newgidmap (found in PATH) for more.
pub(crate) fn check(bundle: &Bundle, plan: &Plan) -> Result<IdMapWriting, ContainerError> {
    if !is_rootless() {
        return Ok(IdMapWriting::default());
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
        return Ok(IdMapWriting::default()); // joined: its maps exist already
    }
    let linux = bundle.config().spec().linux().as_ref();
    let uids = entries(linux.and_then(|l| l.uid_mappings().as_ref()));
    let gids = entries(linux.and_then(|l| l.gid_mappings().as_ref()));
    let (newuidmap, newgidmap) = (in_path("newuidmap"), in_path("newgidmap"));
    let helpers = (newuidmap.as_deref(), newgidmap.as_deref());
    let writers =
        rootless::unprivileged_map_writers((geteuid().as_raw(), getegid().as_raw()), &uids, &gids, helpers)?;
    Ok(IdMapWriting { writers, uids, gids })
}

/// How a new user namespace's maps are written, with the entries a helper gets.
#[derive(Debug, Default)]
pub(crate) struct IdMapWriting {
    /// Who writes each map.
    pub(crate) writers: MapWriters,
    /// `linux.uidMappings`.
    pub(crate) uids: Vec<IdMapEntry>,
    /// `linux.gidMappings`.
    pub(crate) gids: Vec<IdMapEntry>,
}

fn entries(maps: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>) -> Vec<IdMapEntry> {
    maps.map(|m| m.iter().map(IdMapEntry::from).collect()).unwrap_or_default()
}

/// The executable `name` in PATH, as runc's `exec.LookPath` finds it.
fn in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| {
        let mode = nix::unistd::AccessFlags::X_OK;
        p.is_absolute() && p.is_file() && nix::unistd::access(p, mode).is_ok()
    })
}

/// Run `helper` (newuidmap/newgidmap) to write `map` of `pid`'s user namespace.
pub(crate) fn run_map_helper(
    field: &'static str,
    helper: &Path,
    pid: i32,
    map: &[IdMapEntry],
) -> Result<(), ContainerError> {
    let args = rootless::helper_args(pid, map);
    let failed = |status: String, stderr: &[u8]| RootlessError::IdMapHelper {
        field,
        helper: helper.to_owned(),
        args: args.clone(),
        status,
        stderr: String::from_utf8_lossy(stderr).trim().to_owned(),
    };
    let out = std::process::Command::new(helper)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| failed(e.to_string(), b""))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(failed(out.status.to_string(), &out.stderr).into()),
    }
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
