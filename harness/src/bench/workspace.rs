//! The bench's private world: runtimes resolved by name or path, one busybox bundle per
//! variant shared by all of them in a temp dir, and a private `--root` per runtime (and the
//! pid files) in a temp dir on a tmpfs where there is one ([`super::state_dir`]), both
//! removed at the end.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use super::state_dir;
use super::variant::{self, Variant};
use super::{io_err, BenchError};

/// A runtime to compare: its display name and its binary, or why it cannot be used.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// Display name (`isorun`, `runc`, `crun`, or the file name of a path).
    pub name: String,
    /// The binary, or the reason it was not found.
    pub path: Result<PathBuf, String>,
    /// The floor program (`isolab-floor ROOTFS CGROUP`, see [`super::floor`]), not an OCI
    /// runtime.
    pub floor: bool,
}

/// Resolves `names` (`isorun`, `floor`, a name on PATH, or a path); `isorun` is the binary
/// given, `floor` the floor program ([`super::floor::locate`]).
pub fn resolve_runtimes(names: &[String], isorun: Result<PathBuf, String>) -> Vec<Runtime> {
    names
        .iter()
        .map(|n| {
            let name =
                Path::new(n).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or(n.clone());
            let floor = n == super::floor::NAME;
            let path = if n == "isorun" {
                isorun.clone()
            } else if floor {
                super::floor::locate()
            } else if n.contains('/') {
                Some(PathBuf::from(n)).filter(|p| p.is_file()).ok_or_else(|| format!("{n}: no such file"))
            } else {
                find_on_path(n).ok_or_else(|| format!("{n}: not found on PATH, /usr/sbin or /sbin"))
            };
            // Absolute: the bench runs `spec` in the bundle directory.
            let path = path.map(|p| std::fs::canonicalize(&p).unwrap_or(p));
            Runtime { name, path, floor }
        })
        .collect()
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

/// The temp dir with the bundles (one per variant), and the one with the state roots.
#[derive(Debug)]
pub struct Workspace {
    dir: tempfile::TempDir,
    /// The state roots' and pid files' temp dir; `None`: they are in `dir`.
    state: Option<tempfile::TempDir>,
    /// Where the state roots are and on which filesystem: `PATH (FSTYPE)`.
    state_roots: String,
}

impl Workspace {
    /// Makes the default bundle: a busybox rootfs and the `spec` of `spec_runtime`, terminal
    /// off, `args`, a cgroup namespace added (all namespaces but user), ociVersion 1.0.2 (the
    /// newest every runtime compared here accepts: crun 1.8.1 rejects 1.3.0); then one bundle
    /// per other variant in `variants`: its own copy of the rootfs and that config with the
    /// variant applied ([`variant::apply`]). With `userns` the workspace dir gets o+x, so the
    /// mapped root (an "other" on the host) can reach its rootfs (as the catalogue's user
    /// assertions do); the rootfs itself is world-readable and needs no chown. The state
    /// roots go in a temp dir under `state_parent` (`--state-dir`), else where
    /// [`state_dir::choose`] finds a tmpfs.
    pub fn new(
        spec_runtime: &Path,
        busybox: &Path,
        (args, variants): (&[&str], &[Variant]),
        state_parent: Option<&Path>,
    ) -> Result<Self, BenchError> {
        let dir = temp_dir_in(Path::new("/tmp"), "isolab-bench")?;
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let state = match state_dir::choose(state_parent, &mountinfo) {
            Some(parent) => Some(temp_dir_in(&parent, "isolab-bench-state")?),
            None => None,
        };
        let state_roots = state_dir::describe(&mountinfo, state.as_ref().unwrap_or(&dir).path());
        let ws = Workspace { dir, state, state_roots };
        let base = ws.bundle(Variant::Default);
        make_rootfs(&base.join("rootfs"), busybox)?;
        let mut spec = Command::new(spec_runtime);
        spec.arg("spec").current_dir(&base);
        let out = super::guard::run(&mut spec)?;
        if !out.status.success() {
            return Err(BenchError::Failed {
                cmd: super::guard::describe(&spec),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        ws.set_args(args)?;
        let config = base.join("config.json");
        let base_spec = read_spec(&config)?;
        let docker = variant::docker_config().map_err(|reason| BenchError::Config {
            path: "vm-images/engine-configs/docker.json".into(),
            reason,
        })?;
        for &v in variants.iter().filter(|v| **v != Variant::Default) {
            let bundle = ws.bundle(v);
            make_rootfs(&bundle.join("rootfs"), busybox)?;
            let mut s = base_spec.clone();
            let path = bundle.join("config.json");
            variant::apply(v, &mut s, &docker)
                .map_err(|reason| BenchError::Config { path: path.clone(), reason })?;
            write_spec(&path, &s)?;
            if v == Variant::Userns {
                make_traversable(ws.dir.path())?;
            }
        }
        Ok(ws)
    }

    /// Rewrites the default bundle's config.json for `args` (the same edits as
    /// [`Workspace::new`]).
    pub fn set_args(&self, args: &[&str]) -> Result<(), BenchError> {
        let path = self.bundle(Variant::Default).join("config.json");
        let mut spec = read_spec(&path)?;
        edit_spec(&mut spec, args).map_err(|reason| BenchError::Config { path: path.clone(), reason })?;
        write_spec(&path, &spec)
    }

    /// The bundle directory of `variant`.
    pub fn bundle(&self, variant: Variant) -> PathBuf {
        self.dir.path().join(variant.bundle_dir())
    }

    /// The private state root of series number `i`.
    pub fn root(&self, i: usize) -> PathBuf {
        self.state_base().join(format!("root-{i}"))
    }

    /// A file a runtime writes (a pid file), beside the state roots.
    pub fn file(&self, name: &str) -> PathBuf {
        self.state_base().join(name)
    }

    /// Where the state roots are, and on which filesystem: `PATH (FSTYPE)`.
    pub fn describe_state(&self) -> &str {
        &self.state_roots
    }

    fn state_base(&self) -> &Path {
        self.state.as_ref().unwrap_or(&self.dir).path()
    }
}

/// A fresh temp dir `PREFIX-<pid>-…` in `parent`, registered for removal on an interrupt.
fn temp_dir_in(parent: &Path, prefix: &str) -> Result<tempfile::TempDir, BenchError> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("{prefix}-{}-", std::process::id()))
        .tempdir_in(parent)
        .map_err(io_err("create temp dir in", parent))?;
    super::guard::register_dir(dir.path());
    Ok(dir)
}

/// A busybox rootfs at `rootfs`: bin/busybox and its applets, empty mount points.
fn make_rootfs(rootfs: &Path, busybox: &Path) -> Result<(), BenchError> {
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin).map_err(io_err("create", &bin))?;
    std::fs::copy(busybox, bin.join("busybox")).map_err(io_err("copy", busybox))?;
    for applet in ["sh", "true", "sleep", "cat", "ls"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet))
            .map_err(io_err("symlink", bin.join(applet)))?;
    }
    for d in ["proc", "sys", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(rootfs.join(d)).map_err(io_err("create", rootfs.join(d)))?;
    }
    Ok(())
}

