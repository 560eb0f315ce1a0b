//! `isolab check --host`: the catalogue on this machine, no VM, and the outputs every run
//! writes (`results.json`, `junit.xml`, `results.ktap`, `report.html`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::catalogue::{self, CtxError, Facts};
use crate::report::{self, Record};

/// Options of a host check.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// The runtime under test.
    pub runtime: PathBuf,
    /// Comma-separated id globs; empty = all.
    pub only: String,
    /// Static busybox for the container rootfs.
    pub busybox: PathBuf,
    /// Work directory (containers' bundles and rootfs); removed afterwards.
    pub workdir: PathBuf,
}

/// The host's cgroup layout as a matrix column name.
pub fn host_cgroup_name(f: &Facts) -> &'static str {
    match f.layout {
        catalogue::Layout::V1 => "v1",
        catalogue::Layout::V2 => "v2",
        catalogue::Layout::Hybrid => "hybrid",
    }
}

/// Run the catalogue here; one record per assertion, and the wall time in seconds.
pub fn check_host(
    o: &CheckOptions,
    on_record: &mut dyn FnMut(&Record),
) -> Result<(Vec<Record>, f64), CtxError> {
    let start = Instant::now();
    let facts = Facts::detect();
    let runtime_name = o.runtime.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let version = catalogue::runtime_version(&o.runtime);
    let mut records = Vec::new();
    let result = catalogue::run_selected(&o.runtime, &o.only, &o.workdir, &o.busybox, &mut |id, v, ms| {
        let r = Record {
            kernel: "host".into(),
            kernel_release: facts.kernel_release.clone(),
            cgroup: host_cgroup_name(&facts).into(),
            runtime: runtime_name.clone(),
            runtime_version: version.clone(),
            assertion: id.into(),
            status: v.outcome,
            detail: v.detail.clone(),
            duration_ms: ms,
            advisory: catalogue::escape::advisory(id),
        };
        on_record(&r);
        records.push(r);
    });
    let _ = std::fs::remove_dir_all(&o.workdir);
    result?;
    Ok((records, start.elapsed().as_secs_f64()))
}

/// Write `results.json`, `junit.xml`, `results.ktap` and `report.html` into `out`.
pub fn write_outputs(out: &Path, records: &[Record], wall_secs: f64) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    let json = serde_json::to_vec_pretty(records).map_err(std::io::Error::other)?;
    std::fs::write(out.join("results.json"), json)?;
    std::fs::write(out.join("junit.xml"), report::render_junit(records))?;
    std::fs::write(out.join("results.ktap"), report::render_ktap(records))?;
    std::fs::write(out.join("report.html"), report::render_html(records, wall_secs))
}

/// Read a `results.json` (a baseline or a shard's output).
pub fn read_results(path: &Path) -> Result<Vec<Record>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("parse {}: {e}", path.display()))
}
