//! Credentials of the user process, in runc's order: rlimits and oom_score_adj while still
//! privileged, the bounding set, then groups/gid/uid (keeping capabilities across the uid
//! change), then the inheritable, effective, permitted and ambient sets, then no_new_privs.

use std::collections::HashSet;
use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};
use nix::errno::Errno;
use nix::sys::resource::{setrlimit, Resource};
use nix::sys::stat::{umask, Mode};
use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::{PosixRlimitType, Process};

use super::{sys, InitError};
use crate::sys::process::CapMasks;

/// Apply everything credential-like of `process` to this process. With `keep_admin` (a
/// seccomp filter without no_new_privs is still to be loaded, which needs CAP_SYS_ADMIN),
/// CAP_SYS_ADMIN stays effective and permitted and the final sets are returned, for one
/// capset after the filter.
pub fn apply(process: &Process, in_user_ns: bool, keep_admin: bool) -> Result<Option<CapMasks>, InitError> {
    // In a user namespace the parent sets them (`container::write_rlimits`): this process
    // could not raise a hard limit.
    for rl in process.rlimits().iter().flatten().filter(|_| !in_user_ns) {
        let res = resource_of(rl.typ());
        setrlimit(res, rl.soft(), rl.hard()).map_err(sys(format!("setrlimit({:?})", rl.typ())))?;
    }
    // In a user namespace the parent wrote it (`container::write_oom_score_adj`): this
    // process cannot.
    if let Some(adj) = process.oom_score_adj().filter(|_| !in_user_ns) {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string()).map_err(|source| InitError::File {
            op: "write",
            path: "/proc/self/oom_score_adj".into(),
            source,
        })?;
    }
    let user = process.user();
    umask(Mode::from_bits_truncate(user.umask().unwrap_or(0o022)));
    let caps = process.capabilities().as_ref();
    let want = |set: Option<&HashSet<oci_spec::runtime::Capability>>| -> Result<CapsHashSet, InitError> {
        set.into_iter().flatten().map(to_caps).collect()
    };
    let bounding = want(caps.and_then(|c| c.bounding().as_ref()))?;
    for cap in caps::all() {
        if !bounding.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap).map_err(|e| cap_err("drop bounding", cap, e))?;
        }
    }
    let groups: Vec<Gid> = user.additional_gids().iter().flatten().map(|g| Gid::from_raw(*g)).collect();
    match setgroups(&groups) {
        Ok(()) => {}
        // setgroups is denied in a user namespace without the privilege (also one this runtime
        // was started in, as rootless podman does, where `setgroups` reads `deny`): fine when
        // none asked.
        Err(Errno::EPERM) if groups.is_empty() && (in_user_ns || setgroups_denied()) => {}
        Err(e) => return Err(sys(format!("setgroups({:?})", user.additional_gids()))(e)),
    }
    nix::sys::prctl::set_keepcaps(true).map_err(sys("prctl(PR_SET_KEEPCAPS)"))?;
    let (uid, gid) = (Uid::from_raw(user.uid()), Gid::from_raw(user.gid()));
    setresgid(gid, gid, gid).map_err(sys(format!("setresgid({gid})")))?;
    setresuid(uid, uid, uid).map_err(sys(format!("setresuid({uid})")))?;
    nix::sys::prctl::set_keepcaps(false).map_err(sys("prctl(PR_CLEAR_KEEPCAPS)"))?;
    let (inheritable, effective, permitted) = (
        want(caps.and_then(|c| c.inheritable().as_ref()))?,
        want(caps.and_then(|c| c.effective().as_ref()))?,
        want(caps.and_then(|c| c.permitted().as_ref()))?,
    );
    let keep = keep_admin && !effective.contains(&Capability::CAP_SYS_ADMIN);
    let final_caps = keep.then(|| CapMasks {
        effective: mask(&effective),
        permitted: mask(&permitted),
        inheritable: mask(&inheritable),
    });
    let with_admin = |set: &CapsHashSet| {
        let mut s = set.clone();
        if keep {
            s.insert(Capability::CAP_SYS_ADMIN);
        }
        s
    };
    let sets = [
        (CapSet::Inheritable, inheritable.clone()),
        (CapSet::Effective, with_admin(&effective)),
        (CapSet::Permitted, with_admin(&permitted)),
    ];
    for (set, value) in &sets {
        caps::set(None, *set, value).map_err(|e| InitError::Process(format!("capset {set:?}: {e}")))?;
    }
    caps::clear(None, CapSet::Ambient).map_err(|e| InitError::Process(format!("clear ambient: {e}")))?;
    // As runc: an ambient capability that is not also permitted and inheritable cannot be
    // raised (EPERM); that is a warning, not an error (runc's own default spec asks for it).
    for cap in want(caps.and_then(|c| c.ambient().as_ref()))? {
        if let Err(e) = caps::raise(None, CapSet::Ambient, cap) {
            tracing::warn!("{}", cap_err("raise ambient", cap, e));
        }
    }
    if process.no_new_privileges() == Some(true) {
        nix::sys::prctl::set_no_new_privs().map_err(sys("prctl(PR_SET_NO_NEW_PRIVS)"))?;
    }
    Ok(final_caps)
}

fn mask(set: &CapsHashSet) -> u64 {
    set.iter().fold(0, |m, c| m | c.bitmask())
}

fn cap_err(what: &str, cap: Capability, e: caps::errors::CapsError) -> InitError {
    InitError::Process(format!("{what} {cap}: {e}"))
}

/// oci-spec's capability name to the `caps` crate's (both use `CAP_X` names).
fn to_caps(c: &oci_spec::runtime::Capability) -> Result<Capability, InitError> {
    let name = serde_json::to_value(c).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    Capability::from_str(&name)
        .map_err(|_| InitError::Process(format!("capability {name:?} is not known to this kernel")))
}

pub(crate) fn resource_of(t: PosixRlimitType) -> Resource {
    match t {
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

/// `/proc/self/setgroups` reads `deny`: this user namespace (or an ancestor) forbids setgroups.
fn setgroups_denied() -> bool {
    std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny")
}
