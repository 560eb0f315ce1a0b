//! Pure parts of checkpoint/restore: CRIU's version, the `criu dump` and `criu restore`
//! argument lists, the bind mounts CRIU must be told about, stdio keys and the first error
//! line of a CRIU log. No I/O here: everything is table-tested.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde::{Deserialize, Serialize};

/// The oldest CRIU isorun drives: 3.11 has `--external mnt[]`, `--inherit-fd`, cgroup
/// namespaces and `--manage-cgroups=soft` as used here.
pub const MIN_CRIU: (u32, u32, u32) = (3, 11, 0);

/// Name of isorun's own file in an image directory.
pub const META_FILE: &str = "isorun-checkpoint.json";

/// Parses `criu --version` output (`Version: 3.17.1`, maybe followed by `GitID: ...`).
pub fn parse_criu_version(out: &str) -> Option<(u32, u32, u32)> {
    let v = out.lines().find_map(|l| l.trim().strip_prefix("Version:"))?.trim();
    let mut it = v.split(['.', '-']).map(|p| p.parse::<u32>());
    let major = it.next()?.ok()?;
    let minor = it.next()?.ok()?;
    let patch = it.next().and_then(Result::ok).unwrap_or(0);
    Some((major, minor, patch))
}

/// Error lines CRIU prints while probing optional features, before the real reason: a
/// helper's exit status, no `tun` device, a missing sock_diag module.
pub const CRIU_NOISE: &[&str] = &["exited, status=1", "tun: ", "Diag module missing"];

/// The first `Error (...)` line of a CRIU log that says something (not [`CRIU_NOISE`]),
/// without the timestamp; else the last non-empty line.
pub fn criu_error_line(log: &str) -> Option<String> {
    let errors: Vec<&str> = log
        .lines()
        .filter_map(|l| l.find("Error (").map(|i| l[i..].trim()))
        .filter(|l| !CRIU_NOISE.iter().any(|n| l.contains(n)))
        .collect();
    let line = errors
        .iter()
        .find(|l| !l.contains("Dumping FAILED") && !l.contains("Restoring FAILED"))
        .or(errors.first())
        .copied()
        .or_else(|| log.lines().rev().map(str::trim).find(|l| !l.is_empty()))?;
    Some(line.to_string())
}

/// What isorun writes beside CRIU's images, checked at restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// The container checkpointed.
    pub id: String,
    /// sha256 of its bundle's config.json, hex.
    pub config_sha256: String,
    /// Its cgroup path (recreated at restore so CRIU puts the tasks back into it).
    pub cgroup_path: Option<String>,
    /// The stdio of its init at dump time: fd number and the CRIU key of what it was.
    pub stdio: Vec<(i32, String)>,
    /// `criu --version` that wrote the images.
    pub criu_version: String,
}

/// A bind mount CRIU must be told about: its destination in the container and its source
/// on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// Destination inside the container (the CRIU key).
    pub destination: String,
    /// Source on the host (resolved against the bundle when relative).
    pub source: PathBuf,
}

/// The bind mounts of `spec` (mounts of type `bind` or with a `bind`/`rbind` option): their
/// sources live outside the container, so CRIU records them as external (`mnt[DEST]`).
pub fn bind_mounts(spec: &Spec, bundle: &Path) -> Vec<BindMount> {
    let Some(mounts) = spec.mounts() else { return Vec::new() };
    mounts
        .iter()
        .filter(|m| {
            m.typ().as_deref() == Some("bind")
                || m.options().as_ref().is_some_and(|o| o.iter().any(|o| o == "bind" || o == "rbind"))
        })
        .filter_map(|m| {
            let src = m.source().as_ref()?;
            Some(BindMount {
                destination: m.destination().to_string_lossy().into_owned(),
                source: bundle.join(src),
            })
        })
        .collect()
}

