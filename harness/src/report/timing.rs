//! How long a run took, and `results.json` as a document that carries it.
//!
//! Two different times: the *wall* time of the run (what a CI job waits for) and the time of
//! the assertions *summed* (what the VMs spent checking, in parallel). For merged shards the
//! wall time is the longest shard's (shards run side by side), never their sum.
//!
//! `results.json` is `{"format": 2, "timing": {...}, "records": [...]}`; a bare array of
//! records (format 1, and baselines written by older versions) is still read.

use serde::{Deserialize, Serialize};

use super::Record;

/// `format` of the results document written now.
pub const RESULTS_FORMAT: u32 = 2;

/// The time of a run (or of merged shards).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunTiming {
    /// Wall time in seconds: the run's, or for merged shards the longest shard's. None when no
    /// input said (merged from results.json files of format 1).
    pub wall_secs: Option<f64>,
    /// Durations of the assertions, summed, in seconds.
    pub assertion_secs: f64,
    /// How many shard outputs were merged (absent for a single run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<usize>,
    /// Merged shards whose results.json carried no wall time (format 1).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shards_without_wall: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The results document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// [`RESULTS_FORMAT`].
    pub format: u32,
    /// The run's time.
    pub timing: RunTiming,
    /// One record per kernel × cgroup × assertion.
    pub records: Vec<Record>,
}

/// Seconds of the records' assertions, summed.
pub fn assertion_secs(records: &[Record]) -> f64 {
    records.iter().map(|r| r.duration_ms as f64 / 1000.0).sum()
}

/// The timing of one run that took `wall_secs`.
pub fn run_timing(records: &[Record], wall_secs: f64) -> RunTiming {
    RunTiming {
        wall_secs: Some(wall_secs),
        assertion_secs: assertion_secs(records),
        shards: None,
        shards_without_wall: 0,
    }
}

/// The timing of merged shards: wall = the longest shard's wall time (they ran side by side),
/// assertions = summed over the merged records.
pub fn merged_timing(parts: &[Option<RunTiming>], merged: &[Record]) -> RunTiming {
    let walls: Vec<f64> = parts.iter().flatten().filter_map(|t| t.wall_secs).collect();
    RunTiming {
        wall_secs: walls.iter().copied().reduce(f64::max),
        assertion_secs: assertion_secs(merged),
        shards: Some(parts.len()),
        shards_without_wall: parts.len() - walls.len(),
    }
}

/// Reads a results document, or a bare array of records (format 1): the records and the
/// timing when the input carries one.
pub fn parse_results(bytes: &[u8]) -> Result<(Vec<Record>, Option<RunTiming>), String> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Doc(Results),
        Bare(Vec<Record>),
    }
    match serde_json::from_slice::<Either>(bytes) {
        Ok(Either::Doc(d)) if d.format <= RESULTS_FORMAT => Ok((d.records, Some(d.timing))),
        Ok(Either::Doc(d)) => {
            Err(format!("results format {} is newer than this isolab's {RESULTS_FORMAT}", d.format))
        }
        Ok(Either::Bare(r)) => Ok((r, None)),
        // Say what is wrong with it as a document (the usual form), not as the untagged enum.
        Err(_) => serde_json::from_slice::<Results>(bytes)
            .map(|d| (d.records, Some(d.timing)))
            .map_err(|e| e.to_string()),
    }
}

/// `time: 394.1 s wall (the longest of 4 shards), 751.1 s of assertions summed`.
pub fn timing_line(t: &RunTiming) -> String {
    let wall = match (t.wall_secs, t.shards) {
        (Some(w), Some(n)) => {
            format!("{w:.1} s wall (the longest of {n} shard{})", if n == 1 { "" } else { "s" })
        }
        (Some(w), None) => format!("{w:.1} s wall"),
        (None, _) => "wall time unknown".to_string(),
    };
    let unknown = match t.shards_without_wall {
        0 => String::new(),
        n => format!("; {n} shard(s) without a wall time (results.json of format 1)"),
    };
    format!("time: {wall}, {:.1} s of assertions summed{unknown}", t.assertion_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Outcome::Pass;
    use crate::report::tests::rec;

    fn timed(ms: u64) -> Record {
        Record { duration_ms: ms, ..rec("k", "v2", "a", Pass, "") }
    }

    #[test]
    fn merged_wall_is_the_longest_shard_and_assertions_are_summed() {
        let t = |w| {
            Some(RunTiming { wall_secs: Some(w), assertion_secs: 0.0, shards: None, shards_without_wall: 0 })
        };
        let merged = vec![timed(400_000), timed(351_100)];
        let m = merged_timing(&[t(394.1), t(201.0)], &merged);
        assert_eq!((m.wall_secs, m.assertion_secs, m.shards), (Some(394.1), 751.1, Some(2)));
        assert_eq!(
            timing_line(&m),
            "time: 394.1 s wall (the longest of 2 shards), 751.1 s of assertions summed"
        );
        let old = merged_timing(&[t(10.0), None], &merged);
        assert_eq!((old.wall_secs, old.shards_without_wall), (Some(10.0), 1));
        assert!(timing_line(&old).contains("1 shard(s) without a wall time"), "{}", timing_line(&old));
        assert_eq!(merged_timing(&[None], &merged).wall_secs, None);
    }

    #[test]
    fn documents_and_bare_arrays_are_read_and_a_newer_format_is_refused() {
        let records = vec![timed(1500)];
        let doc =
            Results { format: RESULTS_FORMAT, timing: run_timing(&records, 3.0), records: records.clone() };
        let (r, t) = parse_results(&serde_json::to_vec(&doc).unwrap()).unwrap();
        assert_eq!((r, t.unwrap().wall_secs), (records.clone(), Some(3.0)));
        let (r, t) = parse_results(&serde_json::to_vec(&records).unwrap()).unwrap();
        assert_eq!((r, t), (records.clone(), None));
        let newer = serde_json::json!({"format": 99, "timing": {"wall_secs": 1.0, "assertion_secs": 1.0}, "records": []});
        assert!(parse_results(newer.to_string().as_bytes()).unwrap_err().contains("newer"));
        let broken = serde_json::json!({"format": 2, "timing": {}, "records": []});
        assert!(parse_results(broken.to_string().as_bytes()).unwrap_err().contains("assertion_secs"));
    }
}
