//! Running isorun as an unprivileged user ("rootless", as runc and crun do): the pure rules.
//!
//! - The default state root: `/run/isorun` for root; for anyone else
//!   `$XDG_RUNTIME_DIR/isorun` (runc: `$XDG_RUNTIME_DIR/runc`), else `/run/isorun` if that
//!   user can write it, else an error ([`resolve_state_root`]).
//! - Id maps: without CAP_SETUID/CAP_SETGID the kernel lets a process map only its own
//!   euid/egid, one id, in one entry (and `setgroups` must be `deny` before `gid_map`). A
//!   config asking for more is written by newuidmap/newgidmap (shadow's uidmap package,
//!   checked against /etc/subuid and /etc/subgid) as runc does, and refused naming
//!   `linux.uidMappings`/`linux.gidMappings` when they are not installed
//!   ([`unprivileged_map_writers`]).
//! - Cgroups (also for root of a user namespace other than the initial one, as rootless
//!   podman runs its runtime, [`running_in_user_namespace`]): where the hierarchy is not
//!   writable by the user, a config without
//!   resources and without `linux.cgroupsPath` runs without a cgroup; one with either is
//!   refused naming the field and the directory ([`rootless_cgroup`]); a writable (delegated)
//!   hierarchy is used. `linux.resources.devices` is never applied rootless (runc ignores it
//!   too: the device cgroup needs privilege, and a user namespace cannot mknod anyway).

use std::path::{Path, PathBuf};

use crate::config::idmap::IdMapEntry;

/// Whether a process whose `/proc/self/uid_map` reads `uid_map` is in the initial user
/// namespace: its map is the identity of every id (`0 0 4294967295`). runc's
/// `userns.RunningInUserNS` (rootless podman runs its runtime as root of a user namespace).
pub fn is_initial_uid_map(uid_map: &str) -> bool {
    let fields: Vec<&str> = uid_map.split_whitespace().collect();
    fields == ["0", "0", "4294967295"]
}

/// Whether this process is in a user namespace other than the initial one (where its root
/// cannot make cgroups nor device nodes); an unreadable map counts as the initial one.
pub fn running_in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|m| !is_initial_uid_map(&m))
}

/// The state root of root, and of a user who can write it.
pub const SYSTEM_STATE_ROOT: &str = "/run/isorun";

/// Why running as an unprivileged user cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RootlessError {
    /// No `--root` was given and no default one is usable.
    #[error(
        "no usable state root for uid {uid}: {reason}; pass --root DIR (or set ISORUN_ROOT, or \
         XDG_RUNTIME_DIR to a directory this user owns)"
    )]
    NoStateRoot {
        /// The caller's euid.
        uid: u32,
        /// What was tried and why it is not usable.
        reason: String,
    },
    /// An id map an unprivileged user cannot write.
    #[error("{field}: {reason}")]
    IdMap {
        /// `linux.uidMappings` or `linux.gidMappings`.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// newuidmap/newgidmap refused or failed to write a map.
    #[error("{field}: {} {} failed ({status}): {stderr}", helper.display(), args.join(" "))]
    IdMapHelper {
        /// `linux.uidMappings` or `linux.gidMappings`.
        field: &'static str,
        /// The helper.
        helper: PathBuf,
        /// Its arguments.
        args: Vec<String>,
        /// How it ended (`exit status: 1`, or the spawn error).
        status: String,
        /// What it said, trimmed.
        stderr: String,
    },
    /// The config needs a namespace set-up an unprivileged user cannot make.
    #[error("{field}: {reason}")]
    Namespaces {
        /// The config field.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The config needs a cgroup the user cannot make.
    #[error(
        "{field}: {} is not writable by uid {uid}: a rootless container can use a cgroup only \
         in a hierarchy delegated to its user; remove {field} or delegate the hierarchy",
        dir.display()
    )]
    Cgroup {
        /// The field that needs the cgroup (`linux.cgroupsPath`, `linux.resources.memory`...).
        field: String,
        /// The directory that is not writable.
        dir: PathBuf,
        /// The caller's euid.
        uid: u32,
    },
}

