//! Id maps, capability names and sysctl keys. Properties: an id map [`check_id_map`]
//! accepts has at most 340 non-empty entries that neither wrap a u32 nor overlap on either
//! side (checked here pairwise, independently), and its rendering parses back to the same
//! entries; every problem names an existing entry; capability names are known exactly when
//! `caps` parses them; a sysctl path never leaves `/proc/sys`.
#![no_main]

use arbitrary::Arbitrary;
use isolab_runtime::config::idmap::{check_id_map, render_id_map, IdMapEntry, MAX_ID_MAP_ENTRIES};
use isolab_runtime::config::names::{is_known_capability, sysctl_namespace, sysctl_path};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    map: Vec<(u32, u32, u32)>,
    /// Small ids make overlaps likely.
    small: Vec<(u8, u8, u8)>,
    cap: String,
    sysctl: String,
}

fn overlap(a: u32, b: u32, size_a: u32, size_b: u32) -> bool {
    let (a, b) = (u64::from(a), u64::from(b));
    a < b + u64::from(size_b) && b < a + u64::from(size_a)
}

fn check(entries: &[IdMapEntry]) {
    let problems = check_id_map(entries);
    for p in &problems {
        assert!(p.index.is_none_or(|i| i < entries.len()), "{p:?} names no entry");
    }
    if !problems.is_empty() {
        return;
    }
    assert!(entries.len() <= MAX_ID_MAP_ENTRIES);
    for (i, a) in entries.iter().enumerate() {
        assert!(a.size > 0, "accepted an empty extent: {a:?}");
        assert!(u64::from(a.container_id) + u64::from(a.size) <= u64::from(u32::MAX) + 1);
        assert!(u64::from(a.host_id) + u64::from(a.size) <= u64::from(u32::MAX) + 1);
        for b in &entries[i + 1..] {
            assert!(
                !overlap(a.container_id, b.container_id, a.size, b.size),
                "container overlap {a:?} {b:?}"
            );
            assert!(!overlap(a.host_id, b.host_id, a.size, b.size), "host overlap {a:?} {b:?}");
        }
    }
    let text = render_id_map(entries);
    let back: Vec<IdMapEntry> = text
        .lines()
        .map(|l| {
            let n: Vec<u32> = l.split(' ').map(|f| f.parse().expect("a number")).collect();
            assert_eq!(n.len(), 3, "line {l:?}");
            IdMapEntry { container_id: n[0], host_id: n[1], size: n[2] }
        })
        .collect();
    assert_eq!(back, entries);
}

fn entry((container_id, host_id, size): (u32, u32, u32)) -> IdMapEntry {
    IdMapEntry { container_id, host_id, size }
}

fuzz_target!(|input: Input| {
    let big: Vec<IdMapEntry> = input.map.into_iter().map(entry).collect();
    check(&big);
    let small: Vec<IdMapEntry> =
        input.small.into_iter().map(|(c, h, s)| entry((c.into(), h.into(), s.into()))).collect();
    check(&small);

    let known = is_known_capability(&input.cap);
    let parsed = input.cap.parse::<caps::Capability>().is_ok();
    assert_eq!(known, parsed, "{:?}", input.cap);

    let _ = sysctl_namespace(&input.sysctl);
    if let Ok(path) = sysctl_path(&input.sysctl) {
        assert!(path.starts_with("/proc/sys"));
        for c in path.components().skip(3) {
            assert!(matches!(c, std::path::Component::Normal(_)), "{:?} → {path:?}", input.sysctl);
        }
    }
});
