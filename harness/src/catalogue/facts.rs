//! What this kernel and host offer, read once: namespaces, the cgroup layout and its
//! controllers, seccomp. An assertion whose need is missing is a SKIP with the reason.

use std::path::Path;

/// A requirement of an assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A namespace type (`/proc/self/ns/<name>`: pid, net, ipc, uts, mnt, user, cgroup, time).
    Namespace(&'static str),
    /// A cgroup controller in whatever hierarchy the host uses for it.
    Controller(&'static str),
    /// The cgroup v1 layout (pure or hybrid).
    CgroupV1,
    /// The pure cgroup v2 layout.
    CgroupV2,
    /// seccomp filtering in the kernel.
    Seccomp,
}

/// The cgroup layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Only v1 hierarchies.
    V1,
    /// v1 controllers plus a cgroup2 mount (systemd's hybrid).
    Hybrid,
    /// Only cgroup2 at /sys/fs/cgroup.
    V2,
}

/// Facts of this machine.
#[derive(Debug, Clone)]
pub struct Facts {
    /// Namespace types this kernel has.
    pub namespaces: Vec<String>,
    /// The cgroup layout.
    pub layout: Layout,
    /// Controllers usable: v1 mounted hierarchies, or v2 cgroup.controllers.
    pub controllers: Vec<String>,
    /// seccomp is available (/proc/self/status has a Seccomp line).
    pub seccomp: bool,
    /// `uname -r`.
    pub kernel_release: String,
}

impl Facts {
    /// Read the facts of the running system.
    pub fn detect() -> Self {
        let namespaces = std::fs::read_dir("/proc/self/ns")
            .map(|rd| rd.filter_map(Result::ok).filter_map(|e| e.file_name().into_string().ok()).collect())
            .unwrap_or_default();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let v2_controllers = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap_or_default();
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        Self::from_parts(
            namespaces,
            &mountinfo,
            &v2_controllers,
            status.contains("\nSeccomp:"),
            release.trim(),
        )
    }

    /// Pure part of [`Facts::detect`], for tests.
    pub fn from_parts(
        namespaces: Vec<String>,
        mountinfo: &str,
        v2_controllers: &str,
        seccomp: bool,
        release: &str,
    ) -> Self {
        let mut v1 = Vec::new();
        let mut v2_root = false;
        for line in mountinfo.lines() {
            let Some((pre, post)) = line.split_once(" - ") else { continue };
            let point = pre.split_whitespace().nth(4).unwrap_or_default();
            let mut post = post.split_whitespace();
            let (fstype, _src, opts) = (post.next().unwrap_or(""), post.next(), post.next().unwrap_or(""));
            match fstype {
                "cgroup2" if point == "/sys/fs/cgroup" => v2_root = true,
                "cgroup" => {
                    for o in opts.split(',') {
                        if !matches!(o, "rw" | "ro" | "relatime" | "nosuid" | "nodev" | "noexec")
                            && !o.starts_with("name=")
                        {
                            v1.push(o.to_owned());
                        }
                    }
                }
                _ => {}
            }
        }
        let (layout, controllers) = if v2_root {
            let mut c: Vec<String> = v2_controllers.split_whitespace().map(str::to_owned).collect();
            // v2 has no freezer controller: cgroup.freeze is core (Linux 5.2+).
            if kernel_at_least(release, 5, 2) {
                c.push("freezer".into());
            }
            (Layout::V2, c)
        } else if mountinfo.contains(" - cgroup2 ") {
            (Layout::Hybrid, v1)
        } else {
            (Layout::V1, v1)
        };
        Facts { namespaces, layout, controllers, seccomp, kernel_release: release.to_owned() }
    }

    /// Why `need` is not met here, or None when it is.
    pub fn missing(&self, need: Need) -> Option<String> {
        match need {
            Need::Namespace(ns) if !self.namespaces.iter().any(|n| n == ns) => {
                Some(format!("kernel {} has no {ns} namespace", self.kernel_release))
            }
            Need::Controller(c) if !self.controllers.iter().any(|x| x == c) => Some(format!(
                "no {c} controller in the {:?} cgroup hierarchy (kernel {}: {})",
                self.layout,
                self.kernel_release,
                match (c, self.layout) {
                    ("memory", Layout::V1 | Layout::Hybrid) => "built without CONFIG_MEMCG_V1?",
                    ("cpuset", Layout::V1 | Layout::Hybrid) => "built without CONFIG_CPUSETS_V1?",
                    _ => "controller not mounted or not enabled",
                }
            )),
            Need::CgroupV1 if self.layout == Layout::V2 => Some("host uses cgroup v2 only".into()),
            Need::CgroupV2 if self.layout != Layout::V2 => {
                Some(format!("host cgroup layout is {:?}, not v2", self.layout))
            }
            Need::Seccomp if !self.seccomp => Some(format!("kernel {} has no seccomp", self.kernel_release)),
            _ => None,
        }
    }

    /// Whether a path exists (for assertions that need a file the kernel may not have).
    pub fn has_path(p: &str) -> bool {
        Path::new(p).exists()
    }
}

/// `release` (`6.1.0-50-cloud-amd64`) is at least `major.minor`.
fn kernel_at_least(release: &str, major: u32, minor: u32) -> bool {
    let mut it = release.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse::<u32>().ok());
    let (a, b) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (a, b) >= (major, minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw";

    #[test]
    fn hybrid_layout_uses_v1_controllers() {
        let f = Facts::from_parts(vec!["pid".into()], HYBRID, "", true, "6.1.0");
        assert_eq!(f.layout, Layout::Hybrid);
        assert_eq!(f.controllers, ["cpu", "memory"]);
        assert_eq!(f.missing(Need::Controller("memory")), None);
        assert!(f.missing(Need::Controller("pids")).unwrap().contains("no pids controller"));
        assert!(f.missing(Need::Namespace("time")).unwrap().contains("no time namespace"));
        assert_eq!(f.missing(Need::CgroupV1), None);
    }

    #[test]
    fn pure_v2_reads_cgroup_controllers() {
        let mi = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate";
        let f = Facts::from_parts(vec![], mi, "cpuset cpu io memory pids\n", true, "6.12.0");
        assert_eq!(f.layout, Layout::V2);
        assert!(f.controllers.contains(&"pids".to_owned()));
        assert!(f.controllers.contains(&"freezer".to_owned()), "cgroup.freeze counts as the v2 freezer");
        let old = Facts::from_parts(vec![], mi, "cpu\n", true, "4.19.0");
        assert!(!old.controllers.contains(&"freezer".to_owned()));
        assert!(f.missing(Need::CgroupV1).is_some());
        assert_eq!(f.missing(Need::CgroupV2), None);
    }

    #[test]
    fn v1_without_memory_explains_memcg_v1() {
        let mi = "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu";
        let f = Facts::from_parts(vec![], mi, "", true, "6.12.0");
        assert!(f.missing(Need::Controller("memory")).unwrap().contains("CONFIG_MEMCG_V1"));
    }
}
