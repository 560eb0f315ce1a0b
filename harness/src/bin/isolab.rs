//! `isolab`: boot throwaway VMs on a matrix of real kernels.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use isolab_harness::image::Compression;
use isolab_harness::kernels::{fetch, Matrix};
use isolab_harness::lab::{self, LabOptions};
use isolab_harness::protocol::{Action, CgroupMode, Event, Request, Stream, PROTOCOL_VERSION};
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
    #[arg(long, global = true)]
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
    /// auto: KVM only when a quick probe boots, else TCG.
    #[arg(long, default_value = "tcg", global = true)]
    accel: AccelChoice,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 512, global = true)]
    memory: u32,
    /// Guest vCPUs.
    #[arg(long, default_value_t = 1, global = true)]
    cpus: u32,
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
        /// cgroup hierarchy.
        #[arg(long, default_value = "v2")]
        cgroup: String,
        /// Command and arguments.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Measure boot-to-hello time per kernel (sequential runs).
    BenchBoot {
        /// Kernel names (default: the default set).
        names: Vec<String>,
        /// Boots per kernel.
        #[arg(long, default_value_t = 5)]
        runs: usize,
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
        runtime: lab::locate_runtime(g.runtime.as_deref())?,
        busybox: g.busybox.clone(),
        qemu: g.qemu.clone(),
        accel: g.accel,
        memory_mb: g.memory,
        cpus: g.cpus,
        cpu_model: g.cpu_model.clone(),
        compression,
        pvh: !g.no_pvh,
        strip_module_signatures: !g.keep_module_signatures,
        quiet: !g.verbose_console,
        extra_cmdline: g.append.clone(),
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

/// Prints a line above the bar (or plainly when the bar is hidden, e.g. not a terminal).
fn say(pb: &ProgressBar, msg: String) {
    if pb.is_hidden() {
        eprintln!("{msg}");
    } else {
        pb.println(msg);
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    vm::guard::install_signal_handler().context("install signal handler")?;
    let matrix = Matrix::load(&matrix_path(&cli.g))?;
    match &cli.cmd {
        Cmd::Kernels(KernelsCmd::List) => list(&cli.g, &matrix),
        Cmd::Kernels(KernelsCmd::Fetch { names }) => fetch_kernels(&cli.g, &matrix, names),
        Cmd::Kernels(KernelsCmd::Available { suite }) => available(&cli.g, &matrix, suite),
        Cmd::Image { names } => {
            let o = options(&cli.g)?;
            for spec in matrix.select(names)? {
                let k = lab::checked_kernel(spec, &matrix, &o.cache)?;
                let pb = bar(0, &format!("image {}", spec.name));
                let p = lab::image_for(&k, &o, None, &|d, t| {
                    pb.set_length(t as u64);
                    pb.set_position(d as u64);
                })?;
                pb.finish_and_clear();
                let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
                println!("{}\t{}\t{} KiB\t{} modules", spec.name, p.display(), size / 1024, k.modules.len());
            }
            Ok(())
        }
        Cmd::Boot { kernel, cgroup, command } => boot(&cli.g, &matrix, kernel, cgroup, command),
        Cmd::BenchBoot { names, runs } => bench(&cli.g, &matrix, names, *runs),
    }
}

fn list(g: &Global, m: &Matrix) -> Result<()> {
    let cache = cache(g);
    println!("{:<14} {:<28} {:<8} features", "NAME", "VERSION", "CACHED");
    for spec in &m.kernels {
        let version = spec.packages.first().map(|p| p.version.clone()).unwrap_or_else(|| "local".into());
        let release = spec.release.clone().unwrap_or_default();
        let (cached, feats) = match lab::checked_kernel(spec, m, &cache) {
            Ok(k) => {
                let f = &k.features;
                let feats = format!(
                    "ns={} cgroup-v2={} cgroup-v1={} seccomp={} lsm={}",
                    f.namespaces.join(","),
                    f.cgroup_v2.join(","),
                    f.cgroup_v1.join(","),
                    if f.seccomp { "yes" } else { "no" },
                    f.lsms.join(",")
                );
                ("yes", feats)
            }
            Err(e) => ("no", e.to_string()),
        };
        println!("{:<14} {:<28} {:<8} {}", spec.name, format!("{release} ({version})"), cached, feats);
    }
    Ok(())
}

fn fetch_kernels(g: &Global, m: &Matrix, names: &[String]) -> Result<()> {
    let cache = cache(g);
    let specs = m.select(names)?;
    let apt = lab::private_apt(&cache, m)?;
    let steps: usize = specs.iter().map(|s| s.packages.len() + 1).sum();
    let pb = bar(steps as u64, "fetching kernels");
    let mut failed = Vec::new();
    for spec in specs {
        let res = fetch::fetch(spec, &apt, &cache, &|msg| {
            pb.set_message(msg.to_string());
            pb.inc(1);
        })
        .map_err(anyhow::Error::from)
        .and_then(|f| isolab_harness::kernels::check(&f, &m.suite).map_err(anyhow::Error::from));
        match res {
            Ok(k) => say(&pb, format!("{}: {} ({} modules to load)", spec.name, k.files.release, k.modules.len())),
            Err(e) => {
                say(&pb, format!("error: {e:#}"));
                failed.push(spec.name.clone());
            }
        }
    }
    pb.finish_and_clear();
    if !failed.is_empty() {
        bail!("could not fetch: {}", failed.join(", "));
    }
    Ok(())
}

fn available(g: &Global, m: &Matrix, suite: &str) -> Result<()> {
    let apt = isolab_harness::kernels::apt::PrivateApt {
        dir: cache(g).join("apt"),
        mirror: isolab_harness::kernels::apt::host_mirror()?,
    };
    let mut suites = m.suites();
    if !suites.iter().any(|s| s == suite) {
        suites.push(suite.to_string());
    }
    apt.prepare(&suites)?;
    apt.update(false)?;
    let names = apt.cache_query(&["search".into(), "--names-only".into(), "^linux-(image|binary|modules|base)-.*cloud-amd64".into()])?;
    for name in names.lines().filter_map(|l| l.split(" - ").next()).filter(|n| !n.contains("dbg")) {
        let show = apt.cache_query(&["show".into(), name.into()])?;
        for stanza in show.split("\n\n") {
            let f = |k: &str| stanza.lines().find_map(|l| l.strip_prefix(k)).map(str::trim).unwrap_or("");
            if !f("Version:").is_empty() {
                println!("{name}\t{}\t{}", f("Version:"), f("SHA256:"));
            }
        }
    }
    Ok(())
}

fn resolve(g: &Global, m: &Matrix, name: &str) -> Result<(isolab_harness::kernels::CheckedKernel, LabOptions, PathBuf)> {
    let o = options(g)?;
    let spec = m.select(&[name.to_string()])?[0];
    let k = lab::checked_kernel(spec, m, &o.cache)?;
    let img = lab::image_for(&k, &o, None, &|_, _| {})?;
    Ok((k, o, img))
}

fn boot(g: &Global, m: &Matrix, kernel: &str, cgroup: &str, command: &[String]) -> Result<()> {
    let cg = CgroupMode::parse(cgroup).with_context(|| format!("--cgroup {cgroup}: expected v1 or v2"))?;
    let (k, o, img) = resolve(g, m, kernel)?;
    let interactive = command.is_empty();
    let action = if interactive {
        Action::Shell
    } else {
        Action::Exec { argv: command.to_vec(), env: vec![], timeout_secs: 0 }
    };
    let req = Request { protocol_version: PROTOCOL_VERSION, action };
    let report = lab::boot(&k, &img, cg, &req, &o, interactive, &mut |ev| match ev {
        Event::CommandOutput { stream: Stream::Stdout, line } => println!("{line}"),
        Event::CommandOutput { stream: Stream::Stderr, line } => eprintln!("{line}"),
        Event::Error { message } => eprintln!("isolab-agent: {message}"),
        Event::Hello { boot_warnings, .. } => boot_warnings.iter().for_each(|w| eprintln!("isolab-agent: warning: {w}")),
        _ => {}
    });
    if let Some(err) = &report.error {
        eprintln!("ERROR {kernel}: {err}\n--- last {} console lines ---", report.console_tail.len());
        for l in &report.console_tail {
            eprintln!("{l}");
        }
        std::process::exit(125);
    }
    std::process::exit(report.exit_code().unwrap_or(0));
}

fn bench(g: &Global, m: &Matrix, names: &[String], runs: usize) -> Result<()> {
    let o = options(g)?;
    for spec in m.select(names)? {
        let (k, _, img) = resolve(g, m, &spec.name)?;
        let req = Request { protocol_version: PROTOCOL_VERSION, action: Action::Idle };
        let mut walls = Vec::new();
        let mut guest = Vec::new();
        for _ in 0..runs {
            let r = lab::boot(&k, &img, CgroupMode::V2, &req, &o, false, &mut |_| {});
            if let Some(e) = r.error {
                bail!("{}: {e}\n{}", spec.name, r.console_tail.join("\n"));
            }
            walls.push(r.boot_time.unwrap_or_default().as_secs_f64());
            if let Some(Event::Hello { uptime_ms, phases_ms, .. }) = r.hello {
                guest.push(uptime_ms as f64 / 1000.0);
                if std::env::var_os("ISOLAB_SHOW_PHASES").is_some() {
                    eprintln!("{}: {phases_ms:?}", spec.name);
                }
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.total_cmp(b));
            v.get(v.len() / 2).copied().unwrap_or(0.0)
        };
        let raw = |v: &[f64]| v.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(" ");
        let (rw, rg) = (raw(&walls), raw(&guest));
        println!(
            "{:<12} wall-to-hello median {:.2}s [{}]  guest-uptime median {:.2}s [{}]",
            spec.name,
            median(&mut walls),
            rw,
            median(&mut guest),
            rg
        );
    }
    Ok(())
}
