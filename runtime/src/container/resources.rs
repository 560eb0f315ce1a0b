//! Operations on a running container's cgroup: `pause`, `resume`, `events`, `update`, `ps`.

use std::path::PathBuf;

use oci_spec::runtime::LinuxResources;
use serde::Serialize;

use super::ContainerError;
use crate::cgroups::{CgroupManager, Event};
use crate::state::{StateStore, Status};

fn cgroup_of(
    store: &StateStore,
    id: &str,
    allowed: &[Status],
    op: &'static str,
) -> Result<CgroupManager, ContainerError> {
    let rec = store.load(id)?;
    let status = store.status(&rec);
    if !allowed.contains(&status) {
        return Err(ContainerError::WrongStatus { id: id.to_owned(), status, op });
    }
    rec.cgroup().ok_or_else(|| ContainerError::NoCgroup(id.to_owned()))
}

/// `pause`: freeze every process of a running container.
pub fn pause(store: &StateStore, id: &str) -> Result<(), ContainerError> {
    let _lock = store.lock(id)?;
    Ok(cgroup_of(store, id, &[Status::Running], "pause (not running)")?.freeze()?)
}

/// `resume`: thaw a paused container.
pub fn resume(store: &StateStore, id: &str) -> Result<(), ContainerError> {
    let _lock = store.lock(id)?;
    Ok(cgroup_of(store, id, &[Status::Paused], "resume (not paused)")?.thaw()?)
}

/// A stats snapshot of a container's cgroup, as one `events` record.
pub fn stats(store: &StateStore, id: &str) -> Result<Event, ContainerError> {
    let cg =
        cgroup_of(store, id, &[Status::Created, Status::Running, Status::Paused], "read stats (stopped)")?;
    Ok(Event::stats(id, cg.stats()?))
}

/// `update`: change the resources of a created, running or paused container.
pub fn update(store: &StateStore, id: &str, resources: &LinuxResources) -> Result<(), ContainerError> {
    let _lock = store.lock(id)?;
    let cg = cgroup_of(store, id, &[Status::Created, Status::Running, Status::Paused], "update (stopped)")?;
    Ok(cg.update(resources)?)
}

/// One process of a container, for `ps`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ProcessEntry {
    /// Host pid.
    pub pid: i32,
    /// Command line (or comm for kernel-side names).
    pub cmd: String,
}

/// `ps`: every process in the container's cgroup.
pub fn ps(store: &StateStore, id: &str) -> Result<Vec<ProcessEntry>, ContainerError> {
    let cg = cgroup_of(store, id, &[Status::Created, Status::Running, Status::Paused], "ps (stopped)")?;
    let mut out: Vec<ProcessEntry> = cg
        .pids()?
        .into_iter()
        .map(|pid| {
            let raw = std::fs::read(PathBuf::from(format!("/proc/{pid}/cmdline"))).unwrap_or_default();
            let cmd = raw
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ");
            let cmd = if cmd.is_empty() {
                std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_owned()
            } else {
                cmd
            };
            ProcessEntry { pid, cmd }
        })
        .collect();
    out.sort_by_key(|p| p.pid);
    Ok(out)
}

/// Parse a size like runc's `--memory`: bytes, or with a k/m/g/t suffix (binary), or -1.
pub fn parse_size(s: &str) -> Option<i64> {
    let t = s.trim();
    if t == "-1" {
        return Some(-1);
    }
    let lower = t.to_ascii_lowercase();
    let lower = lower.trim_end_matches('b');
    let (num, mult) = match lower.chars().last()? {
        'k' => (&lower[..lower.len() - 1], 1i64 << 10),
        'm' => (&lower[..lower.len() - 1], 1 << 20),
        'g' => (&lower[..lower.len() - 1], 1 << 30),
        't' => (&lower[..lower.len() - 1], 1 << 40),
        _ => (lower, 1),
    };
    num.trim().parse::<i64>().ok().filter(|n| *n >= 0)?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::parse_size;
    use test_case::test_case;

    #[test_case("1024", Some(1024))]
    #[test_case("100m", Some(100 << 20))]
    #[test_case("2G", Some(2 << 30))]
    #[test_case("64kb", Some(64 << 10))]
    #[test_case("-1", Some(-1))]
    #[test_case("-5", None)]
    #[test_case("lots", None)]
    #[test_case("99999999999t", None)]
    fn sizes(s: &str, want: Option<i64>) {
        assert_eq!(parse_size(s), want);
    }
}
