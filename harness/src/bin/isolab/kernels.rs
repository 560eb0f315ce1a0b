//! `isolab kernels …`: list, fetch, available.

use anyhow::{bail, Result};
use isolab_harness::kernels::{fetch, Matrix};
use isolab_harness::lab;

use super::{bar, cache, say, Global};

pub fn list(g: &Global, m: &Matrix) -> Result<()> {
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

pub fn fetch_kernels(g: &Global, m: &Matrix, names: &[String]) -> Result<()> {
    let cache = cache(g);
    let specs = m.select(names)?;
    let pb = bar(0, "fetching kernels");
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg:60} [{bar:30}] {bytes}/{total_bytes} {elapsed}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mut failed = Vec::new();
    for spec in specs {
        let res = lab::fetch_kernel(spec, &cache, &|p| match p {
            fetch::FetchProgress::Step(msg) => pb.set_message(msg.to_string()),
            fetch::FetchProgress::Download { done, total, .. } => {
                pb.set_length(total.max(done));
                pb.set_position(done);
            }
        })
        .map_err(anyhow::Error::from)
        .and_then(|f| isolab_harness::kernels::check(&f, &m.suite).map_err(anyhow::Error::from));
        match res {
            Ok(k) => {
                say(&pb, format!("{}: {} ({} modules to load)", spec.name, k.files.release, k.modules.len()))
            }
            Err(e) => {
                say(&pb, format!("error: {e}"));
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

pub fn available(g: &Global, suite: &str) -> Result<()> {
    let apt = lab::private_apt(&cache(g), suite)?;
    apt.update(false)?;
    let names = apt.cache_query(&[
        "search".into(),
        "--names-only".into(),
        "^linux-(image|binary|modules|base)-.*cloud-amd64".into(),
    ])?;
    let suite_tag = format!(" {suite}/");
    for name in names.lines().filter_map(|l| l.split(" - ").next()).filter(|n| !n.contains("dbg")) {
        // madison: "pkg | version | <mirror> <suite>/main amd64 Packages"
        let madison = apt.cache_query(&["madison".into(), name.into()])?;
        for line in madison.lines().filter(|l| l.contains(&suite_tag)) {
            let Some(version) = line.split('|').nth(1).map(str::trim) else { continue };
            let show = apt.cache_query(&["show".into(), format!("{name}={version}")])?;
            let sha = show.lines().find_map(|l| l.strip_prefix("SHA256:")).map(str::trim).unwrap_or("");
            println!("{name}\t{version}\t{sha}");
        }
    }
    Ok(())
}
