//! Snapshots of booted VMs in the cache: boot a (kernel, cgroup mode) cell once to the agent's
//! hello, save it, and start every later VM of the cell by restoring it (see `vm::snapvm` for
//! the QEMU side, `agent::payload` for how the runtime under test gets in).
//!
//! Layout: `<cache>/snapshots/<kernel>-<cgroup>-<cpus>c-<mem>m-<hash>/` holds `ram` (guest
//! memory, sparse), `state` (device state) and `manifest.json`: the [`Key`] it was built for
//! and what its files must look like. `<hash>` is the hash of the whole key, so every key has
//! its own directory: callers that differ in anything the manifest checks (the tests and the
//! matrix, two QEMU versions, a changed image) each keep theirs instead of evicting each
//! other's; `isolab cache prune` bounds how many stay. Before use the manifest is compared with
//! the key wanted now and the files with the manifest; damage means the snapshot is rebuilt,
//! never used. Builds happen in a temp dir and are renamed into place; a lock file per
//! snapshot is held shared by VMs starting from it and exclusive by a rebuild.

pub mod cell;
pub mod payload;
pub mod prune;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cache::CacheLock;

/// Snapshots kept per cell (kernel, cgroup mode, machine size): one per caller whose key
/// differs (tests, matrix, another QEMU), beyond which the least recently used go.
pub const KEEP_PER_CELL: usize = 3;

/// Bump when the snapshot layout or the way VMs are saved changes.
pub const FORMAT: u32 = 2;

/// Errors of the snapshot store, naming the path or cell.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A file of the store could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// errno.
        source: std::io::Error,
    },
    /// The VM that was to be saved failed.
    #[error("saving snapshot {name}: {detail}")]
    Save {
        /// The snapshot's directory name.
        name: String,
        /// What went wrong, with the console tail.
        detail: String,
    },
    /// The runtime does not fit in the payload device.
    #[error("payload for {runtime}: {bytes} bytes do not fit in the {max}-byte payload device")]
    PayloadTooBig {
        /// The runtime.
        runtime: PathBuf,
        /// Its archive size.
        bytes: u64,
        /// The device size.
        max: u64,
    },
    /// Reading the runtime or its libraries failed.
    #[error("payload for {runtime}: {detail}")]
    Payload {
        /// The runtime.
        runtime: PathBuf,
        /// What failed.
        detail: String,
    },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io { path: path.to_path_buf(), source }
}

/// Everything a snapshot depends on: a different value anywhere means another snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    /// [`FORMAT`].
    pub format: u32,
    /// Kernel name (kernels.toml).
    pub kernel: String,
    /// sha256 of the file QEMU boots (`-kernel`).
    pub kernel_sha256: String,
    /// sha256 of the initramfs.
    pub image_sha256: String,
    /// `v1` / `v2`.
    pub cgroup: String,
    /// `qemu-system-x86_64 --version`, first line.
    pub qemu_version: String,
    /// The QEMU arguments of the VM, with per-VM socket paths left out and the kernel and
    /// initramfs paths written as `@kernel` and `@initrd` (their contents are keyed above, so
    /// a moved cache or a re-extracted kernel file keeps its snapshots).
    pub machine_args: Vec<String>,
    /// Guest RAM, MiB.
    pub memory_mb: u32,
    /// vCPUs.
    pub cpus: u32,
}

impl Key {
    /// The snapshot's directory name: the cell, the machine size and a hash of the whole key
    /// (pure). Two keys that differ anywhere get two directories.
    pub fn dir_name(&self) -> String {
        use sha2::{Digest, Sha256};
        let json = serde_json::to_vec(self).unwrap_or_default();
        let hash = crate::cache::hex(&Sha256::digest(json));
        format!("{}-{}-{}c-{}m-{}", self.kernel, self.cgroup, self.cpus, self.memory_mb, &hash[..12])
    }
}

/// `manifest.json`: the key and the files as saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// What it was built for.
    pub key: Key,
    /// sha256 of `state`.
    pub state_sha256: String,
    /// Size of `ram` (the guest memory size).
    pub ram_bytes: u64,
    /// Milliseconds the saving VM took from QEMU start to the saved state.
    pub build_ms: u64,
}

/// Why a snapshot was (re)built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// There was none.
    Missing,
    /// Built for something else: the differing key fields.
    Stale(Vec<String>),
    /// Unreadable or damaged: which file and how.
    Damaged(String),
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Missing => write!(f, "none cached"),
            Why::Stale(fields) => write!(f, "stale ({} changed)", fields.join(", ")),
            Why::Damaged(what) => write!(f, "damaged ({what})"),
        }
    }
}