fn read_spec(path: &Path) -> Result<Value, BenchError> {
    let text = std::fs::read(path).map_err(io_err("read", path))?;
    serde_json::from_slice(&text)
        .map_err(|e| BenchError::Config { path: path.to_owned(), reason: e.to_string() })
}

fn write_spec(path: &Path, spec: &Value) -> Result<(), BenchError> {
    let bytes = serde_json::to_vec_pretty(spec).unwrap_or_default();
    std::fs::write(path, bytes).map_err(io_err("write", path))
}

/// Adds o+x to `dir` (a temp dir is 0700).
fn make_traversable(dir: &Path) -> Result<(), BenchError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir).map_err(io_err("stat", dir))?.permissions().mode();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode((mode | 0o001) & 0o7777))
        .map_err(io_err("chmod o+x", dir))
}

/// The bench's edits of a runtime's default spec (pure): no terminal, `args`, every
/// namespace but user (cgroup added when missing), ociVersion 1.0.2.
pub fn edit_spec(spec: &mut Value, args: &[&str]) -> Result<(), String> {
    let process = spec.get_mut("process").and_then(Value::as_object_mut).ok_or("no process object")?;
    process.insert("terminal".into(), json!(false));
    process.insert("args".into(), json!(args));
    spec["ociVersion"] = json!("1.0.2");
    let ns = spec
        .pointer_mut("/linux/namespaces")
        .and_then(Value::as_array_mut)
        .ok_or("no linux.namespaces array")?;
    for ty in ["pid", "network", "ipc", "uts", "mount", "cgroup"] {
        if !ns.iter().any(|n| n["type"] == ty) {
            ns.push(json!({ "type": ty }));
        }
    }
    ns.retain(|n| n["type"] != "user");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_a_runc_like_spec() {
        let mut s = json!({
            "ociVersion": "1.3.0",
            "process": { "terminal": true, "args": ["sh"] },
            "linux": { "namespaces": [{ "type": "pid" }, { "type": "mount" }, { "type": "user" }] }
        });
        edit_spec(&mut s, &["/bin/true"]).unwrap();
        assert_eq!(s["process"]["terminal"], json!(false));
        assert_eq!(s["process"]["args"], json!(["/bin/true"]));
        assert_eq!(s["ociVersion"], json!("1.0.2"));
        let types: Vec<&str> = s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["pid", "mount", "network", "ipc", "uts", "cgroup"]);
    }

    #[test]
    fn rejects_a_spec_without_namespaces() {
        let mut s = json!({ "process": {}, "linux": {} });
        assert_eq!(edit_spec(&mut s, &["true"]), Err("no linux.namespaces array".to_string()));
    }

    #[test]
    fn unknown_runtime_is_reported_not_dropped() {
        let r = resolve_runtimes(&["isorun".into(), "no-such-runtime-xyz".into()], Err("not built".into()));
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].path, Err("not built".to_string()));
        assert!(r[1].path.as_ref().unwrap_err().contains("no-such-runtime-xyz"));
    }
}
