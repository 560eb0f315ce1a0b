//! Table tests of the report renderers, merge, shard and diff.

use test_case::test_case;

use super::*;
use crate::protocol::Outcome::{self, *};

pub(crate) fn rec(kernel: &str, cgroup: &str, assertion: &str, status: Outcome, detail: &str) -> Record {
    Record {
        kernel: kernel.into(),
        kernel_release: format!("{kernel}-rel"),
        cgroup: cgroup.into(),
        runtime: "isorun".into(),
        runtime_version: "isorun 0.1.0".into(),
        assertion: assertion.into(),
        status,
        detail: detail.into(),
        duration_ms: 12,
        base_config: "spec".into(),
        advisory: None,
    }
}

#[test]
fn escape_rows_are_grouped_under_their_advisory() {
    let adv = |id: &str| Some(super::Advisory { id: id.into(), url: format!("https://example.org/{id}") });
    let mut recs = vec![
        rec("debian-6.1", "v1", "escape.cve_2024_21626_fds", Pass, ""),
        rec("debian-6.1", "v2", "escape.cve_2024_21626_fds", Pass, ""),
        rec("debian-6.1", "v1", "escape.cve_2024_21626_cwd", Pass, ""),
        rec("debian-6.1", "v1", "escape.shocker_open_by_handle_at", Pass, ""),
        rec("debian-6.1", "v1", "pid.init_is_pid1", Pass, ""),
    ];
    for r in &mut recs[..3] {
        r.advisory = adv("CVE-2024-21626");
    }
    recs[3].advisory = adv("shocker");
    let text = render_table(&recs, false);
    assert!(text.contains(
        "CVE-2024-21626 https://example.org/CVE-2024-21626: escape.cve_2024_21626_fds, escape.cve_2024_21626_cwd\n"
    ));
    assert!(text.contains("shocker https://example.org/shocker: escape.shocker_open_by_handle_at\n"));
    let json = serde_json::to_string(&recs).unwrap();
    assert_eq!(json.matches("\"advisory\"").count(), 4, "only escape rows carry one: {json}");
}

fn sample() -> Vec<Record> {
    vec![
        rec("debian-6.1", "v1", "pid.init_is_pid1", Pass, ""),
        rec("debian-6.1", "v1", "cgroup.memory.oom_kill", Fail, "no OOM kill counted"),
        rec("debian-6.1", "v2", "pid.init_is_pid1", Pass, "a TCP exchange stalled before one worked"),
        rec("debian-6.1", "v2", "cgroup.memory.oom_kill", Skip, "no memory controller"),
        rec("debian-6.12", "v1", "pid.init_is_pid1", Error, "VM died <panic> & \"quotes\""),
    ]
}

#[test]
fn table_has_rows_columns_and_lists_problems() {
    let t = render_table(&sample(), false);
    let lines: Vec<&str> = t.lines().collect();
    assert!(
        lines[0].starts_with("assertion")
            && lines[0].contains("debian-6.1/v1")
            && lines[0].contains("debian-6.12/v1")
    );
    assert!(
        lines[1].starts_with("pid.init_is_pid1") && lines[1].contains("pass") && lines[1].contains("ERROR")
    );
    assert!(
        lines[2].starts_with("cgroup.memory.oom_kill")
            && lines[2].contains("FAIL")
            && lines[2].contains("skip")
    );
    assert!(lines[2].trim_end().ends_with('-'), "missing cell shown as -: {}", lines[2]);
    assert!(t.contains("FAIL debian-6.1/v1 cgroup.memory.oom_kill: no OOM kill counted"));
    assert!(
        t.contains("NOTE (pass) debian-6.1/v2 pid.init_is_pid1: a TCP exchange stalled before one worked")
    );
    assert_eq!(t.matches("debian-6.1/v1 pid.init_is_pid1").count(), 0, "a plain pass is not listed");
}

