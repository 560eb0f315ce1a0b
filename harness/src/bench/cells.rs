//! The guest benches of several cells (kernel × cgroup mode) side by side (pure): one table
//! of medians, runtime rows × cell columns ([`cell_table`]), and the comparison with a
//! baseline run ([`regressions`]).
//!
//! Under TCG absolute times are several times the host's; what carries from one cell, run or
//! machine to another is the ratio of a runtime's median to its run's ratio base (the floor
//! program when measured, [`super::startup::ratio_base`]). So a regression is judged on that
//! ratio: a runtime is slower when its ratio exceeds the baseline's ratio for the same cell
//! by more than [`SLOWER_THRESHOLD`] (× 1.20). A cell or runtime missing from either side is
//! not compared, and the ratio base itself (always 1.00×) never regresses.

use std::fmt::Write as _;

use super::report::BenchJson;
use super::startup::ratio_base;

/// A ratio more than this many times the baseline's is a slower start.
pub const SLOWER_THRESHOLD: f64 = 1.20;

/// `kernel/cgroup` of a guest bench (`host` for a bench without a VM).
pub fn cell_name(j: &BenchJson) -> String {
    j.vm.as_ref().map(|v| format!("{}/{}", v.kernel, v.cgroup)).unwrap_or_else(|| "host".into())
}

/// The median of `runtime` in `j` and its ratio to `j`'s ratio base.
pub fn median_and_ratio(j: &BenchJson, runtime: &str) -> Option<(f64, Option<f64>)> {
    let median = |n: &str| j.series.iter().find(|s| s.runtime == n)?.summary.map(|s| s.median);
    let m = median(runtime)?;
    let base = median(&ratio_base(&j.series));
    Some((m, super::stats::ratio(m, base)))
}

/// The table: a header of cells and their releases, then per runtime (in order of first
/// appearance) `MEDIAN ms (RATIO×)` per cell, or `missing`/`error` when the cell has the
/// series without samples, `-` when it lacks it.
pub fn cell_table(cells: &[BenchJson]) -> String {
    let mut rows: Vec<&str> = Vec::new();
    for s in cells.iter().flat_map(|c| &c.series) {
        if !rows.contains(&s.runtime.as_str()) {
            rows.push(&s.runtime);
        }
    }
    let w = rows.iter().map(|r| r.len()).max().unwrap_or(7).max(7);
    let names: Vec<String> = cells.iter().map(cell_name).collect();
    let releases: Vec<&str> =
        cells.iter().map(|c| c.vm.as_ref().map(|v| v.release.as_str()).unwrap_or(&c.host.kernel)).collect();
    let cw = names.iter().map(String::len).chain(releases.iter().map(|r| r.len())).max().unwrap_or(0).max(18);
    let mut t = format!("{:<w$}", "runtime");
    names.iter().for_each(|n| _ = write!(t, "  {n:>cw$}"));
    let _ = write!(t, "\n{:<w$}", "release");
    releases.iter().for_each(|r| _ = write!(t, "  {r:>cw$}"));
    t.push('\n');
    for row in rows {
        let _ = write!(t, "{row:<w$}");
        for c in cells {
            let _ = write!(t, "  {:>cw$}", entry(c, row));
        }
        t.push('\n');
    }
    let bases: Vec<String> = cells.iter().map(|c| ratio_base(&c.series)).collect();
    let _ = writeln!(t, "median ms (ratio to {}); absolute times under TCG are slow, compare the ratios", {
        let mut b = bases.clone();
        b.dedup();
        b.join(", ")
    });
    t
}

fn entry(c: &BenchJson, runtime: &str) -> String {
    let Some(s) = c.series.iter().find(|s| s.runtime == runtime) else { return "-".into() };
    match median_and_ratio(c, runtime) {
        Some((m, Some(r))) => format!("{m:.2} ({r:.2}×)"),
        Some((m, None)) => format!("{m:.2}"),
        None if s.error.as_deref().is_some_and(|e| e.contains("not found")) => "missing".into(),
        None if s.error.is_some() => "error".into(),
        None => s.note.as_deref().map(|_| "n/a").unwrap_or("no samples").into(),
    }
}

/// A runtime that starts slower than in the baseline, relative to its run's ratio base.
#[derive(Debug, Clone, PartialEq)]
pub struct Regression {
    /// `kernel/cgroup`.
    pub cell: String,
    /// The series.
    pub runtime: String,
    /// Its ratio in the baseline.
    pub baseline_ratio: f64,
    /// Its ratio now.
    pub ratio: f64,
}

impl std::fmt::Display for Regression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "REGRESSION {} {}: {:.2}× the ratio base, was {:.2}× (limit {:.2}×)",
            self.cell,
            self.runtime,
            self.ratio,
            self.baseline_ratio,
            self.baseline_ratio * SLOWER_THRESHOLD
        )
    }
}

