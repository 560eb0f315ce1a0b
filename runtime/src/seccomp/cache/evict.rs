//! Keeping the cache bounded: which files to remove (pure, [`plan`]) and removing them.

use std::path::Path;
use std::time::{Duration, SystemTime};

/// At most this many entries are kept.
pub const MAX_ENTRIES: usize = 64;
/// At most this many bytes of entries are kept (a docker-sized profile's entry is ~10 KB).
pub const MAX_BYTES: u64 = 4 << 20;
/// A temp file this old belongs to a writer that died before its rename.
pub const TEMP_MAX_AGE: Duration = Duration::from_secs(60);
/// Prefix of the temp files writers rename into place.
pub const TEMP_PREFIX: &str = ".tmp.";

/// One file of the cache directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheFile {
    /// Its name.
    pub name: String,
    /// Its size.
    pub bytes: u64,
    /// When it was last written.
    pub modified: SystemTime,
}

/// The files to remove so that at most `max_entries` entries (`*.bpf`) of at most `max_bytes`
/// in all remain, the oldest going first, plus temp files older than [`TEMP_MAX_AGE`] at
/// `now`. Other files are left alone.
pub fn plan(files: &[CacheFile], now: SystemTime, max_entries: usize, max_bytes: u64) -> Vec<String> {
    let mut remove: Vec<String> = files
        .iter()
        .filter(|f| f.name.starts_with(TEMP_PREFIX))
        .filter(|f| now.duration_since(f.modified).is_ok_and(|age| age > TEMP_MAX_AGE))
        .map(|f| f.name.clone())
        .collect();
    let mut entries: Vec<&CacheFile> =
        files.iter().filter(|f| f.name.ends_with(".bpf") && !f.name.starts_with('.')).collect();
    entries.sort_by(|a, b| (a.modified, &a.name).cmp(&(b.modified, &b.name)));
    let mut count = entries.len();
    let mut total: u64 = entries.iter().map(|f| f.bytes).sum();
    for oldest in entries {
        if count <= max_entries && total <= max_bytes {
            break;
        }
        remove.push(oldest.name.clone());
        count -= 1;
        total -= oldest.bytes;
    }
    remove
}

/// Applies [`plan`] with the default bounds to `dir`. Files another process removed first
/// are fine; any other failure only leaves the cache larger for now.
pub fn evict(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let files: Vec<CacheFile> = rd
        .filter_map(Result::ok)
        .filter_map(|e| {
            let meta = e.metadata().ok().filter(|m| m.is_file())?;
            Some(CacheFile {
                name: e.file_name().into_string().ok()?,
                bytes: meta.len(),
                modified: meta.modified().ok()?,
            })
        })
        .collect();
    for name in plan(&files, SystemTime::now(), MAX_ENTRIES, MAX_BYTES) {
        match std::fs::remove_file(dir.join(&name)) {
            Ok(()) => tracing::debug!("seccomp cache: evicted {name}"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::debug!("seccomp cache: evicting {name}: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn file(name: &str, bytes: u64, secs: u64) -> CacheFile {
        CacheFile { name: name.into(), bytes, modified: at(secs) }
    }

    fn entries() -> Vec<CacheFile> {
        vec![file("c.bpf", 100, 30), file("a.bpf", 100, 10), file("b.bpf", 100, 20), file("d.bpf", 100, 40)]
    }

    #[test_case(4, 1000, &[] ; "within both bounds")]
    #[test_case(3, 1000, &["a.bpf"] ; "one over the count")]
    #[test_case(1, 1000, &["a.bpf", "b.bpf", "c.bpf"] ; "down to one")]
    #[test_case(0, 1000, &["a.bpf", "b.bpf", "c.bpf", "d.bpf"] ; "none allowed")]
    #[test_case(10, 250, &["a.bpf", "b.bpf"] ; "over the bytes")]
    #[test_case(3, 150, &["a.bpf", "b.bpf", "c.bpf"] ; "the tighter bound wins")]
    fn the_oldest_entries_go_first(max_entries: usize, max_bytes: u64, expect: &[&str]) {
        assert_eq!(plan(&entries(), at(50), max_entries, max_bytes), expect);
    }

    #[test]
    fn equal_times_are_ordered_by_name() {
        let files = [file("y.bpf", 1, 5), file("x.bpf", 1, 5)];
        assert_eq!(plan(&files, at(50), 1, 100), ["x.bpf"]);
    }

    #[test]
    fn stale_temp_files_go_fresh_ones_stay() {
        let files = [file(".tmp.aa.bpf.41", 50, 0), file(".tmp.bb.bpf.42", 50, 100), file("aa.bpf", 50, 0)];
        assert_eq!(plan(&files, at(100), 10, 1000), [".tmp.aa.bpf.41"]);
    }

    #[test]
    fn temp_and_foreign_files_do_not_count_as_entries() {
        let files = [file(".tmp.x.bpf.1", 500, 99), file("README", 500, 0), file("a.bpf", 10, 1)];
        assert!(plan(&files, at(100), 1, 10).is_empty());
    }

    #[test]
    fn a_clock_set_back_removes_no_temp_file() {
        let files = [file(".tmp.x.bpf.1", 1, 200)];
        assert!(plan(&files, at(100), 1, 10).is_empty());
    }

    #[test]
    fn evict_removes_the_planned_files_from_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        for (i, name) in ["1.bpf", "2.bpf", "3.bpf"].iter().enumerate() {
            let path = dir.path().join(name);
            std::fs::write(&path, vec![0u8; 10]).unwrap();
            let f = std::fs::File::options().write(true).open(&path).unwrap();
            f.set_modified(at(i as u64)).unwrap();
        }
        let names = |d: &Path| {
            let mut v: Vec<String> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            v.sort();
            v
        };
        evict(dir.path());
        assert_eq!(names(dir.path()), ["1.bpf", "2.bpf", "3.bpf"]);
        for i in 4..(MAX_ENTRIES + 5) {
            let path = dir.path().join(format!("{i}.bpf"));
            std::fs::write(&path, vec![0u8; 10]).unwrap();
            std::fs::File::options().write(true).open(&path).unwrap().set_modified(at(i as u64)).unwrap();
        }
        evict(dir.path());
        let left = names(dir.path());
        assert_eq!(left.len(), MAX_ENTRIES);
        for gone in ["1.bpf", "2.bpf", "3.bpf", "4.bpf"] {
            assert!(!left.contains(&gone.to_string()), "{gone} was kept: {left:?}");
        }
    }
}
