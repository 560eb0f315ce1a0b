//! Validation of the config's top level (version, root, hostname, mounts, hooks,
//! annotations) on the raw JSON tree, so that every problem is reported with its path.
//! `process` lives in `process.rs`, `linux` in `linux.rs` and its neighbours.

use serde_json::{Map, Value};

use super::idmap::{check_id_map, IdMapEntry};
use super::linux::{self, Namespaces};
use super::mount_options::parse_mount_options;
use super::names::HOOK_KINDS;
use super::process;
use super::report::{field, get, index, map_key, quote, Report};

/// Path used for problems with the document as a whole.
pub(crate) const DOCUMENT: &str = "(json)";

/// Longest hostname/domainname the kernel accepts (`__NEW_UTS_LEN`).
const MAX_UTS_NAME: usize = 64;

/// Validates the whole document, recording every problem in `r`.
pub(crate) fn validate(root: &Value, r: &mut Report) {
    let Some(doc) = r.object(root, DOCUMENT) else { return };
    let linux = r.object_at(doc, "", "linux");
    // Read first (other rules depend on it), reported in document order with `linux`.
    let mut ns_report = Report::default();
    let ns = linux::namespaces(linux, &mut ns_report);
    version(doc, r);
    root_fs(doc, r);
    process::validate(doc, r);
    uts_names(doc, &ns, r);
    mounts(doc, &ns, r);
    hooks(doc, r);
    annotations(doc, r);
    r.errors.append(&mut ns_report.errors);
    if let Some(linux) = linux {
        linux::validate(linux, doc, &ns, r);
    }
}

fn version(doc: &Map<String, Value>, r: &mut Report) {
    if !r.require(doc, "", "ociVersion") {
        return;
    }
    if let Some(v) = r.str_at(doc, "", "ociVersion") {
        if let Err(reason) = check_version(v) {
            r.error("ociVersion", reason);
        }
    }
}

/// Accepts SemVer versions 1.0.x to 1.3.x, with optional pre-release and build suffixes.
pub(crate) fn check_version(v: &str) -> Result<(), String> {
    let not_semver = || format!("{} is not a SemVer version (MAJOR.MINOR.PATCH)", quote(v));
    let (rest, build) = v.split_once('+').map_or((v, None), |(a, b)| (a, Some(b)));
    let (core, pre) = rest.split_once('-').map_or((rest, None), |(a, b)| (a, Some(b)));
    let ident = |s: &str| {
        !s.is_empty()
            && s.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    };
    let number = |p: &&str| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (p.len() == 1 || !p.starts_with('0'))
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() != 3 || !parts.iter().all(number) || !pre.is_none_or(ident) || !build.is_none_or(ident) {
        return Err(not_semver());
    }
    if parts[0] == "1" && matches!(parts[1], "0" | "1" | "2" | "3") {
        Ok(())
    } else {
        Err(format!("unsupported version {}: this runtime implements runtime-spec 1.0 to 1.3", quote(v)))
    }
}

fn root_fs(doc: &Map<String, Value>, r: &mut Report) {
    if !r.require(doc, "", "root") {
        return;
    }
    let Some(root) = r.object_at(doc, "", "root") else { return };
    if r.require(root, "root", "path") {
        if let Some(path) = r.str_at(root, "root", "path") {
            if path.is_empty() {
                r.error("root.path", "must not be empty");
            } else if path.contains('\0') {
                r.error("root.path", "contains a NUL byte");
            }
        }
    }
    r.bool_at(root, "root", "readonly");
}

fn uts_names(doc: &Map<String, Value>, ns: &Namespaces, r: &mut Report) {
    for key in ["hostname", "domainname"] {
        let Some(name) = r.str_at(doc, "", key) else { continue };
        if name.is_empty() {
            continue; // runc: empty means "leave it alone"
        }
        if name.len() > MAX_UTS_NAME {
            r.error(key, format!("{} bytes long, the kernel allows at most {MAX_UTS_NAME}", name.len()));
        }
        if name.contains('\0') {
            r.error(key, "contains a NUL byte");
        }
        if !ns.contains("uts") {
            r.error(key, format!("setting the {key} requires a uts namespace in linux.namespaces"));
        }
    }
}

