//! `isolab matrix`, `isolab check --host`, `isolab report merge`, `isolab baseline update`:
//! the catalogue in VMs or on this host, and what is done with its results.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use isolab_harness::catalogue;
use isolab_harness::check::{self, CheckOptions};
use isolab_harness::kernels::Matrix;
use isolab_harness::lab;
use isolab_harness::matrix::{self, plan, selected_ids, CellPlan, MatrixRun, Progress, RuntimeId};
use isolab_harness::protocol::{CgroupMode, Event};
use isolab_harness::report::timing::{merged_timing, run_timing, RunTiming};
use isolab_harness::report::{self, Record};
use isolab_harness::vm;

use super::{bar, kernels, options, say, Global, ImageBar};

/// Options of `isolab matrix`.
#[derive(Debug, clap::Args)]
pub struct MatrixArgs {
    /// Kernel names, comma-separated (default: every default kernel of kernels.toml).
    #[arg(long, value_delimiter = ',')]
    pub kernels: Vec<String>,
    /// cgroup modes to boot each kernel with.
    #[arg(long, value_delimiter = ',', default_value = "v1,v2", value_parser = super::cgroup_mode)]
    pub cgroup: Vec<CgroupMode>,
    /// Assertion id globs, comma-separated; `!GLOB` leaves out what it matches, e.g.
    /// `!escape.*` (default: the whole catalogue).
    #[arg(long, default_value = "")]
    pub only: String,
    /// The config every bundle starts from: `spec`, `docker`, `podman`, `containerd`,
    /// `podman-rootless` (run rootless) or a config.json FILE; comma-separated = one more
    /// matrix dimension.
    #[arg(long, value_delimiter = ',', default_value = "spec", value_parser = super::base_config)]
    pub base_config: Vec<catalogue::BaseConfig>,
    /// Add a rootless cell per kernel × cgroup mode: podman's rootless config as the base, the
    /// runtime run as root of a user namespace owned by an unprivileged uid (rootless only:
    /// `--base-config podman-rootless`).
    #[arg(long)]
    pub rootless: bool,
    /// Run shard I of N (1-based) of the kernel × cgroup × base config cells.
    #[arg(long)]
    pub shard: Option<String>,
    /// Output directory.
    #[arg(long, default_value = "isolab-results")]
    pub out: PathBuf,
    /// Compare with this results.json; exit 1 on a regression.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Boot every VM from scratch instead of restoring each cell's snapshot.
    #[arg(long)]
    pub fresh: bool,
    /// Run N assertions per throwaway VM (1 = each in its own VM; default: all in one VM).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub per_vm: Option<u64>,
}

fn finish(records: &[Record], timing: &RunTiming, out: &Path, baseline: Option<&Path>) -> Result<i32> {
    check::write_outputs(out, records, timing)
        .with_context(|| format!("write results to {}", out.display()))?;
    print!("{}", report::render_table(records, std::io::stdout().is_terminal()));
    let changes = match baseline {
        Some(b) => {
            let base = check::read_results(b).map_err(anyhow::Error::msg)?;
            let changes = report::diff(&base, records);
            std::fs::write(
                out.join("report.html"),
                report::render_html_diff(records, timing.wall_secs.unwrap_or(0.0), &changes),
            )
            .with_context(|| format!("write {}/report.html", out.display()))?;
            for c in &changes {
                println!("{c}");
            }
            if changes.is_empty() {
                println!("no change against {}", b.display());
            }
            changes
        }
        None => Vec::new(),
    };
    print!("{}", report::slowest(records, 5));
    println!("{}", report::summary_line(records, timing.wall_secs.unwrap_or(0.0)));
    println!("{}", report::timing::timing_line(timing));
    println!(
        "results: {}/{{results.json,junit.xml,results.ktap,report.html,summary.md,annotations.txt,kcidb.json}}",
        out.display()
    );
    Ok(report::exit_code(records, &changes))
}

/// `isolab check --host`.
pub fn check_host(
    g: &Global,
    only: &str,
    bases: &[catalogue::BaseConfig],
    out: &Path,
    baseline: Option<&Path>,
) -> Result<i32> {
    let runtime = lab::locate_runtime(g.runtime.as_deref())?;
    if catalogue::select(only).is_empty() {
        bail!("--only {only:?} matches no assertion");
    }
    let (mut records, mut wall) = (Vec::new(), 0.0);
    for base in bases {
        let workdir = std::env::temp_dir().join(format!("isolab-check-{}", std::process::id()));
        let o = CheckOptions {
            runtime: runtime.clone(),
            only: only.into(),
            busybox: g.busybox.clone(),
            workdir,
            base: base.clone(),
        };
        let (recs, secs) = check::check_host(&o, &mut |r| {
            let base = if base.is_spec() { String::new() } else { format!(" [{}]", base.name) };
            eprintln!("{:<6} {}{base}", format!("{:?}", r.status).to_uppercase(), r.assertion)
        })?;
        records.extend(recs);
        wall += secs;
    }
    finish(&records, &run_timing(&records, wall), out, baseline)
}

