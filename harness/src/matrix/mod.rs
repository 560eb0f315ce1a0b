//! `isolab matrix`: the catalogue in throwaway VMs, one pipeline from cells to records.
//!
//! 1. [`plan`] (pure): the [`Cell`]s, kernel × cgroup mode × base config, the shard of them
//!    this run takes, and the work items: a cell and a group of assertions (`--per-vm`).
//! 2. [`run`]: each cell [`prepare`]d (kernel checked, image built or found), then the work
//!    items on parallel VMs ([`MatrixRun`]), each handed back by [`launch`](crate::launch),
//!    booted fresh or restored from the cell's snapshot, and started once more when it broke
//!    ([`cell_run`]).
//! 3. [`records`]: each VM's report into one record per expected assertion (a VM that broke
//!    makes ERRORs with the console tail, never a PASS, never dropped), plus each cell's
//!    [`kernel_findings`](crate::kernel_findings); the records go to
//!    [`report`](crate::report).

pub mod cell_run;
pub mod plan;
pub mod records;
pub mod run;

pub use cell_run::{run_cell, run_cell_planned, CellPlan};
pub use plan::Cell;
pub use records::{records_from_vm, CellInfo};
pub use run::{prepare, MatrixError, MatrixRun, Prepared, Progress, RuntimeId};

use crate::catalogue;
use crate::protocol::{Action, Request, PROTOCOL_VERSION};

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

/// The ids `--only` selects, in catalogue order.
pub fn selected_ids(only: &str) -> Vec<String> {
    catalogue::select(only).into_iter().map(|a| a.id.to_owned()).collect()
}
