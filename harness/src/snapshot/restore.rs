//! Starting a VM from a cell's snapshot, building the snapshot first when needed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use super::{ensure, payload, Key, Outcome, SnapshotError, Why, FORMAT};
use crate::kernels::CheckedKernel;
use crate::lab::{self, LabError, LabOptions};
use crate::protocol::{Action, CgroupMode, Event, Request, Resume, PROTOCOL_VERSION};
use crate::vm::{self, SnapMode, Timeouts, VmError, VmReport};

/// The snapshot store of a cache.
pub fn store(cache: &Path) -> PathBuf {
    cache.join("snapshots")
}

/// First line of `<qemu> --version` (remembered per binary for the process).
pub fn qemu_version(qemu: &str) -> String {
    static SEEN: OnceLock<Mutex<Vec<(String, String)>>> = OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    if let Some((_, v)) = seen.lock().unwrap_or_else(|p| p.into_inner()).iter().find(|(q, _)| q == qemu) {
        return v.clone();
    }
    let out = std::process::Command::new(qemu).arg("--version").output();
    let v = match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or_default().to_string(),
        Err(e) => format!("unknown ({e})"),
    };
    seen.lock().unwrap_or_else(|p| p.into_inner()).push((qemu.to_string(), v.clone()));
    v
}

/// The image of a snapshot: the suite's image without a runtime (it comes as the payload).
pub fn snapshot_image(k: &CheckedKernel, o: &LabOptions) -> Result<PathBuf, LabError> {
    let mut bare = o.clone();
    bare.runtime = None;
    lab::image_for(k, &bare, None, &|_, _| {})
}

fn hashed(p: &Path, cache: &Path) -> Result<String, SnapshotError> {
    crate::cache::sha256_file_memo(p, &cache.join("images").join("hashes"))
        .map_err(|source| SnapshotError::Io { path: p.to_path_buf(), source })
}

/// The QEMU arguments of `cfg` as a snapshot key holds them: `-kernel @kernel -initrd @initrd`
/// (the files' contents are keyed by hash; their paths do not matter).
pub fn machine_args(cfg: &vm::QemuConfig) -> Vec<String> {
    let mut c = cfg.clone();
    c.kernel = "@kernel".into();
    c.initrd = "@initrd".into();
    vm::args::qemu_args(&c)
}

/// The snapshot key of a cell.
pub fn key(
    k: &CheckedKernel,
    image: &Path,
    cgroup: CgroupMode,
    o: &LabOptions,
    cfg: &vm::QemuConfig,
) -> Result<Key, SnapshotError> {
    Ok(Key {
        format: FORMAT,
        kernel: k.files.name.clone(),
        kernel_sha256: hashed(&cfg.kernel, &o.cache)?,
        image_sha256: hashed(image, &o.cache)?,
        cgroup: cgroup.as_str().into(),
        qemu_version: qemu_version(&o.qemu),
        machine_args: machine_args(cfg),
        memory_mb: cfg.memory_mb,
        cpus: cfg.cpus,
    })
}

fn seed() -> String {
    let mut b = [0u8; 32];
    let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if ok.is_err() {
        // Still distinct per VM: time and a counter (the guest mixes, never relies on it alone).
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let t = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos();
        b[..16].copy_from_slice(&t.to_le_bytes());
        b[16..24].copy_from_slice(&N.fetch_add(1, std::sync::atomic::Ordering::Relaxed).to_le_bytes());
    }
    crate::cache::hex(&b)
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
) -> Result<Restored, LabError> {
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
) -> Result<Restored, LabError> {
    let image = snapshot_image(k, o)?;
    let cfg = lab::vm_config(k, &image, cgroup, o, false);
    let key = key(k, &image, cgroup, o, &cfg)?;
    let t = Timeouts { boot: o.boot_timeout, step: Some(o.step_timeout) };
    let mut save = |dir: &Path| -> Result<u64, SnapshotError> {
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
                        u64::from(o.memory_mb) << 20
                    )
                    .unwrap_or_default(),
                    r.console_tail.join("\n")
                ),
            }),
        }
    };
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

/// Moves the manifest of a snapshot aside under the exclusive lock, so it is rebuilt.
fn invalidate(store: &Path, key: &Key, dir: &Path) -> Result<(), SnapshotError> {
    let lock_path = store.join(format!("{}.lock", key.dir_name()));
    let _lock = crate::cache::CacheLock::acquire_mode(&lock_path, true).map_err(super::io_err(&lock_path))?;
    let m = dir.join("manifest.json");
    match std::fs::rename(&m, dir.join("manifest.json.bad")) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SnapshotError::Io { path: m, source }),
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
