//! `isolab bench startup|density --vm KERNEL[,KERNEL] --cgroup v1,v2 [--baseline DIR]`: the
//! bench inside throwaway VMs of the matrix ([`isolab_harness::bench::guest`]), one table
//! across the cells ([`isolab_harness::bench::cells`]).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use isolab_harness::bench::cells::{self, SLOWER_THRESHOLD};
use isolab_harness::bench::guest::{self, GuestArgs};
use isolab_harness::bench::report::{self, BenchJson};
use isolab_harness::bench::resolve_runtimes;
use isolab_harness::bench::startup::{self, StartupOptions};
use isolab_harness::kernels::{CheckedKernel, Matrix};
use isolab_harness::lab::{self, LabOptions};
use isolab_harness::protocol::CgroupMode;

use super::bench::{out_dir, write_density, write_startup, Common};
use super::{build_image, cgroup_mode, options, Global};

#[derive(Args, Debug, Default)]
pub struct VmArgs {
    /// Run the bench inside a throwaway VM of each of these kernels (names in kernels.toml),
    /// × each `--cgroup` mode; one table of medians across the cells. The guest runs the same
    /// bench (isolab and the floor program packed into the image with the host's runc and
    /// crun); a runtime the guest lacks is reported. Under TCG absolute times are slow: the
    /// ratios count.
    #[arg(long, alias = "kernels", value_delimiter = ',')]
    pub vm: Vec<String>,
    /// cgroup modes of the VMs (with --vm).
    #[arg(long, value_delimiter = ',', default_value = "v2", value_parser = cgroup_mode)]
    pub cgroup: Vec<CgroupMode>,
    /// A previous `--vm` run's output dir (or bench.json): exit 1 when a runtime's median
    /// over its cell's ratio base (the floor program when measured) is more than 1.20× the
    /// baseline's for the same cell.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Print bench.json as one line on stdout instead of writing files (what a guest does).
    #[arg(long, hide = true)]
    pub emit_json: bool,
}

impl VmArgs {
    /// Whether the bench runs in VMs.
    pub fn in_vms(&self) -> bool {
        !self.vm.is_empty()
    }
}

/// Which bench runs in the guests, with its own options.
pub enum GuestBench<'a> {
    /// Start latency.
    Startup(&'a StartupOptions),
    /// Density: `--n`, `--max-n`, `--parallel`.
    Density { n: &'a [usize], max_n: &'a [String], parallel: usize },
}

impl GuestBench<'_> {
    fn name(&self) -> &'static str {
        match self {
            GuestBench::Startup(_) => "startup",
            GuestBench::Density { .. } => "density",
        }
    }

    /// The bench's own flags for the guest's isolab.
    fn options(&self) -> Vec<String> {
        match self {
            GuestBench::Startup(s) => {
                let mut v =
                    vec!["--runs".into(), s.runs.to_string(), "--warmup".into(), s.warmup.to_string()];
                if !s.floor {
                    v.push("--no-floor".into());
                }
                v
            }
            GuestBench::Density { n, max_n, parallel } => {
                let n: Vec<String> = n.iter().map(usize::to_string).collect();
                let (n, max_n, p) = (n.join(","), max_n.join(","), parallel.to_string());
                vec!["--n".into(), n, "--max-n".into(), max_n, "--parallel".into(), p]
            }
        }
    }
}

/// The guest's copies of isolab, the floor program (beside isolab, where the guest's isolab
/// finds it) and util-linux's `unshare` (first on the guest bench's PATH), and the host
/// runtimes asked for by name, for the image's tools.
fn guest_tools(c: &Common, o: &LabOptions) -> Result<(PathBuf, Vec<PathBuf>)> {
    let me = std::env::current_exe().context("locate this isolab")?;
    // One directory per isolab build: runs of different builds do not swap each other's files.
    let sum = isolab_harness::cache::sha256_file(&me).with_context(|| format!("hash {}", me.display()))?;
    let dir = o.cache.join("bench-guest").join(&sum[..16]);
    let isolab = guest::stripped_copy(&me, &dir)?;
    let mut tools = vec![isolab.clone()];
    let unshare = Path::new("/usr/bin/unshare");
    if unshare.is_file() {
        tools.push(guest::stripped_copy(unshare, &dir)?);
    }
    let by_name: Vec<String> = c.runtimes.iter().filter(|n| *n != "isorun").cloned().collect();
    for r in resolve_runtimes(&by_name, Err(String::new())) {
        match (r.path, r.floor) {
            (Ok(p), true) => tools.push(guest::stripped_copy(&p, &dir)?),
            (Ok(p), false) => tools.push(p),
            (Err(e), _) => eprintln!("isolab bench --vm: {e} (the guest will report it missing)"),
        }
    }
    Ok((isolab, tools))
}

