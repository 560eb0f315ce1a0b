//! `isolab bench startup|density|boot`: the side-by-side benchmarks (harness/src/bench).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use isolab_harness::bench::report::{self, BenchJson, HostInfo};
use isolab_harness::bench::startup::{self, Series, StartupOptions};
use isolab_harness::bench::stats::summarize;
use isolab_harness::bench::variant::{parse_variants, Variant};
use isolab_harness::bench::{build, density, guard, guest, plot, resolve_runtimes, Runtime, Workspace};
use isolab_harness::kernels::Matrix;
use isolab_harness::lab;
use isolab_harness::protocol::{Action, CgroupMode, Event, Request, PROTOCOL_VERSION};

use super::bench_vm::GuestBench;
use super::{lab_cmds, options, Global};

#[derive(Subcommand)]
pub enum BenchCmd {
    /// Start latency: `run` of /bin/true in one busybox bundle (all namespaces but user,
    /// cgroup, pivot_root, readonly root) per runtime, interleaved, plus `unshare` as the floor
    /// of tools; `--runtimes ...,floor` adds the floor program (the ratio is then to it).
    Startup {
        #[command(flatten)]
        c: Common,
        /// Measured runs per runtime.
        #[arg(long, default_value_t = 30)]
        runs: usize,
        /// Unrecorded runs per runtime first.
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// Leave out the `unshare` floor.
        #[arg(long)]
        no_floor: bool,
        #[command(flatten)]
        vm: super::bench_vm::VmArgs,
    },
    /// Density: N detached `sleep` containers per runtime, their memory, then delete them all.
    Density {
        #[command(flatten)]
        c: Common,
        /// The N to measure, ascending.
        #[arg(long, value_delimiter = ',', default_value = "100,500,1000")]
        n: Vec<usize>,
        /// Largest N per runtime, e.g. runc=200 (runc needs ~50 ms to start and ~110 ms to
        /// delete a container here); larger N are skipped for it, and say so.
        #[arg(long, value_delimiter = ',', default_value = "runc=200,crun=200")]
        max_n: Vec<String>,
        /// Containers in flight: P threads each run the next `run -d` (then `delete
        /// --force`) as soon as their last one returns. 1 (default) is the serial
        /// measurement; rows of P > 1 say `(P=…)`.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        parallel: u16,
        #[command(flatten)]
        vm: super::bench_vm::VmArgs,
    },
    /// VM boot: wall time from QEMU start to the agent's hello per kernel (and guest uptime).
    Boot {
        /// Kernel names (default: the default set).
        names: Vec<String>,
        /// Boots per kernel (interleaved across kernels).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Output directory.
        #[arg(long, default_value = "isolab-bench/boot")]
        out: PathBuf,
        /// Also time the full default matrix (`isolab matrix`, both cgroup modes).
        #[arg(long)]
        matrix: bool,
    },
}

#[derive(Args)]
pub struct Common {
    /// Runtimes to compare: `isorun` (this build, or --runtime), `floor` (the floor program
    /// `isolab-floor`, startup only: beside isolab, $ISOLAB_FLOOR or on PATH; the ratio
    /// column is then to it), names on PATH, or paths.
    #[arg(long, value_delimiter = ',', default_value = "isorun,runc,crun")]
    pub runtimes: Vec<String>,
    /// Bundle variants, each measured for every runtime in the same run: `default` (the bench
    /// bundle), `docker` (with Docker 20.10's seccomp profile and capabilities, from
    /// vm-images/engine-configs/docker.json), `userns` (a user namespace, 0 → host 100000,
    /// size 65536). A series is named RUNTIME for default and RUNTIME+VARIANT otherwise; the
    /// floor program and `unshare` run the default variant only.
    #[arg(long, value_delimiter = ',', default_value = "default")]
    pub variants: Vec<String>,
    /// Output directory (bench.json and SVG plots; default `isolab-bench/<bench>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Measure a runtime whose `--version` says `build: debug` (or an isorun that does not
    /// say its build); refused otherwise.
    #[arg(long)]
    pub allow_debug_build: bool,
    /// Where the runtimes' private state roots and pid files go (a temp dir is made in it).
    /// Default: /run if it is a tmpfs (as on an engine's host), else /dev/shm if it is one,
    /// else the bench's temp dir in /tmp. Not with --vm (the guest chooses its own).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

/// Runs a bench; `load` reads kernels.toml, for the benches that boot VMs only (a guest
/// bench's `isolab` has none).
pub fn bench(g: &Global, load: &dyn Fn() -> Result<Matrix>, cmd: &BenchCmd) -> Result<()> {
    guard::install_signal_handler().context("install signal handler")?;
    let r = match cmd {
        BenchCmd::Startup { c, runs, warmup, no_floor, vm } if vm.in_vms() => {
            let o = StartupOptions { runs: *runs, warmup: *warmup, floor: !no_floor };
            super::bench_vm::run(g, &load()?, c, GuestBench::Startup(&o), vm)
        }
        BenchCmd::Startup { c, runs, warmup, no_floor, vm } => {
            let o = StartupOptions { runs: *runs, warmup: *warmup, floor: !no_floor };
            startup_cmd(g, c, &o, vm.emit_json)
        }
        BenchCmd::Density { c, n, max_n, parallel, vm } if vm.in_vms() => {
            let parallel = usize::from(*parallel);
            super::bench_vm::run(g, &load()?, c, GuestBench::Density { n, max_n, parallel }, vm)
        }
        BenchCmd::Density { c, n, max_n, parallel, vm } => {
            density_cmd(g, c, (n, max_n, usize::from(*parallel)), vm.emit_json)
        }
        BenchCmd::Boot { names, runs, out, matrix } => boot_cmd(g, &load()?, names, *runs, out, *matrix),
    };
    let left = guard::cleanup_all();
    if !left.is_empty() {
        bail!("could not delete: {}", left.join("; "));
    }
    r
}

fn runtimes(g: &Global, c: &Common) -> Vec<Runtime> {
    let isorun = lab::locate_runtime(g.runtime.as_deref()).map_err(|e| e.to_string());
    resolve_runtimes(&c.runtimes, isorun)
}

/// The build of each runtime that says one (`isorun --version`: `build: release`), printed;
/// a debug build is an error unless `--allow-debug-build`.
fn builds(bench: &str, rts: &[Runtime], c: &Common) -> Result<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    for r in rts {
        let Ok(path) = &r.path else { continue };
        if let Some(b) = build::check(&r.name, path, c.allow_debug_build)? {
            eprintln!("isolab bench {bench}: {} is {} ({b} build)", r.name, path.display());
            m.insert(r.name.clone(), b);
        }
    }
    Ok(m)
}

