//! Pure planning: which namespaces to create and join, the id-map file contents and the
//! time offsets, computed from a validated spec before anything touches the system.

use std::path::PathBuf;

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::config::idmap::render_mappings as id_map_content;
use crate::sys::process::CLONE_NEWTIME;

/// The namespace part of a launch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespacePlan {
    /// CLONE_NEW* bits for clone3 (time is handled apart, see `time_offsets`).
    pub clone_flags: u64,
    /// Namespaces to join with setns in the child: (type flag, path). Never pid.
    pub join: Vec<(CloneFlags, PathBuf)>,
    /// A pid namespace to join: setns in the parent before clone (pid_for_children).
    pub join_pid: Option<PathBuf>,
    /// New user namespace: the parent writes these uid_map / gid_map contents.
    pub uid_map: Option<String>,
    /// See `uid_map`.
    pub gid_map: Option<String>,
    /// New time namespace: the child unshares it, writes these offsets to
    /// /proc/self/timens_offsets, then enters it (`None`: no new time namespace).
    pub time_offsets: Option<String>,
    /// The container gets its own pid namespace (new or joined).
    pub own_pid_ns: bool,
    /// The container gets a new mount namespace.
    pub new_mount_ns: bool,
    /// The container gets a new user namespace.
    pub new_user_ns: bool,
    /// The container gets a new cgroup namespace.
    pub new_cgroup_ns: bool,
}

fn flag_of(t: LinuxNamespaceType) -> Option<CloneFlags> {
    Some(match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => return None,
    })
}

/// Plan the namespaces of `spec` (already validated).
pub fn plan_namespaces(spec: &Spec) -> NamespacePlan {
    let mut plan = NamespacePlan::default();
    let Some(linux) = spec.linux() else { return plan };
    for ns in linux.namespaces().iter().flatten() {
        let t = ns.typ();
        match (flag_of(t), ns.path()) {
            (None, None) => {
                let offsets = linux.time_offsets().as_ref();
                let content = offsets
                    .map(|o| {
                        let mut keys: Vec<_> = o.iter().collect();
                        keys.sort_by(|a, b| a.0.cmp(b.0));
                        keys.iter()
                            .map(|(clock, off)| {
                                format!(
                                    "{clock} {} {}\n",
                                    off.secs().unwrap_or(0),
                                    off.nanosecs().unwrap_or(0)
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                plan.time_offsets = Some(content);
            }
            (None, Some(path)) => {
                plan.join.push((CloneFlags::from_bits_retain(CLONE_NEWTIME as i32), path.clone()))
            }
            (Some(CloneFlags::CLONE_NEWPID), Some(path)) => {
                plan.join_pid = Some(path.clone());
                plan.own_pid_ns = true;
            }
            (Some(f), Some(path)) => plan.join.push((f, path.clone())),
            (Some(f), None) => {
                plan.clone_flags |= f.bits() as u64;
                match f {
                    CloneFlags::CLONE_NEWPID => plan.own_pid_ns = true,
                    CloneFlags::CLONE_NEWNS => plan.new_mount_ns = true,
                    CloneFlags::CLONE_NEWCGROUP => plan.new_cgroup_ns = true,
                    CloneFlags::CLONE_NEWUSER => plan.new_user_ns = true,
                    _ => {}
                }
            }
        }
    }
    if plan.new_user_ns {
        plan.uid_map = Some(id_map_content(linux.uid_mappings().as_deref().unwrap_or_default()));
        plan.gid_map = Some(id_map_content(linux.gid_mappings().as_deref().unwrap_or_default()));
    }
    // Join the user namespace first: the others' permissions are checked against it.
    plan.join.sort_by_key(|(f, _)| *f != CloneFlags::CLONE_NEWUSER);
    plan
}

/// Parse a kernel cpu list (`0-3,5`) into cpu numbers; None when malformed.
pub fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<usize>().ok()?, b.trim().parse::<usize>().ok()?),
            None => {
                let n = part.trim().parse::<usize>().ok()?;
                (n, n)
            }
        };
        if b < a || b >= 4096 {
            return None;
        }
        out.extend(a..=b);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxIdMapping;
    use test_case::test_case;

    fn spec(json: &str) -> Spec {
        serde_json::from_str(json).unwrap()
    }

    #[test_case(r#"[{"type":"pid"},{"type":"mount"}]"#, (libc::CLONE_NEWPID | libc::CLONE_NEWNS) as u64, true; "pid and mount")]
    #[test_case(r#"[{"type":"network","path":"/proc/1/ns/net"}]"#, 0, false; "joined net only")]
    #[test_case(r#"[]"#, 0, false; "none")]
    fn flags(ns: &str, flags: u64, own_pid: bool) {
        let s =
            spec(&format!(r#"{{"ociVersion":"1.2.0","root":{{"path":"r"}},"linux":{{"namespaces":{ns}}}}}"#));
        let p = plan_namespaces(&s);
        assert_eq!(p.clone_flags, flags);
        assert_eq!(p.own_pid_ns, own_pid);
    }

    #[test]
    fn user_maps_and_join_order() {
        let s = spec(
            r#"{"ociVersion":"1.2.0","root":{"path":"r"},"linux":{
            "namespaces":[{"type":"ipc","path":"/a"},{"type":"user","path":"/b"},{"type":"pid","path":"/c"}],
            "uidMappings":[{"containerID":0,"hostID":1000,"size":1},{"containerID":1,"hostID":100000,"size":65536}]}}"#,
        );
        let p = plan_namespaces(&s);
        assert_eq!(p.join[0], (CloneFlags::CLONE_NEWUSER, PathBuf::from("/b")));
        assert_eq!(p.join_pid, Some(PathBuf::from("/c")));
        assert_eq!(p.uid_map, None, "joined user ns: no maps written");
        let maps: Vec<LinuxIdMapping> = serde_json::from_str(
            r#"[{"containerID":0,"hostID":1000,"size":1},{"containerID":1,"hostID":100000,"size":65536}]"#,
        )
        .unwrap();
        assert_eq!(id_map_content(&maps), "0 1000 1\n1 100000 65536\n");
    }

    #[test_case("0", Some(vec![0]))]
    #[test_case("0-2,5", Some(vec![0, 1, 2, 5]))]
    #[test_case("", Some(vec![]))]
    #[test_case("3-1", None)]
    #[test_case("x", None)]
    #[test_case("0-99999", None)]
    fn cpu_lists(s: &str, want: Option<Vec<usize>>) {
        assert_eq!(parse_cpu_list(s), want);
    }

    #[test]
    fn time_offsets_rendered_sorted() {
        let s = spec(
            r#"{"ociVersion":"1.2.0","root":{"path":"r"},"linux":{"namespaces":[{"type":"time"}],
            "timeOffsets":{"monotonic":{"secs":86400},"boottime":{"secs":-5,"nanosecs":7}}}}"#,
        );
        assert_eq!(plan_namespaces(&s).time_offsets.as_deref(), Some("boottime -5 7\nmonotonic 86400 0\n"));
    }
}