#[test]
fn passes_of_a_retried_cell_share_one_note() {
    let retried = "(cell retried: the first VM broke: kernel panic)";
    let mut recs = sample();
    for id in ["a.one", "a.two", "a.three"] {
        recs.push(rec("debian-7.2", "v2", id, Pass, retried));
    }
    recs.push(rec("debian-7.2", "v2", "a.four", Pass, "another note"));
    let t = render_table(&recs, false);
    assert!(t.contains(&format!("NOTE (3 passes) debian-7.2/v2: {retried}\n")), "{t}");
    assert!(t.contains("NOTE (pass) debian-7.2/v2 a.four: another note\n"), "{t}");
    assert_eq!(t.matches("NOTE").count(), 3, "{t}");
    assert!(!t.contains('\x1b'));
    assert!(render_table(&sample(), true).contains("\x1b[32m"));
}

#[test]
fn summary_counts_every_outcome() {
    assert_eq!(summary_line(&sample(), 41.04), "2 pass, 1 fail, 1 skip, 1 error in 41.0 s");
}

#[test_case(&[Pass, Skip], &[], 0; "pass and skip")]
#[test_case(&[Pass, Fail], &[], 1; "a failure")]
#[test_case(&[Pass, Error, Fail], &[], 2; "an error wins")]
#[test_case(&[Pass], &[true], 1; "a regression")]
#[test_case(&[Pass], &[false], 0; "a harmless change")]
fn exit_codes(statuses: &[Outcome], regressions: &[bool], want: i32) {
    let records: Vec<Record> =
        statuses.iter().enumerate().map(|(i, s)| rec("k", "v2", &format!("a.{i}"), *s, "")).collect();
    let changes: Vec<Change> = regressions
        .iter()
        .map(|r| Change { what: "x".into(), from: None, to: None, regression: *r })
        .collect();
    assert_eq!(exit_code(&records, &changes), want);
}

#[test]
fn junit_is_one_testcase_per_record_and_escaped() {
    let x = render_junit(&sample());
    assert_eq!(x.matches("<testcase ").count(), 5);
    assert_eq!(x.matches("<testsuite ").count(), 3);
    assert!(x.contains("<failure message=\"no OOM kill counted\">"));
    assert!(x.contains("<skipped message=\"no memory controller\"/>"));
    assert!(x.contains("&lt;panic&gt; &amp; &quot;quotes&quot;"));
    assert!(!x.contains("<panic>"));
}

#[test]
fn ktap_numbers_and_directives() {
    let k = render_ktap(&sample());
    let lines: Vec<&str> = k.lines().collect();
    assert_eq!(&lines[..2], ["KTAP version 1", "1..5"]);
    assert_eq!(lines[2], "ok 1 debian-6.1/v1:pid.init_is_pid1");
    assert_eq!(lines[3], "# no OOM kill counted");
    assert_eq!(lines[4], "not ok 2 debian-6.1/v1:cgroup.memory.oom_kill");
    assert!(k.contains("ok 4 debian-6.1/v2:cgroup.memory.oom_kill # SKIP no memory controller"));
    assert!(k.contains("not ok 5 debian-6.12/v1:pid.init_is_pid1 # ERROR"));
}

#[test]
fn html_is_self_contained_grid() {
    let h = render_html(&sample(), 3.0);
    assert!(h.starts_with("<!doctype html>"));
    assert!(
        !h.contains("src=") && !h.contains("href=\"http") && !h.contains("url("),
        "no external resources"
    );
    assert_eq!(h.matches("<td id=").count(), 5);
    assert!(h.contains("class=\"FAIL\""));
    assert!(h.contains("&lt;panic&gt;"));
}

#[test]
fn merge_of_shards_equals_the_whole() {
    let all = sample();
    let cells: Vec<String> = {
        let mut c: Vec<String> = all.iter().map(Record::cell).collect();
        c.dedup();
        c
    };
    let parts: Vec<Vec<Record>> = (1..=2)
        .map(|i| {
            let mine = shard(&cells, i, 2);
            all.iter().filter(|r| mine.contains(&r.cell())).cloned().collect()
        })
        .collect();
    assert_eq!(merge(&parts), merge(&[all]));
}