/// The state root to use when no `--root` is given, for `euid` with `XDG_RUNTIME_DIR`
/// `xdg_runtime_dir`; `usable` tells whether a candidate can be used (made or written).
pub fn resolve_state_root(
    euid: u32,
    xdg_runtime_dir: Option<&Path>,
    usable: impl Fn(&Path) -> bool,
) -> Result<PathBuf, RootlessError> {
    let system = Path::new(SYSTEM_STATE_ROOT);
    if euid == 0 {
        return Ok(system.to_owned());
    }
    let mut tried = Vec::new();
    match xdg_runtime_dir.filter(|d| !d.as_os_str().is_empty()) {
        Some(xdg) if xdg.is_absolute() => {
            let candidate = xdg.join("isorun");
            if usable(&candidate) {
                return Ok(candidate);
            }
            tried.push(format!("{} is not writable", candidate.display()));
        }
        Some(xdg) => tried.push(format!("XDG_RUNTIME_DIR {} is not absolute", xdg.display())),
        None => tried.push("XDG_RUNTIME_DIR is not set".to_owned()),
    }
    if usable(system) {
        return Ok(system.to_owned());
    }
    tried.push(format!("{SYSTEM_STATE_ROOT} is not writable"));
    Err(RootlessError::NoStateRoot { uid: euid, reason: tried.join(", ") })
}

/// [`resolve_state_root`] for this process: its euid and `XDG_RUNTIME_DIR`; a candidate is
/// usable when it is a directory this process can write, or does not exist and its parent is.
pub fn default_state_root() -> Result<PathBuf, RootlessError> {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
    resolve_state_root(nix::unistd::geteuid().as_raw(), xdg.as_deref(), |p| {
        let writable = |d: &Path| {
            let mode = nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK;
            d.is_dir() && nix::unistd::access(d, mode).is_ok()
        };
        match p.symlink_metadata() {
            Ok(_) => writable(p),
            Err(_) => p.parent().is_some_and(writable),
        }
    })
}

/// Who writes an id map of a new user namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapWriter {
    /// This process writes `/proc/<pid>/uid_map` (root, or an unprivileged caller's own id;
    /// `gid_map` after `setgroups` `deny`).
    Direct,
    /// The setuid helper at this path (`newuidmap`/`newgidmap` from shadow's uidmap package)
    /// writes it, as runc does, checking the ranges against /etc/subuid and /etc/subgid; it
    /// sets `setgroups` itself.
    Helper(PathBuf),
}

/// The writers of a new user namespace's maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapWriters {
    /// Of `uid_map`.
    pub uid: MapWriter,
    /// Of `gid_map`.
    pub gid: MapWriter,
}

impl Default for MapWriters {
    fn default() -> Self {
        MapWriters { uid: MapWriter::Direct, gid: MapWriter::Direct }
    }
}

/// Who writes the id maps of a new user namespace for an unprivileged caller (`euid`,
/// `egid`, no CAP_SETUID/CAP_SETGID): the caller, when a map is one entry of size 1 whose
/// hostID is its own id (all the kernel lets it write); else the helper (`newuidmap`,
/// `newgidmap`) when it is installed; else an error naming the field.
pub fn unprivileged_map_writers(
    (euid, egid): (u32, u32),
    uid_maps: &[IdMapEntry],
    gid_maps: &[IdMapEntry],
    (newuidmap, newgidmap): (Option<&Path>, Option<&Path>),
) -> Result<MapWriters, RootlessError> {
    Ok(MapWriters {
        uid: map_writer("linux.uidMappings", ("uid", "newuidmap"), euid, uid_maps, newuidmap)?,
        gid: map_writer("linux.gidMappings", ("gid", "newgidmap"), egid, gid_maps, newgidmap)?,
    })
}

