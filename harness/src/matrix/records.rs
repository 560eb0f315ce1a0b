//! A VM's report turned into records: one per expected assertion. A VM that breaks (no hello,
//! panic, hang, QEMU death) makes every assertion it did not report an ERROR carrying the
//! console tail — never a PASS, never dropped.

use crate::catalogue;
use crate::protocol::{CgroupMode, Event, Outcome};
use crate::report::{Origin, Record};
use crate::vm::VmReport;

use super::plan::Cell;

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

impl CellInfo {
    /// The info of `cell` with the runtime under test named `runtime` at `runtime_version`.
    pub fn new(cell: &Cell, runtime: &str, runtime_version: &str) -> CellInfo {
        CellInfo {
            kernel: cell.kernel.clone(),
            mode: cell.mode,
            runtime: runtime.into(),
            runtime_version: runtime_version.into(),
            base: cell.base.clone(),
        }
    }

    /// Where its records ran.
    pub fn origin(&self) -> Origin {
        Origin {
            kernel: self.kernel.clone(),
            cgroup: self.mode.as_str().into(),
            runtime: self.runtime.clone(),
            runtime_version: self.runtime_version.clone(),
            base_config: self.base.name.clone(),
        }
    }
}

/// Turn one VM's report into one record per expected assertion.
pub fn records_from_vm(cell: &CellInfo, expected: &[String], report: &VmReport) -> Vec<Record> {
    let origin = cell.origin();
    let release = match &report.hello {
        Some(Event::Hello { kernel_release, .. }) => kernel_release.clone(),
        _ => String::new(),
    };
    let mut out: Vec<Record> = Vec::new();
    for ev in &report.events {
        if let Event::Result { id, outcome, detail, duration_ms } = ev {
            out.push(Record::new(&origin, &release, id, *outcome, detail.clone(), *duration_ms));
        }
    }
    let agent_error = report.events.iter().find_map(|e| match e {
        Event::Error { message } => Some(message.as_str()),
        _ => None,
    });
    let why = match (&report.error, agent_error) {
        (Some(e), _) => e.to_string(),
        (None, Some(m)) => format!("agent: {m}"),
        (None, None) => "the agent finished without reporting this assertion".into(),
    };
    let tail = report.console_tail.iter().rev().take(50).rev().cloned().collect::<Vec<_>>().join("\n");
    for id in expected {
        if !out.iter().any(|r| &r.assertion == id) {
            let detail = format!("{why}\n--- console tail ---\n{tail}");
            out.push(Record::new(&origin, &release, id, Outcome::Error, detail, 0));
        }
    }
    out
}

/// Every one of `ids` an ERROR because no VM could be started (`why`).
pub fn records_without_vm(cell: &CellInfo, ids: &[String], why: &str) -> Vec<Record> {
    let origin = cell.origin();
    ids.iter().map(|id| Record::new(&origin, "", id, Outcome::Error, why.into(), 0)).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::protocol::PROTOCOL_VERSION;
    use crate::vm::VmError;
    use std::time::Duration;

    pub(crate) fn report(events: Vec<Event>, error: Option<VmError>) -> VmReport {
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

    pub(crate) fn cell() -> CellInfo {
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
    fn an_agent_error_is_carried_into_the_missing_records() {
        let ev = vec![Event::Error { message: "catalogue: mkdir /var/lib: EROFS".into() }];
        let recs = records_from_vm(&cell(), &["a.one".to_owned()], &report(ev, None));
        assert_eq!(recs[0].status, Outcome::Error);
        assert!(recs[0].detail.starts_with("agent: catalogue: mkdir"));
    }

    #[test]
    fn records_carry_the_cell_and_an_escape_its_advisory() {
        let mut info = cell();
        info.base = crate::catalogue::BaseConfig::parse("docker").unwrap();
        let recs = records_without_vm(&info, &["escape.cve_2024_21626_fds".to_owned()], "snapshot: boom");
        let r = &recs[0];
        assert_eq!(
            (r.kernel.as_str(), r.cgroup.as_str(), r.base_config.as_str(), r.kernel_release.as_str()),
            ("debian-6.1", "v2", "docker", "")
        );
        assert_eq!((r.status, r.detail.as_str()), (Outcome::Error, "snapshot: boom"));
        assert_eq!(r.advisory.as_ref().map(|a| a.id.as_str()), Some("CVE-2024-21626"));
    }
}
