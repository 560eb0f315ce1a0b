//! The on-disk cache: `$ISOLAB_CACHE_DIR`, else `$XDG_CACHE_HOME/isolab`, else `~/.cache/isolab`.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Resolves the cache root from the environment (pure in its inputs; see [`cache_root`]).
pub fn cache_root_from(isolab: Option<&str>, xdg: Option<&str>, home: Option<&str>) -> PathBuf {
    match (isolab, xdg, home) {
        (Some(d), _, _) if !d.is_empty() => PathBuf::from(d),
        (_, Some(x), _) if !x.is_empty() => Path::new(x).join("isolab"),
        (_, _, Some(h)) if !h.is_empty() => Path::new(h).join(".cache/isolab"),
        _ => PathBuf::from("/var/cache/isolab"),
    }
}

/// The cache root for this process.
pub fn cache_root() -> PathBuf {
    let get = |k| std::env::var(k).ok();
    cache_root_from(
        get("ISOLAB_CACHE_DIR").as_deref(),
        get("XDG_CACHE_HOME").as_deref(),
        get("HOME").as_deref(),
    )
}

/// An exclusive advisory lock on a file in the cache, held until dropped (serializes fetches
/// of parallel test processes sharing one cache).
#[derive(Debug)]
pub struct CacheLock {
    _file: std::fs::File,
}

impl CacheLock {
    /// Blocks until `path` (created if missing) is locked exclusively.
    pub fn acquire(path: &Path) -> std::io::Result<Self> {
        use std::os::fd::AsRawFd;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
        // SAFETY: flock on a file descriptor we own and keep open for the lock's lifetime.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(CacheLock { _file: file })
    }
}

impl CacheLock {
    /// Opens `path` (created if missing) and blocks until it is locked shared (many holders)
    /// or exclusive.
    pub fn acquire_mode(path: &Path, exclusive: bool) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
        let lock = CacheLock { _file: file };
        lock.relock(exclusive)?;
        Ok(lock)
    }

    /// Locks `path` exclusively if nobody holds it; None when it is held.
    pub fn try_exclusive(path: &Path) -> std::io::Result<Option<Self>> {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
        // SAFETY: flock on a file descriptor we own and keep open for the lock's lifetime.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            return if e.raw_os_error() == Some(libc::EWOULDBLOCK) { Ok(None) } else { Err(e) };
        }
        Ok(Some(CacheLock { _file: file }))
    }

    /// Marks the locked file as used now (its mtime), for least-recently-used pruning.
    pub fn touch(&self) {
        let _ = self._file.set_modified(std::time::SystemTime::now());
    }

    /// Converts the lock to shared or exclusive (blocking; not atomic: another holder may get
    /// in between, so re-check what the lock protects after upgrading).
    pub fn relock(&self, exclusive: bool) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let op = if exclusive { libc::LOCK_EX } else { libc::LOCK_SH };
        // SAFETY: flock on a file descriptor owned by self and open for its lifetime.
        if unsafe { libc::flock(self._file.as_raw_fd(), op) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of a file, as lower-case hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// [`sha256_file`] memoized under `memo_dir` by (path, size, mtime, inode): an unchanged file
/// is not read again. A changed file gets a new stat key, so the content hash stays exact.
pub fn sha256_file_memo(path: &Path, memo_dir: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    let stat_key =
        format!("{}|{}|{}.{}|{}|{}", path.display(), m.len(), m.mtime(), m.mtime_nsec(), m.ino(), m.dev());
    let memo = memo_dir.join(&hex(&Sha256::digest(stat_key.as_bytes()))[..32]);
    if let Ok(h) = std::fs::read_to_string(&memo) {
        if h.len() == 64 {
            return Ok(h);
        }
    }
    let h = sha256_file(path)?;
    if std::fs::create_dir_all(memo_dir).is_ok() {
        let tmp = memo.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, &h).is_ok() {
            let _ = std::fs::rename(&tmp, &memo);
        }
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case(Some("/c"), Some("/x"), Some("/h"), "/c" ; "explicit")]
    #[test_case(None, Some("/x"), Some("/h"), "/x/isolab" ; "xdg")]
    #[test_case(None, Some(""), Some("/h"), "/h/.cache/isolab" ; "home")]
    #[test_case(None, None, None, "/var/cache/isolab" ; "nothing")]
    fn root(i: Option<&str>, x: Option<&str>, h: Option<&str>, want: &str) {
        assert_eq!(cache_root_from(i, x, h), PathBuf::from(want));
    }

    #[test]
    fn memoized_hash_follows_content() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        std::fs::write(&f, b"one").unwrap();
        let memo = t.path().join("memo");
        let a = sha256_file_memo(&f, &memo).unwrap();
        assert_eq!(a, sha256_file(&f).unwrap());
        assert_eq!(sha256_file_memo(&f, &memo).unwrap(), a);
        std::fs::write(&f, b"two, longer").unwrap();
        assert_eq!(sha256_file_memo(&f, &memo).unwrap(), sha256_file(&f).unwrap());
    }
}

/// Bytes an unprivileged writer may still use on the filesystem holding `path` (statvfs
/// `f_bavail * f_frsize`); None if it cannot be asked.
pub fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and outlives the call; `st` is a valid, writable statvfs.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

/// Why a snapshot's VM may have died of its store (a RAM file on a full filesystem gets
/// QEMU a SIGBUS): a note when `free` bytes are less than the guest's `ram` bytes.
pub fn full_store_note(store: &Path, free: Option<u64>, ram: u64) -> Option<String> {
    let free = free?;
    (free < ram).then(|| {
        format!(
            "; the snapshot store {} has {} MiB free and the guest's RAM file needs {} MiB (is the disk full?)",
            store.display(),
            free >> 20,
            ram >> 20
        )
    })
}

#[cfg(test)]
mod full_store_tests {
    use super::*;

    #[test_case::test_case(Some(0), 512 << 20, true ; "full")]
    #[test_case::test_case(Some(100 << 20), 512 << 20, true ; "too small")]
    #[test_case::test_case(Some(600 << 20), 512 << 20, false ; "room")]
    #[test_case::test_case(None, 512 << 20, false ; "unknown")]
    fn note(free: Option<u64>, ram: u64, says: bool) {
        let n = full_store_note(Path::new("/c/snapshots"), free, ram);
        assert_eq!(n.is_some(), says, "{n:?}");
        if let Some(n) = n {
            assert!(
                n.contains("/c/snapshots") && n.contains("needs 512 MiB") && n.contains("disk full"),
                "{n}"
            );
        }
    }

    #[test]
    fn free_bytes_of_a_real_directory() {
        assert!(free_bytes(Path::new("/")).is_some());
        assert_eq!(free_bytes(Path::new("/nonexistent/dir")), None);
    }
}
