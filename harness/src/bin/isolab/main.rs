//! `isolab`: boot throwaway VMs on a matrix of real kernels.
#![warn(clippy::too_many_lines)]

mod bench;
mod bench_vm;
mod kernels;
mod lab_cmds;
mod migrate_cmd;
mod run;
mod snapshot_cmds;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use isolab_harness::image::Compression;
use isolab_harness::kernels::Matrix;
use isolab_harness::lab::{self, LabOptions};
use isolab_harness::protocol::CgroupMode;
use isolab_harness::vm::{self, AccelChoice};

#[derive(Parser)]
#[command(name = "isolab", version, about = "Throwaway QEMU VMs on a matrix of real kernels")]
struct Cli {
    #[command(flatten)]
    g: Global,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args)]
struct Global {
    /// The kernel matrix.
    #[arg(long, env = "ISOLAB_KERNELS", global = true)]
    kernels_toml: Option<PathBuf>,
    /// Cache directory (default $XDG_CACHE_HOME/isolab or ~/.cache/isolab).
    #[arg(long, env = "ISOLAB_CACHE_DIR", global = true)]
    cache: Option<PathBuf>,
    /// OCI runtime under test (default: isorun next to isolab, else target/{release,debug}/isorun).
    #[arg(long, env = "ISOLAB_RUNTIME", global = true)]
    runtime: Option<PathBuf>,
    /// Static isolab-agent binary.
    #[arg(long, global = true)]
    agent: Option<PathBuf>,
    /// Static busybox for the guest.
    #[arg(long, default_value = "/bin/busybox", global = true)]
    busybox: PathBuf,
    /// QEMU binary.
    #[arg(long, default_value = "qemu-system-x86_64", global = true)]
    qemu: String,
    /// auto: KVM when a quick probe VM boots under it (verdict cached per host), else TCG.
    #[arg(long, default_value = "auto", global = true)]
    accel: AccelChoice,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 512, global = true)]
    memory: u32,
    /// Guest vCPUs (default 1; `matrix` uses 2 so cpuset restrictions can show).
    #[arg(long, global = true)]
    cpus: Option<u32>,
    /// QEMU -cpu model (default: host under KVM, qemu64 under TCG).
    #[arg(long, global = true)]
    cpu_model: Option<String>,
    /// VMs in parallel (default: what cores and memory allow).
    #[arg(long, global = true)]
    jobs: Option<usize>,
    /// initramfs compression: none | zstd.
    #[arg(long, default_value = "none", global = true)]
    compression: String,
    /// Boot the bzImage itself instead of its unpacked vmlinux (PVH entry).
    #[arg(long, global = true)]
    no_pvh: bool,
    /// Keep module signatures (slower module loading under TCG, no `E` taint).
    #[arg(long, global = true)]
    keep_module_signatures: bool,
    /// Extra kernel command-line words (repeatable).
    #[arg(long = "append", global = true)]
    append: Vec<String>,
    /// Keep the guest's user-space ASLR under TCG (default: `norandmaps` under TCG, where
    /// QEMU re-translates a randomly placed binary at every start: runtime calls ~5× slower).
    #[arg(long, global = true)]
    guest_aslr: bool,
    /// Show all kernel messages on the console (slower).
    #[arg(long, global = true)]
    verbose_console: bool,
    /// Seconds from QEMU start to the agent's hello.
    #[arg(long, default_value_t = 60, global = true)]
    boot_timeout: u64,
    /// Seconds of silence allowed after the hello.
    #[arg(long, default_value_t = 120, global = true)]
    step_timeout: u64,
}

