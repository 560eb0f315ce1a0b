//! `isolab matrix`: the catalogue in a throwaway VM per kernel × cgroup mode, results turned
//! into records. A VM that breaks (no hello, panic, hang, QEMU death) makes every assertion
//! it did not report an ERROR carrying the console tail — never a PASS, never dropped.

use crate::catalogue;
use crate::protocol::{Action, CgroupMode, Event, Outcome, Request, PROTOCOL_VERSION};
use crate::report::Record;
use crate::vm::VmReport;

/// Where the image puts the runtime under test in the guest.
pub const GUEST_RUNTIME: &str = "/isolab/runtime";

/// The request a matrix cell sends: these assertions against the packed runtime, every bundle
/// made from `base`.
pub fn assert_request(ids: &[String], base: &catalogue::BaseConfig) -> Request {
    Request {
        protocol_version: PROTOCOL_VERSION,
        action: Action::Assert { runtime: GUEST_RUNTIME.into(), ids: ids.to_vec(), base: base.clone() },
    }
}

/// What a record of this run carries besides the result.
#[derive(Debug, Clone)]
pub struct CellInfo {
    /// Kernel name (kernels.toml).
    pub kernel: String,
    /// The cgroup mode booted.
    pub mode: CgroupMode,
    /// Runtime file name.
    pub runtime: String,
    /// Runtime `--version`.
    pub runtime_version: String,
    /// The config every bundle starts from (`--base-config`; `spec` is isolab's own).
    pub base: catalogue::BaseConfig,
}

/// Turn one VM's report into one record per expected assertion.
pub fn records_from_vm(cell: &CellInfo, expected: &[String], report: &VmReport) -> Vec<Record> {
    let release = match &report.hello {
        Some(Event::Hello { kernel_release, .. }) => kernel_release.clone(),
        _ => String::new(),
    };
    let mk = |id: &str, status: Outcome, detail: String, duration_ms: u64| Record {
        kernel: cell.kernel.clone(),
        kernel_release: release.clone(),
        cgroup: cell.mode.as_str().into(),
        runtime: cell.runtime.clone(),
        runtime_version: cell.runtime_version.clone(),
        assertion: id.into(),
        status,
        detail,
        duration_ms,
        base_config: cell.base.name.clone(),
        advisory: catalogue::escape::advisory(id),
    };
    let mut out: Vec<Record> = Vec::new();
    for ev in &report.events {
        if let Event::Result { id, outcome, detail, duration_ms } = ev {
            out.push(mk(id, *outcome, detail.clone(), *duration_ms));
        }
    }
    let agent_errors: Vec<&str> = report
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Error { message } => Some(message.as_str()),
            _ => None,
        })
        .collect();
    let why = match (&report.error, agent_errors.first()) {
        (Some(e), _) => e.to_string(),
        (None, Some(m)) => format!("agent: {m}"),
        (None, None) => "the agent finished without reporting this assertion".into(),
    };
    let tail = report.console_tail.iter().rev().take(50).rev().cloned().collect::<Vec<_>>().join("\n");
    for id in expected {
        if !out.iter().any(|r| &r.assertion == id) {
            out.push(mk(id, Outcome::Error, format!("{why}\n--- console tail ---\n{tail}"), 0));
        }
    }
    out
}

/// How the VMs of a cell start and what each runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct CellPlan {
    /// Boot every VM from scratch instead of restoring the cell's snapshot.
    pub fresh: bool,
    /// Assertions per throwaway VM (None: the whole selection in one VM).
    pub per_vm: Option<usize>,
}

/// Boot one cell and run `ids` in it, fresh (no snapshot), in one VM. See [`run_cell_planned`].
pub fn run_cell(
    k: &crate::kernels::CheckedKernel,
    image: &std::path::Path,
    cell: &CellInfo,
    ids: &[String],
    o: &crate::lab::LabOptions,
    on_event: &mut dyn FnMut(&Event),
) -> Vec<Record> {
    run_cell_planned(k, image, cell, ids, o, CellPlan { fresh: true, per_vm: None }, on_event)
}

