//! The compile cache: compiled programs under `--root`, so that only the first `create` (or
//! `exec`) of a profile pays libseccomp's compile (~13 ms for docker's default profile).
//!
//! * Where: `<root>/@seccomp-cache/<key hex>.bpf` ([`CACHE_DIR`]; `@` is not allowed in a
//!   container id, so no container's state directory can be this one, and `list` skips it:
//!   it has no state.json).
//! * Key ([`entry::derive_key`]): SHA-256 of the profile's canonical bytes (its oci-spec value
//!   re-serialised), the native architecture, the loaded libseccomp's version, the kernel
//!   release and this isorun binary's identity (version, device, inode, size and mtime of
//!   /proc/self/exe), so a rebuilt or upgraded isorun never uses another build's
//!   translation.
//! * Each entry carries its key and a SHA-256 of its contents, verified on every use, and
//!   the program passes [`super::verify_program`] again; an entry that fails any check (or is
//!   not a regular file owned by this user and writable only by it) is a miss: the profile
//!   is compiled again and the entry rewritten.
//! * Writes are atomic: a temp file in the same directory, renamed over the entry, so a
//!   concurrent reader sees a whole old or a whole new file, and concurrent writers of one
//!   key each rename a whole file. After a write the directory is bounded
//!   ([`evict::MAX_ENTRIES`] entries, [`evict::MAX_BYTES`]), the oldest going first.
//! * A miss compiles within the same time limit as without the cache
//!   ([`super::compile_within`]); a cache that cannot be read or written only costs that
//!   compile, never the create.

pub mod entry;
pub mod evict;

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::LinuxSeccomp;

use super::{Filter, SeccompError};
use entry::{EntryError, Key, KeyInputs};

/// The cache directory's name under `--root`.
pub const CACHE_DIR: &str = "@seccomp-cache";

/// An entry larger than this is not read (a 4096-instruction program is ~33 KB).
const MAX_ENTRY_BYTES: u64 = 64 << 10;

/// Why a lookup did not give a filter.
#[derive(Debug, thiserror::Error)]
pub enum Miss {
    /// No entry for the key.
    #[error("no entry")]
    Absent,
    /// The entry could not be opened or read.
    #[error("reading: {0}")]
    Read(std::io::Error),
    /// Not a regular file of ours, writable only by us, of a plausible size.
    #[error("not trusted: {0}")]
    Untrusted(&'static str),
    /// Its bytes failed a check.
    #[error("corrupt: {0}")]
    Corrupt(#[from] EntryError),
    /// Its program failed [`super::verify_program`].
    #[error("invalid program: {0}")]
    Invalid(SeccompError),
}

/// The cache directory of the runtime root `root`.
pub fn dir(root: &Path) -> PathBuf {
    root.join(CACHE_DIR)
}

/// The key of `profile` on this host and binary; `None` when some input cannot be found
/// (then nothing is cached).
pub fn key_of(profile: &LinuxSeccomp) -> Option<Key> {
    let bytes = serde_json::to_vec(profile).ok()?;
    let v = libseccomp::ScmpVersion::current().ok()?;
    let kernel = nix::sys::utsname::uname().ok()?;
    let runtime = runtime_identity()?;
    Some(entry::derive_key(&KeyInputs {
        profile: &bytes,
        arch: std::env::consts::ARCH,
        libseccomp: (v.major, v.minor, v.micro),
        kernel: kernel.release().to_str()?,
        runtime: &runtime,
    }))
}

/// This binary: isorun's version and the identity of the file it runs from.
fn runtime_identity() -> Option<String> {
    let m = std::fs::metadata("/proc/self/exe").ok()?;
    Some(format!(
        "{} {}:{} {} {}.{}",
        env!("CARGO_PKG_VERSION"),
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec()
    ))
}

/// The filter stored under `key` in `dir`, if it passes every check.
pub fn lookup(dir: &Path, key: &Key) -> Result<Filter, Miss> {
    let path = dir.join(entry::file_name(key));
    let mut f = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| if e.kind() == std::io::ErrorKind::NotFound { Miss::Absent } else { Miss::Read(e) })?;
    let meta = f.metadata().map_err(Miss::Read)?;
    if !meta.is_file() {
        return Err(Miss::Untrusted("not a regular file"));
    }
    if meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(Miss::Untrusted("owned by another user"));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(Miss::Untrusted("writable by group or others"));
    }
    if meta.len() > MAX_ENTRY_BYTES {
        return Err(Miss::Untrusted("too large"));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.read_to_end(&mut bytes).map_err(Miss::Read)?;
    let (flags, program) = entry::decode(&bytes, key)?;
    super::verify_program(&program).map_err(Miss::Invalid)?;
    Ok(Filter { program, flags: flags as libc::c_ulong })
}

/// Writes `filter` under `key` in `dir` atomically, then bounds the directory.
pub fn store(dir: &Path, key: &Key, filter: &Filter) -> std::io::Result<PathBuf> {
    // The root as the state store makes it; only the cache directory itself is private.
    if let Some(root) = dir.parent() {
        std::fs::create_dir_all(root)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let name = entry::file_name(key);
    let path = dir.join(&name);
    static WRITES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!("{}{name}.{}.{n}", evict::TEMP_PREFIX, std::process::id()));
    #[allow(clippy::useless_conversion)] // c_ulong is u64 only on 64-bit targets
    let flags = u64::from(filter.flags);
    let bytes = entry::encode(key, flags, &filter.program);
    let written = write_new(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, &path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    evict::evict(dir);
    Ok(path)
}

fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let open = || {
        std::fs::File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
    };
    let mut f = match open() {
        // Left by an earlier process of the same pid that died before its rename.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(path)?;
            open()?
        }
        other => other?,
    };
    f.write_all(bytes)
}

/// [`super::compile_within`] behind the cache of runtime root `root`: a verified entry is
/// used as is; otherwise the profile is compiled (within `limit`) and the entry (re)written.
pub fn compile_cached(root: &Path, profile: &LinuxSeccomp, limit: Duration) -> Result<Filter, SeccompError> {
    let Some(key) = key_of(profile) else {
        tracing::debug!("seccomp cache: no key for this host, compiling");
        return super::compile_within(profile, limit);
    };
    let dir = dir(root);
    match lookup(&dir, &key) {
        Ok(filter) => {
            tracing::debug!("seccomp cache hit: {}", entry::file_name(&key));
            return Ok(filter);
        }
        Err(miss) => tracing::debug!("seccomp cache miss: {}: {miss}", entry::file_name(&key)),
    }
    let filter = super::compile_within(profile, limit)?;
    match store(&dir, &key, &filter) {
        Ok(path) => tracing::debug!("seccomp cache: stored {}", path.display()),
        Err(e) => tracing::debug!("seccomp cache: storing in {}: {e}", dir.display()),
    }
    Ok(filter)
}

#[cfg(test)]
mod tests;
