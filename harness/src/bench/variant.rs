//! Startup variants (`--variants default,docker,userns`): the bench bundle as it is
//! (`default`), with the seccomp profile and capabilities Docker 20.10 sends (`docker`), and
//! in a user namespace (`userns`). Each variant is its own bundle; a series is a runtime ×
//! variant, named `RUNTIME` for `default` (today's names) and `RUNTIME+VARIANT` otherwise.
//!
//! Docker's config is embedded with `include_str!` from `vm-images/engine-configs/docker.json`
//! (captured by `ci/capture-engine-configs`): a bench runs from any cwd, from an installed
//! `isolab` or on a bench host without the sources, and a path resolved at run time could
//! silently pick up a different file; embedding fixes the profile to the one this build was
//! made (and tested) with.

use serde_json::{json, Value};

/// Docker 20.10's config.json for `docker run IMAGE true` (paths and tag normalised).
pub const DOCKER_CONFIG: &str = include_str!("../../../vm-images/engine-configs/docker.json");

/// The user namespace's maps: container 0..65536 is host 100000..165536 (as the catalogue's
/// user assertions, harness/src/catalogue/user.rs).
pub const USERNS_HOST_BASE: u32 = 100_000;
/// The size of both maps.
pub const USERNS_MAP_SIZE: u32 = 65_536;

/// A bundle variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Variant {
    /// The bench bundle as it is (no seccomp, the spec's default capabilities).
    Default,
    /// `linux.seccomp` and `process.capabilities` replaced by Docker's.
    Docker,
    /// A user namespace with uid/gid maps 0 → 100000 (size 65536).
    Userns,
}

impl Variant {
    /// Every variant, in the order of the help text.
    pub const ALL: [Variant; 3] = [Variant::Default, Variant::Docker, Variant::Userns];

    /// Its name on the command line and in bench.json.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Default => "default",
            Variant::Docker => "docker",
            Variant::Userns => "userns",
        }
    }

    /// The series name of `runtime` in this variant: `runtime` for `default`, else
    /// `runtime+VARIANT`.
    pub fn series_name(self, runtime: &str) -> String {
        match self {
            Variant::Default => runtime.to_owned(),
            v => format!("{runtime}+{}", v.name()),
        }
    }

    /// The bundle directory name in the bench workspace.
    pub fn bundle_dir(self) -> String {
        match self {
            Variant::Default => "bundle".into(),
            v => format!("bundle-{}", v.name()),
        }
    }
}

/// Parses `--variants` (names, each at most once, at least one).
pub fn parse_variants(names: &[String]) -> Result<Vec<Variant>, String> {
    let mut out = Vec::new();
    for n in names {
        let n = n.trim();
        let v = Variant::ALL.into_iter().find(|v| v.name() == n).ok_or_else(|| {
            let all: Vec<&str> = Variant::ALL.iter().map(|v| v.name()).collect();
            format!("unknown variant {n:?} (expected one of {})", all.join(", "))
        })?;
        if out.contains(&v) {
            return Err(format!("variant {n:?} given twice"));
        }
        out.push(v);
    }
    if out.is_empty() {
        return Err("no variant given".into());
    }
    Ok(out)
}

/// Docker's config, parsed (the embedded file is checked by the tests).
pub fn docker_config() -> Result<Value, String> {
    serde_json::from_str(DOCKER_CONFIG).map_err(|e| format!("vm-images/engine-configs/docker.json: {e}"))
}