/// Runs `ids` in the cell's throwaway VMs as `plan` says: restored from the cell's snapshot
/// (built on first use) unless `fresh`, `per_vm` assertions per VM (so an assertion that
/// wrecks its guest cannot taint the next group). `image` is the full image, used by fresh
/// boots. A VM that broke under the catalogue — went silent (no hello, or no event for the
/// step timeout) or panicked — is started once more. Both were seen here now and then: TCG
/// guests that stopped sending anything, and debian-7.2 (cgroup v2, 2 vCPUs) panicking in
/// `dequeue_task_fair` during `cgroup.cpu.quota`, also under runc. The retry is never silent:
/// every record of a retried group carries the first VM's failure in its detail, and a second
/// failure is an ERROR as usual.
pub fn run_cell_planned(
    k: &crate::kernels::CheckedKernel,
    image: &std::path::Path,
    cell: &CellInfo,
    ids: &[String],
    o: &crate::lab::LabOptions,
    plan: CellPlan,
    on_event: &mut dyn FnMut(&Event),
) -> Vec<Record> {
    let size = plan.per_vm.unwrap_or(ids.len()).max(1);
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for group in ids.chunks(size) {
        let req = assert_request(group, &cell.base);
        let mut one = |on_event: &mut dyn FnMut(&Event)| -> Result<VmReport, String> {
            if plan.fresh {
                return Ok(crate::lab::boot(k, image, cell.mode, &req, o, false, on_event));
            }
            let r = crate::snapshot::restore::boot_restored(k, cell.mode, &req, o, on_event)
                .map_err(|e| format!("snapshot: {e}"))?;
            if r.outcome != crate::snapshot::Outcome::Reused {
                on_event(&Event::Log { message: crate::snapshot::restore::describe(&r) });
            }
            Ok(r.report)
        };
        out.extend(with_retry(cell, group, &mut one, on_event, &mut seen));
    }
    let release = out.iter().map(|r| r.kernel_release.clone()).find(|r| !r.is_empty()).unwrap_or_default();
    let maps = crate::vm::ksyms::candidates(&k.files.vmlinuz, &k.files.release);
    out.extend(crate::kernel_findings::records(cell, &release, &seen, &maps));
    out
}

/// Starts one VM (events go to the callback), or says why none could start.
type StartVm<'a> = dyn FnMut(&mut dyn FnMut(&Event)) -> Result<VmReport, String> + 'a;

fn with_retry(
    cell: &CellInfo,
    ids: &[String],
    one: &mut StartVm<'_>,
    on_event: &mut dyn FnMut(&Event),
    seen: &mut Vec<crate::kernel_findings::Seen>,
) -> Vec<Record> {
    use crate::vm::VmError;
    let span = format!("{}..{}", ids.first().map_or("", |s| s), ids.last().map_or("", |s| s));
    let mut keep = |r: &Result<VmReport, String>, attempt: &str| {
        if let Ok(r) = r {
            seen.extend(crate::kernel_findings::Seen::of(format!("{span}, {attempt}"), r));
        }
    };
    let broke = |r: &Result<VmReport, String>| match r {
        Ok(r) => matches!(
            r.error,
            Some(VmError::StepTimeout { .. } | VmError::BootTimeout { .. } | VmError::KernelPanic { .. })
        ),
        Err(_) => true,
    };
    let first = one(on_event);
    keep(&first, "first try");
    if !broke(&first) {
        return records_of(cell, ids, &first);
    }
    let why = match &first {
        Ok(r) => r.error.as_ref().map(ToString::to_string).unwrap_or_default(),
        Err(e) => e.clone(),
    };
    let second = one(on_event);
    keep(&second, "retry");
    let mut records = records_of(cell, ids, &second);
    for r in &mut records {
        let note = format!("(cell retried: the first VM broke: {why})");
        r.detail = if r.detail.is_empty() { note } else { format!("{}\n{note}", r.detail) };
    }
    records
}

fn records_of(cell: &CellInfo, ids: &[String], r: &Result<VmReport, String>) -> Vec<Record> {
    match r {
        Ok(report) => records_from_vm(cell, ids, report),
        Err(why) => ids
            .iter()
            .map(|id| Record {
                kernel: cell.kernel.clone(),
                kernel_release: String::new(),
                cgroup: cell.mode.as_str().into(),
                runtime: cell.runtime.clone(),
                runtime_version: cell.runtime_version.clone(),
                assertion: id.clone(),
                status: Outcome::Error,
                detail: why.clone(),
                duration_ms: 0,
                base_config: cell.base.name.clone(),
                advisory: catalogue::escape::advisory(id),
            })
            .collect(),
    }
}