/// Key fields that differ between two keys (pure).
pub fn key_diff(a: &Key, b: &Key) -> Vec<String> {
    let (a, b) = (serde_json::to_value(a).unwrap_or_default(), serde_json::to_value(b).unwrap_or_default());
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else { return vec!["key".into()] };
    a.keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// A usable snapshot.
#[derive(Debug)]
pub struct Snapshot {
    /// Its directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Held shared while VMs start from it.
    _lock: CacheLock,
}

impl Snapshot {
    /// Guest RAM file.
    pub fn ram(&self) -> PathBuf {
        self.dir.join("ram")
    }
    /// Device state file.
    pub fn state(&self) -> PathBuf {
        self.dir.join("state")
    }
}

/// Checks the snapshot in `dir` against `key`: the manifest, the state's hash, the RAM size.
pub fn check(dir: &Path, key: &Key) -> Result<Manifest, Why> {
    let text = match std::fs::read_to_string(dir.join("manifest.json")) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !dir.exists() => return Err(Why::Missing),
        Err(e) => return Err(Why::Damaged(format!("manifest.json: {e}"))),
    };
    let m: Manifest = serde_json::from_str(&text).map_err(|e| Why::Damaged(format!("manifest.json: {e}")))?;
    let diff = key_diff(&m.key, key);
    if !diff.is_empty() {
        return Err(Why::Stale(diff));
    }
    let ram = std::fs::metadata(dir.join("ram")).map_err(|e| Why::Damaged(format!("ram: {e}")))?;
    if ram.len() != m.ram_bytes {
        return Err(Why::Damaged(format!("ram is {} bytes, the manifest says {}", ram.len(), m.ram_bytes)));
    }
    let state =
        crate::cache::sha256_file(&dir.join("state")).map_err(|e| Why::Damaged(format!("state: {e}")))?;
    if state != m.state_sha256 {
        return Err(Why::Damaged("state does not match its sha256".into()));
    }
    Ok(m)
}

/// How [`ensure`] got its snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The cached one was valid.
    Reused,
    /// It was built now, for this reason.
    Built(Why),
}

