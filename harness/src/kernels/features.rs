//! Kernel features read from its `.config` (pure).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A parsed kernel config: option → value (`y`, `m`, a string or number). Unset options absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelConfig(pub BTreeMap<String, String>);

impl KernelConfig {
    /// Parses `.config` text.
    pub fn parse(text: &str) -> Self {
        let map = text
            .lines()
            .filter(|l| l.starts_with("CONFIG_"))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect();
        KernelConfig(map)
    }

    /// The option's value, if set.
    pub fn get(&self, opt: &str) -> Option<&str> {
        self.0.get(opt).map(String::as_str)
    }

    /// Built in (`=y`).
    pub fn is_builtin(&self, opt: &str) -> bool {
        self.get(opt) == Some("y")
    }

    /// Built in or a module.
    pub fn is_enabled(&self, opt: &str) -> bool {
        matches!(self.get(opt), Some("y" | "m"))
    }
}

/// What the isolation catalogue cares about, summarized.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Features {
    /// Namespace kinds available (`uts`, `ipc`, `pid`, `net`, `user`, `time`, `cgroup`, `mnt`).
    pub namespaces: Vec<String>,
    /// cgroup v2 controllers the kernel builds.
    pub cgroup_v2: Vec<String>,
    /// cgroup v1 controllers the kernel builds (memory/cpuset need their `_V1` option on ≥6.11).
    pub cgroup_v1: Vec<String>,
    /// seccomp filter mode available.
    pub seccomp: bool,
    /// The default LSM order (`CONFIG_LSM`).
    pub lsms: Vec<String>,
}

const NAMESPACES: &[(&str, &str)] = &[
    ("mnt", "CONFIG_NAMESPACES"),
    ("uts", "CONFIG_UTS_NS"),
    ("ipc", "CONFIG_IPC_NS"),
    ("pid", "CONFIG_PID_NS"),
    ("net", "CONFIG_NET_NS"),
    ("user", "CONFIG_USER_NS"),
    ("time", "CONFIG_TIME_NS"),
    ("cgroup", "CONFIG_CGROUPS"),
];

/// Controller → its option(s): the first for v2, the v1 option list (all must be set).
const CONTROLLERS: &[(&str, &str, &[&str])] = &[
    ("cpu", "CONFIG_CGROUP_SCHED", &["CONFIG_CGROUP_SCHED"]),
    ("cpuacct", "", &["CONFIG_CGROUP_CPUACCT"]),
    ("cpuset", "CONFIG_CPUSETS", &["CONFIG_CPUSETS", "CONFIG_CPUSETS_V1"]),
    ("memory", "CONFIG_MEMCG", &["CONFIG_MEMCG", "CONFIG_MEMCG_V1"]),
    ("io", "CONFIG_BLK_CGROUP", &[]),
    ("blkio", "", &["CONFIG_BLK_CGROUP"]),
    ("pids", "CONFIG_CGROUP_PIDS", &["CONFIG_CGROUP_PIDS"]),
    ("freezer", "CONFIG_CGROUP_FREEZER", &["CONFIG_CGROUP_FREEZER"]),
    ("devices", "", &["CONFIG_CGROUP_DEVICE"]),
    ("hugetlb", "CONFIG_CGROUP_HUGETLB", &["CONFIG_CGROUP_HUGETLB"]),
    ("rdma", "CONFIG_CGROUP_RDMA", &["CONFIG_CGROUP_RDMA"]),
    ("misc", "CONFIG_CGROUP_MISC", &["CONFIG_CGROUP_MISC"]),
    ("perf_event", "CONFIG_CGROUP_PERF", &["CONFIG_CGROUP_PERF"]),
    ("net_cls", "", &["CONFIG_CGROUP_NET_CLASSID"]),
    ("net_prio", "", &["CONFIG_CGROUP_NET_PRIO"]),
];

/// `_V1` options that only exist from Linux 6.11 on: on older kernels their absence means v1
/// support is unconditional.
const V1_SPLIT_OPTIONS: &[&str] = &["CONFIG_CPUSETS_V1", "CONFIG_MEMCG_V1"];

impl Features {
    /// Summarizes a config. `split_v1` says whether the kernel has the ≥6.11 `_V1` options
    /// (detected from the config itself: either option mentioned as set or "is not set").
    pub fn from_config(cfg: &KernelConfig, config_text: &str) -> Self {
        let split_v1 = V1_SPLIT_OPTIONS.iter().any(|o| config_text.contains(o));
        let namespaces =
            NAMESPACES.iter().filter(|(_, o)| cfg.is_builtin(o)).map(|(n, _)| n.to_string()).collect();
        let cgroup_v2 = CONTROLLERS
            .iter()
            .filter(|(_, v2, _)| !v2.is_empty() && cfg.is_builtin(v2))
            .map(|(n, _, _)| n.to_string())
            .collect();
        let cgroup_v1 = CONTROLLERS
            .iter()
            .filter(|(_, _, v1)| {
                !v1.is_empty()
                    && v1.iter().all(|o| cfg.is_builtin(o) || (!split_v1 && V1_SPLIT_OPTIONS.contains(o)))
            })
            .map(|(n, _, _)| n.to_string())
            .collect();
        let lsms =
            cfg.get("CONFIG_LSM").map(|s| s.split(',').map(str::to_string).collect()).unwrap_or_default();
        Features {
            namespaces,
            cgroup_v2,
            cgroup_v1,
            seccomp: cfg.is_builtin("CONFIG_SECCOMP") && cfg.is_builtin("CONFIG_SECCOMP_FILTER"),
            lsms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    const OLD: &str = "CONFIG_NAMESPACES=y\nCONFIG_PID_NS=y\nCONFIG_CGROUPS=y\nCONFIG_MEMCG=y\nCONFIG_CPUSETS=y\n\
CONFIG_CGROUP_PIDS=y\nCONFIG_SECCOMP=y\nCONFIG_SECCOMP_FILTER=y\nCONFIG_LSM=\"lockdown,yama,apparmor\"\nCONFIG_VETH=m\n";
    const NEW: &str = "CONFIG_NAMESPACES=y\nCONFIG_CGROUPS=y\nCONFIG_MEMCG=y\n# CONFIG_MEMCG_V1 is not set\n\
CONFIG_CPUSETS=y\nCONFIG_CPUSETS_V1=y\nCONFIG_SECCOMP=y\n";

    #[test_case(OLD, "memory", true, true ; "old kernel memory v1")]
    #[test_case(NEW, "memory", true, false ; "new kernel no memcg v1")]
    #[test_case(NEW, "cpuset", true, true ; "new kernel cpuset v1 set")]
    #[test_case(OLD, "freezer", false, false ; "absent")]
    fn controllers(text: &str, ctrl: &str, v2: bool, v1: bool) {
        let f = Features::from_config(&KernelConfig::parse(text), text);
        assert_eq!(f.cgroup_v2.contains(&ctrl.to_string()), v2, "{f:?}");
        assert_eq!(f.cgroup_v1.contains(&ctrl.to_string()), v1, "{f:?}");
    }

    #[test]
    fn summary() {
        let cfg = KernelConfig::parse(OLD);
        let f = Features::from_config(&cfg, OLD);
        assert_eq!(f.namespaces, vec!["mnt", "pid", "cgroup"]);
        assert!(f.seccomp);
        assert_eq!(f.lsms, vec!["lockdown", "yama", "apparmor"]);
        assert!(cfg.is_enabled("CONFIG_VETH") && !cfg.is_builtin("CONFIG_VETH"));
        assert!(!Features::from_config(&KernelConfig::parse(NEW), NEW).seccomp);
    }
}
