//! `isolab boot`, `smoke`: booting VMs.

use std::path::PathBuf;

use anyhow::{bail, Result};
use isolab_harness::kernels::{CheckedKernel, Matrix};
use isolab_harness::lab::{self, LabOptions};
use isolab_harness::protocol::{Action, CgroupMode, Event, Request, Stream, PROTOCOL_VERSION};
use isolab_harness::vm;

use super::{bar, build_image, options, Global};

fn resolve(g: &Global, m: &Matrix, name: &str) -> Result<(CheckedKernel, LabOptions, PathBuf)> {
    let o = options(g)?;
    let spec = m.select(&[name.to_string()])?[0];
    let k = lab::checked_kernel(spec, m, &o.cache)?;
    let img = build_image(&k, &o)?;
    Ok((k, o, img))
}

pub fn boot(g: &Global, m: &Matrix, kernel: &str, cg: CgroupMode, command: &[String]) -> Result<()> {
    let (k, o, img) = resolve(g, m, kernel)?;
    super::accel_now(&o, &k, &img);
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
        Event::Hello { boot_warnings, .. } => {
            boot_warnings.iter().for_each(|w| eprintln!("isolab-agent: warning: {w}"))
        }
        _ => {}
    });
    if let Some(err) = &report.error {
        eprintln!("ERROR {kernel}: {err}\n--- last {} console lines ---", report.console_tail.len());
        for l in &report.console_tail {
            eprintln!("{l}");
        }
        if !g.verbose_console {
            eprintln!(
                "--- (kernel messages are quiet by default: rerun with --verbose-console for all of them)"
            );
        }
        std::process::exit(125);
    }
    std::process::exit(report.exit_code().unwrap_or(0));
}

pub fn check(g: &Global, m: &Matrix, names: &[String], modes: &[CgroupMode]) -> Result<()> {
    let o = options(g)?;
    let mut cells = Vec::new();
    for spec in m.select(names)? {
        let k = lab::checked_kernel(spec, m, &o.cache)?;
        let img = build_image(&k, &o)?;
        super::accel_now(&o, &k, &img);
        for mode in modes {
            cells.push((k.clone(), img.clone(), *mode));
        }
    }
    let jobs = g.jobs.unwrap_or_else(|| vm::default_jobs(o.memory_mb));
    let pb = bar(cells.len() as u64, &format!("booting ({jobs} in parallel)"));
    let req = Request { protocol_version: PROTOCOL_VERSION, action: Action::Idle };
    let reports = vm::run_parallel(&cells, jobs, |(k, img, mode)| {
        let r = lab::boot(k, img, *mode, &req, &o, false, &mut |_| {});
        pb.inc(1);
        r
    });
    pb.finish_and_clear();
    let mut errors = 0;
    for ((k, _, mode), r) in cells.iter().zip(&reports) {
        match (&r.error, &r.hello) {
            (
                None,
                Some(Event::Hello {
                    kernel_release, modules_loaded, cgroup_controllers, boot_warnings, ..
                }),
            ) => {
                let secs = r.boot_time.unwrap_or_default().as_secs_f64();
                println!(
                    "OK    {:<12} {} {:<28} hello {secs:.2}s modules={} controllers={}",
                    k.files.name,
                    mode.as_str(),
                    kernel_release,
                    modules_loaded.join(","),
                    cgroup_controllers.join(",")
                );
                for w in boot_warnings {
                    println!("      warning: {w}");
                }
            }
            (err, _) => {
                errors += 1;
                let why = err.as_ref().map(|e| e.to_string()).unwrap_or_else(|| "no hello".into());
                println!("ERROR {:<12} {} {why}", k.files.name, mode.as_str());
                for l in &r.console_tail {
                    println!("      | {l}");
                }
            }
        }
    }
    if errors > 0 {
        bail!("{errors} of {} VMs failed", reports.len());
    }
    Ok(())
}
