//! The config every catalogue bundle starts from (`--base-config`): isolab's own
//! `base_config.json` (`spec`), or the config.json Docker, podman or containerd sent for a
//! plain `run IMAGE true` (`vm-images/engine-configs/`, embedded here), or a FILE (sent to
//! the guest as its contents). [`bundle_config`] is the one place that turns such a config
//! into a bundle's: it replaces only what is the bundle's own or names the engine's host.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// isolab's own base config.
pub const SPEC_JSON: &str = include_str!("base_config.json");
/// What Docker 20.10 sent (Debian 12).
pub const DOCKER_JSON: &str = include_str!("../../../vm-images/engine-configs/docker.json");
/// What podman 4.3 sent (Debian 12).
pub const PODMAN_JSON: &str = include_str!("../../../vm-images/engine-configs/podman.json");
/// What podman 4.3 sent when run by an unprivileged uid (Debian 12): no user namespace in
/// it, since rootless podman runs its runtime as root of its own ([`BaseConfig::is_rootless`]).
pub const PODMAN_ROOTLESS_JSON: &str = include_str!("../../../vm-images/engine-configs/podman-rootless.json");
/// What containerd 1.6 (`ctr run`) sent (Debian 12).
pub const CONTAINERD_JSON: &str = include_str!("../../../vm-images/engine-configs/containerd.json");

/// The captures' private dir (`ci/capture-engine-configs` normalises every engine path to it).
pub const CAPTURE_DIR: &str = "/capture";

/// The name of the default base config.
pub const SPEC: &str = "spec";

/// The name of the rootless base config (`--rootless`): podman's rootless config, the runtime
/// run as root of a user namespace owned by an unprivileged uid, as rootless podman runs it.
pub const PODMAN_ROOTLESS: &str = "podman-rootless";

/// A `--base-config` value could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BaseConfigError {
    /// The FILE could not be read.
    #[error(
        "--base-config {path}: not spec, docker, podman, containerd or podman-rootless, and not a readable file: {source}"
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The FILE (or the embedded text) is not a JSON object.
    #[error("--base-config {name}: not a JSON config object: {detail}")]
    NotJson {
        /// The base config's name.
        name: String,
        /// Why.
        detail: String,
    },
    /// An empty list.
    #[error("--base-config: no base config named")]
    Empty,
}

/// A base config: its label and, for a FILE, its contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseConfig {
    /// `spec`, `docker`, `podman`, `containerd`, or a FILE's stem (the cell label's last part).
    pub name: String,
    /// A FILE's JSON text (None for the embedded ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contents: Option<String>,
}

impl Default for BaseConfig {
    fn default() -> Self {
        Self::embedded(SPEC)
    }
}

fn embedded_text(name: &str) -> Option<&'static str> {
    match name {
        SPEC => Some(SPEC_JSON),
        "docker" => Some(DOCKER_JSON),
        "podman" => Some(PODMAN_JSON),
        "containerd" => Some(CONTAINERD_JSON),
        PODMAN_ROOTLESS => Some(PODMAN_ROOTLESS_JSON),
        _ => None,
    }
}

impl BaseConfig {
    fn embedded(name: &str) -> Self {
        Self { name: name.into(), contents: None }
    }

