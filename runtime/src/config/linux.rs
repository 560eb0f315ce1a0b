//! Validation of `linux`: namespaces, id maps, time offsets, sysctl, devices, masked and
//! readonly paths, rootfs propagation and cgroupsPath. `resources` and `seccomp` have their
//! own files.

use serde_json::{Map, Value};

use super::names::{
    sysctl_namespace, sysctl_path, DEVICE_TYPES, NAMESPACE_TYPES, ROOTFS_PROPAGATIONS, TIME_OFFSET_CLOCKS,
};
use super::process::one_of;
use super::report::{field, get, index, map_key, quote, Report};
use super::{resources, seccomp, validate::id_mappings};

/// What `linux.namespaces` says about each type: absent, joined (has a path) or new.
#[derive(Debug, Default, Clone)]
pub(crate) struct Namespaces {
    /// Indexed like [`NAMESPACE_TYPES`]: `Some(true)` joined, `Some(false)` new.
    joined: [Option<bool>; NAMESPACE_TYPES.len()],
}

impl Namespaces {
    fn slot(ty: &str) -> Option<usize> {
        NAMESPACE_TYPES.iter().position(|t| *t == ty)
    }

    /// The container gets a namespace of this type (new or joined).
    pub(crate) fn contains(&self, ty: &str) -> bool {
        Self::slot(ty).is_some_and(|i| self.joined[i].is_some())
    }

    /// The container gets a new namespace of this type.
    pub(crate) fn is_new(&self, ty: &str) -> bool {
        Self::slot(ty).is_some_and(|i| self.joined[i] == Some(false))
    }

    /// The container joins an existing namespace of this type.
    pub(crate) fn is_joined(&self, ty: &str) -> bool {
        Self::slot(ty).is_some_and(|i| self.joined[i] == Some(true))
    }
}

/// Reads and checks `linux.namespaces`.
pub(crate) fn namespaces(linux: Option<&Map<String, Value>>, r: &mut Report) -> Namespaces {
    let mut ns = Namespaces::default();
    let mut first_at = [0usize; NAMESPACE_TYPES.len()];
    let Some(list) = linux.and_then(|l| r.array_at(l, "linux", "namespaces")) else { return ns };
    for (i, item) in list.iter().enumerate() {
        let path = index("linux.namespaces", i);
        let Some(entry) = r.object(item, &path) else { continue };
        let ns_path = r.str_at(entry, &path, "path").filter(|p| !p.is_empty());
        if let Some(p) = ns_path {
            if !p.starts_with('/') {
                r.error(field(&path, "path"), format!("must be an absolute path, got {}", quote(p)));
            }
        }
        if !r.require(entry, &path, "type") {
            continue;
        }
        let Some(ty) = r.str_at(entry, &path, "type") else { continue };
        match Namespaces::slot(ty) {
            None => r.error(
                field(&path, "type"),
                format!("unknown namespace {}, expected one of {}", quote(ty), NAMESPACE_TYPES.join(", ")),
            ),
            Some(slot) if ns.joined[slot].is_some() => r.error(
                field(&path, "type"),
                format!("duplicate namespace {ty} (first at linux.namespaces[{}])", first_at[slot]),
            ),
            Some(slot) => {
                ns.joined[slot] = Some(ns_path.is_some());
                first_at[slot] = i;
            }
        }
    }
    ns
}

/// Validates everything in `linux` except `namespaces` (already read into `ns`).
pub(crate) fn validate(
    linux: &Map<String, Value>,
    doc: &Map<String, Value>,
    ns: &Namespaces,
    r: &mut Report,
) {
    user_ns_mappings(linux, ns, r);
    time_offsets(linux, ns, r);
    sysctl(linux, doc, ns, r);
    devices(linux, r);
    net_devices(linux, ns, r);
    for key in ["maskedPaths", "readonlyPaths"] {
        for (path, p) in r.strings_at(linux, "linux", key).unwrap_or_default() {
            if !p.starts_with('/') {
                r.error(path, format!("must be an absolute path, got {}", quote(p)));
            }
        }
    }
    if let Some(p) = r.str_at(linux, "linux", "rootfsPropagation") {
        if !p.is_empty() {
            one_of(linux, "linux", "rootfsPropagation", &ROOTFS_PROPAGATIONS, false, r);
        }
    }
    if let Some(p) = r.str_at(linux, "linux", "cgroupsPath") {
        if p.split(['/', ':']).any(|c| c == "..") {
            r.error("linux.cgroupsPath", format!("{} must not contain `..` components", quote(p)));
        } else if p.contains('\0') {
            r.error("linux.cgroupsPath", "contains a NUL byte");
        }
    }
    r.str_at(linux, "linux", "mountLabel");
    if let Some(res) = r.object_at(linux, "linux", "resources") {
        resources::validate(res, r);
    }
    if let Some(sec) = r.object_at(linux, "linux", "seccomp") {
        seccomp::validate(sec, r);
    }
}

