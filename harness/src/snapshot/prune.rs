//! `isolab cache prune`: bounds the disk use of snapshots and images, least recently used
//! first. A snapshot in use (its lock held by a starting or running VM) is skipped.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{io_err, SnapshotError};
use crate::cache::CacheLock;

/// One prunable thing in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// A snapshot directory or an image file.
    pub path: PathBuf,
    /// Bytes allocated on disk (sparse files count what they use).
    pub bytes: u64,
    /// Last use (snapshots: last start from it; images: last build or use).
    pub used: SystemTime,
}

/// Parses `500M`, `4G`, `1.5G`, `123` (bytes); binary units (pure).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 'K' | 'k') => (&s[..i], 1u64 << 10),
        (i, 'M' | 'm') => (&s[..i], 1 << 20),
        (i, 'G' | 'g') => (&s[..i], 1 << 30),
        (i, 'T' | 't') => (&s[..i], 1 << 40),
        _ => (s, 1),
    };
    let n: f64 = num.parse().ok()?;
    (n.is_finite() && n >= 0.0).then_some((n * mult as f64) as u64)
}

/// Which items to remove so the rest fit in `max` bytes: least recently used first (pure).
pub fn victims(items: &[Item], max: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| items[i].used);
    let mut total: u64 = items.iter().map(|i| i.bytes).sum();
    let mut out = Vec::new();
    for i in order {
        if total <= max {
            break;
        }
        total -= items[i].bytes;
        out.push(i);
    }
    out
}

fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::symlink_metadata(path) else { return 0 };
    if m.is_dir() {
        let rd = std::fs::read_dir(path).into_iter().flatten().flatten();
        rd.map(|e| allocated(&e.path())).sum::<u64>() + m.blocks() * 512
    } else {
        m.blocks() * 512
    }
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Snapshots under `<cache>/snapshots` and images under `<cache>/images`.
pub fn items(cache: &Path) -> Vec<Item> {
    let mut out = Vec::new();
    let snaps = cache.join("snapshots");
    for e in std::fs::read_dir(&snaps).into_iter().flatten().flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() {
            // Leftovers of an interrupted build count from their own mtime.
            let lock = snaps.join(format!("{name}.lock"));
            let used = if lock.exists() { mtime(&lock) } else { mtime(&p) };
            out.push(Item { bytes: allocated(&p), used, path: p });
        }
    }
    for e in std::fs::read_dir(cache.join("images")).into_iter().flatten().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "cpio" || x == "zst") {
            out.push(Item { bytes: allocated(&p), used: mtime(&p), path: p });
        }
    }
    out
}

/// The cell of a snapshot directory name: without the key hash it ends with (pure). An
/// older name without a hash is its own cell's name, so it is trimmed with the newer ones.
pub fn cell_of(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((cell, hash)) if hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => cell,
        _ => name,
    }
}

/// The snapshots of `cell` beyond the `keep` most recently used (pure): indexes into `snaps`
/// (directory name, last use), least recently used first.
pub fn cell_excess(snaps: &[(String, SystemTime)], cell: &str, keep: usize) -> Vec<usize> {
    let mut mine: Vec<usize> = (0..snaps.len()).filter(|&i| cell_of(&snaps[i].0) == cell).collect();
    mine.sort_by_key(|&i| std::cmp::Reverse(snaps[i].1));
    let mut out: Vec<usize> = mine.into_iter().skip(keep).collect();
    out.reverse();
    out
}

/// Removes the snapshots of `cell` in `store` beyond the `keep` most recently used, skipping
/// any in use; what was removed. Called after each build, so a cell keeps a few snapshots
/// (one per caller's key) without growing with every new image.
pub fn trim_cell(store: &Path, cell: &str, keep: usize) -> Vec<PathBuf> {
    let mut snaps = Vec::new();
    for e in std::fs::read_dir(store).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if e.path().is_dir() && !name.starts_with('.') {
            let lock = store.join(format!("{name}.lock"));
            snaps.push((name, if lock.exists() { mtime(&lock) } else { mtime(&e.path()) }));
        }
    }
    let mut removed = Vec::new();
    for i in cell_excess(&snaps, cell, keep) {
        let name = &snaps[i].0;
        let lock_path = store.join(format!("{name}.lock"));
        let Ok(Some(_lock)) = CacheLock::try_exclusive(&lock_path) else { continue };
        // The lock file stays (as with `prune`): a VM may be opening it right now.
        let dir = store.join(name);
        if std::fs::remove_dir_all(&dir).is_ok() {
            removed.push(dir);
        }
    }
    removed
}

/// What a prune did.
#[derive(Debug, Default)]
pub struct Pruned {
    /// Removed, with their sizes.
    pub removed: Vec<(PathBuf, u64)>,
    /// Skipped because in use.
    pub busy: Vec<PathBuf>,
    /// Bytes left.
    pub left: u64,
}

