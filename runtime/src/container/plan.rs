//! Stage 2, pure planning: what a flow will make for a container, computed from its
//! [`ValidConfig`] alone before anything touches the system: which namespaces to create and
//! join, the id-map file contents and the time offsets ([`NamespacePlan`]), and the rest of
//! [`Plan`].

use std::collections::HashMap;
use std::path::PathBuf;

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, LinuxNetDevice};

use crate::config::idmap::render_mappings as id_map_content;
use crate::config::ValidConfig;
use crate::sys::process::CLONE_NEWTIME;

/// What `create`, `run` and `restore` make for a container, from its validated config.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The namespaces to create and join.
    pub namespaces: NamespacePlan,
    /// No mount namespace of its own (new or joined): the rootfs is bound in the caller's.
    pub shared_mount_ns: bool,
    /// The container is in a user namespace (new or joined).
    pub in_user_ns: bool,
    /// `linux.cgroupsPath`.
    pub cgroups_path: Option<String>,
    /// `process.terminal`.
    pub terminal: bool,
    /// `linux.resources.cpu.cpus` is set: the init's affinity follows its cpuset.
    pub wants_cpus: bool,
    /// `process.oomScoreAdj` for the parent to write (only in a user namespace, where the
    /// init cannot write its own).
    pub parent_oom_score_adj: Option<i32>,
    /// `linux.netDevices` to move in.
    pub net_devices: HashMap<String, LinuxNetDevice>,
}

impl Plan {
    /// Plan a container of `config`.
    pub fn new(config: &ValidConfig) -> Plan {
        let namespaces = plan_namespaces(config);
        let joins = |flag| namespaces.join.iter().any(|(f, _)| *f == flag);
        let shared_mount_ns = !namespaces.new_mount_ns && !joins(CloneFlags::CLONE_NEWNS);
        let in_user_ns = namespaces.new_user_ns || joins(CloneFlags::CLONE_NEWUSER);
        let spec = config.spec();
        let linux = spec.linux().as_ref();
        let cpu = linux.and_then(|l| l.resources().as_ref()).and_then(|r| r.cpu().as_ref());
        let oom_score_adj = spec.process().as_ref().and_then(|p| p.oom_score_adj());
        Plan {
            shared_mount_ns,
            in_user_ns,
            cgroups_path: linux
                .and_then(|l| l.cgroups_path().as_ref())
                .map(|p| p.to_string_lossy().into_owned()),
            terminal: spec.process().as_ref().and_then(|p| p.terminal()) == Some(true),
            wants_cpus: cpu.is_some_and(|c| c.cpus().is_some()),
            parent_oom_score_adj: oom_score_adj.filter(|_| in_user_ns),
            net_devices: linux.and_then(|l| l.net_devices().clone()).unwrap_or_default(),
            namespaces,
        }
    }
}

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