fn mounts(doc: &Map<String, Value>, ns: &Namespaces, r: &mut Report) {
    let Some(mounts) = r.array_at(doc, "", "mounts") else { return };
    for (i, m) in mounts.iter().enumerate() {
        let path = index("mounts", i);
        let Some(m) = r.object(m, &path) else { continue };
        if r.require(m, &path, "destination") {
            if let Some(dest) = r.str_at(m, &path, "destination") {
                let at = field(&path, "destination");
                if dest.is_empty() {
                    r.error(at, "must not be empty");
                } else if dest.contains('\0') {
                    r.error(at, "contains a NUL byte");
                } else if !dest.starts_with('/') {
                    // runtime-spec 1.1+ and runc: deprecated but accepted, relative to "/".
                    r.warn(
                        at,
                        format!(
                            "relative destination {} is deprecated; it is taken relative to /",
                            quote(dest)
                        ),
                    );
                }
            }
        }
        r.str_at(m, &path, "source");
        let fstype = r.str_at(m, &path, "type");
        let options: Vec<&str> =
            r.strings_at(m, &path, "options").unwrap_or_default().into_iter().map(|(_, s)| s).collect();
        let parsed = parse_mount_options(&options);
        if !parsed.bind && fstype.is_none_or(str::is_empty) {
            r.error(
                field(&path, "type"),
                "required for a mount that is not a bind mount (no bind or rbind option)",
            );
        }
        let uid = id_mappings(m, &path, "uidMappings", r);
        let gid = id_mappings(m, &path, "gidMappings", r);
        match (uid.is_some(), gid.is_some()) {
            (true, false) => r.error(field(&path, "gidMappings"), "required when uidMappings is set"),
            (false, true) => r.error(field(&path, "uidMappings"), "required when gidMappings is set"),
            (false, false) if parsed.idmap.is_some() && !ns.contains("user") => r.error(
                field(&path, "options"),
                "idmap/ridmap needs uidMappings and gidMappings on the mount or a user namespace",
            ),
            _ => {}
        }
    }
}

/// Reads and checks the id map at `parent.key` (a mount's or `linux`'s). Returns the entries
/// that were well-typed; `None` when the member is absent.
pub(crate) fn id_mappings(
    obj: &Map<String, Value>,
    parent: &str,
    key: &str,
    r: &mut Report,
) -> Option<Vec<IdMapEntry>> {
    let items = r.array_at(obj, parent, key)?;
    let base = field(parent, key);
    let mut entries = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = index(&base, i);
        let Some(m) = r.object(item, &path) else { continue };
        let present = ["containerID", "hostID", "size"].map(|k| r.require(m, &path, k));
        let (c, h, s) =
            (r.u32_at(m, &path, "containerID"), r.u32_at(m, &path, "hostID"), r.u32_at(m, &path, "size"));
        if let (true, Some(container_id), Some(host_id), Some(size)) = (present.iter().all(|p| *p), c, h, s) {
            entries.push(IdMapEntry { container_id, host_id, size });
        }
    }
    // The kernel rules are checked once every entry is well-typed (so indices line up).
    if entries.len() == items.len() {
        for problem in check_id_map(&entries) {
            r.error(problem.index.map_or_else(|| base.clone(), |i| index(&base, i)), problem.reason);
        }
    }
    Some(entries)
}

fn hooks(doc: &Map<String, Value>, r: &mut Report) {
    let Some(hooks) = r.object_at(doc, "", "hooks") else { return };
    for kind in hooks.keys() {
        let base = field("hooks", kind);
        if !HOOK_KINDS.contains(&kind.as_str()) {
            r.warn(map_key("hooks", kind), "unknown hook kind, ignored");
            continue;
        }
        let Some(list) = r.array_at(hooks, "hooks", kind) else { continue };
        for (i, hook) in list.iter().enumerate() {
            let path = index(&base, i);
            let Some(hook) = r.object(hook, &path) else { continue };
            if r.require(hook, &path, "path") {
                if let Some(p) = r.str_at(hook, &path, "path") {
                    if !p.starts_with('/') {
                        r.error(field(&path, "path"), format!("must be an absolute path, got {}", quote(p)));
                    }
                }
            }
            r.strings_at(hook, &path, "args");
            r.strings_at(hook, &path, "env");
            if let Some(timeout) = r.i64_at(hook, &path, "timeout") {
                if timeout <= 0 {
                    r.error(field(&path, "timeout"), format!("must be greater than zero, got {timeout}"));
                }
            }
        }
    }
}

fn annotations(doc: &Map<String, Value>, r: &mut Report) {
    let Some(annotations) = r.object_at(doc, "", "annotations") else { return };
    for (key, value) in annotations {
        let path = map_key("annotations", key);
        if key.is_empty() {
            r.error(&path, "annotation keys must not be empty");
        }
        if get(annotations, key).is_some() {
            r.string(value, &path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("1.0.0" ; "1.0.0")]
    #[test_case("1.0.2-dev" ; "runc spec")]
    #[test_case("1.1.0" ; "1.1")]
    #[test_case("1.2.1" ; "1.2")]
    #[test_case("1.3.0+build.5" ; "build metadata")]
    #[test_case("1.0.0-rc.1" ; "pre release")]
    fn supported_versions(v: &str) {
        assert_eq!(check_version(v), Ok(()));
    }

    #[test_case("1.4.0", "unsupported" ; "too new")]
    #[test_case("2.0.0", "unsupported" ; "major 2")]
    #[test_case("0.5.0-dev", "unsupported" ; "pre 1.0")]
    #[test_case("1.0", "not a SemVer" ; "two parts")]
    #[test_case("1.01.0", "not a SemVer" ; "leading zero")]
    #[test_case("", "not a SemVer" ; "empty")]
    #[test_case("1.0.0-", "not a SemVer" ; "dangling dash")]
    #[test_case("v1.0.0", "not a SemVer" ; "v prefix")]
    fn rejected_versions(v: &str, reason: &str) {
        let err = check_version(v).unwrap_err();
        assert!(err.contains(reason), "{err}");
    }
}
