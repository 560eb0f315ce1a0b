//! The diff of a run against a stored baseline (`results.json`): what changed, and which
//! changes are regressions a kernel team gates on.

use std::collections::BTreeMap;

use super::Record;
use crate::protocol::Outcome;

/// One difference between baseline and current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `kernel/cgroup assertion`.
    pub what: String,
    /// Baseline status (None: new in this run).
    pub from: Option<Outcome>,
    /// Current status (None: gone from this run).
    pub to: Option<Outcome>,
    /// Worse than before: a new FAIL/ERROR, or PASS → anything else. A result missing from
    /// this run (a shard, `--only`) is listed but is no regression.
    pub regression: bool,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = |o: Option<Outcome>| {
            o.map(|o| format!("{o:?}").to_uppercase()).unwrap_or_else(|| "(none)".into())
        };
        let tag = if self.regression { "REGRESSION" } else { "changed" };
        write!(f, "{tag}: {} {} -> {}", self.what, s(self.from), s(self.to))
    }
}

fn is_bad(o: Outcome) -> bool {
    matches!(o, Outcome::Fail | Outcome::Error)
}

/// Records by [`Record::key`].
type ByKey<'a> = BTreeMap<(String, String), &'a Record>;

/// The record of each key, the last one winning (as in [`super::merge`]), in first-seen order.
fn latest(records: &[Record]) -> (Vec<&Record>, ByKey<'_>) {
    let mut by_key = BTreeMap::new();
    let mut order = Vec::new();
    for r in records {
        if by_key.insert(r.key(), r).is_none() {
            order.push(r.key());
        }
    }
    (order.iter().map(|k| by_key[k]).collect(), by_key)
}

/// Compare `current` with `baseline`; unchanged results are not listed. A key listed twice
/// in one file (a hand-edited baseline) counts once, its last record winning, as in a merge.
pub fn diff(baseline: &[Record], current: &[Record]) -> Vec<Change> {
    let (baseline, base_by_key) = latest(baseline);
    let (current, current_by_key) = latest(current);
    let mut out = Vec::new();
    for c in current {
        let what = format!("{} {}", c.cell(), c.assertion);
        match base_by_key.get(&c.key()) {
            Some(b) if b.status == c.status => {}
            Some(b) => out.push(Change {
                what,
                from: Some(b.status),
                to: Some(c.status),
                regression: is_bad(c.status) || b.status == Outcome::Pass,
            }),
            None => out.push(Change { what, from: None, to: Some(c.status), regression: is_bad(c.status) }),
        }
    }
    for b in baseline {
        if !current_by_key.contains_key(&b.key()) {
            out.push(Change {
                what: format!("{} {}", b.cell(), b.assertion),
                from: Some(b.status),
                to: None,
                regression: false,
            });
        }
    }
    out
}
