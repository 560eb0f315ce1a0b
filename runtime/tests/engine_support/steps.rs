//! One scenario, step by step: every step runs (a failed one does not stop the next), its
//! outcome is printed and written to `$CARGO_TARGET_TMPDIR/engine-steps/ENGINE-RUNTIME.tsv`
//! (`ci/engine-table` makes the README table of them), and the test fails at the end naming
//! every failed step with its error.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

/// A step's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail(String),
    /// Fails here with runc too, for the stated reason of this host (reported, not counted).
    HostFail {
        reason: String,
        error: String,
    },
}

#[derive(Debug)]
pub struct Steps {
    engine: &'static str,
    runtime: &'static str,
    results: Vec<(String, Outcome, f64)>,
    started: Instant,
}

impl Steps {
    pub fn new(engine: &'static str, runtime: &'static str) -> Self {
        Steps { engine, runtime, results: Vec::new(), started: Instant::now() }
    }

    /// Run one step; `f` returns Err with what differed from what runc gives.
    pub fn step(&mut self, name: &str, f: impl FnOnce() -> Result<(), String>) {
        let t = Instant::now();
        let outcome = match f() {
            Ok(()) => Outcome::Pass,
            Err(e) => Outcome::Fail(e),
        };
        self.record(name, outcome, t);
    }

    /// A step that runc itself fails on this host for `reason`: run it anyway and report the
    /// outcome loudly (a pass is a pass; a failure is shown with the reason, not counted).
    pub fn step_host_limited(&mut self, name: &str, reason: &str, f: impl FnOnce() -> Result<(), String>) {
        let t = Instant::now();
        let outcome = match f() {
            Ok(()) => Outcome::Pass,
            Err(error) => Outcome::HostFail { reason: reason.to_owned(), error },
        };
        self.record(name, outcome, t);
    }

    fn record(&mut self, name: &str, outcome: Outcome, t: Instant) {
        let secs = t.elapsed().as_secs_f64();
        let (engine, runtime) = (self.engine, self.runtime);
        match &outcome {
            Outcome::Pass => eprintln!("[{engine}/{runtime}] PASS {name} ({secs:.1} s)"),
            Outcome::Fail(e) => eprintln!("[{engine}/{runtime}] FAIL {name} ({secs:.1} s): {e}"),
            Outcome::HostFail { reason, error } => eprintln!(
                "[{engine}/{runtime}] HOST-LIMIT {name} ({secs:.1} s): fails here with runc too \
                 because {reason}: {error}"
            ),
        }
        self.results.push((name.to_owned(), outcome, secs));
    }

    fn results_file(&self) -> PathBuf {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("engine-steps");
        let _ = std::fs::create_dir_all(&dir);
        dir.join(format!("{}-{}.tsv", self.engine, self.runtime))
    }

    /// Write the results file and fail the test if any step failed.
    pub fn finish(self) {
        let mut tsv = String::new();
        let mut failed = Vec::new();
        for (name, outcome, secs) in &self.results {
            let (word, msg) = match outcome {
                Outcome::Pass => ("PASS", String::new()),
                Outcome::Fail(e) => ("FAIL", e.clone()),
                Outcome::HostFail { reason, error } => ("HOST-LIMIT", format!("{reason}: {error}")),
            };
            let msg = msg.replace(['\t', '\n'], " ");
            let _ = writeln!(tsv, "{name}\t{word}\t{secs:.2}\t{msg}");
            if word == "FAIL" {
                failed.push(format!("  {name}: {msg}"));
            }
        }
        let file = self.results_file();
        if let Err(e) = std::fs::write(&file, &tsv) {
            eprintln!("cannot write {}: {e}", file.display());
        }
        let total = self.started.elapsed().as_secs_f64();
        eprintln!(
            "[{}/{}] {} steps, {} failed, {total:.1} s; results in {}",
            self.engine,
            self.runtime,
            self.results.len(),
            failed.len(),
            file.display()
        );
        assert!(
            failed.is_empty(),
            "{} under {}: {} of {} steps differ from what runc gives:\n{}",
            self.runtime,
            self.engine,
            failed.len(),
            self.results.len(),
            failed.join("\n")
        );
    }
}
