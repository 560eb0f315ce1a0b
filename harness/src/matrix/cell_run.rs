//! One cell's assertions in its throwaway VMs, each handed back by
//! [`launch`] (fresh or restored), a VM that broke started once more, the
//! reports turned into records, and the cell's kernel findings.

use std::path::Path;

use crate::kernel_findings::{self, Seen};
use crate::kernels::CheckedKernel;
use crate::lab::LabOptions;
use crate::launch::{self, Boot};
use crate::protocol::Event;
use crate::report::Record;
use crate::vm::{VmError, VmReport};

use super::records::{records_from_vm, records_without_vm, CellInfo};
use super::{assert_request, plan};

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
    k: &CheckedKernel,
    image: &Path,
    cell: &CellInfo,
    ids: &[String],
    o: &LabOptions,
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
    k: &CheckedKernel,
    image: &Path,
    cell: &CellInfo,
    ids: &[String],
    o: &LabOptions,
    plan: CellPlan,
    on_event: &mut dyn FnMut(&Event),
) -> Vec<Record> {
    let boot = if plan.fresh { Boot::Fresh(image) } else { Boot::Restored };
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for group in ids.chunks(plan::group_size(ids, plan.per_vm)) {
        let req = assert_request(group, &cell.base);
        let mut one = |on_event: &mut dyn FnMut(&Event)| {
            launch::run_in_cell(k, cell.mode, boot, &req, o, on_event).map_err(|e| format!("snapshot: {e}"))
        };
        out.extend(with_retry(cell, group, &mut one, on_event, &mut seen));
    }
    let release = out.iter().map(|r| r.kernel_release.clone()).find(|r| !r.is_empty()).unwrap_or_default();
    let maps = crate::vm::ksyms::candidates(&k.files.vmlinuz, &k.files.release);
    out.extend(kernel_findings::records(&cell.origin(), &release, &seen, &maps));
    out
}

/// Starts one VM (events go to the callback), or says why none could start.
type StartVm<'a> = dyn FnMut(&mut dyn FnMut(&Event)) -> Result<VmReport, String> + 'a;

/// Whether a VM broke in a way worth one more try (silent, or a panic), or could not start.
fn broke(r: &Result<VmReport, String>) -> bool {
    match r {
        Ok(r) => r.error.as_ref().is_some_and(VmError::worth_a_retry),
        Err(_) => true,
    }
}

fn with_retry(
    cell: &CellInfo,
    ids: &[String],
    one: &mut StartVm<'_>,
    on_event: &mut dyn FnMut(&Event),
    seen: &mut Vec<Seen>,
) -> Vec<Record> {
    let span = format!("{}..{}", ids.first().map_or("", |s| s), ids.last().map_or("", |s| s));
    let mut keep = |r: &Result<VmReport, String>, attempt: &str| {
        if let Ok(r) = r {
            seen.extend(Seen::of(format!("{span}, {attempt}"), r));
        }
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
        Err(why) => records_without_vm(cell, ids, why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::records::tests::{cell, report};
    use crate::protocol::Outcome;

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
    fn a_vm_that_ended_otherwise_is_not_retried() {
        let ids = vec!["a.one".to_owned()];
        let mut calls = 0;
        let mut one = |_: &mut dyn FnMut(&Event)| {
            calls += 1;
            Ok(report(
                vec![],
                Some(VmError::QemuDied { status: "exit status: 1".into(), stderr: String::new() }),
            ))
        };
        let recs = with_retry(&cell(), &ids, &mut one, &mut |_| {}, &mut vec![]);
        assert_eq!(calls, 1);
        assert!(recs[0].detail.starts_with("QEMU exited before the agent finished (exit status: 1)"));
    }
}