fn user_ns_mappings(linux: &Map<String, Value>, ns: &Namespaces, r: &mut Report) {
    for key in ["uidMappings", "gidMappings"] {
        let entries = id_mappings(linux, "linux", key, r);
        let path = field("linux", key);
        let given = entries.as_ref().is_some_and(|e| !e.is_empty())
            || get(linux, key).and_then(Value::as_array).is_some_and(|a| !a.is_empty());
        if ns.is_new("user") && !given {
            r.error(path, "required: the config creates a new user namespace");
        } else if !ns.contains("user") && given {
            r.error(path, "set, but linux.namespaces has no user namespace");
        } else if ns.is_joined("user") && given {
            r.warn(path, "ignored: a joined user namespace keeps its own mappings");
        }
    }
}

fn time_offsets(linux: &Map<String, Value>, ns: &Namespaces, r: &mut Report) {
    let Some(offsets) = r.object_at(linux, "linux", "timeOffsets") else { return };
    if !offsets.is_empty() && !ns.is_new("time") {
        r.error(
            "linux.timeOffsets",
            "requires a new time namespace (a time entry without path in linux.namespaces)",
        );
    }
    for (clock, value) in offsets {
        let path = map_key("linux.timeOffsets", clock);
        if !TIME_OFFSET_CLOCKS.contains(&clock.as_str()) {
            r.error(&path, format!("unknown clock {}, expected monotonic or boottime", quote(clock)));
        }
        let Some(offset) = r.object(value, &path) else { continue };
        r.i64_at(offset, &path, "secs");
        if let Some(ns) = r.u32_at(offset, &path, "nanosecs") {
            if ns >= 1_000_000_000 {
                r.error(field(&path, "nanosecs"), format!("{ns} is not below one second (1000000000)"));
            }
        }
    }
}

fn sysctl(linux: &Map<String, Value>, doc: &Map<String, Value>, ns: &Namespaces, r: &mut Report) {
    let Some(sysctl) = r.object_at(linux, "linux", "sysctl") else { return };
    let hostname_set = get(doc, "hostname").and_then(Value::as_str).is_some_and(|h| !h.is_empty());
    for (key, value) in sysctl {
        let path = map_key("linux.sysctl", key);
        r.string(value, &path);
        if let Err(reason) = sysctl_path(key) {
            r.error(&path, reason);
            continue;
        }
        match sysctl_namespace(key) {
            None => r.error(
                &path,
                "not a namespaced sysctl: a container may only set net.*, fs.mqueue.*, the System V IPC \
                 kernel.{msg,sem,shm}* ones, kernel.hostname and kernel.domainname",
            ),
            Some(ty) if !ns.contains(ty) => {
                r.error(&path, format!("requires a namespace of type {ty} in linux.namespaces"));
            }
            Some(_) if key == "kernel.hostname" && hostname_set => {
                r.error(&path, "conflicts with the hostname field; set only one of them");
            }
            Some(_) => {}
        }
    }
}

fn devices(linux: &Map<String, Value>, r: &mut Report) {
    let Some(list) = r.array_at(linux, "linux", "devices") else { return };
    for (i, item) in list.iter().enumerate() {
        let path = index("linux.devices", i);
        let Some(dev) = r.object(item, &path) else { continue };
        if r.require(dev, &path, "path") {
            if let Some(p) = r.str_at(dev, &path, "path") {
                if !p.starts_with('/') {
                    r.error(field(&path, "path"), format!("must be an absolute path, got {}", quote(p)));
                }
            }
        }
        let ty_ok = one_of(dev, &path, "type", &DEVICE_TYPES, true, r);
        let is_fifo = get(dev, "type").and_then(Value::as_str) == Some("p");
        for key in ["major", "minor"] {
            if ty_ok == Some(true) && !is_fifo {
                r.require(dev, &path, key);
            }
            if let Some(n) = r.i64_at(dev, &path, key) {
                if n < 0 {
                    r.error(field(&path, key), format!("{n} is negative"));
                }
            }
        }
        for key in ["fileMode", "uid", "gid"] {
            r.u32_at(dev, &path, key);
        }
    }
}

/// `linux.netDevices` (runtime-spec 1.2): host name → `{"name": new name}`, both valid
/// interface names, no two devices with the same name inside, and a network namespace.
fn net_devices(linux: &Map<String, Value>, ns: &Namespaces, r: &mut Report) {
    let Some(devs) = r.object_at(linux, "linux", "netDevices") else { return };
    if !devs.is_empty() && !ns.contains("network") {
        r.error("linux.netDevices", "requires a network namespace in linux.namespaces");
    }
    let mut inside: Vec<(&str, &str)> = Vec::new();
    for (host, value) in devs {
        let path = map_key("linux.netDevices", host);
        if let Err(e) = crate::net::check_ifname(&path, host) {
            r.error(&path, e.to_string().trim_start_matches(&format!("{path}: ")).to_owned());
        }
        let Some(dev) = r.object(value, &path) else { continue };
        let name = match r.str_at(dev, &path, "name").filter(|n| !n.is_empty()) {
            Some(n) => {
                let name_path = field(&path, "name");
                if let Err(e) = crate::net::check_ifname(&name_path, n) {
                    r.error(
                        &name_path,
                        e.to_string().trim_start_matches(&format!("{name_path}: ")).to_owned(),
                    );
                }
                n
            }
            None => host.as_str(),
        };
        if let Some((other, _)) = inside.iter().find(|(_, n)| *n == name) {
            r.error(&path, format!("moves to {} inside, like linux.netDevices.{other}", quote(name)));
        }
        inside.push((host, name));
    }
}