/// Plan the namespaces of a validated config (the flows call it through [`Plan::new`]; it is
/// public because the startup benches time it alone).
pub fn plan_namespaces(config: &ValidConfig) -> NamespacePlan {
    let mut plan = NamespacePlan::default();
    let Some(linux) = config.spec().linux() else { return plan };
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
    use test_case::test_case;

    /// A validated config of `linux` (a JSON object's members) and `process` members.
    fn config(linux: &str, process: &str) -> ValidConfig {
        let json = format!(
            r#"{{"ociVersion":"1.2.0","root":{{"path":"r"}},"process":{{"cwd":"/","args":["sh"],"user":{{"uid":0,"gid":0}}{process}}},"linux":{{{linux}}}}}"#
        );
        crate::config::parse_config(json.as_bytes()).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    #[test_case(r#"[{"type":"pid"},{"type":"mount"}]"#, (libc::CLONE_NEWPID | libc::CLONE_NEWNS) as u64, true; "pid and mount")]
    #[test_case(r#"[{"type":"network","path":"/proc/1/ns/net"}]"#, 0, false; "joined net only")]
    #[test_case(r#"[]"#, 0, false; "none")]
    fn flags(ns: &str, flags: u64, own_pid: bool) {
        let p = plan_namespaces(&config(&format!(r#""namespaces":{ns}"#), ""));
        assert_eq!(p.clone_flags, flags);
        assert_eq!(p.own_pid_ns, own_pid);
    }

    #[test]
    fn joined_user_ns_first_and_no_maps() {
        let c = config(
            r#""namespaces":[{"type":"ipc","path":"/a"},{"type":"user","path":"/b"},{"type":"pid","path":"/c"}]"#,
            "",
        );
        let p = plan_namespaces(&c);
        assert_eq!(p.join[0], (CloneFlags::CLONE_NEWUSER, PathBuf::from("/b")));
        assert_eq!(p.join_pid, Some(PathBuf::from("/c")));
        assert_eq!(p.uid_map, None, "joined user ns: no maps written");
    }

    #[test]
    fn new_user_ns_maps_rendered() {
        let c = config(
            r#""namespaces":[{"type":"user"},{"type":"mount"}],
            "uidMappings":[{"containerID":0,"hostID":1000,"size":1},{"containerID":1,"hostID":100000,"size":65536}],
            "gidMappings":[{"containerID":0,"hostID":1000,"size":1}]"#,
            "",
        );
        let p = plan_namespaces(&c);
        assert_eq!(p.uid_map.as_deref(), Some("0 1000 1\n1 100000 65536\n"));
        assert_eq!(p.gid_map.as_deref(), Some("0 1000 1\n"));
    }

    #[test_case(r#""namespaces":[{"type":"mount"}]"#, "", false, false, None, false; "own mount ns")]
    #[test_case(r#""namespaces":[{"type":"pid"}]"#, r#","terminal":true"#, true, false, None, true; "no mount ns, terminal")]
    #[test_case(r#""namespaces":[{"type":"mount","path":"/m"}]"#, "", false, false, None, false; "joined mount ns")]
    #[test_case(r#""namespaces":[{"type":"mount"},{"type":"user"}],"uidMappings":[{"containerID":0,"hostID":1000,"size":1}],"gidMappings":[{"containerID":0,"hostID":1000,"size":1}]"#,
        r#","oomScoreAdj":5"#, false, true, Some(5), false; "user ns: parent writes oomScoreAdj")]
    #[test_case(r#""namespaces":[{"type":"mount"}]"#, r#","oomScoreAdj":5"#, false, false, None, false; "no user ns: the init writes it")]
    fn plan_of_config(
        linux: &str,
        process: &str,
        shared_mount_ns: bool,
        in_user_ns: bool,
        parent_oom: Option<i32>,
        terminal: bool,
    ) {
        let p = Plan::new(&config(linux, process));
        assert_eq!(p.shared_mount_ns, shared_mount_ns, "shared_mount_ns");
        assert_eq!(p.in_user_ns, in_user_ns, "in_user_ns");
        assert_eq!(p.parent_oom_score_adj, parent_oom, "parent_oom_score_adj");
        assert_eq!(p.terminal, terminal, "terminal");
    }

    #[test_case(r#""cgroupsPath":"/a/b","resources":{"cpu":{"cpus":"0-1"}}"#, Some("/a/b"), true; "path and cpus")]
    #[test_case(r#""resources":{"cpu":{"shares":1024}}"#, None, false; "neither")]
    fn plan_cgroup_part(linux: &str, path: Option<&str>, wants_cpus: bool) {
        let p = Plan::new(&config(linux, ""));
        assert_eq!(p.cgroups_path.as_deref(), path);
        assert_eq!(p.wants_cpus, wants_cpus);
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
        let c = config(
            r#""namespaces":[{"type":"time"}],
            "timeOffsets":{"monotonic":{"secs":86400},"boottime":{"secs":-5,"nanosecs":7}}"#,
            "",
        );
        assert_eq!(plan_namespaces(&c).time_offsets.as_deref(), Some("boottime -5 7\nmonotonic 86400 0\n"));
    }
}
