//! AppArmor profiles and SELinux labels (`process.apparmorProfile`, `process.selinuxLabel`,
//! `linux.mountLabel`): checked against the host before anything is created — a config that
//! asks for an LSM the host lacks is an error naming the field — and applied to the user
//! process on exec through /proc/self/attr.

use std::path::Path;

use oci_spec::runtime::Spec;

/// A requested LSM setting the host cannot honour, or one that could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum LsmError {
    /// The host does not run the LSM the config asks for.
    #[error("{field}: {value:?} requested, but {lsm} is not enabled on this host")]
    NotEnabled {
        /// The JSON path.
        field: &'static str,
        /// The requested profile or label.
        value: String,
        /// AppArmor or SELinux.
        lsm: &'static str,
    },
    /// A part isorun does not implement yet.
    #[error("{field}: {reason}")]
    Unsupported {
        /// The JSON path.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// Writing the exec attribute failed.
    #[error("write {what:?} to {path}: {source}")]
    Apply {
        /// The attribute file.
        path: String,
        /// What was written.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

/// The host's view, passed in so tests can fake it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLsms {
    /// AppArmor is enabled.
    pub apparmor: bool,
    /// SELinux is enabled (selinuxfs mounted).
    pub selinux: bool,
}

impl HostLsms {
    /// Read from /sys.
    pub fn detect() -> Self {
        let apparmor =
            std::fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.trim() == "Y");
        let selinux = Path::new("/sys/fs/selinux/enforce").exists();
        HostLsms { apparmor, selinux }
    }
}

/// Check the config's LSM requests against the host (pure given `host`).
pub fn check(spec: &Spec, host: HostLsms) -> Result<(), LsmError> {
    let process = spec.process().as_ref();
    if let Some(p) = process.and_then(|p| p.apparmor_profile().as_deref()).filter(|p| !p.is_empty()) {
        if !host.apparmor {
            return Err(LsmError::NotEnabled {
                field: "process.apparmorProfile",
                value: p.into(),
                lsm: "AppArmor",
            });
        }
    }
    if let Some(l) = process.and_then(|p| p.selinux_label().as_deref()).filter(|l| !l.is_empty()) {
        if !host.selinux {
            return Err(LsmError::NotEnabled {
                field: "process.selinuxLabel",
                value: l.into(),
                lsm: "SELinux",
            });
        }
    }
    if let Some(l) = spec.linux().as_ref().and_then(|l| l.mount_label().as_deref()).filter(|l| !l.is_empty())
    {
        if !host.selinux {
            return Err(LsmError::NotEnabled { field: "linux.mountLabel", value: l.into(), lsm: "SELinux" });
        }
        return Err(LsmError::Unsupported {
            field: "linux.mountLabel",
            reason: "mount labels are not implemented by isorun yet",
        });
    }
    Ok(())
}

/// Ask the kernel to switch the process to its profile/label at the next execve.
pub fn apply_on_exec(process: &oci_spec::runtime::Process) -> Result<(), LsmError> {
    let write = |path: &str, what: String| {
        std::fs::write(path, &what).map_err(|source| LsmError::Apply { path: path.into(), what, source })
    };
    if let Some(p) = process.apparmor_profile().as_deref().filter(|p| !p.is_empty()) {
        let path = if Path::new("/proc/self/attr/apparmor/exec").exists() {
            "/proc/self/attr/apparmor/exec"
        } else {
            "/proc/self/attr/exec"
        };
        write(path, format!("exec {p}"))?;
    }
    if let Some(l) = process.selinux_label().as_deref().filter(|l| !l.is_empty()) {
        write("/proc/self/attr/exec", l.to_owned())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    fn spec(extra_process: &str, extra_linux: &str) -> Spec {
        let json = format!(
            r#"{{"ociVersion":"1.2.0","root":{{"path":"r"}},"process":{{"cwd":"/","user":{{"uid":0,"gid":0}}{extra_process}}},"linux":{{"namespaces":[]{extra_linux}}}}}"#
        );
        serde_json::from_str(&json).unwrap()
    }

    const NONE: HostLsms = HostLsms { apparmor: false, selinux: false };
    const AA: HostLsms = HostLsms { apparmor: true, selinux: false };
    const SE: HostLsms = HostLsms { apparmor: false, selinux: true };

    #[test_case("", "", NONE, None; "nothing asked")]
    #[test_case(r#","apparmorProfile":"docker-default""#, "", NONE, Some("process.apparmorProfile: \"docker-default\" requested, but AppArmor is not enabled"); "apparmor missing")]
    #[test_case(r#","apparmorProfile":"docker-default""#, "", AA, None; "apparmor present")]
    #[test_case(r#","selinuxLabel":"system_u:system_r:container_t:s0""#, "", AA, Some("process.selinuxLabel"); "selinux missing")]
    #[test_case(r#","selinuxLabel":"system_u:system_r:container_t:s0""#, "", SE, None; "selinux present")]
    #[test_case("", r#","mountLabel":"system_u:object_r:container_file_t:s0""#, NONE, Some("linux.mountLabel: \"system_u"); "mount label without selinux")]
    #[test_case("", r#","mountLabel":"x""#, SE, Some("not implemented"); "mount label unsupported")]
    fn checks(p: &str, l: &str, host: HostLsms, err: Option<&str>) {
        let got = check(&spec(p, l), host).err().map(|e| e.to_string());
        match (got, err) {
            (None, None) => {}
            (Some(g), Some(want)) => assert!(g.contains(want), "{g}"),
            (g, w) => panic!("got {g:?}, want {w:?}"),
        }
    }
}
