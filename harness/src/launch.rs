//! A VM for a cell, fresh or restored: the one place that puts [`lab`] (kernel,
//! image, QEMU configuration) and the [`snapshot`](crate::snapshot) store together. A fresh
//! VM boots the full image; a restored one starts from the cell's snapshot (built first when
//! missing, stale or damaged) with the runtime under test as its payload.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::kernels::CheckedKernel;
use crate::lab::{self, LabError, LabOptions};
use crate::protocol::{Action, CgroupMode, Event, Request, Resume, PROTOCOL_VERSION};
use crate::snapshot::cell::{invalidate, key, seed, store};
use crate::snapshot::{ensure, payload, Key, Outcome, SnapshotError, Why};
use crate::vm::{self, QemuConfig, SnapMode, Timeouts, VmError, VmReport};

/// Why no VM could be started for a cell.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The kernel, image or a binary.
    #[error(transparent)]
    Lab(Box<LabError>),
    /// The cell's snapshot could not be built or used.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

impl From<LabError> for LaunchError {
    fn from(e: LabError) -> Self {
        LaunchError::Lab(Box::new(e))
    }
}

/// How a cell's VM starts.
#[derive(Debug, Clone, Copy)]
pub enum Boot<'a> {
    /// Booted from scratch with this (full) image.
    Fresh(&'a Path),
    /// Restored from the cell's snapshot.
    Restored,
}

/// Runs `request` in a VM of the cell (`k`, `cgroup`) started as `boot` says, and hands back its
/// report. A snapshot that had to be built (or rebuilt) is said as a `Log` event.
pub fn run_in_cell(
    k: &CheckedKernel,
    cgroup: CgroupMode,
    boot: Boot<'_>,
    request: &Request,
    o: &LabOptions,
    on_event: &mut dyn FnMut(&Event),
) -> Result<VmReport, LaunchError> {
    match boot {
        Boot::Fresh(image) => Ok(lab::boot(k, image, cgroup, request, o, false, on_event)),
        Boot::Restored => {
            let r = boot_restored(k, cgroup, request, o, on_event)?;
            if r.outcome != Outcome::Reused {
                on_event(&Event::Log { message: describe(&r) });
            }
            Ok(r.report)
        }
    }
}

/// The image of a snapshot: the suite's image without a runtime (it comes as the payload).
pub fn snapshot_image(k: &CheckedKernel, o: &LabOptions) -> Result<PathBuf, LabError> {
    let mut bare = o.clone();
    bare.runtime = None;
    lab::image_for(k, &bare, None, &|_, _| {})
}

/// How a restored VM went: its report and how its snapshot was obtained.
#[derive(Debug)]
pub struct Restored {
    /// The VM's report (`boot_time`: QEMU start → agent ready after the resume).
    pub report: VmReport,
    /// Whether the snapshot was reused or (re)built, and why.
    pub outcome: Outcome,
    /// The snapshot's directory name.
    pub name: String,
}

/// Runs `request` in a VM restored from the snapshot of (`k`, `cgroup`) in the cache's store;
/// builds the snapshot when missing, stale or damaged. A snapshot QEMU cannot load is
/// rebuilt once.
pub fn boot_restored(
    k: &CheckedKernel,
    cgroup: CgroupMode,
    request: &Request,
    o: &LabOptions,
    on_event: &mut dyn FnMut(&Event),
) -> Result<Restored, LaunchError> {
    boot_restored_in(&store(&o.cache), k, cgroup, request, o, on_event)
}

/// [`boot_restored`] with the snapshots kept in `store`.
pub fn boot_restored_in(
    store: &Path,
    k: &CheckedKernel,
    cgroup: CgroupMode,
    request: &Request,
    o: &LabOptions,
    on_event: &mut dyn FnMut(&Event),
) -> Result<Restored, LaunchError> {
    let image = snapshot_image(k, o)?;
    let cfg = lab::vm_config(k, &image, cgroup, o, false);
    let key = key(k, &image, cgroup, &o.cache, &cfg)?;
    let t = Timeouts { boot: o.boot_timeout, step: Some(o.step_timeout) };
    let mut save = |dir: &Path| save_snapshot(&cfg, &key, t, dir);
    let archive = o.runtime.as_deref().map(payload::archive).transpose()?;
    let mut first_outcome = None;
    loop {
        let (snap, outcome) = ensure(store, &key, &mut save)?;
        let resume = Resume {
            seed_hex: seed(),
            unix_time_ns: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as u64,
            payload: o.runtime.is_some(),
        };
        let mode =
            SnapMode::Restore { ram: snap.ram(), state: snap.state(), archive: archive.clone(), resume };
        let report = vm::run_vm_snap(cfg.clone(), request, t, on_event, Some(&mode));
        let unloadable = matches!(report.error, Some(VmError::Snapshot(_))) && report.hello.is_none();
        if unloadable && first_outcome.is_none() {
            // QEMU refused the state: mark it damaged (the next ensure rebuilds it), once.
            let why = report.error.as_ref().map(ToString::to_string).unwrap_or_default();
            let dir = snap.dir.clone();
            drop(snap);
            invalidate(store, &key, &dir)?;
            first_outcome = Some(Why::Damaged(format!("QEMU could not restore it: {why}")));
            continue;
        }
        let outcome = match first_outcome {
            Some(why) => Outcome::Built(why),
            None => outcome,
        };
        return Ok(Restored { report, outcome, name: key.dir_name() });
    }
}

/// Boots the cell's VM (`cfg`) to the agent's hello and saves it into `dir`; the build's
/// milliseconds.
fn save_snapshot(cfg: &QemuConfig, key: &Key, t: Timeouts, dir: &Path) -> Result<u64, SnapshotError> {
    let idle = Request { protocol_version: PROTOCOL_VERSION, action: Action::Idle };
    let mode = SnapMode::Save { ram: dir.join("ram"), state: dir.join("state") };
    let r = vm::run_vm_snap(cfg.clone(), &idle, t, &mut |_| {}, Some(&mode));
    match (&r.error, &r.hello) {
        (None, Some(_)) => Ok(r.total_time.as_millis() as u64),
        (err, _) => Err(SnapshotError::Save {
            name: key.dir_name(),
            detail: format!(
                "{}{}\n--- console tail ---\n{}",
                err.as_ref().map(ToString::to_string).unwrap_or_else(|| "no hello".into()),
                crate::cache::full_store_note(
                    dir,
                    crate::cache::free_bytes(dir),
                    u64::from(cfg.memory_mb) << 20
                )
                .unwrap_or_default(),
                r.console_tail.join("\n")
            ),
        }),
    }
}

/// A one-line note of how a snapshot was obtained, for logs.
pub fn describe(r: &Restored) -> String {
    match &r.outcome {
        Outcome::Reused => format!("snapshot {}: reused", r.name),
        Outcome::Built(why) => format!("snapshot {}: built ({why})", r.name),
    }
}

/// QEMU start → agent ready of a report, if the agent got ready.
pub fn ready_time(r: &VmReport) -> Option<Duration> {
    r.hello.as_ref().and(r.boot_time)
}
