//! The rootless cell's side of a catalogue run: the user context set up (or why this kernel
//! cannot do rootless), a probe that the runtime really runs as the uid in a user namespace,
//! the note every record of the cell carries, and the assertions that cannot hold or cannot be
//! checked rootless (SKIP with the reason, [`rootless_skip`]).

use super::rootless::{self, Rootless};
use super::{Ctx, CtxError, Verdict};

/// The rootless user context of `ctx` (its busybox, rootfs, state root and an
/// `XDG_RUNTIME_DIR`), or, when the kernel refuses the user namespace, why (every assertion
/// then SKIPs with it).
pub(super) fn set_up(ctx: &Ctx) -> Result<Result<Rootless, String>, CtxError> {
    let rootfs = ctx.rootfs().to_owned();
    let xdg = ctx.dir().join("xdg-rootless");
    let state = ctx.dir().join("state");
    let v2 = ctx.facts.layout == super::Layout::V2;
    let limits = rootless::session_limits(&ctx.config(&[]));
    match Rootless::setup(&rootfs.join("bin/busybox"), &rootfs, &[&xdg, &state], v2, limits) {
        Ok(r) => Ok(Ok(r)),
        Err(e @ rootless::RootlessError::UserNs { .. }) => Ok(Err(e.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// Start a container and read its init from this side: its uid and its user namespace
/// against ours. The note every record of the cell carries.
pub(super) fn probe(ctx: &mut Ctx) -> String {
    let Some(Ok(r)) = &ctx.rootless else { return String::new() };
    let uid = r.uid;
    let map = rootless::self_map(uid);
    let cfg = ctx.config(&["sleep", "60"]);
    let seen = match ctx.start(cfg) {
        Ok(c) => {
            let status = std::fs::read_to_string(format!("/proc/{}/status", c.pid)).unwrap_or_default();
            let uids = status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap_or("?").trim().to_owned();
            let ns = |p: String| std::fs::read_link(p).map(|l| l.display().to_string()).unwrap_or_default();
            let (theirs, ours) = (ns(format!("/proc/{}/ns/user", c.pid)), ns("/proc/self/ns/user".into()));
            format!("container init uid {} in {theirs} (not the agent's {ours})", uids.replace('\t', " "))
        }
        Err(v) => format!("probe container failed: {}", v.detail),
    };
    ctx.cleanup();
    format!(
        "[rootless: runtime run as uid {uid}, root of a user namespace mapped {:?} (the single \
         self-mapping, written without newuidmap/newgidmap, setgroups deny); {seen}]",
        map.trim()
    )
}

/// What assertion `id` shows rootless that it does not as root (None: the same).
pub fn rootless_expectation(id: &str) -> Option<&'static str> {
    (id == "cgroup.devices.deny").then_some(
        "[rootless: linux.resources.devices is never applied (runc ignores it too); the user \
         namespace refuses the mknod instead, so no node of the device can be made]",
    )
}

/// Append the cell's rootless note (a rootless cell only), and what `id` shows rootless.
pub(super) fn note(ctx: &Ctx, id: &str, v: &mut Verdict) {
    if ctx.rootless_note.is_empty() || v.outcome == crate::outcome::Outcome::Skip {
        return;
    }
    let expect = rootless_expectation(id).map(|e| format!("{e} ")).unwrap_or_default();
    let note = format!("{expect}{}", ctx.rootless_note);
    v.detail = if v.detail.is_empty() { note } else { format!("{} {note}", v.detail) };
}

/// Why `id` SKIPs in this (rootless) run: the kernel cannot do rootless, or the assertion
/// cannot hold or cannot be checked rootless.
pub(super) fn skip_reason(ctx: &Ctx, id: &str) -> Option<String> {
    match &ctx.rootless {
        None => None,
        Some(Err(why)) => Some(format!("rootless: {why}")),
        Some(Ok(r)) => rootless_skip(id, r.cgroup_delegated()).map(|why| format!("rootless: {why}")),
    }
}

/// Why assertion `id` cannot hold or cannot be checked with the runtime rootless (`delegated`:
/// the uid has a delegated cgroup v2); None when it runs.
pub fn rootless_skip(id: &str, delegated: bool) -> Option<&'static str> {
    // Without a delegated cgroup the container stays in the runtime's: nothing of its own
    // to limit, nor to see as its cgroup namespace's root.
    let cgroup = (id.starts_with("cgroup.") && id != "cgroup.devices.deny") || id == "cgroupns.sees_own_root";
    if cgroup && !delegated {
        return Some(
            "no cgroup delegated to the uid (isolab delegates only on cgroup v2): the runtime \
             refuses linux.resources it cannot apply, and a container asking for none stays in \
             the runtime's cgroup",
        );
    }
    if id.starts_with("user.") {
        return Some(
            "the assertion's own user namespace maps 65536 ids (0 100000 65536); the rootless \
             user namespace has one (no subuid range, no newuidmap): the kernel refuses the map",
        );
    }
    if matches!(id, "net.bridge_reachable" | "net.bridge_isolated") {
        return Some(
            "a bridge and veths on the host need CAP_NET_ADMIN in the initial network namespace; \
             rootless podman networks through slirp4netns or pasta instead",
        );
    }
    if id == "net.net_devices" {
        return Some(
            "linux.netDevices moves a host interface: CAP_NET_ADMIN in the host's network \
             namespace, which a rootless runtime does not have",
        );
    }
    if id.starts_with("checkpoint.") {
        return Some(
            "CRIU needs root of the initial user namespace; rootless podman cannot checkpoint either",
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("pid.init_is_pid1", false, false ; "namespaces run")]
    #[test_case("cgroup.memory.oom_kill", true, false ; "delegated cgroups run")]
    #[test_case("cgroup.memory.oom_kill", false, true ; "undelegated cgroups skip")]
    #[test_case("cgroup.devices.deny", false, false ; "device rules are checked without a cgroup")]
    #[test_case("cgroupns.sees_own_root", false, true ; "no own cgroup to see")]
    #[test_case("cgroupns.sees_own_root", true, false ; "a delegated one is seen")]
    #[test_case("checkpoint.pid1_survives", true, true ; "checkpoint skips")]
    #[test_case("user.root_maps_to_unprivileged", true, true ; "a 65536-id map cannot nest")]
    #[test_case("net.bridge_isolated", true, true ; "no host bridge")]
    #[test_case("net.net_devices", true, true ; "no host interface moves")]
    #[test_case("net.only_lo", false, false ; "a new netns runs")]
    fn what_skips_rootless(id: &str, delegated: bool, skips: bool) {
        assert_eq!(rootless_skip(id, delegated).is_some(), skips, "{id}");
    }
}
