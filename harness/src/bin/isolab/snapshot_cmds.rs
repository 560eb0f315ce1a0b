//! `isolab snapshot bench` (restored vs fresh VM start) and `isolab cache prune`.

use anyhow::{bail, Context, Result};
use isolab_harness::kernels::Matrix;
use isolab_harness::lab;
use isolab_harness::launch;
use isolab_harness::protocol::{Action, CgroupMode, Request, PROTOCOL_VERSION};
use isolab_harness::snapshot::prune;

use super::{build_image, options, Global};

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn raw(v: &[f64]) -> String {
    v.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join(" ")
}

/// Boots `kernel` fresh `runs` times, then restores it from its snapshot `runs` times, and
/// prints QEMU start → agent ready (hello) for both, interleaved so load affects both alike.
pub fn bench(g: &Global, m: &Matrix, kernel: &str, cg: CgroupMode, runs: usize) -> Result<()> {
    let o = options(g)?;
    let spec = m.select(&[kernel.to_string()])?[0];
    let k = lab::checked_kernel(spec, m, &o.cache)?;
    let img = build_image(&k, &o)?;
    let idle = Request { protocol_version: PROTOCOL_VERSION, action: Action::Idle };
    // Build (or check) the snapshot outside the measurement.
    let first = launch::boot_restored(&k, cg, &idle, &o, &mut |_| {})?;
    eprintln!("{}", launch::describe(&first));
    let (mut fresh, mut restored) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let r = lab::boot(&k, &img, cg, &idle, &o, false, &mut |_| {});
        if let Some(e) = r.error {
            bail!("fresh boot of {kernel}: {e}\n{}", r.console_tail.join("\n"));
        }
        fresh.push(r.boot_time.unwrap_or_default().as_secs_f64());
        let r = launch::boot_restored(&k, cg, &idle, &o, &mut |_| {})?;
        if let Some(e) = &r.report.error {
            bail!("restored {kernel}: {e}\n{}", r.report.console_tail.join("\n"));
        }
        restored.push(launch::ready_time(&r.report).unwrap_or_default().as_secs_f64());
    }
    println!("{kernel} {}: QEMU start -> agent ready, {runs} runs each, interleaved", cg.as_str());
    println!("  fresh boot   median {:.3} s  ({})", median(&fresh), raw(&fresh));
    println!("  restored     median {:.3} s  ({})", median(&restored), raw(&restored));
    Ok(())
}

/// `isolab snapshot run KERNEL -- CMD...`: a command in a VM restored from the cell's snapshot.
pub fn run(
    g: &Global,
    m: &Matrix,
    kernel: &str,
    cg: CgroupMode,
    cpus: Option<u32>,
    command: &[String],
) -> Result<i32> {
    use isolab_harness::protocol::{Event, Stream};
    let mut o = options(g)?;
    o.cpus = cpus.unwrap_or(o.cpus);
    let spec = m.select(&[kernel.to_string()])?[0];
    let k = lab::checked_kernel(spec, m, &o.cache)?;
    let action = Action::Exec { argv: command.to_vec(), env: vec![], timeout_secs: 0 };
    let req = Request { protocol_version: PROTOCOL_VERSION, action };
    let r = launch::boot_restored(&k, cg, &req, &o, &mut |ev| match ev {
        Event::CommandOutput { stream: Stream::Stdout, line } => println!("{line}"),
        Event::CommandOutput { stream: Stream::Stderr, line } => eprintln!("{line}"),
        Event::Error { message } => eprintln!("isolab-agent: {message}"),
        _ => {}
    })?;
    eprintln!(
        "{} (ready after {:.3} s)",
        launch::describe(&r),
        r.report.boot_time.unwrap_or_default().as_secs_f64()
    );
    if let Some(e) = &r.report.error {
        bail!("{kernel}: {e}\n{}", r.report.console_tail.join("\n"));
    }
    Ok(r.report.exit_code().unwrap_or(0))
}

/// `isolab cache prune --max-size SIZE`.
pub fn prune_cache(g: &Global, max_size: &str) -> Result<()> {
    let max = prune::parse_size(max_size)
        .with_context(|| format!("--max-size {max_size:?}: expected bytes or a size like 500M, 4G"))?;
    let cache = super::cache(g);
    let p = prune::prune(&cache, max)?;
    for (path, bytes) in &p.removed {
        println!("removed {} ({:.1} MiB)", path.display(), *bytes as f64 / 1048576.0);
    }
    for path in &p.busy {
        println!("in use, kept {}", path.display());
    }
    println!(
        "snapshots and images in {}: {:.1} MiB (limit {:.1} MiB)",
        cache.display(),
        p.left as f64 / 1048576.0,
        max as f64 / 1048576.0
    );
    Ok(())
}
