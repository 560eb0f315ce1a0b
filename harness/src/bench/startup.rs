//! Start latency: `RUNTIME --root R run -b BUNDLE ID` of `/bin/true` (create + start + wait +
//! delete, all namespaces but user, cgroup, pivot_root, readonly root), timed from spawn to
//! exit, the runtimes interleaved round by round (in a carryover-balanced order, [`super::interleave`]), after
//! warm-up rounds that are not recorded. `unshare` of the same namespaces plus `true` runs
//! alongside as a floor of tools; the runtime name `floor` adds the floor program
//! (`isolab-floor ROOTFS CGROUP`, [`super::floor`]), the physical limit of a container start,
//! measured in the same rounds. With `--variants` ([`super::variant`]) every runtime runs
//! every variant's bundle, each runtime × variant its own series in the same rounds.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::stats::{summarize, Summary};
use super::variant::Variant;
use super::{floor, guard, interleave, BenchError, Runtime, Workspace};

/// The `unshare` floor's display name (the floor program's is [`floor::NAME`]).
pub const FLOOR: &str = "unshare (floor)";

/// Options of the start-latency bench.
#[derive(Debug, Clone, Copy)]
pub struct StartupOptions {
    /// Measured rounds.
    pub runs: usize,
    /// Unrecorded rounds first.
    pub warmup: usize,
    /// Also time `unshare -fpmnuiC --mount-proc true`.
    pub floor: bool,
}

/// One series' samples (milliseconds), or why it could not run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Series {
    /// Display name: the runtime's for the default variant, `RUNTIME+VARIANT` otherwise
    /// ([`Variant::series_name`]).
    pub runtime: String,
    /// Binary.
    pub path: String,
    /// The bundle variant (`default`, `docker`, `userns`) of a startup series; absent in
    /// older bench.json files and in boot series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Wall time of each measured run, ms.
    pub samples_ms: Vec<f64>,
    /// Their summary.
    pub summary: Option<Summary>,
    /// The first error (the runtime is not run again after one).
    pub error: Option<String>,
    /// Why the series was not run though nothing failed (`n/a for variant docker: ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Series {
    /// The name of the same runtime's default-variant series, for a series of another
    /// variant.
    pub fn default_series_name(&self) -> Option<&str> {
        let v = self.variant.as_deref().filter(|v| *v != Variant::Default.name())?;
        self.runtime.strip_suffix(&format!("+{v}"))
    }
}

/// The series the ratio column divides every row by (all variants alike, so the rows stay
/// comparable): the floor program (default bundle) when it was measured, else isorun's
/// default variant, else isorun's first measured variant.
pub fn ratio_base(series: &[Series]) -> String {
    let measured = |name: &str| series.iter().any(|s| s.runtime == name && s.summary.is_some());
    if measured(floor::NAME) {
        return floor::NAME.into();
    }
    if measured("isorun") {
        return "isorun".into();
    }
    Variant::ALL
        .into_iter()
        .map(|v| v.series_name("isorun"))
        .find(|n| measured(n))
        .unwrap_or_else(|| "isorun".into())
}

/// What a series runs.
enum Job {
    /// An OCI runtime: `RUNTIME --root R run -b BUNDLE` (the id appended per run).
    Runtime { bin: PathBuf, root: PathBuf, cmd: Command },
    /// The floor program (the cgroup name appended per run).
    Floor(Command),
    /// `unshare ... true`.
    Unshare(Command),
}

/// Why the floor program and `unshare` have no series for a variant other than default.
fn not_applicable(v: Variant, what: &str) -> String {
    format!("n/a for variant {}: {what} runs the default bundle's kernel calls only", v.name())
}

/// Runs the bench: every runtime in every variant (runtime-major), plus `unshare` when
/// `o.floor`; the floor program and `unshare` have a series for the default variant only
/// (the others get a row saying so). A series that fails keeps its error and drops out,
/// the others go on.
pub fn run(
    ws: &Workspace,
    runtimes: &[Runtime],
    variants: &[Variant],
    o: &StartupOptions,
) -> Result<Vec<Series>, BenchError> {
    let mut all = runtime_jobs(ws, runtimes, variants);
    if o.floor {
        all.extend(unshare_jobs(variants));
    }
    measure(&mut all, o)?;
    let failed = guard::cleanup_all();
    if !failed.is_empty() {
        eprintln!("isolab bench: left behind after cleanup: {}", failed.join("; "));
    }
    Ok(all
        .into_iter()
        .map(|(mut s, _)| {
            s.summary = summarize(&s.samples_ms);
            s
        })
        .collect())
}

/// A series of every runtime in every variant (runtime-major), with what it runs (None: it
/// has an error or a note instead).
fn runtime_jobs(ws: &Workspace, runtimes: &[Runtime], variants: &[Variant]) -> Vec<(Series, Option<Job>)> {
    let mut all: Vec<(Series, Option<Job>)> = Vec::new();
    for r in runtimes {
        for &v in variants {
            let i = all.len();
            let mut series = Series {
                runtime: v.series_name(&r.name),
                variant: Some(v.name().into()),
                ..Series::default()
            };
            let job = match &r.path {
                Ok(p) if r.floor && v != Variant::Default => {
                    series.path = p.display().to_string();
                    series.note = Some(not_applicable(v, "the floor program"));
                    None
                }
                Ok(p) if r.floor => {
                    series.path = p.display().to_string();
                    Some(Job::Floor(floor::command(p, &ws.bundle(v).join("rootfs"))))
                }
                Ok(p) => {
                    series.path = p.display().to_string();
                    let mut cmd = Command::new(p);
                    cmd.arg("--root").arg(ws.root(i)).arg("run").arg("-b").arg(ws.bundle(v));
                    Some(Job::Runtime { bin: p.clone(), root: ws.root(i), cmd })
                }
                Err(e) => {
                    series.error = Some(e.clone());
                    None
                }
            };
            all.push((series, job));
        }
    }
    all
}

