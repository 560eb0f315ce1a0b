//! The terminal tables (pure) and `bench.json`.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::density::Point;
use super::startup::Series;
use super::stats::ratio;
use super::{io_err, BenchError};

/// Everything one `isolab bench` invocation measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BenchJson {
    /// `startup`, `density` or `boot`.
    pub bench: String,
    /// `uname -r`, cores, cgroup layout, date: what the numbers are from.
    pub host: HostInfo,
    /// Start latency series (startup) or boot-to-hello series per kernel (boot), ms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<Series>,
    /// Guest uptime at hello per kernel (boot), ms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guest_series: Vec<Series>,
    /// Density points.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub density: Vec<Point>,
    /// The build of each runtime that says one (`isorun --version`: `release`, `debug`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub builds: std::collections::BTreeMap<String, String>,
    /// Wall time of the full default matrix (boot --matrix), s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix_wall_s: Option<f64>,
    /// Where the runtimes' state roots were: `PATH (FSTYPE)` ([`super::state_dir`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub state_roots: String,
    /// The VM cell a guest bench ran in (`bench startup --vm`); `host` is then the guest's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<super::guest::VmInfo>,
}

/// The host the numbers come from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HostInfo {
    /// Kernel release.
    pub kernel: String,
    /// Online CPUs.
    pub cpus: usize,
    /// `unified`, `hybrid` or `legacy`.
    pub cgroup: String,
    /// 1-minute load average when the bench started.
    pub loadavg: String,
}

impl HostInfo {
    /// Reads this host's facts.
    pub fn detect() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default().trim().to_owned();
        let cgroup = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            "unified"
        } else if Path::new("/sys/fs/cgroup/unified").is_dir() {
            "hybrid"
        } else {
            "legacy"
        };
        HostInfo {
            kernel: read("/proc/sys/kernel/osrelease"),
            cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            cgroup: cgroup.into(),
            loadavg: read("/proc/loadavg").split_whitespace().next().unwrap_or("").to_owned(),
        }
    }
}

/// Writes `bench.json` into `out`.
pub fn write_json(out: &Path, j: &BenchJson) -> Result<(), BenchError> {
    std::fs::create_dir_all(out).map_err(io_err("create", out))?;
    let path = out.join("bench.json");
    let bytes = serde_json::to_vec_pretty(j).unwrap_or_default();
    std::fs::write(&path, bytes).map_err(io_err("write", &path))
}

/// The latency table: median, p95, mean, min and the ratio of each median to `base`'s
/// (the unit is `unit`: `ms` or `s`, samples are ms); errors and notes on their own line.
/// `what` heads the first column (`runtime`, `kernel`). When a series of a variant other
/// than default is present, a `Δ default` column before the ratio gives its median minus
/// the same runtime's default-variant median (in `unit`; `-` for default series or when
/// that one was not measured).
pub fn series_table(series: &[Series], what: &str, base: &str, unit: &str) -> String {
    let div = if unit == "s" { 1000.0 } else { 1.0 };
    let median_of =
        |name: &str| series.iter().find(|s| s.runtime == name).and_then(|s| s.summary).map(|s| s.median);
    let base_median = median_of(base);
    let with_delta = series.iter().any(|s| s.default_series_name().is_some());
    let w = series.iter().map(|s| s.runtime.len()).max().unwrap_or(7).max(7);
    let mut t = format!(
        "{:<w$}  {:>5}  {:>10}  {:>10}  {:>10}  {:>10}",
        what,
        "runs",
        format!("median {unit}"),
        format!("p95 {unit}"),
        format!("mean {unit}"),
        format!("min {unit}"),
    );
    if with_delta {
        let _ = write!(t, "  {:>13}", format!("Δ default {unit}"));
    }
    let _ = writeln!(t, "  {:>9}", format!("÷ {base}"));
    for s in series {
        match (&s.summary, &s.error) {
            (Some(x), err) => {
                let r =
                    ratio(x.median, base_median).map(|r| format!("{r:.2}×")).unwrap_or_else(|| "-".into());
                let _ = write!(
                    t,
                    "{:<w$}  {:>5}  {:>10.2}  {:>10.2}  {:>10.2}  {:>10.2}",
                    s.runtime,
                    x.n,
                    x.median / div,
                    x.p95 / div,
                    x.mean / div,
                    x.min / div,
                );
                if with_delta {
                    let d = s
                        .default_series_name()
                        .and_then(median_of)
                        .map(|m| format!("{:+.2}", (x.median - m) / div))
                        .unwrap_or_else(|| "-".into());
                    let _ = write!(t, "  {d:>13}");
                }
                let _ = writeln!(t, "  {r:>9}");
                if let Some(e) = err {
                    let _ = writeln!(t, "{:<w$}  then ERROR: {e}", "");
                }
            }
            (None, Some(e)) => {
                let _ = writeln!(t, "{:<w$}  ERROR: {e}", s.runtime);
            }
            (None, None) => {
                let why = s.note.as_deref().unwrap_or("no samples");
                let _ = writeln!(t, "{:<w$}  {why}", s.runtime);
            }
        }
    }
    t
}