#[test_case("1/3", Some((1, 3)))]
#[test_case("3/3", Some((3, 3)))]
#[test_case("0/3", None)]
#[test_case("4/3", None)]
#[test_case("1/0", None)]
#[test_case("x", None)]
fn shard_specs(s: &str, want: Option<(usize, usize)>) {
    assert_eq!(parse_shard(s), want);
}

#[test]
fn shards_are_disjoint_and_cover() {
    let cells: Vec<u32> = (0..10).collect();
    let mut seen: Vec<u32> = (1..=3).flat_map(|i| shard(&cells, i, 3)).collect();
    seen.sort_unstable();
    assert_eq!(seen, cells);
}

#[test]
fn diff_against_itself_is_empty_and_finds_regressions() {
    let base = sample();
    assert!(diff(&base, &base).is_empty());
    let mut cur = base.clone();
    cur[0].status = Fail;
    cur[3].status = Pass;
    cur.push(rec("debian-7", "v2", "pid.init_is_pid1", Pass, ""));
    cur.remove(4);
    let d = diff(&base, &cur);
    let show: Vec<String> = d.iter().map(ToString::to_string).collect();
    assert_eq!(
        show,
        [
            "REGRESSION: debian-6.1/v1 pid.init_is_pid1 PASS -> FAIL",
            "changed: debian-6.1/v2 cgroup.memory.oom_kill SKIP -> PASS",
            "changed: debian-7/v2 pid.init_is_pid1 (none) -> PASS",
            "changed: debian-6.12/v1 pid.init_is_pid1 ERROR -> (none)",
        ]
    );
}

#[test]
fn records_roundtrip_through_json() {
    let json = serde_json::to_string(&sample()).unwrap();
    assert!(json.contains("\"status\":\"FAIL\""));
    let back: Vec<Record> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, sample());
}

/// A panic, a retried cell and a regression against the baseline, all above the matrix.
#[test]
fn html_puts_kernel_reports_retries_and_changes_above_the_matrix() {
    let mut recs = sample();
    recs.push(rec(
        "debian-7.2",
        "v2",
        "pid.init_is_pid1",
        Pass,
        "(cell retried: the first VM broke: kernel panic)",
    ));
    recs.push(rec("debian-7.2", "v2", "kernel.no_panic", Fail, "panic: Kernel panic - not syncing: Fatal exception\n--- panic trace ---\n dequeue_task_fair+0x1c/0x2a0"));
    recs.push(rec("debian-7.2", "v2", "kernel.no_oops", Pass, ""));
    let mut base = recs.clone();
    base[0].status = Fail; // pid.init_is_pid1 on debian-6.1/v1 was a FAIL: now fixed
    base[2].status = Pass; // ... and on 6.1/v2 nothing changed
    base[1].status = Pass; // oom_kill on 6.1/v1 was a PASS: now a regression
    let changes = diff(&base, &recs);
    let h = render_html_diff(&recs, 2.0, &changes);
    let at = |needle: &str| h.find(needle).unwrap_or_else(|| panic!("{needle} missing:\n{h}"));
    let table = at("<table");
    assert!(at("id=\"kernel-reports\" class=\"bad\"") < table);
    assert!(at("Kernel panic - not syncing: Fatal exception") < table);
    assert!(at("href=\"#c-debian-7_2_v2-kernel_no_panic\"") < table, "the report links to its cell");
    assert!(at("id=\"c-debian-7_2_v2-kernel_no_panic\"") > table);
    assert!(
        at("id=\"retries\"") < table
            && h.contains("debian-7.2/v2: (cell retried: the first VM broke: kernel panic)")
    );
    assert!(
        at("<li class=\"regression\">REGRESSION: debian-6.1/v1 cgroup.memory.oom_kill PASS -&gt; FAIL</li>")
            < table
    );
    assert!(h.contains("class=\"FAIL changed\" title=\"REGRESSION"), "the changed cell is outlined");
    assert!(h.contains("<summary>PASS ↻</summary>"), "a retried pass is marked");
    assert!(h.contains(
        "<small class=\"release\">debian-7.2-rel</small><br><small class=\"runtime\">isorun 0.1.0</small>"
    ));
    assert!(h.contains("<small class=\"time\">0.0 s of assertions</small>") || h.contains("s of assertions"));
    assert!(h.contains("<tr class=\"nonpass\"><th style=\"text-align:left\">kernel.no_panic"));
    assert!(h.contains("<tr class=\"allpass\"><th style=\"text-align:left\">kernel.no_oops"));
}