/// The binds of a `type: cgroup` mount that CRIU must take as external, as runc does: on a
/// cgroup v1 or hybrid host without a cgroup namespace the mount is a tmpfs holding one bind
/// of the container's own cgroup directory per hierarchy, and CRIU cannot dump a bind whose
/// root it does not see (CRIU 3.17: "./sys/fs/cgroup/misc doesn't have a proper root mount",
/// with Docker's and podman's configs on a v1 guest). `hierarchies` is each hierarchy's
/// `(name, host directory)` (empty on a pure cgroup v2 host: one real cgroup2 mount).
pub fn cgroup_binds(spec: &Spec, hierarchies: &[(String, PathBuf)]) -> Vec<BindMount> {
    let namespaces = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref());
    if namespaces.into_iter().flatten().any(|ns| ns.typ() == LinuxNamespaceType::Cgroup) {
        return Vec::new(); // fresh hierarchies, mounted in the container: CRIU dumps them
    }
    let cgroup_mounts = spec.mounts().iter().flatten().filter(|m| m.typ().as_deref() == Some("cgroup"));
    cgroup_mounts
        .flat_map(|m| {
            let dest = m.destination().to_string_lossy().trim_end_matches('/').to_owned();
            hierarchies.iter().map(move |(name, dir)| BindMount {
                destination: format!("{dest}/{name}"),
                source: dir.clone(),
            })
        })
        .collect()
}

/// `/proc/self/cgroup` text with every hierarchy's path replaced by `path`: where a restored
/// container's processes go (isorun makes its cgroup in every hierarchy before CRIU runs).
pub fn cgroup_text_at(proc_self_cgroup: &str, path: &str) -> String {
    let lines = proc_self_cgroup.lines().filter_map(|l| {
        let mut f = l.splitn(3, ':');
        let (id, controllers) = (f.next()?, f.next()?);
        Some(format!("{id}:{controllers}:{path}\n"))
    });
    lines.collect()
}

/// The CRIU key of an init's stdio: `pipe:[ino]` / `socket:[ino]` as the fd link reads, or,
/// for a file on a mount the container does not have, `file[MNTID:INO]` (hex) so that it is
/// dumped as external; `None` when CRIU can dump it as it is (a file of the container).
pub fn stdio_key(link: &str, mnt_id: Option<u64>, inode: u64, mount_in_container: bool) -> Option<String> {
    if link.starts_with("pipe:[") || link.starts_with("socket:[") {
        return Some(link.to_string());
    }
    if mount_in_container {
        return None;
    }
    mnt_id.map(|m| format!("file[{m:x}:{inode:x}]"))
}

/// Options of a `checkpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpPlan {
    /// Init's host pid.
    pub pid: i32,
    /// CRIU images go here.
    pub images: PathBuf,
    /// CRIU's work dir (log).
    pub work: PathBuf,
    /// The container's root (bundle rootfs).
    pub root: PathBuf,
    /// Keep the container running after the dump.
    pub leave_running: bool,
    /// Dump established TCP connections.
    pub tcp_established: bool,
    /// Dump file locks.
    pub file_locks: bool,
    /// Bind mounts (external to CRIU).
    pub binds: Vec<BindMount>,
    /// Files (stdio) to dump as external: `file[...]` keys.
    pub external_files: Vec<String>,
    /// `--network-lock` method; `None`: CRIU's default (iptables).
    pub network_lock: Option<&'static str>,
}

/// How CRIU locks the container's network while it works: its default, iptables (runc's
/// too), when `iptables-restore` is there; else nftables through the libnftables CRIU links.
/// (CRIU 3.17's nftables lock is named after the init's pid, so a restore under another pid
/// cannot remove it and the restored namespace keeps dropping traffic: iptables first.)
pub fn network_lock(has_iptables_restore: bool) -> Option<&'static str> {
    (!has_iptables_restore).then_some("nftables")
}