/// Returns a valid snapshot for `key` under `root`, building it with `save` (called with a
/// fresh directory to fill with `ram`, `state`; returns the build time in ms) when missing,
/// stale or damaged. The returned snapshot holds a shared lock until dropped.
pub fn ensure(
    root: &Path,
    key: &Key,
    save: &mut dyn FnMut(&Path) -> Result<u64, SnapshotError>,
) -> Result<(Snapshot, Outcome), SnapshotError> {
    let name = key.dir_name();
    let dir = root.join(&name);
    let lock_path = root.join(format!("{name}.lock"));
    let lock = CacheLock::acquire_mode(&lock_path, false).map_err(io_err(&lock_path))?;
    lock.touch();
    if let Ok(manifest) = check(&dir, key) {
        return Ok((Snapshot { dir, manifest, _lock: lock }, Outcome::Reused));
    }
    lock.relock(true).map_err(io_err(&lock_path))?;
    let why = match check(&dir, key) {
        Ok(manifest) => {
            lock.relock(false).map_err(io_err(&lock_path))?;
            return Ok((Snapshot { dir, manifest, _lock: lock }, Outcome::Reused));
        }
        Err(why) => why,
    };
    let tmp = root.join(format!(".build-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
    let built = build_into(&tmp, key, save);
    let manifest = match built {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    if dir.exists() {
        let old = root.join(format!(".old-{name}-{}", std::process::id()));
        std::fs::rename(&dir, &old).map_err(io_err(&dir))?;
        let _ = std::fs::remove_dir_all(&old);
    }
    std::fs::rename(&tmp, &dir).map_err(io_err(&dir))?;
    lock.relock(false).map_err(io_err(&lock_path))?;
    prune::trim_cell(root, prune::cell_of(&name), KEEP_PER_CELL);
    Ok((Snapshot { dir, manifest, _lock: lock }, Outcome::Built(why)))
}

fn build_into(
    tmp: &Path,
    key: &Key,
    save: &mut dyn FnMut(&Path) -> Result<u64, SnapshotError>,
) -> Result<Manifest, SnapshotError> {
    let build_ms = save(tmp)?;
    let (ram, state) = (tmp.join("ram"), tmp.join("state"));
    for f in [&ram, &state] {
        std::fs::File::open(f).and_then(|f| f.sync_all()).map_err(io_err(f))?;
    }
    let manifest = Manifest {
        key: key.clone(),
        state_sha256: crate::cache::sha256_file(&state).map_err(io_err(&state))?,
        ram_bytes: std::fs::metadata(&ram).map_err(io_err(&ram))?.len(),
        build_ms,
    };
    let path = tmp.join("manifest.json");
    let json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    std::fs::write(&path, json).map_err(io_err(&path))?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key {
            format: FORMAT,
            kernel: "debian-6.1".into(),
            kernel_sha256: "k".into(),
            image_sha256: "i".into(),
            cgroup: "v2".into(),
            qemu_version: "QEMU emulator version 7.2.22".into(),
            machine_args: vec!["-m".into(), "512".into()],
            memory_mb: 512,
            cpus: 2,
        }
    }

    fn fake_save(calls: &mut u32) -> impl FnMut(&Path) -> Result<u64, SnapshotError> + '_ {
        move |dir: &Path| {
            *calls += 1;
            std::fs::write(dir.join("ram"), vec![0u8; 4096]).unwrap();
            std::fs::write(dir.join("state"), format!("state {calls}")).unwrap();
            Ok(7)
        }
    }

    #[test]
    fn each_key_keeps_its_own_snapshot_and_damage_is_rebuilt() {
        let t = tempfile::tempdir().unwrap();
        let mut calls = 0;
        let (s, o) = ensure(t.path(), &key(), &mut fake_save(&mut calls)).unwrap();
        let name = s.dir.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(o, Outcome::Built(Why::Missing));
        assert!(
            name.starts_with("debian-6.1-v2-2c-512m-") && name.len() == "debian-6.1-v2-2c-512m-".len() + 12
        );
        drop(s);
        let (_, o) = ensure(t.path(), &key(), &mut fake_save(&mut calls)).unwrap();
        assert_eq!(o, Outcome::Reused);
        // Another caller's key (another image and QEMU): its own snapshot, and the first stays.
        let mut k2 = key();
        k2.image_sha256 = "new".into();
        k2.qemu_version = "QEMU emulator version 8.0".into();
        let (s, o) = ensure(t.path(), &k2, &mut fake_save(&mut calls)).unwrap();
        assert_eq!(o, Outcome::Built(Why::Missing));
        assert_ne!(s.dir.file_name().unwrap().to_str().unwrap(), name);
        drop(s);
        for k in [key(), k2.clone(), key(), k2.clone()] {
            assert_eq!(ensure(t.path(), &k, &mut fake_save(&mut calls)).unwrap().1, Outcome::Reused, "{k:?}");
        }
        let (s, _) = ensure(t.path(), &k2, &mut fake_save(&mut calls)).unwrap();
        std::fs::write(s.state(), b"bit rot").unwrap();
        drop(s);
        let (s, o) = ensure(t.path(), &k2, &mut fake_save(&mut calls)).unwrap();
        assert!(matches!(o, Outcome::Built(Why::Damaged(ref w)) if w.contains("sha256")), "{o:?}");
        std::fs::write(s.dir.join("manifest.json"), b"{ not json").unwrap();
        drop(s);
        let (s, o) = ensure(t.path(), &k2, &mut fake_save(&mut calls)).unwrap();
        assert!(matches!(o, Outcome::Built(Why::Damaged(ref w)) if w.contains("manifest.json")), "{o:?}");
        // A manifest of another key under this name (copied by hand): stale, never used.
        let other = serde_json::to_vec(&Manifest {
            key: key(),
            state_sha256: String::new(),
            ram_bytes: 0,
            build_ms: 0,
        });
        std::fs::write(s.dir.join("manifest.json"), other.unwrap()).unwrap();
        drop(s);
        let (_, o) = ensure(t.path(), &k2, &mut fake_save(&mut calls)).unwrap();
        assert_eq!(o, Outcome::Built(Why::Stale(vec!["image_sha256".into(), "qemu_version".into()])));
        assert_eq!(calls, 5);
        let left: Vec<_> = std::fs::read_dir(t.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), 4, "two snapshots and their lock files, no temp dirs: {left:?}");
    }

    #[test]
    fn a_failed_save_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        let mut fail = |_: &Path| Err(SnapshotError::Save { name: "x".into(), detail: "boom".into() });
        assert!(ensure(t.path(), &key(), &mut fail).is_err());
        assert!(!t.path().join(key().dir_name()).exists());
        assert!(std::fs::read_dir(t.path())
            .unwrap()
            .flatten()
            .all(|e| e.file_name().to_string_lossy().ends_with(".lock")));
    }
}
