//! `results.json` (a baseline or a shard's output) → records, and everything computed from
//! them: merge of shards (and their timing), the baseline diff, the KTAP/JUnit/HTML/table,
//! Markdown, annotation and KCIDB renderings, `--shard`.
//! Properties: never panics; a merged report has one record per key and merging it again
//! (or with itself) changes nothing; the diff of a report against itself is empty and
//! against nothing lists only non-regressions; KTAP has a `1..N` plan matching its results.
#![no_main]

use isolab_harness::report::{self, Record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(rest) = data.strip_prefix(b"shard:") {
        if let Some((i, n)) = report::parse_shard(&String::from_utf8_lossy(rest)) {
            assert!(n > 0 && (1..=n).contains(&i));
        }
        return;
    }
    // results.json as `report merge` reads it: a document with its timing, or a bare array.
    if let Ok((records, timing)) = report::timing::parse_results(data) {
        let merged_timing = report::timing::merged_timing(&[timing.clone()], &records);
        assert!(
            merged_timing.wall_secs == timing.as_ref().and_then(|t| t.wall_secs)
                || merged_timing.wall_secs.is_none_or(f64::is_nan)
        );
        let _ = report::timing::timing_line(&merged_timing);
        let _ = report::render_markdown(&records, &merged_timing);
        let _ = report::render_annotations(&records, &Default::default());
        let _ = report::render_kcidb(
            &records,
            &report::kcidb::KcidbOptions { origin: "isolab".into(), run_id: "f".into() },
        );
    }
    let Ok(records) = serde_json::from_slice::<Vec<Record>>(data) else { return };
    let merged = report::merge(&[records.clone()]);
    let mut keys: Vec<_> = merged.iter().map(Record::key).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), merged.len(), "merge left duplicate keys");
    assert_eq!(report::merge(&[merged.clone()]), merged, "merge is not idempotent");
    assert_eq!(report::merge(&[merged.clone(), merged.clone()]), merged);

    assert!(report::diff(&records, &records).is_empty(), "a report differs from itself");
    assert!(report::diff(&merged, &[]).iter().all(|c| !c.regression && c.to.is_none()));

    let ktap = report::render_ktap(&merged);
    let plan = format!("1..{}", merged.len());
    assert!(ktap.lines().any(|l| l.trim() == plan), "no plan {plan} in\n{ktap}");
    let results = ktap.lines().filter(|l| l.starts_with("ok ") || l.starts_with("not ok ")).count();
    assert_eq!(results, merged.len(), "{ktap}");
    let _ = report::render_junit(&merged);
    let _ = report::render_html(&merged, 1.0);
    let _ = report::render_table(&merged, false);
    let _ = report::exit_code(&merged, &report::diff(&merged, &merged));
});
