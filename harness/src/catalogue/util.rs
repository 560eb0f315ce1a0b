//! Small helpers the assertions share: config edits used by checks and negative controls.

use serde_json::{json, Value};

/// Early-return the verdict of a failed step: `let out = v!(ctx.run_ok(cfg));`.
#[macro_export]
macro_rules! v {
    ($e:expr) => {
        match $e {
            Ok(x) => x,
            Err(verdict) => return verdict,
        }
    };
}

/// Remove the namespace of `kind` from the config (a negative control).
pub fn drop_namespace(cfg: &mut Value, kind: &str) {
    if let Some(list) = cfg["linux"]["namespaces"].as_array_mut() {
        list.retain(|ns| ns["type"] != kind);
    }
}

/// Add a namespace of `kind` (new, no path) if absent.
pub fn add_namespace(cfg: &mut Value, kind: &str) {
    if let Some(list) = cfg["linux"]["namespaces"].as_array_mut() {
        if !list.iter().any(|ns| ns["type"] == kind) {
            list.push(json!({ "type": kind }));
        }
    }
}

/// Add a capability to the bounding, effective and permitted sets.
pub fn add_cap(cfg: &mut Value, cap: &str) {
    for set in ["bounding", "effective", "permitted"] {
        if let Some(list) = cfg["process"]["capabilities"][set].as_array_mut() {
            if !list.iter().any(|c| c == cap) {
                list.push(json!(cap));
            }
        } else {
            cfg["process"]["capabilities"][set] = json!([cap]);
        }
    }
}

/// Append a mount entry.
pub fn add_mount(cfg: &mut Value, mount: Value) {
    if let Some(list) = cfg["mounts"].as_array_mut() {
        list.push(mount);
    }
}

/// A negative control that changes nothing (for assertions whose control lives in the check).
pub fn unchanged(_: &mut Value) {}

/// The NSpid line of `/proc/<pid>/status`: the pid in each nested pid namespace.
pub fn nspid(pid: i32) -> Vec<i64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|v| v.split_whitespace().filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default()
}

/// A host process that lives until dropped (a target for cross-namespace checks).
#[derive(Debug)]
pub struct HostSleeper(pub std::process::Child);

impl HostSleeper {
    /// Start `sleep 300` on this side.
    pub fn start() -> std::io::Result<Self> {
        std::process::Command::new("sleep").arg("300").spawn().map(HostSleeper)
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for HostSleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The value of `key:` in `/proc/<pid>/status` (e.g. `Uid`, `CapEff`, `NoNewPrivs`), trimmed.
pub fn status_field(pid: i32, key: &str) -> Option<String> {
    let path = if pid > 0 { format!("/proc/{pid}/status") } else { "/proc/self/status".into() };
    let status = std::fs::read_to_string(path).ok()?;
    status.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(|v| v.trim().to_owned()))
}

/// Lazily unmount `point` and everything under it (MNT_DETACH); errors are ignored (cleanup).
pub fn detach(point: &str) {
    let Ok(c) = std::ffi::CString::new(point) else { return };
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call; umount2 only reads it.
    unsafe {
        libc::umount2(c.as_ptr(), libc::MNT_DETACH);
    }
}
