//! The host's cgroup layout, read once from `/proc/self/mountinfo` and `/proc/self/cgroup`.
//! Pure: the texts and the filesystem root come in as parameters, so tests use a temp dir.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::CgroupError;
use crate::sys::mountinfo::unescape;

/// v1 controller names (anything else in a v1 mount's super options is an option).
pub(crate) const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// How the host's cgroup filesystems are arranged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Only cgroup v1 hierarchies.
    V1,
    /// One cgroup2 hierarchy (`/sys/fs/cgroup` is cgroup2).
    Unified,
    /// v1 controller hierarchies plus a cgroup2 mount without (those) controllers, e.g.
    /// `/sys/fs/cgroup/unified`. Resources use the v1 controllers.
    Hybrid,
}

/// One mounted v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Hierarchy {
    /// Its controllers (`cpu`, `cpuacct`) or its name (`name=systemd`).
    pub controllers: Vec<String>,
    /// Where it is mounted (under the root passed to [`Hierarchies::detect`]).
    pub mount: PathBuf,
    /// This process's own cgroup in it (from /proc/self/cgroup), `/` if unknown.
    pub own: String,
}

/// The cgroup hierarchies of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchies {
    /// The layout.
    pub layout: Layout,
    /// The v1 hierarchies (empty on [`Layout::Unified`]).
    pub v1: Vec<V1Hierarchy>,
    /// The cgroup2 mount, if any.
    pub unified: Option<PathBuf>,
    /// This process's own cgroup in the cgroup2 hierarchy (`0::` line), `/` if unknown.
    pub unified_own: String,
}

/// `(mount point, fstype, super options)` of each cgroup/cgroup2 line.
fn cgroup_mounts(mountinfo: &str) -> impl Iterator<Item = (String, &str, &str)> {
    mountinfo.lines().filter_map(|line| {
        let (pre, post) = line.split_once(" - ")?;
        let mount_point = pre.split(' ').nth(4)?;
        let mut post = post.split(' ');
        let fstype = post.next()?;
        let _source = post.next()?;
        let super_opts = post.next().unwrap_or("");
        matches!(fstype, "cgroup" | "cgroup2").then(|| (unescape(mount_point), fstype, super_opts))
    })
}

