//! A whole matrix run: the cells prepared (kernel checked, image built or found), then their
//! work items on parallel VMs, the records of each cell combined.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::catalogue;
use crate::kernel_findings;
use crate::kernels::{CheckedKernel, KernelSpec, Matrix};
use crate::lab::{self, LabError, LabOptions};
use crate::launch;
use crate::protocol::Event;
use crate::report::Record;
use crate::vm;

use super::cell_run::{run_cell_planned, CellPlan};
use super::plan::{self, Cell, Work};
use super::records::CellInfo;

/// Errors preparing a run's cells.
#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    /// A cell names a kernel that is not among the selected ones.
    #[error("kernel {kernel} vanished from the selection")]
    KernelVanished {
        /// Its name.
        kernel: String,
    },
    /// Its kernel or image.
    #[error(transparent)]
    Lab(Box<LabError>),
}

impl From<LabError> for MatrixError {
    fn from(e: LabError) -> Self {
        MatrixError::Lab(Box::new(e))
    }
}

/// The runtime under test as records name it.
#[derive(Debug, Clone)]
pub struct RuntimeId {
    /// File name.
    pub name: String,
    /// `--version`.
    pub version: String,
}

impl RuntimeId {
    /// The runtime at `path` (runs its `--version`).
    pub fn of(path: &Path) -> RuntimeId {
        RuntimeId {
            name: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            version: catalogue::runtime_version(path),
        }
    }
}

/// A cell ready to run: its checked kernel and the image its VMs boot.
#[derive(Debug)]
pub struct Prepared {
    /// The cell.
    pub cell: Cell,
    /// Its kernel, checked against the suite.
    pub kernel: CheckedKernel,
    /// The full image (fresh boots) or the snapshot image (restored VMs, whose runtime comes
    /// as their payload).
    pub image: PathBuf,
}

/// Progress of an image build: the kernel, and (done, total) while it is really being built,
/// None once it is there.
pub type ImageProgress<'a> = dyn Fn(&str, Option<(usize, usize)>) + 'a;

/// Checks each cell's kernel (fetched already: see `lab::fetch_kernel`) among `specs` and
/// builds or finds its image: the full one when `fresh`, else the snapshot image.
pub fn prepare(
    cells: &[Cell],
    specs: &[&KernelSpec],
    m: &Matrix,
    o: &LabOptions,
    fresh: bool,
    progress: &ImageProgress<'_>,
) -> Result<Vec<Prepared>, MatrixError> {
    let mut prepared = Vec::new();
    for cell in cells {
        let spec = specs
            .iter()
            .find(|s| s.name == cell.kernel)
            .ok_or_else(|| MatrixError::KernelVanished { kernel: cell.kernel.clone() })?;
        let kernel = lab::checked_kernel(spec, m, &o.cache)?;
        let image = if fresh {
            let name = &kernel.files.name;
            let image = lab::image_for(&kernel, o, None, &|done, total| progress(name, Some((done, total))))?;
            progress(name, None);
            image
        } else {
            launch::snapshot_image(&kernel, o)?
        };
        prepared.push(Prepared { cell: cell.clone(), kernel, image });
    }
    Ok(prepared)
}

/// What a matrix run tells as it goes.
#[derive(Debug)]
pub enum Progress<'a> {
    /// An agent event of one of a cell's VMs.
    Event {
        /// The cell.
        cell: &'a Prepared,
        /// The event.
        event: &'a Event,
    },
    /// A cell's last work item finished: all its records, kernel findings combined.
    CellDone {
        /// The cell.
        cell: &'a Prepared,
        /// Its records.
        records: &'a [Record],
    },
    /// A work item finished.
    WorkDone,
}

/// A matrix run: prepared cells, the assertions, how their VMs start, on how many at a time.
#[derive(Debug)]
pub struct MatrixRun<'a> {
    /// The cells.
    pub cells: &'a [Prepared],
    /// The assertion ids, in catalogue order.
    pub ids: &'a [String],
    /// Fresh or restored VMs, assertions per VM.
    pub plan: CellPlan,
    /// The runtime under test.
    pub runtime: RuntimeId,
    /// VMs at a time.
    pub jobs: usize,
}

impl MatrixRun<'_> {
    /// The work items (one VM each, two when retried).
    pub fn work(&self) -> Vec<Work> {
        plan::work(self.cells.len(), self.ids, self.plan.per_vm)
    }

    /// Runs every work item, `jobs` at a time; every cell's records, in cell order, kernel
    /// findings combined per cell. `on` hears of events and finished work as they happen.
    pub fn run(&self, o: &LabOptions, on: &(dyn Fn(Progress<'_>) + Sync)) -> Vec<Record> {
        let per_cell = plan::groups_per_cell(self.ids, self.plan.per_vm);
        let acc: Mutex<Vec<(usize, Vec<Record>)>> = Mutex::new(vec![(0, Vec::new()); self.cells.len()]);
        let one = CellPlan { per_vm: None, ..self.plan };
        let done = vm::run_parallel(&self.work(), self.jobs, |w| {
            let p = &self.cells[w.cell];
            let info = CellInfo::new(&p.cell, &self.runtime.name, &self.runtime.version);
            let recs = run_cell_planned(&p.kernel, &p.image, &info, &w.ids, o, one, &mut |event| {
                on(Progress::Event { cell: p, event })
            });
            let mut acc = acc.lock().unwrap_or_else(|p| p.into_inner());
            acc[w.cell].0 += 1;
            acc[w.cell].1.extend(recs.iter().cloned());
            if acc[w.cell].0 == per_cell {
                let all = kernel_findings::combine(acc[w.cell].1.clone());
                on(Progress::CellDone { cell: p, records: &all });
            }
            drop(acc);
            on(Progress::WorkDone);
            recs
        });
        kernel_findings::combine(done.into_iter().flatten().collect())
    }
}