/// The argv of the guest bench.
fn argv(isolab: &Path, o: &LabOptions, c: &Common, b: &GuestBench<'_>) -> Result<Vec<String>> {
    let Some(rt) = &o.runtime else {
        bail!("--vm needs isorun in the guest image: build it or pass --runtime")
    };
    let name = rt.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let a = GuestArgs {
        bench: b.name().into(),
        runtimes: c.runtimes.clone(),
        variants: c.variants.clone(),
        options: b.options(),
        allow_debug_build: c.allow_debug_build,
    };
    Ok(guest::guest_argv(isolab, &format!("/usr/bin/{name}"), &a))
}

/// Each kernel named, checked, with its image (which holds `o.tools`).
fn kernels(m: &Matrix, names: &[String], o: &LabOptions) -> Result<Vec<(CheckedKernel, PathBuf)>> {
    let mut kernels = Vec::new();
    for spec in m.select(names)? {
        let k = lab::checked_kernel(spec, m, &o.cache)?;
        let img = build_image(&k, o)?;
        super::accel_now(o, &k, &img);
        kernels.push((k, img));
    }
    Ok(kernels)
}

/// Runs the guest bench per kernel × cgroup mode, one after the other (parallel VMs would
/// share the host's cores and skew each other), writes each cell's bench.json and SVG
/// (`OUT/` for one cell, `OUT/KERNEL-CGROUP/` for several); for startup prints the table
/// across the cells and exits 1 on a regression against `--baseline`. A cell that failed
/// is an error.
pub fn run(g: &Global, m: &Matrix, c: &Common, b: GuestBench<'_>, v: &VmArgs) -> Result<()> {
    let startup = matches!(b, GuestBench::Startup(_));
    if v.baseline.is_some() && !startup {
        bail!("--baseline compares start latency: `bench startup --vm` only");
    }
    if let Some(d) = &c.state_dir {
        bail!("--state-dir {}: not with --vm (the guest bench chooses its own)", d.display());
    }
    let mut o = options(g)?;
    let (isolab, tools) = guest_tools(c, &o)?;
    o.tools.extend(tools);
    let argv = argv(&isolab, &o, c, &b)?;
    let kernels = kernels(m, &v.vm, &o)?;
    let out = out_dir(c, b.name());
    let several = kernels.len() * v.cgroup.len() > 1;
    let (mut done, mut failed) = (Vec::new(), Vec::new());
    for (k, img) in &kernels {
        for &cg in &v.cgroup {
            let cell = format!("{}-{}", k.files.name, cg.as_str());
            eprintln!("isolab bench {}: {cell}: booting a fresh VM", b.name());
            match guest::run_cell(k, cg, img, argv.clone(), &o) {
                Ok(j) => {
                    print_cell(&j);
                    let dir = if several { out.join(cell) } else { out.clone() };
                    if startup {
                        write_startup(&dir, &j)?;
                    } else {
                        write_density(&dir, &j)?;
                    }
                    done.push(j);
                }
                Err(e) => failed.push(e.to_string()),
            }
        }
    }
    let regressed = startup && {
        print!("{}", cells::cell_table(&done));
        check_baseline(v.baseline.as_deref(), &done)?
    };
    if !failed.is_empty() {
        bail!("{}", failed.join("\n"));
    }
    if regressed {
        std::process::exit(1);
    }
    Ok(())
}