fn map_writer(
    field: &'static str,
    (kind, helper_name): (&str, &str),
    own: u32,
    map: &[IdMapEntry],
    helper: Option<&Path>,
) -> Result<MapWriter, RootlessError> {
    let what = match map {
        [] => "empty".to_owned(),
        [e] if e.host_id == own && e.size == 1 => return Ok(MapWriter::Direct),
        [e] if e.host_id != own => format!("[0] maps host {kind} {}", e.host_id),
        [e] => format!("[0] maps {} ids", e.size),
        more => format!("{} entries", more.len()),
    };
    match helper {
        Some(path) if !map.is_empty() => Ok(MapWriter::Helper(path.to_owned())),
        _ => Err(RootlessError::IdMap {
            field,
            reason: format!(
                "{what}: an unprivileged user ({kind} {own}) can map only its own {kind}, one \
                 entry {{\"hostID\": {own}, \"size\": 1}}, unless {helper_name} (package \
                 uidmap) is installed{}",
                if helper.is_some() {
                    " (it cannot write an empty map either)"
                } else {
                    ": it is not in PATH"
                }
            ),
        }),
    }
}

/// The arguments of `newuidmap`/`newgidmap` for process `pid`: the pid, then
/// `containerID hostID size` of each entry.
pub fn helper_args(pid: i32, map: &[IdMapEntry]) -> Vec<String> {
    let mut args = vec![pid.to_string()];
    for e in map {
        args.extend([e.container_id.to_string(), e.host_id.to_string(), e.size.to_string()]);
    }
    args
}

/// What a rootless create does about the container's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupChoice {
    /// The hierarchy is writable (delegated): make it as root would (without devices rules).
    Make,
    /// Not writable and nothing asks for it: no cgroup (recorded as none).
    Skip,
}

/// The cgroup choice of an unprivileged caller. `unwritable(controller)` is the first
/// directory the caller cannot write in that controller's hierarchy (`None`: in any hierarchy
/// the cgroup uses), `None` when all are writable; `cgroups_path` whether `linux.cgroupsPath`
/// is set; `settings` the `(field, controller)` of each `linux.resources` value the config sets.
pub fn rootless_cgroup(
    euid: u32,
    unwritable: impl Fn(Option<&str>) -> Option<PathBuf>,
    cgroups_path: bool,
    settings: &[(&str, &str)],
) -> Result<CgroupChoice, RootlessError> {
    let Some(any) = unwritable(None) else { return Ok(CgroupChoice::Make) };
    let refuse =
        |field: &str, dir: PathBuf| Err(RootlessError::Cgroup { field: field.to_owned(), dir, uid: euid });
    if cgroups_path {
        return refuse("linux.cgroupsPath", any);
    }
    for (field, controller) in settings.iter().filter(|(f, _)| !is_devices_field(f)) {
        let controller = Some(*controller).filter(|c| !c.is_empty());
        if let Some(dir) = unwritable(controller) {
            return refuse(field, dir);
        }
    }
    // Where a resource's own hierarchy is writable but another is not, the cgroup is still
    // needed, and cannot be made whole.
    match settings.iter().find(|(f, _)| !is_devices_field(f)) {
        Some((field, _)) => refuse(field, any),
        None => Ok(CgroupChoice::Skip),
    }
}

