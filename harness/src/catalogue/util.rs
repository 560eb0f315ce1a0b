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

/// Add a capability to the bounding, effective and permitted sets, and, as `docker run
/// --cap-add` (and podman's and containerd's cap-aware profiles) do, let through the config's
/// seccomp profile the syscalls an engine profile allows only with that capability.
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
    allow_syscalls(cfg, cap_gated_syscalls(cap));
}

/// Whether the config's bounding set has `cap`.
pub fn has_cap(cfg: &Value, cap: &str) -> bool {
    cfg["process"]["capabilities"]["bounding"].as_array().is_some_and(|l| l.iter().any(|c| c == cap))
}

/// The syscalls the engines' default seccomp profiles (moby's `default.json`, which podman's
/// and containerd's follow) allow only when the container has `cap`.
pub fn cap_gated_syscalls(cap: &str) -> &'static [&'static str] {
    match cap {
        "CAP_DAC_READ_SEARCH" => &["open_by_handle_at"],
        "CAP_SYS_ADMIN" => &[
            "bpf",
            "clone",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "move_mount",
            "name_to_handle_at",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
        "CAP_SYS_BOOT" => &["reboot"],
        "CAP_SYS_CHROOT" => &["chroot"],
        "CAP_SYS_MODULE" => &["delete_module", "init_module", "finit_module"],
        "CAP_SYS_PACCT" => &["acct"],
        "CAP_SYS_PTRACE" => {
            &["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"]
        }
        "CAP_SYS_RAWIO" => &["iopl", "ioperm"],
        "CAP_SYS_TIME" => &["settimeofday", "stime", "clock_settime"],
        "CAP_SYS_TTY_CONFIG" => &["vhangup"],
        "CAP_SYS_NICE" => &["get_mempolicy", "mbind", "set_mempolicy"],
        "CAP_SYSLOG" => &["syslog"],
        _ => &[],
    }
}

const ALLOW: &str = "SCMP_ACT_ALLOW";

/// Let `names` through the config's seccomp profile (none: nothing to do): they leave every
/// unconditional rule with another action and join one unconditional ALLOW rule.
pub fn allow_syscalls(cfg: &mut Value, names: &[&str]) {
    let Some(rules) = cfg.pointer_mut("/linux/seccomp/syscalls").and_then(Value::as_array_mut) else {
        return;
    };
    if names.is_empty() {
        return;
    }
    for r in rules.iter_mut().filter(|r| r["action"] != ALLOW && r.get("args").is_none_or(|a| a.is_null())) {
        if let Some(list) = r["names"].as_array_mut() {
            list.retain(|n| !n.as_str().is_some_and(|n| names.contains(&n)));
        }
    }
    rules.retain(|r| r["names"].as_array().is_none_or(|l| !l.is_empty()));
    let missing: Vec<&str> = names.iter().copied().filter(|n| !seccomp_allows(rules, n)).collect();
    if !missing.is_empty() {
        rules.push(json!({ "names": missing, "action": ALLOW }));
    }
}

fn seccomp_allows(rules: &[Value], name: &str) -> bool {
    rules.iter().any(|r| {
        r["action"] == ALLOW
            && r.get("args").is_none_or(|a| a.as_array().is_none_or(Vec::is_empty))
            && r["names"].as_array().is_some_and(|l| l.iter().any(|n| n == name))
    })
}

/// Whether the config's seccomp profile refuses `name` whatever its arguments (false without
/// a profile).
pub fn seccomp_refuses(cfg: &Value, name: &str) -> bool {
    let Some(sc) = cfg.pointer("/linux/seccomp") else { return false };
    if sc["defaultAction"] == ALLOW {
        return sc["syscalls"].as_array().into_iter().flatten().any(|r| {
            r["action"] != ALLOW
                && r.get("args").is_none_or(|a| a.as_array().is_none_or(Vec::is_empty))
                && r["names"].as_array().is_some_and(|l| l.iter().any(|n| n == name))
        });
    }
    !sc["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["action"] == ALLOW && r["names"].as_array().is_some_and(|l| l.iter().any(|n| n == name)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::base::{bundle_config, BaseConfig};
    use test_case::test_case;

    fn cfg(base: &str) -> Value {
        bundle_config(
            &BaseConfig::parse(base).unwrap().json().unwrap(),
            std::path::Path::new("/r"),
            &["true"],
        )
    }

    #[test_case("spec", "mount", false, false; "spec has no profile")]
    #[test_case("docker", "mount", true, false; "docker lets mount through with CAP_SYS_ADMIN")]
    #[test_case("docker", "unshare", true, false; "docker unshare")]
    #[test_case("podman", "bpf", true, false; "podman's errno rule loses bpf")]
    #[test_case("docker", "keyctl", true, true; "keyctl is not cap-gated")]
    #[test_case("containerd", "mount", false, false; "containerd sends no profile")]
    fn cap_sys_admin_opens_what_the_engines_open(base: &str, name: &str, before: bool, after: bool) {
        let mut c = cfg(base);
        assert_eq!(seccomp_refuses(&c, name), before, "{base} {name} before");
        add_cap(&mut c, "CAP_SYS_ADMIN");
        assert_eq!(seccomp_refuses(&c, name), after, "{base} {name} after");
        assert!(c["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap()
            .contains(&json!("CAP_SYS_ADMIN")));
        if base == "podman" {
            let still: usize = c["linux"]["seccomp"]["syscalls"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["action"] != ALLOW)
                .map(|r| r["names"].as_array().unwrap().iter().filter(|n| *n == "bpf").count())
                .sum();
            assert_eq!(still, 0, "bpf left in an errno rule");
        }
    }
}
