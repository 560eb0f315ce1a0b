//! A container without a mount namespace (runc runs it): it shares the caller's mount
//! namespace, so its rootfs mounts are made there and the init chroots instead of
//! pivot_root. The parent binds the rootfs onto itself (made recursively private, so
//! nothing mounted under it propagates) before the init starts; every mount the init makes
//! lands under that bind, and one lazy detach of it (`delete`, or a failed `create`) takes
//! them all away.

use std::path::{Path, PathBuf};

use nix::mount::{self, MntFlags, MsFlags};
use oci_spec::runtime::Spec;

use super::{host, ContainerError};

/// What isorun refuses in a container that shares the caller's mount namespace, as
/// (field, reason): runc's `security()` check, plus what would change the caller's own mounts.
pub fn refused_field(spec: &Spec, no_pivot: bool) -> Option<(&'static str, &'static str)> {
    let linux = spec.linux().as_ref();
    let set = |v: Option<&Vec<String>>| v.is_some_and(|v| !v.is_empty());
    const SYS: &str = "unable to restrict sys entries without a private MNT namespace";
    if set(linux.and_then(|l| l.masked_paths().as_ref())) {
        return Some(("linux.maskedPaths", SYS));
    }
    if set(linux.and_then(|l| l.readonly_paths().as_ref())) {
        return Some(("linux.readonlyPaths", SYS));
    }
    if linux.and_then(|l| l.rootfs_propagation().as_deref()).is_some_and(|p| !p.is_empty()) {
        return Some((
            "linux.rootfsPropagation",
            "would change the propagation of the caller's / without a private MNT namespace",
        ));
    }
    if no_pivot {
        return Some((
            "--no-pivot",
            "MS_MOVE onto / would unmount the caller's mounts without a private MNT namespace",
        ));
    }
    None
}

/// [`refused_field`] as an error.
pub fn check(spec: &Spec, no_pivot: bool) -> Result<(), ContainerError> {
    match refused_field(spec, no_pivot) {
        Some((field, reason)) => Err(ContainerError::Unsupported { field, reason }),
        None => Ok(()),
    }
}

/// The rootfs bound onto itself in the caller's mount namespace; detached on drop unless
/// [`RootfsBind::keep`] (then `delete` detaches it with [`detach`]).
#[derive(Debug)]
pub struct RootfsBind {
    rootfs: PathBuf,
    armed: bool,
}

impl RootfsBind {
    /// Bind `rootfs` onto itself (recursively) and make the bind recursively private.
    pub fn new(rootfs: &Path) -> Result<Self, ContainerError> {
        let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
        mount::mount(Some(rootfs), rootfs, None::<&str>, bind, None::<&str>)
            .map_err(host(format!("bind {} onto itself", rootfs.display())))?;
        let me = Self { rootfs: rootfs.to_path_buf(), armed: true };
        let private = MsFlags::MS_PRIVATE | MsFlags::MS_REC;
        mount::mount(None::<&str>, rootfs, None::<&str>, private, None::<&str>)
            .map_err(host(format!("make {} rprivate", rootfs.display())))?;
        Ok(me)
    }

    /// Leave the bind in place: the container was created.
    pub fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for RootfsBind {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = detach(&self.rootfs) {
                tracing::warn!("{e}");
            }
        }
    }
}

/// Lazily detach the rootfs bind and everything mounted under it (EINVAL: not a mount
/// point any more, already detached).
pub fn detach(rootfs: &Path) -> Result<(), ContainerError> {
    match mount::umount2(rootfs, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) => Ok(()),
        Err(e) => Err(host(format!("umount {}", rootfs.display()))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    fn spec(linux: serde_json::Value) -> Spec {
        let v = serde_json::json!({"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "linux": linux});
        serde_json::from_value(v).unwrap()
    }

    #[test_case(serde_json::json!({}), false, None ; "nothing to refuse")]
    #[test_case(serde_json::json!({"maskedPaths": []}), false, None ; "empty masked paths")]
    #[test_case(serde_json::json!({"maskedPaths": ["/proc/kcore"]}), false, Some("linux.maskedPaths") ; "masked paths")]
    #[test_case(serde_json::json!({"readonlyPaths": ["/proc/sys"]}), false, Some("linux.readonlyPaths") ; "readonly paths")]
    #[test_case(serde_json::json!({"rootfsPropagation": "shared"}), false, Some("linux.rootfsPropagation") ; "propagation")]
    #[test_case(serde_json::json!({"rootfsPropagation": ""}), false, None ; "empty propagation")]
    #[test_case(serde_json::json!({}), true, Some("--no-pivot") ; "no pivot")]
    #[test_case(serde_json::json!({"sysctl": {"kernel.domainname": "x"}}), false, None ; "sysctl is not ours to refuse")]
    fn refusals(linux: serde_json::Value, no_pivot: bool, want: Option<&str>) {
        assert_eq!(refused_field(&spec(linux), no_pivot).map(|(f, _)| f), want);
    }

    #[test]
    fn masked_paths_reads_like_runc() {
        let s = spec(serde_json::json!({"maskedPaths": ["/proc/kcore"]}));
        let e = check(&s, false).unwrap_err().to_string();
        assert_eq!(e, "linux.maskedPaths: unable to restrict sys entries without a private MNT namespace");
    }
}