    /// `spec`, `docker`, `podman`, `containerd`, or the path of a config.json (read now).
    pub fn parse(arg: &str) -> Result<Self, BaseConfigError> {
        let arg = arg.trim();
        if embedded_text(arg).is_some() {
            return Ok(Self::embedded(arg));
        }
        let path = Path::new(arg);
        let text = std::fs::read_to_string(path)
            .map_err(|source| BaseConfigError::Read { path: path.into(), source })?;
        let stem =
            path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "file".into());
        // A FILE named like an embedded one must not pass for it in the results.
        let name = if embedded_text(&stem).is_some() { format!("file-{stem}") } else { stem };
        let me = Self { name, contents: Some(text) };
        me.json()?;
        Ok(me)
    }

    /// A comma-separated list (a matrix dimension), duplicates dropped.
    pub fn parse_list(s: &str) -> Result<Vec<Self>, BaseConfigError> {
        let mut out: Vec<Self> = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let b = Self::parse(part)?;
            if !out.contains(&b) {
                out.push(b);
            }
        }
        if out.is_empty() {
            return Err(BaseConfigError::Empty);
        }
        Ok(out)
    }

    /// The rootless base config (`--rootless` adds it to the list).
    pub fn podman_rootless() -> Self {
        Self::embedded(PODMAN_ROOTLESS)
    }

    /// Whether bundles made from this base run rootless: the runtime as root of a user
    /// namespace owned by an unprivileged uid (the embedded `podman-rootless` only).
    pub fn is_rootless(&self) -> bool {
        self.name == PODMAN_ROOTLESS && self.contents.is_none()
    }

    /// Whether this is isolab's own base (the cell labels leave it out).
    pub fn is_spec(&self) -> bool {
        self.name == SPEC && self.contents.is_none()
    }

    /// The config as the engine (or isolab) wrote it.
    pub fn json(&self) -> Result<Value, BaseConfigError> {
        let text = match (&self.contents, embedded_text(&self.name)) {
            (Some(t), _) => t.as_str(),
            (None, Some(t)) => t,
            (None, None) => {
                return Err(BaseConfigError::NotJson {
                    name: self.name.clone(),
                    detail: "no such embedded base config and no contents".into(),
                })
            }
        };
        let v: Value = serde_json::from_str(text)
            .map_err(|e| BaseConfigError::NotJson { name: self.name.clone(), detail: e.to_string() })?;
        if !v.is_object() {
            return Err(BaseConfigError::NotJson { name: self.name.clone(), detail: "not an object".into() });
        }
        Ok(v)
    }
}

fn under_capture(source: &str) -> bool {
    source == CAPTURE_DIR || source.starts_with(&format!("{CAPTURE_DIR}/"))
}

/// The options of a bind mount that make no sense on the tmpfs replacing it.
const BIND_ONLY: &[&str] = &["bind", "rbind", "rprivate", "private", "rslave", "slave", "rshared", "shared"];

/// The bundle config for `args` on `rootfs` made from a base config. Replaced, and nothing else:
/// - `root.path` (the catalogue's rootfs; `root.readonly` stays as the base says);
/// - `process.args`;
/// - `hooks` (removed: an engine's hooks call its own binaries);
/// - `linux.cgroupsPath` (removed: it names the engine's parent cgroup; the runtime's default);
/// - `linux.namespaces[].path` (removed: podman's named netns; a new namespace instead);
/// - `linux.seccomp.listenerPath` and `listenerMetadata` (removed: the engine's agent socket);
/// - mounts whose source is under [`CAPTURE_DIR`] (the engine's per-container files:
///   `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`, `/run/.containerenv` are dropped;
///   podman's bind-mounted `/dev/shm` becomes a tmpfs with its options, mode 1777 and
///   podman's default 64 MiB).
pub fn bundle_config(base: &Value, rootfs: &Path, args: &[&str]) -> Value {
    let mut cfg = base.clone();
    cfg["process"]["args"] = json!(args);
    cfg["root"]["path"] = json!(rootfs);
    let Some(top) = cfg.as_object_mut() else { return cfg };
    top.remove("hooks");
    if let Some(linux) = top.get_mut("linux").and_then(Value::as_object_mut) {
        linux.remove("cgroupsPath");
        if let Some(seccomp) = linux.get_mut("seccomp").and_then(Value::as_object_mut) {
            seccomp.remove("listenerPath");
            seccomp.remove("listenerMetadata");
        }
        for ns in linux.get_mut("namespaces").and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(ns) = ns.as_object_mut() {
                ns.remove("path");
            }
        }
    }
    if let Some(mounts) = top.get_mut("mounts").and_then(Value::as_array_mut) {
        let old = std::mem::take(mounts);
        mounts.extend(old.into_iter().filter_map(|m| {
            let engine_file = m["source"].as_str().is_some_and(under_capture);
            if !engine_file {
                return Some(m);
            }
            (m["destination"] == "/dev/shm").then(|| shm_tmpfs(&m))
        }));
    }
    cfg
}