/// `--variants`, parsed.
fn variants(c: &Common) -> Result<Vec<Variant>> {
    parse_variants(&c.variants).map_err(|e| anyhow::anyhow!("--variants: {e}"))
}

/// The bundles' config comes from the first usable OCI runtime's `spec`; where the state
/// roots went is printed.
fn workspace(
    g: &Global,
    c: &Common,
    rts: &[Runtime],
    args: &[&str],
    variants: &[Variant],
) -> Result<Workspace> {
    let Some(first) = rts.iter().filter(|r| !r.floor).find_map(|r| r.path.as_ref().ok()) else {
        bail!("none of the runtimes can be found: {:?}", rts.iter().map(|r| &r.path).collect::<Vec<_>>());
    };
    let ws = Workspace::new(first, &g.busybox, (args, variants), c.state_dir.as_deref())?;
    eprintln!("isolab bench: state roots in {}", ws.describe_state());
    Ok(ws)
}

pub fn out_dir(c: &Common, bench: &str) -> PathBuf {
    c.out.clone().unwrap_or_else(|| PathBuf::from("isolab-bench").join(bench))
}

/// The startup bench here; with `emit_json` (a guest bench) its bench.json is printed as one
/// line ([`guest::emit_line`]) instead of written.
fn startup_cmd(g: &Global, c: &Common, o: &StartupOptions, emit_json: bool) -> Result<()> {
    let vs = variants(c)?;
    let rts = runtimes(g, c);
    let builds = builds("startup", &rts, c)?;
    let ws = workspace(g, c, &rts, &["/bin/true"], &vs)?;
    let host = HostInfo::detect();
    eprintln!("isolab bench startup: {} runs + {} warm-up per series, interleaved", o.runs, o.warmup);
    let series = startup::run(&ws, &rts, &vs, o)?;
    print!("{}", report::series_table(&series, "runtime", &startup::ratio_base(&series), "ms"));
    for (name, b) in &builds {
        println!("{name}: {b} build");
    }
    let state_roots = ws.describe_state().to_owned();
    let j = BenchJson { bench: "startup".into(), host, series, builds, state_roots, ..BenchJson::default() };
    if emit_json {
        println!("{}", guest::emit_line(&j));
        return Ok(());
    }
    write_startup(&out_dir(c, "startup"), &j)
}

/// bench.json and startup.svg of a startup bench in `out`.
pub fn write_startup(out: &Path, j: &BenchJson) -> Result<()> {
    report::write_json(out, j)?;
    let svg = out.join("startup.svg");
    plot::distribution_svg(&svg, "run /bin/true: wall time per run", &j.series, "ms")?;
    println!("wrote {}/bench.json, {}", out.display(), svg.display());
    Ok(())
}