/// The ids `--only` selects, in catalogue order.
pub fn selected_ids(only: &str) -> Vec<String> {
    catalogue::select(only).into_iter().map(|a| a.id.to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::VmError;
    use std::time::Duration;

    fn report(events: Vec<Event>, error: Option<VmError>) -> VmReport {
        VmReport {
            hello: Some(Event::Hello {
                protocol_version: PROTOCOL_VERSION,
                kernel_release: "6.1.0-test".into(),
                cgroup_mode: CgroupMode::V2,
                cgroup_controllers: vec![],
                modules_loaded: vec![],
                boot_warnings: vec![],
                uptime_ms: 1,
                phases_ms: vec![],
            }),
            events,
            bad_lines: vec![],
            console_tail: vec!["line 1".into(), "Kernel panic - not syncing".into()],
            kernel_log: Default::default(),
            error,
            boot_time: Some(Duration::from_secs(1)),
            total_time: Duration::from_secs(2),
        }
    }

    fn cell() -> CellInfo {
        CellInfo {
            kernel: "debian-6.1".into(),
            mode: CgroupMode::V2,
            runtime: "isorun".into(),
            runtime_version: "0.1".into(),
            base: Default::default(),
        }
    }

    #[test]
    fn results_become_records_and_missing_ones_are_errors_with_the_console() {
        let ev = vec![Event::Result {
            id: "a.one".into(),
            outcome: Outcome::Pass,
            detail: String::new(),
            duration_ms: 5,
        }];
        let expected = vec!["a.one".to_owned(), "a.two".to_owned()];
        let recs = records_from_vm(&cell(), &expected, &report(ev, Some(VmError::StepTimeout { secs: 30 })));
        assert_eq!(recs.len(), 2);
        assert_eq!(
            (recs[0].status, recs[0].kernel_release.as_str(), recs[0].cgroup.as_str()),
            (Outcome::Pass, "6.1.0-test", "v2")
        );
        assert_eq!(recs[1].status, Outcome::Error);
        assert!(recs[1].detail.starts_with("no progress from the agent for 30s"), "{}", recs[1].detail);
        assert!(recs[1].detail.contains("Kernel panic"));
    }

    #[test]
    fn a_start_that_failed_is_retried_once_and_says_so() {
        let ids = vec!["a.one".to_owned()];
        let mut calls = 0;
        let pass = vec![Event::Result {
            id: "a.one".into(),
            outcome: Outcome::Pass,
            detail: String::new(),
            duration_ms: 1,
        }];
        let mut one = |_: &mut dyn FnMut(&Event)| {
            calls += 1;
            if calls == 1 {
                Err("snapshot: saving debian-6.1-v2: no hello".to_string())
            } else {
                Ok(report(pass.clone(), None))
            }
        };
        let recs = with_retry(&cell(), &ids, &mut one, &mut |_| {}, &mut vec![]);
        assert_eq!(recs[0].status, Outcome::Pass);
        assert!(
            recs[0].detail.contains("cell retried: the first VM broke: snapshot: saving"),
            "{}",
            recs[0].detail
        );
        let mut always = |_: &mut dyn FnMut(&Event)| Err::<VmReport, String>("snapshot: boom".into());
        let recs = with_retry(&cell(), &ids, &mut always, &mut |_| {}, &mut vec![]);
        assert_eq!((recs.len(), recs[0].status), (1, Outcome::Error));
        assert!(recs[0].detail.starts_with("snapshot: boom"), "{}", recs[0].detail);
    }

    #[test]
    fn an_agent_error_is_carried_into_the_missing_records() {
        let ev = vec![Event::Error { message: "catalogue: mkdir /var/lib: EROFS".into() }];
        let recs = records_from_vm(&cell(), &["a.one".to_owned()], &report(ev, None));
        assert_eq!(recs[0].status, Outcome::Error);
        assert!(recs[0].detail.starts_with("agent: catalogue: mkdir"));
    }
}