/// `isolab matrix`: the CLI's selection to cells, the run to the library, its progress and
/// results to the terminal.
pub fn matrix(g: &Global, m: &Matrix, a: &MatrixArgs) -> Result<i32> {
    let start = Instant::now();
    let ids = selected_ids(&a.only);
    if ids.is_empty() {
        bail!("--only {:?} matches no assertion", a.only);
    }
    let specs = m.select(&a.kernels)?;
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    let shard = match &a.shard {
        Some(s) => Some(
            report::parse_shard(s)
                .with_context(|| format!("--shard {s:?}: expected I/N with 1 <= I <= N"))?,
        ),
        None => None,
    };
    let cells = plan::shard(plan::cells(&names, &a.cgroup, &plan::bases(&a.base_config, a.rootless)), shard);
    // Fetch and build what is missing, with progress.
    kernels::fetch_kernels(g, m, &plan::kernels(&cells))?;
    let mut o = options(g)?;
    o.cpus = g.cpus.unwrap_or(2);
    let runtime = o
        .runtime
        .clone()
        .context("no runtime to test: build isorun (cargo build --release) or pass --runtime")?;
    let runtime = RuntimeId::of(&runtime);
    let image_bar = ImageBar::default();
    let prepared = matrix::prepare(&cells, &specs, m, &o, a.fresh, &|k, p| image_bar.show(k, p))?;
    if let Some(p) = prepared.first() {
        super::accel_now(&o, &p.kernel, &p.image);
    }
    let run = MatrixRun {
        cells: &prepared,
        ids: &ids,
        plan: CellPlan { fresh: a.fresh, per_vm: a.per_vm.map(|n| n as usize) },
        runtime,
        jobs: g.jobs.unwrap_or_else(|| vm::default_jobs(o.memory_mb)),
    };
    let how = match (run.plan.fresh, run.plan.per_vm) {
        (true, _) => "fresh boots".to_string(),
        (false, None) => "restored from snapshots".to_string(),
        (false, Some(n)) => format!("restored from snapshots, {n} assertion(s) per VM"),
    };
    let pb = bar(
        prepared.len() as u64,
        &format!("matrix: {} cells, {} VMs at a time, {how}", prepared.len(), run.jobs),
    );
    pb.set_length(run.work().len() as u64);
    let records = run.run(&o, &|p| show_progress(&pb, p));
    pb.finish_and_clear();
    let timing = run_timing(&records, start.elapsed().as_secs_f64());
    finish(&records, &timing, &a.out, a.baseline.as_deref())
}

/// A matrix run's progress on the bar: each result as its message, agent logs and each cell's
/// summary above it.
fn show_progress(pb: &ProgressBar, p: Progress<'_>) {
    match p {
        Progress::Event { cell, event } => {
            let (kernel, label) = (&cell.kernel.files.name, cell.cell.label());
            match event {
                Event::Result { id, outcome, .. } => {
                    pb.set_message(format!("{kernel} {label} {id}: {outcome:?}"))
                }
                Event::Log { message } => say(pb, format!("{kernel:<12} {label}: {message}")),
                _ => {}
            }
        }
        Progress::CellDone { cell, records } => {
            let secs: f64 = records.iter().map(|r| r.duration_ms as f64 / 1000.0).sum();
            let (kernel, label) = (&cell.kernel.files.name, cell.cell.label());
            say(pb, format!("{kernel:<12} {label}: {}", report::summary_line(records, secs)));
        }
        Progress::WorkDone => pb.inc(1),
    }
}

/// `isolab report merge DIR...`: join shard outputs into one report.
pub fn merge(dirs: &[PathBuf], out: &Path, baseline: Option<&Path>) -> Result<i32> {
    let (mut parts, mut timings) = (Vec::new(), Vec::new());
    for d in dirs {
        let (records, timing) =
            check::read_results_timed(&d.join("results.json")).map_err(anyhow::Error::msg)?;
        parts.push(records);
        timings.push(timing);
    }
    let merged = report::merge(&parts);
    finish(&merged, &merged_timing(&timings, &merged), out, baseline)
}

/// `isolab baseline update`: store a run's results.json as the baseline.
pub fn baseline_update(from: &Path, to: &Path) -> Result<i32> {
    let records = check::read_results(from).map_err(anyhow::Error::msg)?;
    let json = serde_json::to_vec_pretty(&records)?;
    std::fs::write(to, json).with_context(|| format!("write {}", to.display()))?;
    println!("baseline {} updated from {} ({} results)", to.display(), from.display(), records.len());
    Ok(0)
}
