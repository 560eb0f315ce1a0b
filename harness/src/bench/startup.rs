//! Start latency: `RUNTIME --root R run -b BUNDLE ID` of `/bin/true` (create + start + wait +
//! delete, all namespaces but user, cgroup, pivot_root, readonly root), timed from spawn to
//! exit, the runtimes interleaved round by round (the order rotates each round), after
//! warm-up rounds that are not recorded. `unshare` of the same namespaces plus `true` runs
//! alongside as a floor of tools; the runtime name `floor` adds the floor program
//! (`isolab-floor ROOTFS CGROUP`, [`super::floor`]), the physical limit of a container start,
//! measured in the same rounds.

use std::process::Command;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::stats::{summarize, Summary};
use super::{floor, guard, BenchError, Runtime, Workspace};

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

/// One runtime's samples (milliseconds), or why it could not run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Series {
    /// Display name.
    pub runtime: String,
    /// Binary.
    pub path: String,
    /// Wall time of each measured run, ms.
    pub samples_ms: Vec<f64>,
    /// Their summary.
    pub summary: Option<Summary>,
    /// The first error (the runtime is not run again after one).
    pub error: Option<String>,
}

/// The runtime the ratio column divides by: the floor program when it was measured, else
/// isorun.
pub fn ratio_base(series: &[Series]) -> &'static str {
    if series.iter().any(|s| s.runtime == floor::NAME && s.summary.is_some()) {
        floor::NAME
    } else {
        "isorun"
    }
}

/// Runs the bench; a runtime that fails keeps its error and drops out, the others go on.
pub fn run(ws: &Workspace, runtimes: &[Runtime], o: &StartupOptions) -> Result<Vec<Series>, BenchError> {
    let mut all: Vec<(Series, Option<Command>)> = runtimes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let series = |path: String, error| Series {
                runtime: r.name.clone(),
                path,
                samples_ms: Vec::new(),
                summary: None,
                error,
            };
            match &r.path {
                Ok(p) if r.floor => (
                    series(p.display().to_string(), None),
                    Some(floor::command(p, &ws.bundle().join("rootfs"))),
                ),
                Ok(p) => (series(p.display().to_string(), None), Some(base_cmd(p, &ws.root(i), ws))),
                Err(e) => (series(String::new(), Some(e.clone())), None),
            }
        })
        .collect();
    if o.floor {
        let mut c = Command::new("unshare");
        c.args(["--fork", "--pid", "--mount", "--net", "--uts", "--ipc", "--cgroup", "--mount-proc", "true"]);
        let s = Series {
            runtime: FLOOR.into(),
            path: "unshare".into(),
            samples_ms: vec![],
            summary: None,
            error: None,
        };
        all.push((s, Some(c)));
    }
    let k = all.len();
    for round in 0..o.warmup + o.runs {
        for j in 0..k {
            let idx = (round + j) % k;
            let (series, cmd) = &mut all[idx];
            let Some(cmd) = cmd.as_mut() else { continue };
            let id = format!("isolab-bench-{}-{idx}-{round}", std::process::id());
            match time_one(cmd, idx, &id, ws, runtimes) {
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

fn base_cmd(runtime: &std::path::Path, root: &std::path::Path, ws: &Workspace) -> Command {
    let mut c = Command::new(runtime);
    c.arg("--root").arg(root).arg("run").arg("-b").arg(ws.bundle());
    c
}

/// One timed run; the container is registered with the guard for the duration. `id` is
/// the container id of a runtime and the cgroup name of the floor program (which removes
/// its cgroup itself, on every path).
fn time_one(
    base: &Command,
    idx: usize,
    id: &str,
    ws: &Workspace,
    runtimes: &[Runtime],
) -> Result<f64, BenchError> {
    let mut cmd = Command::new(base.get_program());
    cmd.args(base.get_args());
    if runtimes.get(idx).is_some_and(|r| r.floor) {
        floor::own_process_group(&mut cmd);
    }
    let is_unshare = idx >= runtimes.len(); // `unshare` comes after the runtimes
    let is_runtime = !is_unshare && !runtimes[idx].floor;
    if !is_unshare {
        cmd.arg(id);
    }
    if is_runtime {
        let rt = runtimes[idx].path.clone().unwrap_or_default();
        guard::register(&rt, &ws.root(idx), id);
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
    if is_runtime {
        guard::unregister(id);
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::stats::summarize;

    fn series(name: &str, samples: &[f64]) -> Series {
        Series {
            runtime: name.into(),
            path: String::new(),
            samples_ms: samples.to_vec(),
            summary: summarize(samples),
            error: None,
        }
    }

    #[test]
    fn the_ratio_is_to_the_floor_program_when_it_was_measured() {
        assert_eq!(ratio_base(&[series("isorun", &[9.0]), series("floor", &[2.0])]), "floor");
        assert_eq!(ratio_base(&[series("isorun", &[9.0]), series("floor", &[])]), "isorun");
        assert_eq!(ratio_base(&[series("isorun", &[9.0]), series(FLOOR, &[2.0])]), "isorun");
    }
}
