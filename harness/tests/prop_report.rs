//! Property tests of the report: merging the outputs of N shards (in any order) gives the
//! report of the unsharded run; the baseline diff of a report against itself is empty (also
//! when a hand-edited results.json lists a key twice); KTAP has one numbered test line per
//! record whatever the names and reasons hold.

use isolab_harness::protocol::Outcome;
use isolab_harness::report::{diff, merge, render_ktap, shard, Record};
use proptest::prelude::*;

const KERNELS: &[&str] = &["debian-5.10", "debian-6.1", "debian-6.12", "debian-7.2", "host"];
const CGROUPS: &[&str] = &["v1", "v2", "hybrid"];
const ASSERTIONS: &[&str] = &[
    "pid.init_is_pid1",
    "mount.no_host_mounts",
    "cgroup.memory.oom_kill",
    "cgroup.cpu.quota",
    "security.no_new_privs",
    "user.uid_map",
    "net.loopback_only",
];

fn outcome() -> impl Strategy<Value = Outcome> {
    prop::sample::select(vec![Outcome::Pass, Outcome::Fail, Outcome::Skip, Outcome::Error])
}

fn record(kernel: &str, cgroup: &str, assertion: &str, status: Outcome, detail: String) -> Record {
    Record {
        kernel: kernel.into(),
        kernel_release: format!("{kernel}-amd64"),
        cgroup: cgroup.into(),
        runtime: "isorun".into(),
        runtime_version: "isorun 0.1.0".into(),
        assertion: assertion.into(),
        status,
        detail,
        duration_ms: 7,
        base_config: "spec".into(),
        advisory: None,
    }
}

/// A whole run: a set of cells (sorted, as the matrix lists them), every cell running the
/// same assertion list in catalogue order, each with its own outcome.
fn run() -> impl Strategy<Value = (Vec<(String, String)>, Vec<Record>)> {
    (
        prop::sample::subsequence(KERNELS, 1..=KERNELS.len()),
        prop::sample::subsequence(CGROUPS, 1..=2),
        prop::sample::subsequence(ASSERTIONS, 1..=ASSERTIONS.len()),
    )
        .prop_flat_map(|(kernels, cgroups, assertions)| {
            let cells: Vec<(String, String)> = kernels
                .iter()
                .flat_map(|k| cgroups.iter().map(move |c| (k.to_string(), c.to_string())))
                .collect();
            let n = cells.len() * assertions.len();
            (Just(cells), Just(assertions), prop::collection::vec((outcome(), "[ -~]{0,8}"), n))
        })
        .prop_map(|(cells, assertions, outcomes)| {
            let mut records = Vec::new();
            let mut o = outcomes.into_iter();
            for (k, c) in &cells {
                for a in &assertions {
                    let (status, detail) = o.next().unwrap();
                    records.push(record(k, c, a, status, detail));
                }
            }
            (cells, records)
        })
}