impl Hierarchies {
    /// The layout described by `mountinfo` (text of /proc/self/mountinfo) and `proc_self_cgroup`
    /// (text of /proc/self/cgroup); mount points are taken relative to `root` (`/` on the host).
    pub fn detect(mountinfo: &str, proc_self_cgroup: &str, root: &Path) -> Result<Self, CgroupError> {
        let mut v1: Vec<V1Hierarchy> = Vec::new();
        let mut unified = None;
        for (mount_point, fstype, super_opts) in cgroup_mounts(mountinfo) {
            let mount = root.join(mount_point.trim_start_matches('/'));
            if fstype == "cgroup2" {
                unified.get_or_insert(mount);
                continue;
            }
            let controllers: Vec<String> = super_opts
                .split(',')
                .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
                .map(str::to_owned)
                .collect();
            if controllers.is_empty() || v1.iter().any(|h| h.controllers == controllers) {
                continue; // a bind mount of a hierarchy already seen
            }
            v1.push(V1Hierarchy { controllers, mount, own: "/".into() });
        }
        let mut unified_own = "/".to_owned();
        for line in proc_self_cgroup.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            if ctrls.is_empty() {
                path.clone_into(&mut unified_own);
                continue;
            }
            let set: Vec<&str> = ctrls.split(',').collect();
            if let Some(h) = v1.iter_mut().find(|h| {
                h.controllers.len() == set.len() && set.iter().all(|c| h.controllers.iter().any(|x| x == c))
            }) {
                path.clone_into(&mut h.own);
            }
        }
        let has_v1_controllers = v1.iter().any(|h| h.controllers.iter().any(|c| !c.starts_with("name=")));
        let layout = match (has_v1_controllers, unified.is_some()) {
            (true, true) => Layout::Hybrid,
            (true, false) => Layout::V1,
            (false, true) => Layout::Unified,
            (false, false) => {
                return Err(CgroupError::Layout {
                    path: PathBuf::from("/proc/self/mountinfo"),
                    reason: "no cgroup filesystem is mounted".into(),
                });
            }
        };
        if layout == Layout::Unified {
            v1.clear(); // named v1 hierarchies beside a unified root are not ours to manage
        }
        Ok(Self { layout, v1, unified, unified_own })
    }

    /// The host's hierarchies, read from /proc on first use and cached for the process.
    pub fn host() -> Result<Arc<Self>, CgroupError> {
        static HOST: std::sync::OnceLock<Result<Arc<Hierarchies>, CgroupError>> = std::sync::OnceLock::new();
        HOST.get_or_init(|| {
            let read = |p: &str| std::fs::read_to_string(p).map_err(|e| CgroupError::io("read", p, &e));
            Self::detect(&read("/proc/self/mountinfo")?, &read("/proc/self/cgroup")?, Path::new("/"))
                .map(Arc::new)
        })
        .clone()
    }

    /// The v1 hierarchy holding `controller`, if mounted.
    pub fn v1_mount(&self, controller: &str) -> Option<&V1Hierarchy> {
        self.v1.iter().find(|h| h.controllers.iter().any(|c| c == controller))
    }

    /// This process's own cgroup, against which relative cgroupsPaths resolve: the `memory`
    /// hierarchy's on v1/hybrid (else the first hierarchy's), the `0::` line's on v2.
    pub fn own_cgroup(&self) -> &str {
        match self.layout {
            Layout::Unified => &self.unified_own,
            _ => self.v1_mount("memory").or(self.v1.first()).map_or("/", |h| &h.own),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use test_case::test_case;

    pub(crate) const V1: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
";
    pub(crate) const HYBRID: &str = "\
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    pub(crate) const V2: &str = "\
25 23 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    #[test_case(V1, Layout::V1, 4, false ; "pure v1")]
    #[test_case(HYBRID, Layout::Hybrid, 4, true ; "hybrid")]
    #[test_case(V2, Layout::Unified, 0, true ; "pure v2")]
    fn detects(mountinfo: &str, layout: Layout, n_v1: usize, has_unified: bool) {
        let h = Hierarchies::detect(mountinfo, "", Path::new("/r")).unwrap();
        assert_eq!(h.layout, layout);
        assert_eq!(h.v1.len(), n_v1);
        assert_eq!(h.unified.is_some(), has_unified);
    }

    #[test]
    fn v1_details_and_own_cgroup() {
        let h = Hierarchies::detect(
            V1,
            "4:memory:/user.slice/x\n2:cpu,cpuacct:/user.slice\n0::/\n",
            Path::new("/r"),
        )
        .unwrap();
        assert_eq!(h.v1_mount("cpuacct").unwrap().mount, Path::new("/r/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(h.v1_mount("cpu").unwrap().own, "/user.slice");
        assert_eq!(h.v1[3].controllers, vec!["name=systemd"]);
        assert_eq!(h.own_cgroup(), "/user.slice/x");
        assert!(h.v1_mount("hugetlb").is_none());
    }

    #[test]
    fn v2_own_cgroup_and_escapes() {
        let mi = "25 23 0:22 / /sys/fs/cg\\040root rw - cgroup2 cgroup2 rw\n";
        let h = Hierarchies::detect(mi, "0::/system.slice/a.service\n", Path::new("/")).unwrap();
        assert_eq!(h.unified.as_deref(), Some(Path::new("/sys/fs/cg root")));
        assert_eq!(h.own_cgroup(), "/system.slice/a.service");
    }

    #[test]
    fn no_cgroupfs_is_an_error() {
        let e = Hierarchies::detect("1 0 0:1 / / rw - ext4 /dev/sda rw\n", "", Path::new("/")).unwrap_err();
        assert!(e.to_string().contains("no cgroup filesystem"), "{e}");
    }
}