/// The density table, one line per runtime × N.
pub fn density_table(points: &[Point]) -> String {
    let name = |p: &Point| match p.parallel {
        0 | 1 => p.runtime.clone(),
        n => format!("{} (P={n})", p.runtime),
    };
    let w = points.iter().map(|p| name(p).len()).max().unwrap_or(7).max(7);
    let mut t = format!(
        "{:<w$}  {:>5}  {:>9}  {:>12}  {:>9}  {:>12}  {:>10}  {:>12}  {:>9}  {:>10}\n",
        "runtime",
        "N",
        "start s",
        "ms/container",
        "delete s",
        "ms/container",
        "host KiB/c",
        "kernel KiB/c",
        "pss KiB",
        "cgroup KiB"
    );
    for p in points {
        if let Some(e) = &p.error {
            let _ = writeln!(t, "{:<w$}  {:>5}  ERROR after {} started: {e}", name(p), p.n, p.started);
            continue;
        }
        let _ = writeln!(
            t,
            "{:<w$}  {:>5}  {:>9.2}  {:>12.2}  {:>9.2}  {:>12.2}  {:>10.0}  {:>12.0}  {:>9.0}  {:>10.0}",
            name(p),
            p.n,
            p.start_total_s,
            p.start_per_ms,
            p.delete_total_s,
            p.delete_per_ms,
            p.host_kib,
            p.kernel_kib,
            p.process_pss_kib,
            p.cgroup_kib
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::stats::summarize;

    fn series(name: &str, v: &[f64], error: Option<&str>) -> Series {
        Series {
            runtime: name.into(),
            samples_ms: v.to_vec(),
            summary: summarize(v),
            error: error.map(str::to_owned),
            ..Series::default()
        }
    }

    fn variant_series(name: &str, variant: &str, v: &[f64]) -> Series {
        Series { variant: Some(variant.into()), ..series(name, v, None) }
    }

    #[test]
    fn variants_get_a_delta_to_their_default_and_the_one_ratio_base() {
        let mut na = variant_series("floor+docker", "docker", &[]);
        na.note = Some(
            "n/a for variant docker: the floor program runs the default bundle's kernel calls only".into(),
        );
        let t = series_table(
            &[
                variant_series("isorun", "default", &[4.0, 4.0, 4.0]),
                variant_series("isorun+docker", "docker", &[4.5, 4.5, 4.5]),
                variant_series("runc+userns", "userns", &[9.0]),
                variant_series("floor", "default", &[2.0]),
                na,
                Series { error: Some("crun: boom".into()), ..variant_series("crun+docker", "docker", &[]) },
            ],
            "runtime",
            "floor",
            "ms",
        );
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].contains("Δ default ms") && lines[0].ends_with("÷ floor"), "{t}");
        let cols = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(cols(lines[1])[6..], ["-", "2.00×"], "{t}");
        assert_eq!(cols(lines[2])[6..], ["+0.50", "2.25×"], "{t}");
        // runc has no default series: no delta, the ratio is still to the floor.
        assert_eq!(cols(lines[3])[6..], ["-", "4.50×"], "{t}");
        assert_eq!(cols(lines[4])[6..], ["-", "1.00×"], "{t}");
        assert_eq!(
            lines[5],
            "floor+docker   n/a for variant docker: the floor program runs the default bundle's kernel calls only"
        );
        assert_eq!(lines[6], "crun+docker    ERROR: crun: boom");
    }

    #[test]
    fn one_variant_has_no_delta_column() {
        let t = series_table(&[variant_series("isorun", "default", &[1.0])], "runtime", "isorun", "ms");
        assert!(!t.contains("Δ"), "{t}");
    }

    #[test]
    fn ratios_are_to_the_base_median_and_errors_are_shown() {
        let t = series_table(
            &[
                series("isorun", &[10.0, 12.0, 11.0], None),
                series("runc", &[30.0, 33.0, 36.0], None),
                series("crun", &[], Some("cgroups in hybrid mode not supported")),
            ],
            "runtime",
            "isorun",
            "ms",
        );
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[1].starts_with("isorun") && lines[1].ends_with("1.00×"), "{t}");
        assert!(lines[2].contains("33.00") && lines[2].ends_with("3.00×"), "{t}");
        assert_eq!(lines[3], "crun     ERROR: cgroups in hybrid mode not supported");
    }

    #[test]
    fn no_base_means_no_ratio() {
        let t = series_table(&[series("runc", &[2000.0], None)], "runtime", "isorun", "s");
        assert!(t.lines().nth(1).unwrap().contains("2.00") && t.trim_end().ends_with('-'), "{t}");
    }

    #[test]
    fn density_error_rows_say_how_far_they_got() {
        let p = Point {
            runtime: "runc".into(),
            n: 100,
            started: 42,
            error: Some("boom".into()),
            ..Point::default()
        };
        let t = density_table(&[p]);
        assert!(t.lines().nth(1).unwrap().ends_with("ERROR after 42 started: boom"), "{t}");
    }

    #[test]
    fn density_rows_of_parallel_runs_say_so() {
        let p = |parallel| Point { runtime: "isorun".into(), n: 10, parallel, ..Point::default() };
        let t = density_table(&[p(0), p(1), p(4)]);
        let rows: Vec<&str> = t.lines().skip(1).map(|l| l.split("   ").next().unwrap_or("").trim()).collect();
        assert_eq!(rows, ["isorun", "isorun", "isorun (P=4)"], "{t}");
    }
}
