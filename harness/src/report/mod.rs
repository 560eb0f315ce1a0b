//! Results of a matrix (or `check --host`) run and everything rendered from them: the
//! terminal matrix, `results.json`, JUnit XML, KTAP, a self-contained HTML page, the merge of
//! shard outputs and the diff against a baseline; for CI systems a Markdown summary, GitHub
//! annotations and KCIDB JSON. All pure.

pub mod annotations;
mod diff;
mod html;
pub mod kcidb;
mod markdown;
mod text;
pub mod timing;
mod xml;

pub use annotations::render_annotations;
pub use diff::{diff, Change};
pub use html::{render_html, render_html_diff};
pub use kcidb::render_kcidb;
pub use markdown::render_markdown;
pub use text::{render_table, slowest, summary_line};
pub use xml::{render_junit, render_ktap};

use serde::{Deserialize, Serialize};

pub use crate::outcome::Advisory;
use crate::protocol::Outcome;

/// One assertion's result in one cell (kernel × cgroup mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Kernel name from kernels.toml (`debian-6.1`), or `host`.
    pub kernel: String,
    /// `uname -r` of that kernel.
    pub kernel_release: String,
    /// `v1`, `v2` or `hybrid` (the host's layout).
    pub cgroup: String,
    /// The runtime under test (file name).
    pub runtime: String,
    /// Its `--version` first line.
    pub runtime_version: String,
    /// Assertion id.
    pub assertion: String,
    /// PASS, FAIL, SKIP, ERROR.
    pub status: Outcome,
    /// Why.
    pub detail: String,
    /// How long the check took.
    pub duration_ms: u64,
    /// The config every bundle started from (`--base-config`): `spec` (isolab's own, and what
    /// a results.json written before the field existed means), `docker`, `podman`,
    /// `containerd` or a FILE's stem.
    #[serde(default = "spec_base")]
    pub base_config: String,
    /// The public advisory an `escape.*` assertion is named after (absent for the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advisory: Option<Advisory>,
}

fn spec_base() -> String {
    crate::catalogue::base::SPEC.into()
}

/// Where a record's assertion ran, shared by every record of a cell (or of a host check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Kernel name from kernels.toml, or `host`.
    pub kernel: String,
    /// `v1`, `v2` or `hybrid`.
    pub cgroup: String,
    /// The runtime under test (file name).
    pub runtime: String,
    /// Its `--version` first line.
    pub runtime_version: String,
    /// The base config's name.
    pub base_config: String,
}

impl Record {
    /// The one way records are made: `assertion`'s result in `origin`, on a kernel whose
    /// `uname -r` is `kernel_release`; the advisory is the catalogue's for the id.
    pub fn new(
        origin: &Origin,
        kernel_release: &str,
        assertion: &str,
        status: Outcome,
        detail: String,
        duration_ms: u64,
    ) -> Record {
        Record {
            kernel: origin.kernel.clone(),
            kernel_release: kernel_release.into(),
            cgroup: origin.cgroup.clone(),
            runtime: origin.runtime.clone(),
            runtime_version: origin.runtime_version.clone(),
            assertion: assertion.into(),
            status,
            detail,
            duration_ms,
            base_config: origin.base_config.clone(),
            advisory: crate::catalogue::escape::advisory(assertion),
        }
    }

    /// The cell this record belongs to: `kernel/cgroup`, or `kernel/cgroup/base` when the
    /// base config is not `spec` (every report labels its cells with this).
    pub fn cell(&self) -> String {
        format!("{}/{}", self.kernel, self.setup())
    }

    /// The cell label without the kernel: `cgroup`, or `cgroup/base` when the base config is
    /// not `spec`.
    pub fn setup(&self) -> String {
        if self.base_config == crate::catalogue::base::SPEC {
            self.cgroup.clone()
        } else {
            format!("{}/{}", self.cgroup, self.base_config)
        }
    }

    /// How cells sort: kernel, cgroup, then base config.
    fn cell_order(&self) -> (String, String, String) {
        (self.kernel.clone(), self.cgroup.clone(), self.base_config.clone())
    }

    /// Identity for merge and diff: (cell, assertion).
    pub fn key(&self) -> (String, String) {
        (self.cell(), self.assertion.clone())
    }
}

/// Counts by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// PASS.
    pub pass: usize,
    /// FAIL.
    pub fail: usize,
    /// SKIP.
    pub skip: usize,
    /// ERROR.
    pub error: usize,
}

/// Count the outcomes of `records`.
pub fn counts(records: &[Record]) -> Counts {
    let mut c = Counts::default();
    for r in records {
        match r.status {
            Outcome::Pass => c.pass += 1,
            Outcome::Fail => c.fail += 1,
            Outcome::Skip => c.skip += 1,
            Outcome::Error => c.error += 1,
        }
    }
    c
}

/// Exit code of a run: 2 when the harness broke (any ERROR), else 1 on any FAIL or
/// regression, else 0.
pub fn exit_code(records: &[Record], changes: &[Change]) -> i32 {
    let c = counts(records);
    if c.error > 0 {
        2
    } else if c.fail > 0 || changes.iter().any(|ch| ch.regression) {
        1
    } else {
        0
    }
}

/// Join shard outputs: all records, one per key (the last one wins), in a stable order
/// (kernel, cgroup, then assertion order). The assertion order is the order first seen going
/// through the cells in (kernel, cgroup) order, so it does not depend on the order of the
/// parts, and merging a merged report again changes nothing.
pub fn merge(parts: &[Vec<Record>]) -> Vec<Record> {
    let mut by_cell: Vec<&Record> = parts.iter().flatten().collect();
    by_cell.sort_by_key(|r| r.cell_order()); // stable
    let mut rank: std::collections::HashMap<&str, usize> = Default::default();
    for r in &by_cell {
        let next = rank.len();
        rank.entry(r.assertion.as_str()).or_insert(next);
    }
    let mut by_key: std::collections::BTreeMap<(String, String), &Record> = Default::default();
    for r in parts.iter().flatten() {
        by_key.insert(r.key(), r);
    }
    let mut out: Vec<Record> = by_key.into_values().cloned().collect();
    out.sort_by_key(|r| (r.cell_order(), rank[r.assertion.as_str()]));
    out
}

/// Which cells shard `index` of `total` (1-based) runs: every `total`-th cell of the sorted
/// list, so shards are disjoint, cover everything and are stable across machines.
pub fn shard<T: Clone>(cells: &[T], index: usize, total: usize) -> Vec<T> {
    if total == 0 || index == 0 || index > total {
        return Vec::new();
    }
    cells.iter().enumerate().filter(|(i, _)| i % total == index - 1).map(|(_, c)| c.clone()).collect()
}

/// Parse `I/N` of `--shard`.
pub fn parse_shard(s: &str) -> Option<(usize, usize)> {
    let (i, n) = s.split_once('/')?;
    let (i, n): (usize, usize) = (i.trim().parse().ok()?, n.trim().parse().ok()?);
    (n > 0 && (1..=n).contains(&i)).then_some((i, n))
}

#[cfg(test)]
pub(crate) mod tests;
