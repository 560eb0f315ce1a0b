//! `exec --cgroup [controller[,controller]:]path` (runc 1.1): run the process in an existing
//! sub-cgroup of the container's cgroup instead of the cgroup itself.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use nix::unistd::Pid;

use super::{fsio, CgroupError, CgroupManager, Layout};

/// Sub-cgroup per controller; the key `""` (no controller given) is the cgroup2 one.
pub type SubCgroups = BTreeMap<String, String>;

fn invalid(arg: &str, why: &str) -> CgroupError {
    CgroupError::Unsupported { field: format!("--cgroup {arg}"), reason: why.to_owned() }
}

/// Parse `--cgroup` arguments as runc's `getSubCgroupPaths`: one bare path, or any number of
/// `controller[,controller]:path`. Paths are relative and stay below the container's cgroup.
pub fn parse_sub_cgroups(args: &[String]) -> Result<SubCgroups, CgroupError> {
    let mut out = SubCgroups::new();
    for arg in args {
        let (ctrls, path) = match arg.split(':').collect::<Vec<_>>()[..] {
            [path] if args.len() == 1 => (vec![""], path),
            [_] => return Err(invalid(arg, "missing <controller>: prefix")),
            [c, path] => (c.split(',').collect(), path),
            _ => return Err(invalid(arg, "expected [<controller>:]<cgroup>")),
        };
        let p = Path::new(path);
        if path.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(invalid(arg, "the sub-cgroup must be a relative path without . or .."));
        }
        for c in ctrls {
            if c.is_empty() && args.len() != 1 {
                return Err(invalid(arg, "empty <controller> prefix"));
            }
            if out.insert(c.to_owned(), path.to_owned()).is_some() {
                return Err(invalid(arg, &format!("controller {c} specified multiple times")));
            }
        }
    }
    Ok(out)
}

impl CgroupManager {
    /// [`CgroupManager::add_task`], with `pid` placed in the given sub-cgroups (which must
    /// exist) of the hierarchies they name.
    pub fn add_task_sub(&self, pid: Pid, sub: &SubCgroups) -> Result<(), CgroupError> {
        if sub.is_empty() {
            return self.add_task(pid);
        }
        for ctrl in sub.keys().filter(|k| !k.is_empty()) {
            let known = self.hier.v1.iter().any(|h| h.controllers.iter().any(|c| c == ctrl));
            if !known && self.hier.layout != Layout::Unified {
                return Err(invalid(ctrl, "no such cgroup v1 controller on this host"));
            }
        }
        let v = pid.to_string();
        for h in &self.hier.v1 {
            let mut dir = h.mount.join(self.rel());
            if let Some(s) = h.controllers.iter().find_map(|c| sub.get(c)) {
                dir.push(s);
            }
            fsio::write(&dir.join("cgroup.procs"), &v)?;
        }
        if let Some(mut d) = self.unified_dir() {
            if self.hier.layout == Layout::Unified || d.is_dir() {
                let on_v2 = sub.get("").or_else(|| {
                    // On a pure v2 host a controller name selects the one hierarchy too.
                    (self.hier.layout == Layout::Unified).then(|| sub.values().next()).flatten()
                });
                if let Some(s) = on_v2 {
                    d.push(s);
                }
                fsio::write(&d.join("cgroup.procs"), &v)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test_case(&["sub"], Some(&[("", "sub")]) ; "bare path")]
    #[test_case(&["memory,pids:a/b", "cpu:c"], Some(&[("cpu", "c"), ("memory", "a/b"), ("pids", "a/b")]) ; "controllers")]
    #[test_case(&["a", "b"], None ; "two bare paths")]
    #[test_case(&["memory:a", "memory:b"], None ; "controller twice")]
    #[test_case(&["../escape"], None ; "dot dot")]
    #[test_case(&["/abs"], None ; "absolute")]
    #[test_case(&["a:b:c"], None ; "too many colons")]
    fn parses_like_runc(a: &[&str], want: Option<&[(&str, &str)]>) {
        let got = parse_sub_cgroups(&args(a)).ok();
        let want: Option<SubCgroups> =
            want.map(|w| w.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        assert_eq!(got, want);
    }
}
