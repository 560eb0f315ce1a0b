//! Property tests of cgroup value strings: what isorun writes (`cpu.max`, `pids.max`, cpuset
//! lists, `update`'s sizes) and what it reads back (`cpuset.cpus.effective`, `io.stat`,
//! `blkio.throttle.*`) are inverse of each other.

use isolab_runtime::cgroups::resources::plan;
use isolab_runtime::cgroups::stats::{parse_blkio_v1, parse_io_stat, BlkioEntry};
use isolab_runtime::container::parse_size;
use isolab_runtime::container::plan::parse_cpu_list;
use oci_spec::runtime::LinuxResources;
use proptest::prelude::*;
use serde_json::json;

/// `0-3,5,7-9`: the kernel's cpu list format for a sorted set.
fn format_cpu_list(cpus: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { cpus[i].to_string() } else { format!("{}-{}", cpus[i], cpus[j]) });
        i = j + 1;
    }
    parts.join(",")
}

/// The value isorun writes to `file` for `resources` on cgroup v2.
fn v2_value(resources: serde_json::Value, file: &str) -> Option<String> {
    let res: LinuxResources = serde_json::from_value(resources).unwrap();
    plan(&res, true).unwrap().into_iter().find(|s| s.file == file).map(|s| s.value)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn cpu_lists_format_and_parse_back(set in prop::collection::btree_set(0usize..4096, 0..64)) {
        let cpus: Vec<usize> = set.into_iter().collect();
        let text = format_cpu_list(&cpus);
        prop_assert_eq!(parse_cpu_list(&text), Some(cpus.clone()), "{}", text);
        // With the kernel's trailing newline, as read from cpuset.cpus.effective.
        prop_assert_eq!(parse_cpu_list(&format!("{text}\n")), Some(cpus));
    }

    #[test]
    fn cpu_lists_never_exceed_the_kernel_bound(text in "[0-9,\\- ]{0,40}") {
        if let Some(cpus) = parse_cpu_list(&text) {
            prop_assert!(cpus.iter().all(|c| *c < 4096));
        }
    }

    #[test]
    fn sizes_parse_as_formatted(n in 0i64..(1 << 40), unit in 0usize..5, upper: bool, b_suffix: bool) {
        let (suffix, mult) = [("", 1i64), ("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30), ("t", 1 << 40)][unit];
        let mut text = format!("{n}{suffix}");
        if b_suffix && !suffix.is_empty() {
            text.push('b');
        }
        if upper {
            text = text.to_uppercase();
        }
        prop_assert_eq!(parse_size(&text), n.checked_mul(mult), "{}", text);
    }

    #[test]
    fn cpu_max_is_quota_then_period(quota in prop::option::of(-1i64..10_000_000), period in prop::option::of(0u64..10_000_000)) {
        let mut cpu = json!({});
        if let Some(q) = quota { cpu["quota"] = q.into(); }
        if let Some(p) = period { cpu["period"] = p.into(); }
        let value = v2_value(json!({"cpu": cpu}), "cpu.max");
        let expect_write = quota.is_some_and(|q| q != 0) || period.is_some_and(|p| p != 0);
        prop_assert_eq!(value.is_some(), expect_write);
        if let Some(v) = value {
            let mut fields = v.split(' ');
            let q = fields.next().unwrap();
            match quota {
                Some(q0) if q0 > 0 => prop_assert_eq!(q.parse::<i64>().ok(), Some(q0)),
                _ => prop_assert_eq!(q, "max"),
            }
            let p = fields.next().map(|p| p.parse::<u64>().unwrap());
            prop_assert_eq!(p, period.filter(|p| *p != 0));
            prop_assert!(fields.next().is_none());
        }
    }

    #[test]
    fn pids_max_is_the_limit_or_max(limit in any::<i64>()) {
        let v = v2_value(json!({"pids": {"limit": limit}}), "pids.max").unwrap();
        if limit > 0 {
            prop_assert_eq!(v.parse::<i64>().ok(), Some(limit));
        } else {
            prop_assert_eq!(v, "max");
        }
    }

    #[test]
    fn io_stat_lines_parse_back(devs in prop::collection::vec((0u64..4096, 0u64..1 << 20, any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()), 0..6)) {
        let text: String = devs
            .iter()
            .map(|(ma, mi, rb, wb, ri, wi)| format!("{ma}:{mi} rbytes={rb} wbytes={wb} rios={ri} wios={wi} dbytes=0 dios=0\n"))
            .collect();
        let (bytes, ios) = parse_io_stat(&text);
        let entry = |ma: u64, mi: u64, op: &str, value: u64| BlkioEntry { major: ma, minor: mi, op: op.into(), value };
        let want_bytes: Vec<BlkioEntry> = devs.iter().flat_map(|d| [entry(d.0, d.1, "Read", d.2), entry(d.0, d.1, "Write", d.3)]).collect();
        let want_ios: Vec<BlkioEntry> = devs.iter().flat_map(|d| [entry(d.0, d.1, "Read", d.4), entry(d.0, d.1, "Write", d.5)]).collect();
        prop_assert_eq!(bytes, want_bytes);
        prop_assert_eq!(ios, want_ios);
    }

    #[test]
    fn blkio_v1_lines_parse_back(lines in prop::collection::vec((0u64..4096, 0u64..1 << 20, prop::sample::select(&["Read", "Write", "Sync", "Async", "Discard", "Total"][..]), any::<u64>()), 0..8)) {
        let mut text: String = lines.iter().map(|(ma, mi, op, v)| format!("{ma}:{mi} {op} {v}\n")).collect();
        text.push_str("Total 12345\n");
        let want: Vec<BlkioEntry> =
            lines.iter().map(|(ma, mi, op, v)| BlkioEntry { major: *ma, minor: *mi, op: (*op).into(), value: *v }).collect();
        prop_assert_eq!(parse_blkio_v1(&text), want);
    }
}