/// The log file name CRIU writes (in the work dir).
pub const DUMP_LOG: &str = "dump.log";
/// The restore log file name.
pub const RESTORE_LOG: &str = "restore.log";

/// `criu dump` arguments.
pub fn dump_args(p: &DumpPlan) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "dump".into(),
        "--tree".into(),
        p.pid.to_string(),
        "--images-dir".into(),
        p.images.display().to_string(),
        "--work-dir".into(),
        p.work.display().to_string(),
        "--log-file".into(),
        DUMP_LOG.into(),
        "-v4".into(),
        "--root".into(),
        p.root.display().to_string(),
        // Unix sockets connected to the outside (a pipe-less stdio, syslog) are dumped as
        // external, as runc does.
        "--ext-unix-sk".into(),
        // isorun's init keeps its caller's session unless it has a terminal (runc's calls
        // setsid): CRIU must accept a session leader outside the tree.
        "--shell-job".into(),
    ];
    for b in &p.binds {
        a.push("--external".into());
        a.push(format!("mnt[{}]:{}", b.destination, b.destination));
    }
    for f in &p.external_files {
        a.push("--external".into());
        a.push(f.clone());
    }
    if let Some(m) = p.network_lock {
        a.push("--network-lock".into());
        a.push(m.into());
    }
    for (on, flag) in [
        (p.leave_running, "--leave-running"),
        (p.tcp_established, "--tcp-established"),
        (p.file_locks, "--file-locks"),
    ] {
        if on {
            a.push(flag.into());
        }
    }
    a
}

/// Options of a `restore`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestorePlan {
    /// CRIU images are here.
    pub images: PathBuf,
    /// CRIU's work dir (log).
    pub work: PathBuf,
    /// The mount point CRIU restores the container's root from (a bind of the rootfs).
    pub root: PathBuf,
    /// CRIU writes the restored init's host pid here.
    pub pid_file: PathBuf,
    /// Restore established TCP connections.
    pub tcp_established: bool,
    /// Restore file locks.
    pub file_locks: bool,
    /// Bind mounts: destination → source on this host.
    pub binds: Vec<BindMount>,
    /// stdio recorded at dump (fd, key): our fd `fd` replaces what `key` was.
    pub stdio: Vec<(i32, String)>,
    /// The restored container's cgroup (`--cgroup-root`): the tree's root cgroup goes here.
    pub cgroup_root: Option<String>,
    /// `--network-lock` method, as at dump.
    pub network_lock: Option<&'static str>,
}

/// `criu restore` arguments (always `--restore-detached`: isorun waits itself, or not).
pub fn restore_args(p: &RestorePlan) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "restore".into(),
        "--images-dir".into(),
        p.images.display().to_string(),
        "--work-dir".into(),
        p.work.display().to_string(),
        "--log-file".into(),
        RESTORE_LOG.into(),
        "-v4".into(),
        "--root".into(),
        p.root.display().to_string(),
        "--restore-detached".into(),
        "--pidfile".into(),
        p.pid_file.display().to_string(),
        "--ext-unix-sk".into(),
        // isorun makes the container's cgroup (with the config's limits) before CRIU runs;
        // soft: CRIU puts the tasks into it and leaves its settings alone.
        "--manage-cgroups=soft".into(),
        "--shell-job".into(),
    ];
    if let Some(root) = &p.cgroup_root {
        a.push("--cgroup-root".into());
        a.push(root.clone());
    }
    for b in &p.binds {
        a.push("--external".into());
        a.push(format!("mnt[{}]:{}", b.destination, b.source.display()));
    }
    for (fd, key) in &p.stdio {
        a.push("--inherit-fd".into());
        a.push(format!("fd[{fd}]:{key}"));
    }
    if p.tcp_established {
        a.push("--tcp-established".into());
    }
    if let Some(m) = p.network_lock {
        a.push("--network-lock".into());
        a.push(m.into());
    }
    if p.file_locks {
        a.push("--file-locks".into());
    }
    a
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
