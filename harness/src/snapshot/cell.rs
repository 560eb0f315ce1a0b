//! A cell's snapshot in the store: where the store is, the key a (kernel, cgroup mode, QEMU
//! configuration) cell's snapshot is built for, marking one damaged, and the fresh seed every
//! restored VM gets. Starting a VM from it is `launch`'s.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{Key, SnapshotError, FORMAT};
use crate::kernels::CheckedKernel;
use crate::protocol::CgroupMode;
use crate::vm;

/// The snapshot store of a cache.
pub fn store(cache: &Path) -> PathBuf {
    cache.join("snapshots")
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

/// The snapshot key of a cell: kernel `k` booting `image` in `cgroup` as `cfg` says (file
/// hashes memoised under `cache`).
pub fn key(
    k: &CheckedKernel,
    image: &Path,
    cgroup: CgroupMode,
    cache: &Path,
    cfg: &vm::QemuConfig,
) -> Result<Key, SnapshotError> {
    Ok(Key {
        format: FORMAT,
        kernel: k.files.name.clone(),
        kernel_sha256: hashed(&cfg.kernel, cache)?,
        image_sha256: hashed(image, cache)?,
        cgroup: cgroup.as_str().into(),
        qemu_version: vm::qemu_version(&cfg.qemu),
        machine_args: machine_args(cfg),
        memory_mb: cfg.memory_mb,
        cpus: cfg.cpus,
    })
}

/// 32 random bytes, hex, for a restored guest's entropy pool.
pub fn seed() -> String {
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

/// Moves the manifest of a snapshot aside under the exclusive lock, so it is rebuilt.
pub fn invalidate(store: &Path, key: &Key, dir: &Path) -> Result<(), SnapshotError> {
    let lock_path = store.join(format!("{}.lock", key.dir_name()));
    let _lock = crate::cache::CacheLock::acquire_mode(&lock_path, true).map_err(super::io_err(&lock_path))?;
    let m = dir.join("manifest.json");
    match std::fs::rename(&m, dir.join("manifest.json.bad")) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SnapshotError::Io { path: m, source }),
    }
}
