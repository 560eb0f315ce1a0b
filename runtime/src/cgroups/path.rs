//! `linux.cgroupsPath` → the container's cgroup, an absolute path inside every hierarchy.

use std::path::PathBuf;

use super::CgroupError;

/// Resolve `cgroups_path` for container `id`: absolute as-is, relative under `own` (this
/// process's cgroup), absent → `/isorun/<id>`. The systemd form `slice:prefix:name` and `..`
/// components are rejected. The result is absolute, normalised, never `/`.
pub fn resolve(id: &str, cgroups_path: Option<&str>, own: &str) -> Result<String, CgroupError> {
    let invalid = |p: &str, reason: &str| CgroupError::InvalidPath {
        path: PathBuf::from(p),
        reason: reason.to_owned(),
    };
    let raw = match cgroups_path {
        None | Some("") => {
            if id.is_empty() || id.contains('/') || id == "." || id == ".." {
                return Err(invalid(id, "the container id cannot name a cgroup"));
            }
            format!("/isorun/{id}")
        }
        Some(p) if p.split(':').count() == 3 && !p.starts_with('/') => {
            return Err(invalid(p, "systemd cgroup paths are not supported (cgroupfs driver)"));
        }
        Some(p) if p.starts_with('/') => p.to_owned(),
        Some(p) => format!("{}/{p}", own.trim_end_matches('/')),
    };
    let mut out = String::with_capacity(raw.len());
    for comp in raw.split('/') {
        match comp {
            "" | "." => {}
            ".." => return Err(invalid(&raw, "`..` components are not allowed")),
            c => {
                out.push('/');
                out.push_str(c);
            }
        }
    }
    if out.is_empty() {
        return Err(invalid(&raw, "the root cgroup cannot be a container's cgroup"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("c1", None, "/", "/isorun/c1" ; "default")]
    #[test_case("c1", Some("/a/b"), "/user.slice", "/a/b" ; "absolute as is")]
    #[test_case("c1", Some("//a/./b/"), "/", "/a/b" ; "normalised")]
    #[test_case("c1", Some("a/b"), "/user.slice/s", "/user.slice/s/a/b" ; "relative to own")]
    #[test_case("c1", Some("a"), "/", "/a" ; "relative to root")]
    fn resolves(id: &str, p: Option<&str>, own: &str, want: &str) {
        assert_eq!(resolve(id, p, own).unwrap(), want);
    }

    #[test_case("c1", Some("system.slice:isorun:c1"), "systemd cgroup paths are not supported (cgroupfs driver)" ; "systemd")]
    #[test_case("c1", Some("/a/../b"), "`..` components" ; "dotdot abs")]
    #[test_case("c1", Some("../b"), "`..` components" ; "dotdot rel")]
    #[test_case("c1", Some("/"), "root cgroup" ; "root")]
    #[test_case("a/b", None, "container id" ; "bad id")]
    fn rejects(id: &str, p: Option<&str>, msg: &str) {
        let e = resolve(id, p, "/").unwrap_err().to_string();
        assert!(e.contains(msg), "{e}");
    }
}