#[derive(Subcommand)]
enum Cmd {
    /// The kernel matrix.
    #[command(subcommand)]
    Kernels(KernelsCmd),
    /// Build (or find cached) the initramfs of kernels; print paths.
    Image {
        /// Kernel names (default: the default set).
        names: Vec<String>,
    },
    /// Boot one VM and run a command in it (or a shell on the console without one).
    Boot {
        /// Kernel name.
        kernel: String,
        /// cgroup hierarchy: v1 or v2.
        #[arg(long, default_value = "v2", value_parser = cgroup_mode)]
        cgroup: CgroupMode,
        /// Command and arguments.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// The isolation catalogue on this machine, no VM: quick feedback, same code and outputs
    /// as `matrix` (which runs it in VMs). Exit 0 all pass/skip, 1 a failure or regression,
    /// 2 an error.
    Check {
        /// Run on this host (the default and only place `check` runs; kept for scripts).
        #[arg(long)]
        host: bool,
        /// Assertion id globs, comma-separated.
        #[arg(long, default_value = "")]
        only: String,
        /// Output directory.
        #[arg(long, default_value = "isolab-results")]
        out: PathBuf,
        /// Compare with this results.json; exit 1 on a regression.
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// The config every bundle starts from: `spec` (isolab's own), `docker`, `podman`,
        /// `containerd`, `podman-rootless` (what each engine sent, embedded; the last run
        /// rootless) or a config.json FILE;
        /// comma-separated to run the catalogue once per base config.
        #[arg(long, value_delimiter = ',', default_value = "spec", value_parser = base_config)]
        base_config: Vec<isolab_harness::catalogue::BaseConfig>,
        /// Run the catalogue once more rootless: podman's rootless config as the base, the
        /// runtime as root of a user namespace owned by an unprivileged uid.
        #[arg(long)]
        rootless: bool,
    },
    /// The main job: the catalogue in a throwaway VM per kernel × cgroup mode. Exit 0 all
    /// pass/skip, 1 any failure or regression against --baseline, 2 a harness/VM error.
    Matrix(lab_cmds::MatrixArgs),
    /// Reports: `merge DIR...` joins shard outputs.
    #[command(subcommand)]
    Report(ReportCmd),
    /// Baselines for regression gating: `update` stores a results.json.
    #[command(subcommand)]
    Baseline(BaselineCmd),
    /// Boot every selected kernel (× cgroup mode) in parallel and check the agent's hello.
    Smoke {
        /// Kernel names (default: the default set).
        names: Vec<String>,
        /// cgroup modes to boot each kernel with.
        #[arg(long, value_delimiter = ',', default_value = "v1,v2", value_parser = cgroup_mode)]
        cgroup: Vec<CgroupMode>,
    },
    /// Snapshots of booted VMs (`bench`: restored vs fresh start time).
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
    /// The cache: `prune` bounds the disk use of snapshots and images.
    #[command(subcommand)]
    Cache(CacheCmd),
    /// Live migration: checkpoint a running container in one VM, restore it in a second VM on
    /// the same kernel, check its counter and open file survived. Exit 0 migrated, 1 a
    /// property did not hold, 2 an error; a kernel CRIU cannot work on is a SKIP (exit 0).
    Migrate {
        /// Kernel name.
        kernel: String,
        /// cgroup hierarchy: v1 or v2.
        #[arg(long, default_value = "v2", value_parser = cgroup_mode)]
        cgroup: CgroupMode,
    },
    /// Benchmarks, side by side: `startup` and `density` against several OCI runtimes,
    /// `boot` (VM boot to the agent's hello per kernel). Writes bench.json and SVG plots.
    #[command(subcommand)]
    Bench(bench::BenchCmd),
}

#[derive(Subcommand)]
enum SnapshotCmd {
    /// QEMU start → agent ready: fresh boots and restores from the snapshot, interleaved.
    Bench {
        /// Kernel name.
        kernel: String,
        /// cgroup hierarchy: v1 or v2.
        #[arg(long, default_value = "v2", value_parser = cgroup_mode)]
        cgroup: CgroupMode,
        /// Runs of each.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Run a command in a VM restored from the kernel's snapshot (built if needed).
    Run {
        /// Kernel name.
        kernel: String,
        /// cgroup hierarchy: v1 or v2.
        #[arg(long, default_value = "v2", value_parser = cgroup_mode)]
        cgroup: CgroupMode,
        /// Command and arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

#[derive(Subcommand)]
enum CacheCmd {
    /// Remove least recently used snapshots and images until the rest fit in --max-size.
    Prune {
        /// Disk budget, e.g. 2G or 500M.
        #[arg(long, default_value = "4G")]
        max_size: String,
    },
}

#[derive(Subcommand)]
enum ReportCmd {
    /// Join the results.json of several output dirs (shards) into one report.
    Merge {
        /// Output directories of the shards.
        dirs: Vec<PathBuf>,
        /// Where to write the merged report.
        #[arg(long, default_value = "isolab-results")]
        out: PathBuf,
        /// Compare the merged results with this results.json; exit 1 on a regression.
        #[arg(long)]
        baseline: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum BaselineCmd {
    /// Store a run's results as the baseline.
    Update {
        /// The results to store.
        #[arg(long, default_value = "isolab-results/results.json")]
        from: PathBuf,
        /// The baseline file.
        #[arg(long, default_value = "isolab-baseline.json")]
        to: PathBuf,
    },
}

#[derive(Subcommand)]
enum KernelsCmd {
    /// Name, version, cached or not, features.
    List,
    /// Download, verify and extract kernels (default: the default set).
    Fetch {
        /// Kernel names.
        names: Vec<String>,
    },
    /// List the cloud kernel packages of a suite in the archive (to refresh pins).
    Available {
        /// Suite, e.g. bookworm.
        suite: String,
    },
}

/// `--cgroup`'s value parser: one place that says what a cgroup mode is.
/// `--base-config`'s value parser (a FILE is read here).
fn base_config(s: &str) -> Result<isolab_harness::catalogue::BaseConfig, String> {
    isolab_harness::catalogue::BaseConfig::parse(s).map_err(|e| e.to_string())
}

fn cgroup_mode(s: &str) -> Result<CgroupMode, String> {
    CgroupMode::parse(s).ok_or_else(|| format!("{s:?} is not a cgroup mode: expected v1 or v2"))
}

fn matrix_path(g: &Global) -> PathBuf {
    g.kernels_toml.clone().unwrap_or_else(|| {
        let local = PathBuf::from("vm-images/kernels.toml");
        if local.is_file() {
            local
        } else {
            lab::workspace_root().join("vm-images/kernels.toml")
        }
    })
}

fn cache(g: &Global) -> PathBuf {
    g.cache.clone().unwrap_or_else(isolab_harness::cache::cache_root)
}

fn options(g: &Global) -> Result<LabOptions> {
    let compression = match g.compression.as_str() {
        "none" => Compression::None,
        "zstd" => Compression::Zstd,
        other => bail!("unknown compression {other:?} (none|zstd)"),
    };
    Ok(LabOptions {
        cache: cache(g),
        agent: lab::locate_agent(g.agent.as_deref())?,
        runtime: match &g.runtime {
            Some(p) => Some(lab::locate_runtime(Some(p))?),
            None => match lab::locate_runtime(None) {
                Ok(p) => Some(p),
                Err(e) => {
                    eprintln!("isolab: warning: {e}; the guest image will have no runtime");
                    None
                }
            },
        },
        busybox: g.busybox.clone(),
        qemu: g.qemu.clone(),
        accel: g.accel,
        memory_mb: g.memory,
        cpus: g.cpus.unwrap_or(1),
        cpu_model: g.cpu_model.clone(),
        compression,
        pvh: !g.no_pvh,
        strip_module_signatures: !g.keep_module_signatures,
        tools: lab::default_tools(),
        quiet: !g.verbose_console,
        extra_cmdline: g.append.clone(),
        guest_aslr: g.guest_aslr,
        boot_timeout: Duration::from_secs(g.boot_timeout),
        step_timeout: Duration::from_secs(g.step_timeout),
    })
}

fn bar(len: u64, msg: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg:40} [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// The progress bar of image builds: it appears only when an image is really built, and goes
/// when it is there.
#[derive(Default)]
struct ImageBar(std::cell::RefCell<Option<ProgressBar>>);

impl ImageBar {
    fn show(&self, kernel: &str, progress: Option<(usize, usize)>) {
        let mut pb = self.0.borrow_mut();
        match progress {
            Some((done, total)) => pb
                .get_or_insert_with(|| bar(total as u64, &format!("image {kernel}")))
                .set_position(done as u64),
            None => {
                if let Some(pb) = pb.take() {
                    pb.finish_and_clear();
                }
            }
        }
    }
}

/// Builds (or finds) a kernel's image; a progress bar appears only when it is really built.
fn build_image(k: &isolab_harness::kernels::CheckedKernel, o: &LabOptions) -> Result<PathBuf> {
    let pb = ImageBar::default();
    let img = lab::image_for(k, o, None, &|done, total| pb.show(&k.files.name, Some((done, total))))?;
    pb.show(&k.files.name, None);
    Ok(img)
}

/// Makes the accelerator decision now (before any progress bar; `--accel auto` may probe).
fn accel_now(o: &LabOptions, k: &isolab_harness::kernels::CheckedKernel, img: &std::path::Path) {
    lab::decide_accel(o, k, img);
}

/// Prints a line above the bar (or plainly when the bar is hidden, e.g. not a terminal).
fn say(pb: &ProgressBar, msg: String) {
    if pb.is_hidden() {
        eprintln!("{msg}");
    } else {
        pb.println(msg);
    }
}

/// Exit codes: 0 all pass/skip, 1 a failure or regression, 2 the harness itself failed.
fn main() {
    if let Err(e) = real_main() {
        eprintln!("isolab: {e:#}");
        std::process::exit(2);
    }
}

/// `--guest-aslr`, for the line that reports the accelerator.
static GUEST_ASLR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    // `isolab bench` installs its own handler (it also deletes the containers it made).
    if !matches!(cli.cmd, Cmd::Bench(_)) {
        vm::guard::install_signal_handler().context("install signal handler")?;
    }
    GUEST_ASLR.store(cli.g.guest_aslr, std::sync::atomic::Ordering::Relaxed);
    vm::accel::set_reporter(|d| {
        let kept = GUEST_ASLR.load(std::sync::atomic::Ordering::Relaxed);
        let aslr = if d.accel == vm::Accel::Tcg && !kept {
            "; guest user-space ASLR off (norandmaps: TCG re-translates a randomly placed binary at every start; --guest-aslr keeps it)"
        } else {
            ""
        };
        eprintln!("isolab: {}{aslr}", d.describe());
    });
    // Only the commands that boot or list kernels read kernels.toml (`check`, `report merge`
    // and `baseline update` work without one).
    let load = || Matrix::load(&matrix_path(&cli.g));
    match &cli.cmd {
        Cmd::Check { host: _, only, out, baseline, base_config, rootless } => {
            let bases = isolab_harness::matrix::plan::bases(base_config, *rootless);
            std::process::exit(lab_cmds::check_host(&cli.g, only, &bases, out, baseline.as_deref())?)
        }
        Cmd::Report(ReportCmd::Merge { dirs, out, baseline }) => {
            std::process::exit(lab_cmds::merge(dirs, out, baseline.as_deref())?)
        }
        Cmd::Baseline(BaselineCmd::Update { from, to }) => {
            std::process::exit(lab_cmds::baseline_update(from, to)?)
        }
        Cmd::Kernels(KernelsCmd::Available { suite }) => return kernels::available(&cli.g, suite),
        // Only the benches that boot VMs read it (a guest bench has none).
        Cmd::Bench(b) => return bench::bench(&cli.g, &|| Ok(load()?), b),
        _ => {}
    }
    let matrix = load()?;
    match &cli.cmd {
        Cmd::Kernels(KernelsCmd::List) => kernels::list(&cli.g, &matrix),
        Cmd::Kernels(KernelsCmd::Fetch { names }) => kernels::fetch_kernels(&cli.g, &matrix, names),
        Cmd::Image { names } => {
            let o = options(&cli.g)?;
            for spec in matrix.select(names)? {
                let k = lab::checked_kernel(spec, &matrix, &o.cache)?;
                let p = build_image(&k, &o)?;
                let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
                println!("{}\t{}\t{} KiB\t{} modules", spec.name, p.display(), size / 1024, k.modules.len());
            }
            Ok(())
        }
        Cmd::Boot { kernel, cgroup, command } => run::boot(&cli.g, &matrix, kernel, *cgroup, command),
        Cmd::Snapshot(SnapshotCmd::Bench { kernel, cgroup, runs }) => {
            snapshot_cmds::bench(&cli.g, &matrix, kernel, *cgroup, *runs)
        }
        Cmd::Snapshot(SnapshotCmd::Run { kernel, cgroup, command }) => {
            std::process::exit(snapshot_cmds::run(&cli.g, &matrix, kernel, *cgroup, cli.g.cpus, command)?)
        }
        Cmd::Cache(CacheCmd::Prune { max_size }) => snapshot_cmds::prune_cache(&cli.g, max_size),
        Cmd::Migrate { kernel, cgroup } => {
            std::process::exit(migrate_cmd::migrate(&cli.g, &matrix, kernel, *cgroup)?)
        }
        Cmd::Smoke { names, cgroup } => run::check(&cli.g, &matrix, names, cgroup),
        Cmd::Matrix(a) => std::process::exit(lab_cmds::matrix(&cli.g, &matrix, a)?),
        Cmd::Check { .. }
        | Cmd::Report(_)
        | Cmd::Baseline(_)
        | Cmd::Bench(_)
        | Cmd::Kernels(KernelsCmd::Available { .. }) => unreachable!("handled before kernels.toml is read"),
    }
}
