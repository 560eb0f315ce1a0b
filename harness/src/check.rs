//! `isolab check`: the catalogue on this machine, no VM, and the outputs every run
//! writes (`results.json`, `junit.xml`, `results.ktap`, `report.html`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::catalogue::{self, CtxError, Facts};
use crate::report::annotations::Sources;
use crate::report::kcidb::KcidbOptions;
use crate::report::timing::{Results, RunTiming, RESULTS_FORMAT};
use crate::report::{self, Origin, Record};

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
    /// The config every bundle starts from.
    pub base: catalogue::BaseConfig,
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
    let origin = Origin {
        kernel: "host".into(),
        cgroup: host_cgroup_name(&facts).into(),
        runtime: runtime_name,
        runtime_version: version,
        base_config: o.base.name.clone(),
    };
    let mut records = Vec::new();
    let result =
        catalogue::run_selected(&o.runtime, &o.only, &o.base, &o.workdir, &o.busybox, &mut |id, v, ms| {
            let r = Record::new(&origin, &facts.kernel_release, id, v.outcome, v.detail.clone(), ms);
            on_record(&r);
            records.push(r);
        });
    let _ = std::fs::remove_dir_all(&o.workdir);
    result?;
    Ok((records, start.elapsed().as_secs_f64()))
}

/// Write `results.json` (the records and the run's time), `junit.xml`, `results.ktap`,
/// `report.html`, and for CI systems `summary.md` (Markdown), `annotations.txt` (GitHub
/// workflow commands) and `kcidb.json` (KernelCI) into `out`.
pub fn write_outputs(out: &Path, records: &[Record], timing: &RunTiming) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    let doc = Results { format: RESULTS_FORMAT, timing: timing.clone(), records: records.to_vec() };
    let json = serde_json::to_vec_pretty(&doc).map_err(std::io::Error::other)?;
    std::fs::write(out.join("results.json"), json)?;
    std::fs::write(out.join("junit.xml"), report::render_junit(records))?;
    std::fs::write(out.join("results.ktap"), report::render_ktap(records))?;
    std::fs::write(out.join("report.html"), report::render_html(records, timing.wall_secs.unwrap_or(0.0)))?;
    std::fs::write(out.join("summary.md"), report::render_markdown(records, timing))?;
    let sources = assertion_sources(&crate::lab::workspace_root());
    std::fs::write(out.join("annotations.txt"), report::render_annotations(records, &sources))?;
    let kcidb = report::render_kcidb(records, &kcidb_options().map_err(std::io::Error::other)?);
    std::fs::write(out.join("kcidb.json"), serde_json::to_vec_pretty(&kcidb).map_err(std::io::Error::other)?)
}

/// Where each assertion is defined (`harness/src/catalogue/*.rs` under `root`), for the
/// annotations' `file=` and `line=`; empty when the sources are not there (an installed binary).
pub fn assertion_sources(root: &Path) -> Sources {
    let all = catalogue::catalogue();
    let ids: Vec<&str> = all.iter().map(|a| a.id).collect();
    let dir = root.join("harness/src/catalogue");
    let mut files: Vec<_> =
        std::fs::read_dir(&dir).into_iter().flatten().flatten().map(|e| e.path()).collect();
    files.sort();
    let mut out = Sources::new();
    for p in files {
        let Ok(text) = std::fs::read_to_string(&p) else { continue };
        let rel = format!("harness/src/catalogue/{}", p.file_name().unwrap_or_default().to_string_lossy());
        for (id, line) in report::annotations::find_ids(&text, &ids) {
            out.entry(id).or_insert((rel.clone(), line));
        }
    }
    out
}

/// The KCIDB origin (`$ISOLAB_KCIDB_ORIGIN`, default `isolab`) and run id
/// (`$ISOLAB_KCIDB_RUN_ID`, else the CI system's run id, else the time).
pub fn kcidb_options() -> Result<KcidbOptions, String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let origin = var("ISOLAB_KCIDB_ORIGIN").unwrap_or_else(|| "isolab".into());
    if !report::kcidb::valid_origin(&origin) {
        return Err(format!("ISOLAB_KCIDB_ORIGIN={origin:?}: a KCIDB origin is [a-z0-9_]+"));
    }
    let run_id = var("ISOLAB_KCIDB_RUN_ID")
        .or_else(|| {
            var("GITHUB_RUN_ID")
                .map(|id| format!("gh{id}.{}", var("GITHUB_RUN_ATTEMPT").unwrap_or("1".into())))
        })
        .or_else(|| var("CI_PIPELINE_ID").map(|id| format!("gl{id}")))
        .unwrap_or_else(|| {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            format!("local{}", t.as_millis())
        });
    Ok(KcidbOptions { origin, run_id })
}

/// Read a `results.json` (a baseline or a shard's output).
pub fn read_results(path: &Path) -> Result<Vec<Record>, String> {
    read_results_timed(path).map(|(records, _)| records)
}

/// Read a `results.json` with its timing (None for format 1: a bare array of records).
pub fn read_results_timed(path: &Path) -> Result<(Vec<Record>, Option<RunTiming>), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    report::timing::parse_results(&bytes).map_err(|e| format!("parse {}: {e}", path.display()))
}