/// Any records at all, duplicates of a key included, with hostile names and details.
fn any_records() -> impl Strategy<Value = Vec<Record>> {
    prop::collection::vec(
        (
            prop::sample::select(KERNELS),
            prop::sample::select(CGROUPS),
            prop_oneof![prop::sample::select(ASSERTIONS).prop_map(String::from), ".{0,12}"],
            outcome(),
            ".{0,24}",
        )
            .prop_map(|(k, c, a, s, d)| record(k, c, &a, s, d)),
        0..24,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn merge_of_shards_equals_the_unsharded_report(
        (cells, records) in run(),
        total in 1usize..6,
        order in any::<prop::sample::Index>(),
    ) {
        let mut parts: Vec<Vec<Record>> = (1..=total)
            .map(|i| {
                let mine = shard(&cells, i, total);
                records.iter().filter(|r| mine.contains(&(r.kernel.clone(), r.cgroup.clone()))).cloned().collect()
            })
            .collect();
        // Shard outputs may be merged in any order.
        parts.rotate_left(order.index(total));
        let whole = merge(std::slice::from_ref(&records));
        prop_assert_eq!(merge(&parts), whole.clone());
        prop_assert_eq!(whole.len(), records.len(), "one record per key");
        prop_assert_eq!(merge(&[whole.clone(), whole.clone()]), whole.clone(), "merge is idempotent");
        prop_assert!(diff(&whole, &whole).is_empty());
    }

    #[test]
    fn a_report_never_differs_from_itself(records in any_records()) {
        prop_assert!(diff(&records, &records).is_empty(), "{:?}", diff(&records, &records));
        let merged = merge(std::slice::from_ref(&records));
        prop_assert_eq!(merge(std::slice::from_ref(&merged)), merged.clone(), "merge is not idempotent");
        prop_assert!(diff(&merged, &records).is_empty(), "a report differs from its own merge");
        prop_assert!(diff(&records, &merged).is_empty());
        // Everything missing from a run is listed, never as a regression.
        let gone = diff(&merged, &[]);
        prop_assert_eq!(gone.len(), merged.len());
        prop_assert!(gone.iter().all(|c| !c.regression && c.to.is_none()));
    }

    #[test]
    fn ktap_has_one_numbered_line_per_record(records in any_records()) {
        let k = render_ktap(&records);
        let lines: Vec<&str> = k.lines().collect();
        let plan = format!("1..{}", records.len());
        prop_assert_eq!(&lines[..2], &["KTAP version 1", plan.as_str()][..]);
        let tests: Vec<&str> = lines[2..].iter().copied().filter(|l| !l.starts_with("# ")).collect();
        prop_assert_eq!(tests.len(), records.len(), "{}", k);
        for (i, (line, r)) in tests.iter().zip(&records).enumerate() {
            let ok = format!("ok {} ", i + 1);
            let not_ok = format!("not ok {} ", i + 1);
            prop_assert!(line.starts_with(&ok) || line.starts_with(&not_ok), "line {:?}", line);
            prop_assert_eq!(line.starts_with("not ok"), matches!(r.status, Outcome::Fail | Outcome::Error));
            prop_assert_eq!(line.contains(" # SKIP"), r.status == Outcome::Skip, "{:?}", line);
        }
    }
}

/// Regression (found writing the `report_readers` fuzz target): a name holding a newline broke the
/// KTAP stream into extra test lines, and a `#` in it started a directive.
#[test]
fn ktap_names_cannot_forge_lines_or_directives() {
    let r = record("k", "v2", "evil\nok 99 forged # SKIP", Outcome::Fail, "two\nlines\r".into());
    let k = render_ktap(&[r]);
    assert_eq!(k, "KTAP version 1\n1..1\n# two\n# lines_\nnot ok 1 k/v2:evil_ok 99 forged _ SKIP\n");
}

/// Regression (found writing the `report_readers` fuzz target): a results.json listing a key twice
/// with two outcomes differed from itself.
#[test]
fn duplicate_keys_count_once_in_a_diff() {
    let a = record("k", "v2", "a", Outcome::Pass, String::new());
    let b = record("k", "v2", "a", Outcome::Fail, String::new());
    let twice = vec![a.clone(), b.clone()];
    assert!(diff(&twice, &twice).is_empty());
    let d = diff(&[a], &twice);
    assert_eq!(d.len(), 1);
    assert!(d[0].regression, "the last record (FAIL) is the one compared");
}

/// Regression (found by the `report_readers` fuzz target): merging a merged report reordered
/// it when cells listed assertions in different orders (the order came from the input order,
/// not from the cells).
#[test]
fn merging_a_merged_report_changes_nothing() {
    let r = |c: &str, a: &str| record("k", c, a, Outcome::Pass, String::new());
    let records = vec![r("v2", "b"), r("v2", "a"), r("v1", "a"), r("v1", "b")];
    let once = merge(std::slice::from_ref(&records));
    let order: Vec<(&str, &str)> = once.iter().map(|x| (x.cgroup.as_str(), x.assertion.as_str())).collect();
    assert_eq!(order, [("v1", "a"), ("v1", "b"), ("v2", "a"), ("v2", "b")]);
    assert_eq!(merge(std::slice::from_ref(&once)), once);
    let parts = vec![vec![r("v2", "b"), r("v2", "a")], vec![r("v1", "a"), r("v1", "b")]];
    assert_eq!(merge(&parts), once, "the order of the parts does not matter");
}

/// The `report_readers` fuzz input itself (harness/tests/data/fuzz-merge-not-idempotent.json).
#[test]
fn the_fuzzed_results_json_merges_idempotently() {
    let records: Vec<Record> =
        serde_json::from_str(include_str!("data/fuzz-merge-not-idempotent.json")).unwrap();
    let merged = merge(std::slice::from_ref(&records));
    assert_eq!(merge(std::slice::from_ref(&merged)), merged);
    assert!(diff(&records, &records).is_empty() && diff(&merged, &records).is_empty());
}
