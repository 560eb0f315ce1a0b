//! Where the floor's cgroup goes on this host's layout (pure): one directory named `name`
//! at the root of every hierarchy isorun places a container in — every mounted v1
//! hierarchy on v1 and hybrid hosts, plus the cgroup2 mount on hybrid hosts where it is
//! writable (as isorun does); the cgroup2 directory alone on v2 hosts, entered by clone3's
//! CLONE_INTO_CGROUP.

use std::path::PathBuf;

use isolab_runtime::cgroups::{Hierarchies, Layout};

use super::FloorError;

/// One cgroup directory to make, fill and remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupDir {
    /// The directory.
    pub path: PathBuf,
    /// In the v1 cpuset hierarchy: `cpuset.cpus` and `cpuset.mems` are copied from the
    /// parent, or no task could join it.
    pub cpuset: bool,
    /// Hybrid's cgroup2 directory: skipped when the mount is not writable (EACCES, EPERM,
    /// EROFS), like isorun does.
    pub optional: bool,
}

/// The floor's cgroup on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupPlan {
    /// The directories, made in this order and removed in the reverse.
    pub dirs: Vec<CgroupDir>,
    /// v2: clone3 puts the child into `dirs[0]` (CLONE_INTO_CGROUP) and makes its cgroup
    /// namespace there. Else the child writes `0` into each v1 `tasks` itself (a hybrid's
    /// cgroup2 directory by CLONE_INTO_CGROUP) and unshares its cgroup namespace once placed.
    pub clone_into: bool,
}

/// Checks that `name` is one directory name: not empty, no `/`, not `.` or `..`.
pub fn check_name(name: &str) -> Result<(), FloorError> {
    let reason = if name.is_empty() {
        "is empty"
    } else if name.contains('/') {
        "must be one directory name (no `/`)"
    } else if name == "." || name == ".." {
        "cannot be `.` or `..`"
    } else if name.contains('\0') {
        "contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(FloorError::CgroupName { name: name.to_owned(), reason })
}

/// The plan for cgroup `name` on `hier`.
pub fn plan(hier: &Hierarchies, name: &str) -> Result<CgroupPlan, FloorError> {
    check_name(name)?;
    let unified = hier.unified.as_ref().map(|u| CgroupDir {
        path: u.join(name),
        cpuset: false,
        optional: hier.layout == Layout::Hybrid,
    });
    if hier.layout == Layout::Unified {
        let dir =
            unified.ok_or_else(|| FloorError::Layout("unified layout without a cgroup2 mount".into()))?;
        return Ok(CgroupPlan { dirs: vec![dir], clone_into: true });
    }
    let mut dirs: Vec<CgroupDir> = hier
        .v1
        .iter()
        .map(|h| CgroupDir {
            path: h.mount.join(name),
            cpuset: h.controllers.iter().any(|c| c == "cpuset"),
            optional: false,
        })
        .collect();
    dirs.extend(unified);
    Ok(CgroupPlan { dirs, clone_into: false })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use test_case::test_case;

    use super::*;

    const V1: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
";
    const HYBRID: &str = "\
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const V2: &str = "\
25 23 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
";

    fn dirs(p: &CgroupPlan) -> Vec<(String, bool, bool)> {
        p.dirs.iter().map(|d| (d.path.display().to_string(), d.cpuset, d.optional)).collect()
    }

    #[test_case(V1, false, &[
        ("/sys/fs/cgroup/cpu,cpuacct/f1", false, false),
        ("/sys/fs/cgroup/cpuset/f1", true, false),
        ("/sys/fs/cgroup/memory/f1", false, false),
        ("/sys/fs/cgroup/pids/f1", false, false),
        ("/sys/fs/cgroup/systemd/f1", false, false),
    ] ; "v1: every hierarchy, named ones too, cpuset marked")]
    #[test_case(HYBRID, false, &[
        ("/sys/fs/cgroup/cpu/f1", false, false),
        ("/sys/fs/cgroup/memory/f1", false, false),
        ("/sys/fs/cgroup/pids/f1", false, false),
        ("/sys/fs/cgroup/unified/f1", false, true),
    ] ; "hybrid: v1 hierarchies, then cgroup2 where writable")]
    #[test_case(V2, true, &[("/sys/fs/cgroup/f1", false, false)] ; "v2: one directory, clone3 enters it")]
    fn plans(mountinfo: &str, clone_into: bool, want: &[(&str, bool, bool)]) {
        let h = Hierarchies::detect(mountinfo, "", Path::new("/")).unwrap();
        let p = plan(&h, "f1").unwrap();
        assert_eq!(p.clone_into, clone_into);
        let want: Vec<(String, bool, bool)> = want.iter().map(|(p, c, o)| (p.to_string(), *c, *o)).collect();
        assert_eq!(dirs(&p), want);
    }

    #[test_case("", "is empty" ; "empty")]
    #[test_case("a/b", "no `/`" ; "slash")]
    #[test_case("..", "`..`" ; "dotdot")]
    #[test_case(".", "`.`" ; "dot")]
    #[test_case("a\0b", "NUL" ; "nul")]
    fn rejects_names(name: &str, reason: &str) {
        let h = Hierarchies::detect(V2, "", Path::new("/")).unwrap();
        let e = plan(&h, name).unwrap_err().to_string();
        assert!(e.contains(reason), "{e}");
    }
}