/// Removes least recently used snapshots and images until the rest fit in `max` bytes.
pub fn prune(cache: &Path, max: u64) -> Result<Pruned, SnapshotError> {
    let all = items(cache);
    let mut out = Pruned { left: all.iter().map(|i| i.bytes).sum(), ..Default::default() };
    for i in victims(&all, 0) {
        if out.left <= max {
            break;
        }
        let it = &all[i];
        let is_snapshot = it.path.parent().is_some_and(|p| p.ends_with("snapshots"));
        let name = it.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let lock = if is_snapshot && !name.starts_with('.') {
            let lp = it.path.with_file_name(format!("{name}.lock"));
            match CacheLock::try_exclusive(&lp).map_err(io_err(&lp))? {
                Some(l) => Some(l),
                None => {
                    out.busy.push(it.path.clone());
                    continue;
                }
            }
        } else {
            None
        };
        let res =
            if it.path.is_dir() { std::fs::remove_dir_all(&it.path) } else { std::fs::remove_file(&it.path) };
        res.map_err(io_err(&it.path))?;
        drop(lock);
        out.left -= it.bytes;
        out.removed.push((it.path.clone(), it.bytes));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use test_case::test_case;

    #[test_case("123", Some(123) ; "bytes")]
    #[test_case("500M", Some(500 << 20) ; "mebi")]
    #[test_case("1.5G", Some(3 << 29) ; "fraction")]
    #[test_case("4g", Some(4 << 30) ; "lower")]
    #[test_case("-1G", None ; "negative")]
    #[test_case("lots", None ; "junk")]
    #[test_case("", None ; "empty")]
    fn sizes(s: &str, want: Option<u64>) {
        assert_eq!(parse_size(s), want);
    }

    #[test_case("debian-6.1-v2-2c-512m-84be25e77a3b", "debian-6.1-v2-2c-512m" ; "hashed")]
    #[test_case("debian-6.1-v2-2c-512m", "debian-6.1-v2-2c-512m" ; "older name")]
    #[test_case("k-v2-1c-512m-84be25e77a3z", "k-v2-1c-512m-84be25e77a3z" ; "not hex")]
    fn cells(name: &str, cell: &str) {
        assert_eq!(cell_of(name), cell);
    }

    #[test]
    fn a_cell_keeps_its_most_recently_used_snapshots() {
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let snaps: Vec<(String, SystemTime)> = [
            ("c-v2-1c-512m-aaaaaaaaaaaa", 40),
            ("c-v2-1c-512m", 5),
            ("c-v2-1c-512m-bbbbbbbbbbbb", 10),
            ("c-v1-1c-512m-cccccccccccc", 1),
            ("c-v2-1c-512m-dddddddddddd", 30),
        ]
        .iter()
        .map(|(n, s)| (n.to_string(), t(*s)))
        .collect();
        assert_eq!(cell_excess(&snaps, "c-v2-1c-512m", 2), vec![1, 2], "oldest first, other cells untouched");
        assert_eq!(cell_excess(&snaps, "c-v2-1c-512m", 4), Vec::<usize>::new());
    }

    #[test]
    fn trimming_a_cell_spares_snapshots_in_use() {
        let t = tempfile::tempdir().unwrap();
        for (name, age) in [
            ("c-v2-1c-512m-aaaaaaaaaaaa", 3u64),
            ("c-v2-1c-512m-bbbbbbbbbbbb", 2),
            ("c-v2-1c-512m-cccccccccccc", 1),
        ] {
            std::fs::create_dir_all(t.path().join(name)).unwrap();
            let lock = std::fs::File::create(t.path().join(format!("{name}.lock"))).unwrap();
            lock.set_modified(SystemTime::now() - Duration::from_secs(age * 100)).unwrap();
        }
        let busy = CacheLock::acquire_mode(&t.path().join("c-v2-1c-512m-aaaaaaaaaaaa.lock"), false).unwrap();
        let removed = trim_cell(t.path(), "c-v2-1c-512m", 1);
        assert_eq!(removed, vec![t.path().join("c-v2-1c-512m-bbbbbbbbbbbb")], "the oldest is in use");
        assert!(
            t.path().join("c-v2-1c-512m-aaaaaaaaaaaa").is_dir()
                && t.path().join("c-v2-1c-512m-cccccccccccc").is_dir()
        );
        drop(busy);
    }

    #[test]
    fn least_recently_used_go_first_until_it_fits() {
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let it = |n: &str, bytes, used| Item { path: n.into(), bytes, used: t(used) };
        let items = vec![it("new", 100, 30), it("old", 100, 10), it("mid", 100, 20)];
        assert_eq!(victims(&items, 300), Vec::<usize>::new());
        assert_eq!(victims(&items, 150), vec![1, 2]);
        assert_eq!(victims(&items, 0), vec![1, 2, 0]);
    }

    #[test]
    fn prune_removes_until_under_the_limit_and_skips_busy_snapshots() {
        let t = tempfile::tempdir().unwrap();
        let snaps = t.path().join("snapshots");
        for (name, age) in [("a-v2-1c-512m", 3u64), ("b-v2-1c-512m", 2), ("c-v2-1c-512m", 1)] {
            std::fs::create_dir_all(snaps.join(name)).unwrap();
            std::fs::write(snaps.join(name).join("ram"), vec![1u8; 64 << 10]).unwrap();
            let lock = std::fs::File::create(snaps.join(format!("{name}.lock"))).unwrap();
            lock.set_modified(SystemTime::now() - Duration::from_secs(age * 100)).unwrap();
        }
        let busy = CacheLock::acquire_mode(&snaps.join("a-v2-1c-512m.lock"), false).unwrap();
        let p = prune(t.path(), 100 << 10).unwrap();
        assert_eq!(p.busy, vec![snaps.join("a-v2-1c-512m")], "the oldest is in use");
        let removed: Vec<_> = p.removed.iter().map(|(p, _)| p.file_name().unwrap().to_owned()).collect();
        assert_eq!(removed, vec!["b-v2-1c-512m", "c-v2-1c-512m"]);
        assert!(snaps.join("a-v2-1c-512m/ram").exists());
        drop(busy);
    }
}