/// `linux.resources.devices` (and below): never applied rootless.
pub fn is_devices_field(field: &str) -> bool {
    field == "linux.resources.devices" || field.starts_with("linux.resources.devices.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("         0          0 4294967295\n", true ; "initial")]
    #[test_case("0 0 4294967295", true ; "initial unpadded")]
    #[test_case("         0      61234          1\n", false ; "rootless podman")]
    #[test_case("0 0 4294967294\n", false ; "all but one")]
    #[test_case("0 0 1000\n1000 1000 4294966295\n", false ; "two extents")]
    #[test_case("", false ; "empty: no map written yet")]
    fn initial_uid_map(map: &str, initial: bool) {
        assert_eq!(is_initial_uid_map(map), initial);
    }

    fn usable_only(ok: &'static [&'static str]) -> impl Fn(&Path) -> bool {
        move |p: &Path| ok.iter().any(|o| Path::new(o) == p)
    }

    #[test_case(0, Some("/run/user/1000"), &[], Ok("/run/isorun") ; "root ignores xdg")]
    #[test_case(1000, Some("/run/user/1000"), &["/run/user/1000/isorun"], Ok("/run/user/1000/isorun") ; "user xdg")]
    #[test_case(1000, Some("/run/user/1000"), &["/run/isorun"], Ok("/run/isorun") ; "xdg unusable, system writable")]
    #[test_case(1000, None, &["/run/isorun"], Ok("/run/isorun") ; "no xdg, system writable")]
    #[test_case(1000, None, &[], Err("XDG_RUNTIME_DIR is not set, /run/isorun is not writable") ; "no xdg, nothing")]
    #[test_case(1000, Some(""), &[], Err("XDG_RUNTIME_DIR is not set, /run/isorun is not writable") ; "empty xdg")]
    #[test_case(1000, Some("run/u"), &["run/u/isorun"], Err("XDG_RUNTIME_DIR run/u is not absolute, /run/isorun is not writable") ; "relative xdg")]
    #[test_case(1000, Some("/x"), &[], Err("/x/isorun is not writable, /run/isorun is not writable") ; "neither writable")]
    fn state_root(euid: u32, xdg: Option<&str>, usable: &'static [&'static str], want: Result<&str, &str>) {
        let got = resolve_state_root(euid, xdg.map(Path::new), usable_only(usable));
        match (got, want) {
            (Ok(p), Ok(w)) => assert_eq!(p, Path::new(w)),
            (Err(RootlessError::NoStateRoot { uid, reason }), Err(w)) => {
                assert_eq!((uid, reason.as_str()), (euid, w));
            }
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    fn e(container_id: u32, host_id: u32, size: u32) -> IdMapEntry {
        IdMapEntry { container_id, host_id, size }
    }

    const HELPERS: bool = true;
    const NO_HELPERS: bool = false;

    fn helper(name: &str) -> MapWriter {
        MapWriter::Helper(PathBuf::from(format!("/usr/bin/{name}")))
    }

    #[test_case(&[e(0, 1000, 1)], &[e(0, 100, 1)], NO_HELPERS, Ok((MapWriter::Direct, MapWriter::Direct)) ; "own ids")]
    #[test_case(&[e(5, 1000, 1)], &[e(7, 100, 1)], NO_HELPERS, Ok((MapWriter::Direct, MapWriter::Direct)) ; "own ids at another container id")]
    #[test_case(&[e(0, 1000, 1)], &[e(0, 100, 1)], HELPERS, Ok((MapWriter::Direct, MapWriter::Direct)) ; "own ids need no helper")]
    #[test_case(&[e(0, 1000, 1), e(1, 100000, 65536)], &[e(0, 100, 1)], NO_HELPERS, Err(("linux.uidMappings", "2 entries")) ; "subuid range")]
    #[test_case(&[e(0, 1000, 1), e(1, 100000, 65536)], &[e(0, 100, 1)], HELPERS, Ok((helper("newuidmap"), MapWriter::Direct)) ; "subuid range by newuidmap")]
    #[test_case(&[e(0, 0, 1)], &[e(0, 100, 1)], NO_HELPERS, Err(("linux.uidMappings", "[0] maps host uid 0")) ; "maps root")]
    #[test_case(&[e(0, 1000, 2)], &[e(0, 100, 1)], NO_HELPERS, Err(("linux.uidMappings", "[0] maps 2 ids")) ; "two ids")]
    #[test_case(&[], &[e(0, 100, 1)], NO_HELPERS, Err(("linux.uidMappings", "empty")) ; "no uid map")]
    #[test_case(&[], &[e(0, 100, 1)], HELPERS, Err(("linux.uidMappings", "empty")) ; "no uid map, even with helpers")]
    #[test_case(&[e(0, 1000, 1)], &[e(0, 0, 1)], NO_HELPERS, Err(("linux.gidMappings", "[0] maps host gid 0")) ; "gid root")]
    #[test_case(&[e(0, 1000, 1)], &[e(0, 100, 1), e(1, 200, 1)], NO_HELPERS, Err(("linux.gidMappings", "2 entries")) ; "gid two entries")]
    #[test_case(&[e(0, 1000, 1)], &[e(0, 100, 1), e(1, 200, 1)], HELPERS, Ok((MapWriter::Direct, helper("newgidmap"))) ; "gid two entries by newgidmap")]
    fn unprivileged_maps(
        uids: &[IdMapEntry],
        gids: &[IdMapEntry],
        helpers: bool,
        want: Result<(MapWriter, MapWriter), (&str, &str)>,
    ) {
        let (u, g) = (Path::new("/usr/bin/newuidmap"), Path::new("/usr/bin/newgidmap"));
        let helpers = if helpers { (Some(u), Some(g)) } else { (None, None) };
        match (unprivileged_map_writers((1000, 100), uids, gids, helpers), want) {
            (Ok(w), Ok((uid, gid))) => assert_eq!(w, MapWriters { uid, gid }),
            (Err(RootlessError::IdMap { field, reason }), Err((f, r))) => {
                assert_eq!(field, f);
                assert!(reason.starts_with(&format!("{r}: ")), "{reason:?} does not start with {r:?}");
            }
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn helper_arguments() {
        assert_eq!(
            helper_args(42, &[e(0, 1000, 1), e(1, 100000, 65536)]),
            ["42", "0", "1000", "1", "1", "100000", "65536"]
        );
    }

    /// v1-like: every hierarchy but `writable` is unwritable (`"*"`: all writable).
    fn unwritable_but(writable: &'static str) -> impl Fn(Option<&str>) -> Option<PathBuf> {
        move |c: Option<&str>| match c {
            _ if writable == "*" => None,
            Some(c) if c == writable => None,
            Some(c) => Some(PathBuf::from(format!("/sys/fs/cgroup/{c}"))),
            None => Some(PathBuf::from("/sys/fs/cgroup/cpu")),
        }
    }

    #[test_case("*", false, &[("linux.resources.memory.limit", "memory")], Ok(CgroupChoice::Make) ; "writable")]
    #[test_case("", false, &[], Ok(CgroupChoice::Skip) ; "nothing asks")]
    #[test_case("", false, &[("linux.resources.devices", "devices")], Ok(CgroupChoice::Skip) ; "devices only")]
    #[test_case("", false, &[("linux.resources.devices", "devices"), ("linux.resources.memory.limit", "memory")],
        Err(("linux.resources.memory.limit", "/sys/fs/cgroup/memory")) ; "memory names its hierarchy")]
    #[test_case("memory", false, &[("linux.resources.memory.limit", "memory")],
        Err(("linux.resources.memory.limit", "/sys/fs/cgroup/cpu")) ; "own hierarchy writable, another not")]
    #[test_case("", true, &[], Err(("linux.cgroupsPath", "/sys/fs/cgroup/cpu")) ; "cgroups path")]
    fn cgroup_choice(
        writable: &'static str,
        path: bool,
        settings: &[(&str, &str)],
        want: Result<CgroupChoice, (&str, &str)>,
    ) {
        match (rootless_cgroup(1000, unwritable_but(writable), path, settings), want) {
            (Ok(c), Ok(w)) => assert_eq!(c, w),
            (Err(RootlessError::Cgroup { field, dir, uid }), Err((f, d))) => {
                assert_eq!((field.as_str(), dir.as_path(), uid), (f, Path::new(d), 1000));
            }
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }
}
