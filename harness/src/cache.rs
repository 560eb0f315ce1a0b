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
}
