//! User-namespace id maps (`linux.uidMappings`, `linux.gidMappings`, and the per-mount
//! ones): the kernel's rules as pure checks, and the text the parent writes to
//! `/proc/<pid>/uid_map` / `gid_map`.
//!
//! Kernel rules (kernel/user_namespace.c `map_write`): at most 340 lines; each extent's
//! count is non-zero; `first + count` and `lower_first + count` do not wrap a u32; no two
//! extents overlap on the container side nor on the host side.

use std::fmt::Write as _;

use oci_spec::runtime::LinuxIdMapping;

/// The most lines a uid_map/gid_map may have (Linux ≥ 4.15).
pub const MAX_ID_MAP_ENTRIES: usize = 340;

/// One line of an id map: `size` ids starting at `container_id` inside map to ids starting
/// at `host_id` outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMapEntry {
    /// First id inside the user namespace (`containerID`).
    pub container_id: u32,
    /// First id in the parent namespace (`hostID`).
    pub host_id: u32,
    /// Number of ids mapped (`size`).
    pub size: u32,
}

impl From<&LinuxIdMapping> for IdMapEntry {
    fn from(m: &LinuxIdMapping) -> Self {
        IdMapEntry { container_id: m.container_id(), host_id: m.host_id(), size: m.size() }
    }
}

/// One rule broken by an id map. `index` is the offending entry, `None` for the whole map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMapProblem {
    /// Index of the entry at fault, if one entry is.
    pub index: Option<usize>,
    /// What is wrong.
    pub reason: String,
}

/// Checks an id map against the kernel's rules and returns every problem (empty: valid).
/// An empty map is not a problem here: whether one is required depends on the caller.
pub fn check_id_map(entries: &[IdMapEntry]) -> Vec<IdMapProblem> {
    let mut problems = Vec::new();
    if entries.len() > MAX_ID_MAP_ENTRIES {
        problems.push(IdMapProblem {
            index: None,
            reason: format!("{} entries, the kernel accepts at most {MAX_ID_MAP_ENTRIES}", entries.len()),
        });
    }
    let mut well_formed = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let mut ok = true;
        if e.size == 0 {
            problems.push(IdMapProblem { index: Some(i), reason: "size must be greater than 0".into() });
            ok = false;
        }
        for (side, start) in [("containerID", e.container_id), ("hostID", e.host_id)] {
            if end(start, e.size) > u64::from(u32::MAX) {
                problems.push(IdMapProblem {
                    index: Some(i),
                    reason: format!("{side} {start} + size {} overflows the 32-bit id space", e.size),
                });
                ok = false;
            }
        }
        if ok {
            well_formed.push((i, *e));
        }
    }
    overlaps(&well_formed, "container", |e| e.container_id, &mut problems);
    overlaps(&well_formed, "host", |e| e.host_id, &mut problems);
    problems.sort_by_key(|p| p.index);
    problems
}

/// One past the last id of the range starting at `start`.
fn end(start: u32, size: u32) -> u64 {
    u64::from(start) + u64::from(size)
}

/// Reports every entry whose range (on the side `start` selects) overlaps an earlier-starting
/// one. O(n log n): sort by start and keep the furthest end seen so far.
fn overlaps(
    entries: &[(usize, IdMapEntry)],
    side: &str,
    start: impl Fn(&IdMapEntry) -> u32,
    problems: &mut Vec<IdMapProblem>,
) {
    let mut sorted: Vec<&(usize, IdMapEntry)> = entries.iter().collect();
    sorted.sort_by_key(|(i, e)| (start(e), *i));
    let mut furthest: Option<(u64, usize)> = None;
    for (i, e) in sorted {
        let (lo, hi) = (u64::from(start(e)), end(start(e), e.size));
        if let Some((far_end, far_index)) = furthest {
            if lo < far_end {
                problems.push(IdMapProblem {
                    index: Some((*i).max(far_index)),
                    reason: format!("{side} range [{lo}, {}) overlaps entry [{}]", hi, (*i).min(far_index)),
                });
            }
        }
        if furthest.is_none_or(|(far_end, _)| hi > far_end) {
            furthest = Some((hi, *i));
        }
    }
}