/// The density bench here; with `emit_json` (a guest bench) its bench.json is printed as one
/// line instead of written.
fn density_cmd(
    g: &Global,
    c: &Common,
    (ns, max_n, parallel): (&[usize], &[String], usize),
    emit_json: bool,
) -> Result<()> {
    let mut ns = ns.to_vec();
    ns.sort_unstable();
    let limits: Vec<(String, usize)> = max_n
        .iter()
        .map(|s| {
            let (name, n) = s.split_once('=').with_context(|| format!("--max-n {s}: expected NAME=N"))?;
            Ok((name.to_owned(), n.parse().with_context(|| format!("--max-n {s}: {n} is not a number"))?))
        })
        .collect::<Result<_>>()?;
    let vs = variants(c)?;
    let mut rts = runtimes(g, c);
    for r in rts.iter_mut().filter(|r| r.floor) {
        r.path = Err("floor: the floor program is measured by `isolab bench startup` only".into());
    }
    let builds = builds("density", &rts, c)?;
    for (name, lim) in &limits {
        let skipped: Vec<String> = ns.iter().filter(|n| *n > lim).map(|n| n.to_string()).collect();
        if rts.iter().any(|r| &r.name == name) && !skipped.is_empty() {
            eprintln!("isolab bench density: {name}: N={} skipped (--max-n {name}={lim})", skipped.join(","));
        }
    }
    let ws = workspace(g, c, &rts, &["sleep", "86400"], &vs)?;
    let host = HostInfo::detect();
    let points = density::run(&ws, &rts, &vs, (&ns, &limits), parallel);
    print!("{}", report::density_table(&points));
    let out = out_dir(c, "density");
    let state_roots = ws.describe_state().to_owned();
    let j = BenchJson {
        bench: "density".into(),
        host,
        density: points,
        builds,
        state_roots,
        ..BenchJson::default()
    };
    if emit_json {
        println!("{}", guest::emit_line(&j));
    } else {
        write_density(&out, &j)?;
    }
    if j.density.iter().any(|p| p.error.as_deref() == Some("interrupted")) {
        bail!("interrupted");
    }
    Ok(())
}

/// bench.json and density.svg of a density bench in `out`.
pub fn write_density(out: &Path, j: &BenchJson) -> Result<()> {
    report::write_json(out, j)?;
    let svg = out.join("density.svg");
    plot::density_svg(&svg, &j.density)?;
    println!("wrote {}/bench.json, {}", out.display(), svg.display());
    Ok(())
}

fn boot_cmd(g: &Global, m: &Matrix, names: &[String], runs: usize, out: &Path, matrix: bool) -> Result<()> {
    let o = options(g)?;
    let host = HostInfo::detect();
    let mut kernels = Vec::new();
    for spec in m.select(names)? {
        let k = lab::checked_kernel(spec, m, &o.cache)?;
        let img = super::build_image(&k, &o)?;
        kernels.push((k, img));
    }
    let req = Request { protocol_version: PROTOCOL_VERSION, action: Action::Idle };
    let mut wall: Vec<Vec<f64>> = vec![Vec::new(); kernels.len()];
    let mut guest: Vec<Vec<f64>> = vec![Vec::new(); kernels.len()];
    let mut errors: Vec<Option<String>> = vec![None; kernels.len()];
    for round in 0..runs {
        for (i, (k, img)) in kernels.iter().enumerate() {
            if errors[i].is_some() {
                continue;
            }
            let r = lab::boot(k, img, CgroupMode::V2, &req, &o, false, &mut |_| {});
            if let Some(e) = r.error {
                errors[i] = Some(format!("{e}: {}", r.console_tail.last().cloned().unwrap_or_default()));
                continue;
            }
            wall[i].push(r.boot_time.unwrap_or_default().as_secs_f64() * 1000.0);
            if let Some(Event::Hello { uptime_ms, .. }) = r.hello {
                guest[i].push(uptime_ms as f64);
            }
            eprintln!("isolab bench boot: round {}/{runs} {}", round + 1, k.files.name);
        }
    }
    let mk = |samples: &[Vec<f64>]| -> Vec<Series> {
        kernels
            .iter()
            .enumerate()
            .map(|(i, (k, _))| Series {
                runtime: k.files.name.clone(),
                path: String::new(),
                samples_ms: samples[i].clone(),
                summary: summarize(&samples[i]),
                error: errors[i].clone(),
                ..Series::default()
            })
            .collect()
    };
    let (series, guest_series) = (mk(&wall), mk(&guest));
    let base = series.first().map(|s| s.runtime.clone()).unwrap_or_default();
    println!("wall time from QEMU start to the agent's hello (TCG, {} MiB, {} vCPU):", o.memory_mb, o.cpus);
    print!("{}", report::series_table(&series, "kernel", &base, "s"));
    println!("guest uptime at hello:");
    print!("{}", report::series_table(&guest_series, "kernel", &base, "s"));
    let matrix_wall_s = if matrix {
        let t = Instant::now();
        let args = lab_cmds::MatrixArgs {
            kernels: vec![],
            cgroup: vec![CgroupMode::V1, CgroupMode::V2],
            only: String::new(),
            base_config: vec![Default::default()],
            rootless: false,
            shard: None,
            out: out.join("matrix"),
            baseline: None,
            fresh: false,
            per_vm: None,
        };
        let code = lab_cmds::matrix(g, m, &args)?;
        let s = t.elapsed().as_secs_f64();
        println!("full default matrix: {s:.1} s wall (exit {code})");
        Some(s)
    } else {
        None
    };
    let j =
        BenchJson { bench: "boot".into(), host, series, guest_series, matrix_wall_s, ..BenchJson::default() };
    report::write_json(out, &j)?;
    let svg = out.join("boot.svg");
    plot::distribution_svg(&svg, "QEMU start to agent hello (TCG)", &j.series, "s")?;
    println!("wrote {}/bench.json, {}", out.display(), svg.display());
    Ok(())
}