#[test]
fn html_without_kernel_records_says_they_were_not_checked() {
    let h = render_html(&sample(), 1.0);
    assert!(h.contains("id=\"kernel-reports\" class=\"ok\">Guest kernel reports were not checked"));
    assert!(!h.contains("id=\"retries\"") && !h.contains("id=\"changes\""));
}

#[test]
fn a_failed_kernel_record_is_printed_in_full_in_the_terminal() {
    let mut recs = sample();
    recs.push(rec("debian-7.2", "v2", "kernel.no_panic", Fail, "panic: X\n--- panic trace ---\n f+0x1/0x2"));
    let t = render_table(&recs, false);
    assert!(t.contains("=== debian-7.2/v2 kernel.no_panic (debian-7.2-rel) ===\n  | panic: X\n  | --- panic trace ---\n  |  f+0x1/0x2\n"), "{t}");
}

#[test]
fn slowest_lists_the_longest_first() {
    let mut recs = sample();
    recs[1].duration_ms = 9_500;
    recs[3].duration_ms = 0;
    let s = slowest(&recs, 2);
    assert_eq!(
        s,
        "slowest assertions (of 9.5 s of assertion time):\n    9.5 s  debian-6.1/v1 cgroup.memory.oom_kill\n    0.0 s  debian-6.1/v1 pid.init_is_pid1\n"
    );
    assert_eq!(slowest(&[], 5), "");
}

/// A record without `base_config` (written before the field) is a `spec` one, and only a
/// non-spec base config shows in the cell label every renderer uses.
#[test]
fn base_config_defaults_to_spec_and_labels_other_cells() {
    let old = r#"{"kernel":"debian-6.1","kernel_release":"6.1.0","cgroup":"v2","runtime":"isorun",
        "runtime_version":"isorun 0.1.0","assertion":"pid.init_is_pid1","status":"PASS","detail":"",
        "duration_ms":3}"#;
    let r: Record = serde_json::from_str(old).unwrap();
    assert_eq!((r.base_config.as_str(), r.cell().as_str()), ("spec", "debian-6.1/v2"));
    let docker = Record { base_config: "docker".into(), ..r.clone() };
    assert_eq!(docker.cell(), "debian-6.1/v2/docker");
    let both = vec![r.clone(), Record { status: Fail, detail: "no".into(), ..docker.clone() }];
    assert_eq!(merge(std::slice::from_ref(&both)).len(), 2, "spec and docker are two cells");
    let t = render_table(&both, false);
    assert!(
        t.contains("debian-6.1/v2/docker") && t.contains("FAIL debian-6.1/v2/docker pid.init_is_pid1"),
        "{t}"
    );
    assert!(render_junit(&both).contains("debian-6.1/v2/docker"));
    assert!(render_ktap(&both).contains("not ok 2 debian-6.1/v2/docker:pid.init_is_pid1"));
    let md = render_markdown(&both, &timing::run_timing(&both, 1.0));
    assert!(md.contains("| v2/docker |") && md.contains("| v2 |"), "{md}");
    assert!(render_html(&both, 1.0).contains("debian-6.1/v2/docker"));
    let back: Record = serde_json::from_str(&serde_json::to_string(&docker).unwrap()).unwrap();
    assert_eq!(back, docker);
}