/// Every runtime of every cell whose ratio exceeds the baseline's (same cell, same runtime)
/// × [`SLOWER_THRESHOLD`].
pub fn regressions(current: &[BenchJson], baseline: &[BenchJson]) -> Vec<Regression> {
    let mut out = Vec::new();
    for c in current {
        let cell = cell_name(c);
        let Some(b) = baseline.iter().find(|b| cell_name(b) == cell) else { continue };
        let base_name = ratio_base(&c.series);
        for s in c.series.iter().filter(|s| s.runtime != base_name) {
            let (Some((_, Some(now))), Some((_, Some(was)))) =
                (median_and_ratio(c, &s.runtime), median_and_ratio(b, &s.runtime))
            else {
                continue;
            };
            if now > was * SLOWER_THRESHOLD {
                out.push(Regression {
                    cell: cell.clone(),
                    runtime: s.runtime.clone(),
                    baseline_ratio: was,
                    ratio: now,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::guest::VmInfo;
    use crate::bench::startup::Series;
    use crate::bench::stats::summarize;
    use test_case::test_case;

    fn cell(kernel: &str, cg: &str, medians: &[(&str, Option<f64>)]) -> BenchJson {
        let series = medians
            .iter()
            .map(|(n, m)| Series {
                runtime: (*n).into(),
                variant: Some("default".into()),
                samples_ms: m.iter().copied().collect(),
                summary: m.and_then(|m| summarize(&[m])),
                error: m.is_none().then(|| format!("{n}: not found on PATH, /usr/sbin or /sbin")),
                ..Series::default()
            })
            .collect();
        let vm = VmInfo {
            kernel: kernel.into(),
            release: format!("{kernel}-r"),
            cgroup: cg.into(),
            accel: "tcg".into(),
        };
        BenchJson { bench: "startup".into(), series, vm: Some(vm), ..BenchJson::default() }
    }

    #[test]
    fn table_has_runtime_rows_and_cell_columns() {
        let a = cell("k1", "v2", &[("isorun", Some(30.0)), ("crun", Some(40.0)), ("floor", Some(20.0))]);
        let b = cell(
            "k2",
            "v1",
            &[("isorun", Some(60.0)), ("crun", None), ("floor", Some(40.0)), ("runc", Some(80.0))],
        );
        let t = cell_table(&[a, b]);
        let lines: Vec<&str> = t.lines().collect();
        let cols = |l: &str| -> Vec<String> {
            l.split("  ").filter(|x| !x.is_empty()).map(|x| x.trim().to_owned()).collect()
        };
        assert_eq!(cols(lines[0]), ["runtime", "k1/v2", "k2/v1"], "{t}");
        assert_eq!(cols(lines[1]), ["release", "k1-r", "k2-r"], "{t}");
        assert_eq!(cols(lines[2]), ["isorun", "30.00 (1.50×)", "60.00 (1.50×)"], "{t}");
        assert_eq!(cols(lines[3]), ["crun", "40.00 (2.00×)", "missing"], "{t}");
        assert_eq!(cols(lines[4]), ["floor", "20.00 (1.00×)", "40.00 (1.00×)"], "{t}");
        assert_eq!(cols(lines[5]), ["runc", "-", "80.00 (2.00×)"], "{t}");
        assert!(lines[6].contains("ratio to floor") && lines[6].contains("TCG"), "{t}");
    }

    // (isorun now, floor now, isorun then, floor then) → regressed?
    #[test_case(30.0, 20.0, 30.0, 20.0 => false; "same")]
    #[test_case(35.9, 20.0, 30.0, 20.0 => false; "just under the limit")]
    #[test_case(36.2, 20.0, 30.0, 20.0 => true; "beyond the limit")]
    #[test_case(60.0, 40.0, 30.0, 20.0 => false; "a slower machine keeps the ratio")]
    #[test_case(30.0, 10.0, 30.0, 20.0 => true; "a faster floor makes the same median slower")]
    fn isorun_regressed(now: f64, floor_now: f64, then: f64, floor_then: f64) -> bool {
        let cur = cell("k", "v2", &[("isorun", Some(now)), ("floor", Some(floor_now))]);
        let base = cell("k", "v2", &[("isorun", Some(then)), ("floor", Some(floor_then))]);
        let r = regressions(&[cur], &[base]);
        assert!(r.iter().all(|r| r.runtime == "isorun" && r.cell == "k/v2"), "{r:?}");
        !r.is_empty()
    }

    #[test_case("k", "v1", Some(90.0) ; "another cell is not compared")]
    #[test_case("k", "v2", None ; "a runtime missing in the baseline is not compared")]
    fn not_compared(kernel: &str, cg: &str, then: Option<f64>) {
        let cur = cell("k", "v2", &[("isorun", Some(90.0)), ("floor", Some(20.0))]);
        let base = cell(kernel, cg, &[("isorun", then), ("floor", Some(20.0))]);
        assert_eq!(regressions(&[cur], &[base]), vec![]);
    }
}