fn print_cell(j: &BenchJson) {
    let Some(vm) = &j.vm else { return };
    println!(
        "{}/{} ({}, {}, {} vCPU): {} in the guest; under TCG absolute times are slow, compare the ratios",
        vm.kernel, vm.cgroup, vm.release, vm.accel, j.host.cpus, j.bench
    );
    if j.bench == "density" {
        print!("{}", report::density_table(&j.density));
    } else {
        print!("{}", report::series_table(&j.series, "runtime", &startup::ratio_base(&j.series), "ms"));
    }
    for (name, b) in &j.builds {
        println!("{name}: {b} build");
    }
}

/// Prints the regressions against the baseline; whether there are any.
fn check_baseline(path: Option<&Path>, done: &[BenchJson]) -> Result<bool> {
    let Some(path) = path else { return Ok(false) };
    let base = load_baseline(path)?;
    let r = cells::regressions(done, &base);
    for x in &r {
        println!("{x}");
    }
    if !r.is_empty() {
        println!(
            "{} slower start(s) than {} (limit: {SLOWER_THRESHOLD}× the baseline's ratio)",
            r.len(),
            path.display()
        );
        return Ok(true);
    }
    println!("no slower start than {} (limit: {SLOWER_THRESHOLD}× the baseline's ratio)", path.display());
    Ok(false)
}

/// A baseline: a bench.json, or a dir with bench.json and/or KERNEL-CGROUP/bench.json.
fn load_baseline(path: &Path) -> Result<Vec<BenchJson>> {
    let read = |p: &Path| -> Result<BenchJson> {
        let b = std::fs::read(p).with_context(|| format!("read baseline {}", p.display()))?;
        serde_json::from_slice(&b).with_context(|| format!("parse baseline {}", p.display()))
    };
    if path.is_file() {
        return Ok(vec![read(path)?]);
    }
    let mut files = vec![path.join("bench.json")];
    let entries = std::fs::read_dir(path).with_context(|| format!("read baseline dir {}", path.display()))?;
    files.extend(entries.filter_map(|e| Some(e.ok()?.path().join("bench.json"))));
    let found: Vec<BenchJson> =
        files.iter().filter(|f| f.is_file()).map(|f| read(f)).collect::<Result<_>>()?;
    if found.is_empty() {
        bail!("baseline {}: no bench.json in it or its subdirectories", path.display());
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use test_case::test_case;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        v: VmArgs,
    }

    fn parse(args: &str) -> Result<(Vec<String>, Vec<&'static str>, bool), String> {
        let argv = std::iter::once("t").chain(args.split_whitespace());
        let c = Cli::try_parse_from(argv).map_err(|e| e.kind().to_string())?;
        Ok((c.v.vm.clone(), c.v.cgroup.iter().map(|m| m.as_str()).collect(), c.v.in_vms()))
    }

    #[test_case("" => Ok((vec![], vec!["v2"], false)); "no vm: the host bench")]
    #[test_case("--vm debian-6.1" => Ok((vec!["debian-6.1".into()], vec!["v2"], true)); "one kernel, v2 by default")]
    #[test_case("--kernels debian-6.12,debian-6.1 --cgroup v1,v2" => Ok((vec!["debian-6.12".into(), "debian-6.1".into()], vec!["v1", "v2"], true)); "kernels times cgroup modes")]
    #[test_case("--vm a --cgroup v3" => Err("invalid value for one of the arguments".to_string()); "an unknown cgroup mode")]
    fn vm_args(args: &str) -> Result<(Vec<String>, Vec<&'static str>, bool), String> {
        parse(args)
    }

    #[test]
    fn a_baseline_dir_holds_every_cell() {
        let d = tempfile::tempdir().unwrap();
        for cell in ["debian-6.1-v1", "debian-6.1-v2"] {
            std::fs::create_dir(d.path().join(cell)).unwrap();
            std::fs::write(
                d.path().join(cell).join("bench.json"),
                r#"{"bench":"startup","host":{"kernel":"","cpus":1,"cgroup":"","loadavg":""}}"#,
            )
            .unwrap();
        }
        assert_eq!(load_baseline(d.path()).unwrap().len(), 2);
        let empty = tempfile::tempdir().unwrap();
        let e = load_baseline(empty.path()).unwrap_err().to_string();
        assert!(e.contains("no bench.json"), "{e}");
    }
}
