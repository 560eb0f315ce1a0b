//! A Markdown summary (GitHub-flavoured, which GitLab renders too): for `$GITHUB_STEP_SUMMARY`,
//! a merge-request note or a job artifact. The counts and time, one row per kernel × cgroup
//! cell, and every FAIL and ERROR with its detail folded under `<details>`.

use super::text::summary_line;
use super::timing::{timing_line, RunTiming};
use super::{counts, Record};
use crate::protocol::Outcome;

/// Details longer than this many characters are cut (a console tail can be long).
const DETAIL_MAX: usize = 4000;

/// Text safe in a table cell: no `|`, no line break, no HTML.
fn cell_text(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '|' => '¦',
            '<' => '‹',
            '>' => '›',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// Text safe inside `<pre>`: HTML escaped (a detail may hold `</details>`).
fn pre_text(s: &str) -> String {
    let cut: String = s.chars().take(DETAIL_MAX).collect();
    let more = if cut.len() < s.len() { "\n… (cut; the whole detail is in results.json)" } else { "" };
    format!("{cut}{more}").replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The summary (pure).
pub fn render_markdown(records: &[Record], timing: &RunTiming) -> String {
    let c = counts(records);
    let verdict = if c.error > 0 {
        "❌ harness errors"
    } else if c.fail > 0 {
        "❌ isolation failures"
    } else {
        "✅ no failure"
    };
    let mut out = format!("## isolab: {verdict}\n\n");
    out.push_str(&format!(
        "**{}**  \n{}\n\n",
        summary_line(records, timing.wall_secs.unwrap_or(0.0)),
        timing_line(timing)
    ));
    let mut cells: Vec<(String, String, String)> = Vec::new();
    for r in records {
        let cell = (r.kernel.clone(), r.kernel_release.clone(), r.setup());
        if !cells.contains(&cell) {
            cells.push(cell);
        }
    }
    out.push_str(
        "| kernel | release | cgroup | pass | fail | skip | error |\n|---|---|---|---:|---:|---:|---:|\n",
    );
    for (kernel, release, cgroup) in &cells {
        let mine: Vec<Record> =
            records.iter().filter(|r| &r.kernel == kernel && &r.setup() == cgroup).cloned().collect();
        let n = counts(&mine);
        let bold = |v: usize| if v > 0 { format!("**{v}**") } else { v.to_string() };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            cell_text(kernel),
            cell_text(release),
            cell_text(cgroup),
            n.pass,
            bold(n.fail),
            n.skip,
            bold(n.error)
        ));
    }
    let bad: Vec<&Record> =
        records.iter().filter(|r| matches!(r.status, Outcome::Fail | Outcome::Error)).collect();
    if !bad.is_empty() {
        out.push_str("\n### Failures and errors\n\n");
        for r in bad {
            let status = if r.status == Outcome::Fail { "FAIL" } else { "ERROR" };
            let first = r.detail.lines().next().unwrap_or("");
            out.push_str(&format!(
                "<details><summary><b>{status}</b> <code>{}</code> on {}: {}</summary>\n\n<pre>{}</pre>\n</details>\n\n",
                pre_text(&r.assertion),
                pre_text(&r.cell()),
                pre_text(first),
                pre_text(&r.detail)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Outcome::*;
    use crate::report::tests::rec;
    use crate::report::timing::run_timing;

    #[test]
    fn summary_has_counts_time_one_row_per_cell_and_each_problem() {
        let records = vec![
            rec("debian-6.1", "v1", "pid.init_is_pid1", Pass, ""),
            rec("debian-6.1", "v1", "cgroup.memory.oom_kill", Fail, "no OOM kill counted\nsecond line"),
            rec("debian-6.1", "v2", "pid.init_is_pid1", Skip, "no pid ns"),
            rec("debian-7.2", "v2", "pid.init_is_pid1", Error, "VM died </details> <b>|"),
        ];
        let md = render_markdown(&records, &run_timing(&records, 42.0));
        assert!(md.starts_with("## isolab: ❌ harness errors\n"), "{md}");
        assert!(md.contains("**1 pass, 1 fail, 1 skip, 1 error in 42.0 s**"), "{md}");
        assert!(md.contains("time: 42.0 s wall, 0.0 s of assertions summed"), "{md}");
        assert!(md.contains("| debian-6.1 | debian-6.1-rel | v1 | 1 | **1** | 0 | 0 |"), "{md}");
        assert!(md.contains("| debian-7.2 | debian-7.2-rel | v2 | 0 | 0 | 0 | **1** |"), "{md}");
        assert_eq!(md.matches("<details>").count(), 2, "one per FAIL/ERROR: {md}");
        assert!(md.contains(
            "<b>FAIL</b> <code>cgroup.memory.oom_kill</code> on debian-6.1/v1: no OOM kill counted"
        ));
        assert!(md.contains("VM died &lt;/details&gt; &lt;b&gt;|"), "escaped: {md}");
        assert_eq!(md.matches("</details>").count(), 2, "a detail cannot close the fold: {md}");
        let clean = vec![rec("host", "hybrid", "a", Pass, "")];
        assert!(render_markdown(&clean, &run_timing(&clean, 1.0)).starts_with("## isolab: ✅ no failure"));
    }

    #[test]
    fn long_details_are_cut_and_cells_cannot_break_the_table() {
        let mut r = rec("k|x\ny", "v2", "a", Error, &"x".repeat(DETAIL_MAX + 10));
        r.kernel_release = "<r>".into();
        let md = render_markdown(std::slice::from_ref(&r), &run_timing(std::slice::from_ref(&r), 1.0));
        assert!(md.contains("| k¦x y | ‹r› | v2 |"), "{md}");
        assert!(md.contains("(cut; the whole detail is in results.json)"));
    }
}