/// Applies `variant` to the bench's `spec` (pure): `docker` replaces `process.capabilities`
/// and `linux.seccomp` by `docker`'s and changes nothing else; `userns` adds a user namespace
/// and the uid/gid maps; `default` changes nothing.
pub fn apply(variant: Variant, spec: &mut Value, docker: &Value) -> Result<(), String> {
    match variant {
        Variant::Default => Ok(()),
        Variant::Docker => {
            let caps =
                docker.pointer("/process/capabilities").ok_or("docker.json: no process.capabilities")?;
            let seccomp = docker.pointer("/linux/seccomp").ok_or("docker.json: no linux.seccomp")?;
            let process =
                spec.get_mut("process").and_then(Value::as_object_mut).ok_or("no process object")?;
            process.insert("capabilities".into(), caps.clone());
            let linux = spec.get_mut("linux").and_then(Value::as_object_mut).ok_or("no linux object")?;
            linux.insert("seccomp".into(), seccomp.clone());
            Ok(())
        }
        Variant::Userns => {
            let linux = spec.get_mut("linux").and_then(Value::as_object_mut).ok_or("no linux object")?;
            let ns = linux
                .get_mut("namespaces")
                .and_then(Value::as_array_mut)
                .ok_or("no linux.namespaces array")?;
            if !ns.iter().any(|n| n["type"] == "user") {
                ns.push(json!({ "type": "user" }));
            }
            let map = json!([{ "containerID": 0, "hostID": USERNS_HOST_BASE, "size": USERNS_MAP_SIZE }]);
            linux.insert("uidMappings".into(), map.clone());
            linux.insert("gidMappings".into(), map);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    fn names(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test_case(&["default"] => Ok(vec![Variant::Default]); "default alone")]
    #[test_case(&["default", "docker", "userns"] => Ok(Variant::ALL.to_vec()); "all three")]
    #[test_case(&["userns", "default"] => Ok(vec![Variant::Userns, Variant::Default]); "order kept")]
    #[test_case(&[" docker"] => Ok(vec![Variant::Docker]); "spaces trimmed")]
    #[test_case(&["docker", "docker"] => Err("variant \"docker\" given twice".to_string()); "duplicate")]
    #[test_case(&["podman"] => Err("unknown variant \"podman\" (expected one of default, docker, userns)".to_string()); "unknown")]
    #[test_case(&[] => Err("no variant given".to_string()); "empty")]
    fn parses(v: &[&str]) -> Result<Vec<Variant>, String> {
        parse_variants(&names(v))
    }

    #[test_case(Variant::Default, "isorun" => "isorun"; "default keeps the name")]
    #[test_case(Variant::Docker, "isorun" => "isorun+docker"; "docker")]
    #[test_case(Variant::Userns, "runc" => "runc+userns"; "userns")]
    fn series_names(v: Variant, rt: &str) -> String {
        v.series_name(rt)
    }

    #[test_case(Variant::Default => "bundle"; "default bundle is today's")]
    #[test_case(Variant::Docker => "bundle-docker"; "docker")]
    #[test_case(Variant::Userns => "bundle-userns"; "userns")]
    fn bundle_dirs(v: Variant) -> String {
        v.bundle_dir()
    }

    /// A bench-like spec: runc's default capabilities, no seccomp, no user namespace.
    fn base() -> Value {
        json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": false, "args": ["/bin/true"], "cwd": "/",
                "capabilities": { "bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"] },
                "noNewPrivileges": true
            },
            "root": { "path": "rootfs", "readonly": true },
            "linux": {
                "namespaces": [{ "type": "pid" }, { "type": "mount" }, { "type": "cgroup" }],
                "maskedPaths": ["/proc/kcore"]
            }
        })
    }

    /// Everything but `process.capabilities` and `linux.seccomp` (and the user namespace
    /// keys), to compare.
    fn rest(s: &Value) -> Value {
        let mut s = s.clone();
        s["process"].as_object_mut().unwrap().remove("capabilities");
        let linux = s["linux"].as_object_mut().unwrap();
        linux.remove("seccomp");
        s
    }

    #[test]
    fn docker_replaces_seccomp_and_caps_and_nothing_else() {
        let docker = docker_config().unwrap();
        let mut s = base();
        apply(Variant::Docker, &mut s, &docker).unwrap();
        assert_eq!(s["process"]["capabilities"], docker["process"]["capabilities"]);
        assert_eq!(s["linux"]["seccomp"], docker["linux"]["seccomp"]);
        assert_eq!(rest(&s), rest(&base()));
        // The real profile: errno by default, Docker's 14 capabilities.
        assert_eq!(s["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(s["process"]["capabilities"]["bounding"].as_array().unwrap().len(), 14);
        assert_ne!(s["process"]["capabilities"], base()["process"]["capabilities"]);
    }

    #[test]
    fn docker_replaces_an_existing_profile() {
        let docker = json!({
            "process": { "capabilities": { "bounding": ["CAP_CHOWN"] } },
            "linux": { "seccomp": { "defaultAction": "SCMP_ACT_KILL" } }
        });
        let mut s = base();
        s["linux"]["seccomp"] = json!({ "defaultAction": "SCMP_ACT_ALLOW" });
        apply(Variant::Docker, &mut s, &docker).unwrap();
        assert_eq!(s["linux"]["seccomp"], json!({ "defaultAction": "SCMP_ACT_KILL" }));
        assert_eq!(s["process"]["capabilities"], json!({ "bounding": ["CAP_CHOWN"] }));
    }

    #[test_case(json!({ "linux": { "seccomp": {} } }) => Err("docker.json: no process.capabilities".to_string()); "no caps")]
    #[test_case(json!({ "process": { "capabilities": {} } }) => Err("docker.json: no linux.seccomp".to_string()); "no seccomp")]
    fn docker_config_must_have_both(docker: Value) -> Result<(), String> {
        apply(Variant::Docker, &mut base(), &docker)
    }

    #[test]
    fn userns_adds_the_namespace_and_maps_and_nothing_else() {
        let mut s = base();
        apply(Variant::Userns, &mut s, &Value::Null).unwrap();
        let map = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
        assert_eq!(s["linux"]["uidMappings"], map);
        assert_eq!(s["linux"]["gidMappings"], map);
        let types: Vec<&str> = s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["pid", "mount", "cgroup", "user"]);
        let mut expected = base();
        expected["linux"]["namespaces"].as_array_mut().unwrap().push(json!({ "type": "user" }));
        expected["linux"]["uidMappings"] = map.clone();
        expected["linux"]["gidMappings"] = map;
        assert_eq!(s, expected);
        // Applying twice does not add a second user namespace.
        apply(Variant::Userns, &mut s, &Value::Null).unwrap();
        assert_eq!(s, expected);
    }

    #[test]
    fn default_changes_nothing() {
        let mut s = base();
        apply(Variant::Default, &mut s, &Value::Null).unwrap();
        assert_eq!(s, base());
    }

    #[test]
    fn userns_needs_a_namespaces_array() {
        let mut s = json!({ "linux": {} });
        assert_eq!(
            apply(Variant::Userns, &mut s, &Value::Null),
            Err("no linux.namespaces array".to_string())
        );
    }
}