fn shm_tmpfs(bind: &Value) -> Value {
    let mut options: Vec<Value> = bind["options"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| !o.as_str().is_some_and(|o| BIND_ONLY.contains(&o)))
        .cloned()
        .collect();
    options.extend([json!("mode=1777"), json!("size=65536k")]);
    json!({ "destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": options })
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    const ROOTFS: &str = "/work/rootfs";

    fn made(name: &str) -> (Value, Value) {
        let base = BaseConfig::parse(name).unwrap().json().unwrap();
        let cfg = bundle_config(&base, Path::new(ROOTFS), &["sh", "-c", "echo hi"]);
        (base, cfg)
    }

    /// The fields outside the documented list are the engine's, byte for byte.
    #[test_case("spec")]
    #[test_case("docker")]
    #[test_case("podman")]
    #[test_case("containerd")]
    #[test_case("podman-rootless")]
    fn the_engine_parts_reach_the_bundle_unchanged(name: &str) {
        let (base, cfg) = made(name);
        for ptr in [
            "/process/capabilities",
            "/process/rlimits",
            "/process/noNewPrivileges",
            "/process/env",
            "/process/user",
            "/process/cwd",
            "/root/readonly",
            "/linux/seccomp/defaultAction",
            "/linux/seccomp/defaultErrnoRet",
            "/linux/seccomp/architectures",
            "/linux/seccomp/syscalls",
            "/linux/maskedPaths",
            "/linux/readonlyPaths",
            "/linux/resources",
            "/linux/sysctl",
            "/linux/devices",
            "/hostname",
            "/annotations",
            "/ociVersion",
        ] {
            assert_eq!(
                serde_json::to_string(&base.pointer(ptr)).unwrap(),
                serde_json::to_string(&cfg.pointer(ptr)).unwrap(),
                "{name}: {ptr}"
            );
        }
        assert_eq!(cfg["root"]["path"], ROOTFS);
        assert_eq!(cfg["process"]["args"], json!(["sh", "-c", "echo hi"]));
        // Nothing else differs: put the documented fields back and compare the whole config.
        let mut back = cfg.clone();
        back["root"]["path"] = base["root"]["path"].clone();
        back["process"]["args"] = base["process"]["args"].clone();
        for (ptr, field) in [("", "hooks"), ("/linux", "cgroupsPath")] {
            if let Some(v) = base.pointer(&format!("{ptr}/{field}")) {
                back.pointer_mut(ptr).unwrap()[field] = v.clone();
            }
        }
        back["linux"]["namespaces"] = base["linux"]["namespaces"].clone();
        back["mounts"] = base["mounts"].clone();
        assert_eq!(back, base, "{name}: only the documented fields differ");
    }

    #[test_case("spec", &[], &[], true; "spec keeps everything")]
    #[test_case("docker", &["/etc/resolv.conf", "/etc/hostname", "/etc/hosts"], &[], false; "docker")]
    #[test_case("podman", &["/etc/hostname", "/etc/resolv.conf", "/etc/hosts", "/run/.containerenv"], &["/dev/shm"], false; "podman")]
    #[test_case("containerd", &[], &[], false; "containerd")]
    #[test_case("podman-rootless", &["/etc/hosts", "/run/.containerenv", "/etc/hostname"], &["/dev/shm"], false; "podman rootless")]
    fn the_engine_host_paths_are_replaced(name: &str, dropped: &[&str], to_tmpfs: &[&str], readonly: bool) {
        let (base, cfg) = made(name);
        let dests = |c: &Value| -> Vec<String> {
            c["mounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["destination"].as_str().unwrap().to_owned())
                .collect()
        };
        let mut want = dests(&base);
        want.retain(|d| !dropped.contains(&d.as_str()));
        assert_eq!(dests(&cfg), want, "{name}: mounts kept, in order");
        // A kept mount is the engine's byte for byte unless it is one turned into a tmpfs.
        let kept: Vec<&Value> = base["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| !dropped.contains(&m["destination"].as_str().unwrap()))
            .collect();
        for (got, engine) in cfg["mounts"].as_array().unwrap().iter().zip(kept) {
            if !to_tmpfs.contains(&got["destination"].as_str().unwrap()) {
                assert_eq!(got, engine, "{name}");
            }
        }
        let text = serde_json::to_string(&cfg).unwrap();
        assert!(!text.contains("\"/capture"), "{name}: an engine path is left: {text}");
        assert!(cfg.get("hooks").is_none() && cfg["linux"].get("cgroupsPath").is_none(), "{name}");
        assert!(cfg["linux"]["namespaces"].as_array().unwrap().iter().all(|n| n.get("path").is_none()));
        assert_eq!(
            base["linux"]["namespaces"].as_array().unwrap().len(),
            cfg["linux"]["namespaces"].as_array().unwrap().len(),
            "{name}: the same namespaces"
        );
        for d in to_tmpfs {
            let m = cfg["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == *d).unwrap();
            assert_eq!(m["type"], "tmpfs", "{name}: {d}");
            assert_eq!(m["options"], json!(["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]));
        }
        assert_eq!(cfg["root"]["readonly"].as_bool().unwrap_or(false), readonly, "{name}");
    }

    #[test]
    fn the_spec_base_makes_the_config_the_catalogue_always_used() {
        let mut old: Value = serde_json::from_str(SPEC_JSON).unwrap();
        old["process"]["args"] = json!(["true"]);
        old["root"]["path"] = json!(ROOTFS);
        let cfg = bundle_config(&BaseConfig::default().json().unwrap(), Path::new(ROOTFS), &["true"]);
        assert_eq!(cfg, old);
    }

    #[test]
    fn listener_paths_and_hooks_go() {
        let base = json!({
            "hooks": { "prestart": [{ "path": "/usr/bin/dockerd" }] },
            "linux": { "seccomp": { "defaultAction": "SCMP_ACT_ERRNO", "listenerPath": "/run/x.sock",
                                    "listenerMetadata": "m" } },
            "mounts": [{ "destination": "/x", "source": "/capturex/a", "type": "bind" }]
        });
        let cfg = bundle_config(&base, Path::new(ROOTFS), &["true"]);
        assert_eq!(cfg["linux"]["seccomp"], json!({ "defaultAction": "SCMP_ACT_ERRNO" }));
        assert!(cfg.get("hooks").is_none());
        assert_eq!(cfg["mounts"].as_array().unwrap().len(), 1, "/capturex is not the capture dir");
    }

    #[test_case("spec,docker,spec", &["spec", "docker"])]
    #[test_case(" podman , containerd", &["podman", "containerd"])]
    #[test_case("spec,podman-rootless", &["spec", "podman-rootless"])]
    fn lists_parse(s: &str, want: &[&str]) {
        let got: Vec<String> = BaseConfig::parse_list(s).unwrap().into_iter().map(|b| b.name).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_file_is_carried_as_its_contents_and_named_by_its_stem() {
        let dir = std::env::temp_dir().join(format!("isolab-base-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (mine, docker, bad) = (dir.join("mine.json"), dir.join("docker.json"), dir.join("bad.json"));
        std::fs::write(&mine, DOCKER_JSON).unwrap();
        std::fs::write(&docker, DOCKER_JSON).unwrap();
        std::fs::write(&bad, "[1]").unwrap();
        let b = BaseConfig::parse(mine.to_str().unwrap()).unwrap();
        assert_eq!((b.name.as_str(), b.contents.as_deref()), ("mine", Some(DOCKER_JSON)));
        assert!(!b.is_spec());
        assert_eq!(BaseConfig::parse(docker.to_str().unwrap()).unwrap().name, "file-docker");
        assert!(matches!(BaseConfig::parse(bad.to_str().unwrap()), Err(BaseConfigError::NotJson { .. })));
        assert!(matches!(BaseConfig::parse("/nonexistent/x.json"), Err(BaseConfigError::Read { .. })));
        assert!(matches!(BaseConfig::parse_list(" , "), Err(BaseConfigError::Empty)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
