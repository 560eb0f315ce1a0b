//! `isolab matrix`, `isolab check --host`, `isolab report merge`, `isolab baseline update`:
//! the catalogue in VMs or on this host, and what is done with its results.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use isolab_harness::catalogue;
use isolab_harness::check::{self, CheckOptions};
use isolab_harness::kernels::Matrix;
use isolab_harness::lab;
use isolab_harness::matrix::{run_cell_planned, selected_ids, CellInfo, CellPlan};
use isolab_harness::protocol::{CgroupMode, Event};
use isolab_harness::report::timing::{merged_timing, run_timing, RunTiming};
use isolab_harness::report::{self, Record};
use isolab_harness::vm;

use super::{bar, build_image, kernels, options, say, Global};

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
    /// The config every bundle starts from: `spec`, `docker`, `podman`, `containerd` or a
    /// config.json FILE; comma-separated = one more matrix dimension.
    #[arg(long, value_delimiter = ',', default_value = "spec", value_parser = super::base_config)]
    pub base_config: Vec<catalogue::BaseConfig>,
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

/// `isolab matrix`.
pub fn matrix(g: &Global, m: &Matrix, a: &MatrixArgs) -> Result<i32> {
    let start = Instant::now();
    let ids = selected_ids(&a.only);
    if ids.is_empty() {
        bail!("--only {:?} matches no assertion", a.only);
    }
    let modes = &a.cgroup;
    let specs = m.select(&a.kernels)?;
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    let mut all_cells: Vec<(String, CgroupMode, usize)> = Vec::new();
    for n in &names {
        for mode in modes {
            for b in 0..a.base_config.len() {
                all_cells.push((n.clone(), *mode, b));
            }
        }
    }
    let cells = match &a.shard {
        Some(s) => {
            let (i, n) = report::parse_shard(s)
                .with_context(|| format!("--shard {s:?}: expected I/N with 1 <= I <= N"))?;
            report::shard(&all_cells, i, n)
        }
        None => all_cells,
    };
    let mut wanted: Vec<String> = cells.iter().map(|c| c.0.clone()).collect();
    wanted.dedup();
    // Fetch and build what is missing, with progress.
    kernels::fetch_kernels(g, m, &wanted)?;
    let mut o = options(g)?;
    o.cpus = g.cpus.unwrap_or(2);
    let runtime = o
        .runtime
        .clone()
        .context("no runtime to test: build isorun (cargo build --release) or pass --runtime")?;
    let runtime_name = runtime.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let runtime_version = catalogue::runtime_version(&runtime);
    let mut prepared = Vec::new();
    for (name, mode, base) in &cells {
        let spec = specs.iter().find(|s| &s.name == name).context("kernel vanished from the selection")?;
        let k = lab::checked_kernel(spec, m, &o.cache)?;
        // Restored VMs boot the image without the runtime (it comes as their payload).
        let img = if a.fresh {
            build_image(&k, &o)?
        } else {
            isolab_harness::snapshot::restore::snapshot_image(&k, &o)?
        };
        prepared.push((k, img, *mode, &a.base_config[*base]));
    }
    if let Some((k, img, _, _)) = prepared.first() {
        super::accel_now(&o, k, img);
    }
    let jobs = g.jobs.unwrap_or_else(|| vm::default_jobs(o.memory_mb));
    let plan = CellPlan { fresh: a.fresh, per_vm: a.per_vm.map(|n| n as usize) };
    let how = match (a.fresh, plan.per_vm) {
        (true, _) => "fresh boots".to_string(),
        (false, None) => "restored from snapshots".to_string(),
        (false, Some(n)) => format!("restored from snapshots, {n} assertion(s) per VM"),
    };
    let pb =
        bar(prepared.len() as u64, &format!("matrix: {} cells, {jobs} VMs at a time, {how}", prepared.len()));
    // Work items are (cell, group of assertions): with --per-vm, a cell's VMs run in parallel too.
    let size = plan.per_vm.unwrap_or(ids.len()).max(1);
    let groups_per_cell = ids.chunks(size).count();
    let work: Vec<(usize, Vec<String>)> =
        (0..prepared.len()).flat_map(|i| ids.chunks(size).map(move |g| (i, g.to_vec()))).collect();
    let acc: std::sync::Mutex<Vec<(usize, Vec<Record>)>> =
        std::sync::Mutex::new(vec![(0, Vec::new()); prepared.len()]);
    pb.set_length(work.len() as u64);
    let per_cell = vm::run_parallel(&work, jobs, |(i, group)| {
        let (k, img, mode, base) = &prepared[*i];
        let cell = CellInfo {
            kernel: k.files.name.clone(),
            mode: *mode,
            runtime: runtime_name.clone(),
            runtime_version: runtime_version.clone(),
            base: (*base).clone(),
        };
        let label = if base.is_spec() {
            mode.as_str().to_string()
        } else {
            format!("{}/{}", mode.as_str(), base.name)
        };
        let one = CellPlan { per_vm: None, ..plan };
        let recs = run_cell_planned(k, img, &cell, group, &o, one, &mut |ev| match ev {
            Event::Result { id, outcome, .. } => {
                pb.set_message(format!("{} {label} {id}: {outcome:?}", k.files.name))
            }
            Event::Log { message } => say(&pb, format!("{:<12} {label}: {message}", k.files.name)),
            _ => {}
        });
        let mut acc = acc.lock().unwrap_or_else(|p| p.into_inner());
        acc[*i].0 += 1;
        acc[*i].1.extend(recs.iter().cloned());
        if acc[*i].0 == groups_per_cell {
            let all = &isolab_harness::kernel_findings::combine(acc[*i].1.clone());
            let secs: f64 = all.iter().map(|r| r.duration_ms as f64 / 1000.0).sum();
            say(&pb, format!("{:<12} {label}: {}", k.files.name, report::summary_line(all, secs)));
        }
        pb.inc(1);
        recs
    });
    pb.finish_and_clear();
    let records = isolab_harness::kernel_findings::combine(per_cell.into_iter().flatten().collect());
    let timing = run_timing(&records, start.elapsed().as_secs_f64());
    finish(&records, &timing, &a.out, a.baseline.as_deref())
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