/// The `unshare` series: one per variant, run for the default variant only.
fn unshare_jobs(variants: &[Variant]) -> Vec<(Series, Option<Job>)> {
    variants
        .iter()
        .map(|&v| {
            let mut series = Series {
                runtime: v.series_name(FLOOR),
                path: "unshare".into(),
                variant: Some(v.name().into()),
                ..Series::default()
            };
            let job = if v == Variant::Default {
                let mut c = Command::new("unshare");
                c.args(["--fork", "--pid", "--mount", "--net", "--uts", "--ipc", "--cgroup", "--mount-proc"]);
                c.arg("true");
                Some(Job::Unshare(c))
            } else {
                series.note = Some(not_applicable(v, "unshare"));
                None
            };
            (series, job)
        })
        .collect()
}

/// The timed rounds, interleaved in a carryover-balanced order ([`interleave`]: every series
/// follows every other equally often); a series that fails keeps its error and drops out.
fn measure(all: &mut [(Series, Option<Job>)], o: &StartupOptions) -> Result<(), BenchError> {
    // Balanced over the series that run (not those with a note or an error from the
    // start); one that fails later drops out of the rounds after.
    let runnable: Vec<usize> = (0..all.len()).filter(|&i| all[i].1.is_some()).collect();
    for round in 0..o.warmup + o.runs {
        for idx in interleave::round_order(runnable.len(), round).into_iter().map(|j| runnable[j]) {
            let (series, job) = &mut all[idx];
            let Some(job) = job.as_ref() else { continue };
            let id = format!("isolab-bench-{}-{idx}-{round}", std::process::id());
            match time_one(job, &id) {
                Ok(ms) if round >= o.warmup => series.samples_ms.push(ms),
                Ok(_) => {}
                Err(BenchError::Interrupted) => return Err(BenchError::Interrupted),
                Err(e) => {
                    series.error = Some(e.to_string());
                    all[idx].1 = None;
                }
            }
        }
    }
    Ok(())
}

/// One timed run; the container is registered with the guard for the duration. `id` is
/// the container id of a runtime and the cgroup name of the floor program (which removes
/// its cgroup itself, on every path).
fn time_one(job: &Job, id: &str) -> Result<f64, BenchError> {
    let base = match job {
        Job::Runtime { cmd, .. } | Job::Floor(cmd) | Job::Unshare(cmd) => cmd,
    };
    let mut cmd = Command::new(base.get_program());
    cmd.args(base.get_args());
    match job {
        Job::Runtime { bin, root, .. } => {
            cmd.arg(id);
            guard::register(bin, root, id);
        }
        Job::Floor(_) => {
            floor::own_process_group(&mut cmd);
            cmd.arg(id);
        }
        Job::Unshare(_) => {}
    }
    let t = Instant::now();
    let out = guard::run(&mut cmd)?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(BenchError::Failed {
            cmd: guard::describe(&cmd),
            status: out.status.to_string(),
            stderr: err.trim().lines().last().unwrap_or("").to_owned(),
        });
    }
    if matches!(job, Job::Runtime { .. }) {
        guard::unregister(id);
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::stats::summarize;
    use test_case::test_case;

    fn series(name: &str, samples: &[f64]) -> Series {
        let variant = name.split_once('+').map(|(_, v)| v).unwrap_or("default");
        Series {
            runtime: name.into(),
            variant: Some(variant.into()),
            samples_ms: samples.to_vec(),
            summary: summarize(samples),
            ..Series::default()
        }
    }

    #[test_case(&[("isorun", true), ("floor", true)] => "floor"; "the floor program when measured")]
    #[test_case(&[("isorun", true), ("floor", false)] => "isorun"; "isorun when the floor has no samples")]
    #[test_case(&[("isorun", true), (FLOOR, true)] => "isorun"; "never unshare")]
    #[test_case(&[("isorun+docker", true), ("isorun", true), ("floor", true), ("floor+docker", false)] => "floor"; "the default floor for every variant")]
    #[test_case(&[("isorun+docker", true), ("isorun+userns", true), ("runc", true)] => "isorun+docker"; "isorun's first measured variant without a default")]
    #[test_case(&[("isorun", false), ("isorun+userns", true)] => "isorun+userns"; "a failed default isorun")]
    #[test_case(&[("runc", true)] => "isorun"; "no isorun at all")]
    fn ratio_base_is(v: &[(&str, bool)]) -> String {
        let s: Vec<Series> =
            v.iter().map(|(n, measured)| series(n, if *measured { &[2.0] } else { &[] })).collect();
        ratio_base(&s)
    }

    #[test_case("isorun", Some("default") => None; "default has none")]
    #[test_case("isorun+docker", Some("docker") => Some("isorun".to_string()); "docker")]
    #[test_case("runc+userns", Some("userns") => Some("runc".to_string()); "userns")]
    #[test_case("kernel-6.1", None => None; "a boot series has no variant")]
    fn default_series_name_is(name: &str, variant: Option<&str>) -> Option<String> {
        let s = Series { runtime: name.into(), variant: variant.map(str::to_owned), ..Series::default() };
        s.default_series_name().map(str::to_owned)
    }
}