/// The content of a `uid_map`/`gid_map` file: one `containerID hostID size` line per entry,
/// in order, newline-terminated. The kernel wants it in a single write(2).
pub fn render_id_map<'a>(entries: impl IntoIterator<Item = &'a IdMapEntry>) -> String {
    let mut out = String::new();
    for e in entries {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{} {} {}", e.container_id, e.host_id, e.size);
    }
    out
}

/// [`render_id_map`] for the oci-spec type.
pub fn render_mappings(mappings: &[LinuxIdMapping]) -> String {
    let entries: Vec<IdMapEntry> = mappings.iter().map(IdMapEntry::from).collect();
    render_id_map(&entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    fn e(container_id: u32, host_id: u32, size: u32) -> IdMapEntry {
        IdMapEntry { container_id, host_id, size }
    }

    fn reasons(entries: &[IdMapEntry]) -> Vec<(Option<usize>, String)> {
        check_id_map(entries).into_iter().map(|p| (p.index, p.reason)).collect()
    }

    #[test_case(&[] ; "empty")]
    #[test_case(&[e(0, 1000, 1)] ; "single")]
    #[test_case(&[e(0, 100000, 65536)] ; "subuid range")]
    #[test_case(&[e(0, 1000, 1), e(1, 100000, 65535)] ; "two adjacent")]
    #[test_case(&[e(1, 100000, 65535), e(0, 1000, 1)] ; "unsorted")]
    #[test_case(&[e(0, 0, u32::MAX)] ; "whole space")]
    #[test_case(&[e(u32::MAX - 1, 0, 1)] ; "last mappable id")]
    fn valid(entries: &[IdMapEntry]) {
        assert_eq!(reasons(entries), vec![]);
    }

    #[test_case(&[e(0, 1000, 0)], Some(0), "size must be greater than 0" ; "zero size")]
    #[test_case(&[e(u32::MAX, 0, 1)], Some(0), "containerID 4294967295 + size 1 overflows" ; "container overflow")]
    #[test_case(&[e(0, u32::MAX - 5, 10)], Some(0), "hostID 4294967290 + size 10 overflows" ; "host overflow")]
    #[test_case(&[e(0, 1000, 10), e(5, 5000, 10)], Some(1), "container range [5, 15) overlaps entry [0]" ; "container overlap")]
    #[test_case(&[e(0, 1000, 10), e(100, 1005, 10)], Some(1), "host range [1005, 1015) overlaps entry [0]" ; "host overlap")]
    #[test_case(&[e(50, 5000, 1), e(0, 1000, 100)], Some(1), "container range [50, 51) overlaps entry [0]" ; "later entry swallows earlier")]
    #[test_case(&[e(0, 0, 100), e(10, 200, 1), e(50, 300, 1)], Some(2), "container range [50, 51) overlaps entry [0]" ; "non adjacent overlap")]
    fn invalid(entries: &[IdMapEntry], index: Option<usize>, reason: &str) {
        let found = reasons(entries);
        assert!(
            found.iter().any(|(i, r)| *i == index && r.contains(reason)),
            "{found:?} lacks {index:?} {reason:?}"
        );
    }

    #[test]
    fn too_many_entries() {
        let entries: Vec<IdMapEntry> = (0..341).map(|i| e(i, 1000 + i, 1)).collect();
        assert_eq!(
            reasons(&entries),
            vec![(None, "341 entries, the kernel accepts at most 340".to_string())]
        );
        assert!(reasons(&entries[..340]).is_empty());
    }

    #[test]
    fn renders_kernel_format() {
        assert_eq!(render_id_map(&[e(0, 1000, 1), e(1, 100000, 65536)]), "0 1000 1\n1 100000 65536\n");
        assert_eq!(render_id_map(&[]), "");
    }
}
