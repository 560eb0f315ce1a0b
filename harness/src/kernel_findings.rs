//! A guest kernel's panics, oopses, BUGs, WARNINGs and hung tasks as results of their own:
//! every matrix cell gets a `kernel.no_panic` and a `kernel.no_oops` record, PASS when none
//! of its VMs (the first try of a retried group included) printed one, else FAIL with each
//! report: its headline, the assertion that was running, the trace (raw addresses resolved
//! with the kernel's System.map when the package holds a real one) and the console tail.

use std::path::PathBuf;

use crate::kernel_log::{KernelReport, Kind};
use crate::protocol::Outcome;
use crate::report::{Origin, Record};
use crate::vm::ksyms::{self, SystemMap};
use crate::vm::VmReport;

/// The record of panics.
pub const NO_PANIC: &str = "kernel.no_panic";
/// The record of oopses, BUGs, WARNINGs and hung tasks.
pub const NO_OOPS: &str = "kernel.no_oops";
/// Console lines kept of each VM's tail, besides those its traces show.
const TAIL: usize = 15;

/// What one VM of a cell printed.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Which VM: its assertions and whether it was a retry.
    pub vm: String,
    /// Its reports.
    pub reports: Vec<KernelReport>,
    /// Its console tail.
    pub tail: Vec<String>,
}

impl Seen {
    /// The reports of `r`, if it has any.
    pub fn of(vm: String, r: &VmReport) -> Option<Seen> {
        let reports = r.kernel_log.reports().to_vec();
        // The tail without the lines the traces already show.
        let fresh: Vec<String> = r
            .console_tail
            .iter()
            .filter(|l| !reports.iter().any(|k| k.lines.iter().any(|t| t == l.trim_end())))
            .cloned()
            .collect();
        let tail = fresh[fresh.len().saturating_sub(TAIL)..].to_vec();
        (!reports.is_empty()).then_some(Seen { vm, reports, tail })
    }
}

/// The two records of a cell; `map_paths` are where its System.map may be (read only when
/// there is something to symbolise).
pub fn records(origin: &Origin, release: &str, seen: &[Seen], map_paths: &[PathBuf]) -> Vec<Record> {
    let mut map: Option<Result<(SystemMap, PathBuf), String>> = None;
    let mut rec = |id: &str, want: &dyn Fn(Kind) -> bool| {
        let hits: Vec<&Seen> = seen.iter().filter(|s| s.reports.iter().any(|r| want(r.kind))).collect();
        let detail = if hits.is_empty() {
            String::new()
        } else {
            let map = map.get_or_insert_with(|| SystemMap::load(map_paths));
            hits.iter().map(|s| describe(s, want, map)).collect::<Vec<_>>().join("\n\n")
        };
        let status = if hits.is_empty() { Outcome::Pass } else { Outcome::Fail };
        Record::new(origin, release, id, status, detail, 0)
    };
    vec![rec(NO_PANIC, &|k| k == Kind::Panic), rec(NO_OOPS, &|k| k != Kind::Panic)]
}

/// Join the kernel records of a cell whose assertions ran in several calls (`--per-vm`: a
/// call per group): one `kernel.no_panic` and one `kernel.no_oops` per cell, FAIL when any part
/// failed, with every part's story; each cell's records keep their order, its kernel records last.
pub fn combine(records: Vec<Record>) -> Vec<Record> {
    let mut cells: Vec<(String, Vec<Record>, Vec<Record>)> = Vec::new();
    for r in records {
        let i = match cells.iter().position(|(c, _, _)| *c == r.cell()) {
            Some(i) => i,
            None => {
                cells.push((r.cell(), Vec::new(), Vec::new()));
                cells.len() - 1
            }
        };
        let (_, plain, kernel) = &mut cells[i];
        if r.assertion != NO_PANIC && r.assertion != NO_OOPS {
            plain.push(r);
            continue;
        }
        match kernel.iter_mut().find(|k| k.assertion == r.assertion) {
            None => kernel.push(r),
            Some(k) => {
                if r.status == Outcome::Fail {
                    k.status = Outcome::Fail;
                }
                if !r.detail.is_empty() {
                    k.detail =
                        if k.detail.is_empty() { r.detail } else { format!("{}\n\n{}", k.detail, r.detail) };
                }
                if k.kernel_release.is_empty() {
                    k.kernel_release = r.kernel_release;
                }
            }
        }
    }
    cells.into_iter().flat_map(|(_, plain, kernel)| plain.into_iter().chain(kernel)).collect()
}

/// One VM's story: the headlines `want` selects, then every report's trace (an oops that led to
/// a panic belongs to the panic's story), then the console tail.
fn describe(s: &Seen, want: &dyn Fn(Kind) -> bool, map: &Result<(SystemMap, PathBuf), String>) -> String {
    let mut out = String::new();
    for r in s.reports.iter().filter(|r| want(r.kind)) {
        let during = r.during.as_deref().unwrap_or("(no assertion: boot or between assertions)");
        out += &format!("{}: {} (in the VM of {}; running: {during})\n", r.kind.as_str(), r.headline, s.vm);
    }
    out += &match map {
        Ok((_, p)) => format!("raw addresses resolved with {}\n", p.display()),
        Err(why) => format!(
            "function names are the guest kernel's own (kallsyms); no System.map to resolve raw addresses: {why}\n"
        ),
    };
    // The `Kernel Offset:` line comes with the panic, after the oops whose trace it decodes.
    let all: Vec<String> =
        s.reports.iter().flat_map(|r| r.lines.iter().cloned()).chain(s.tail.clone()).collect();
    let offset = ksyms::kaslr_offset(&all);
    for r in &s.reports {
        out += &format!("--- {} trace ---\n", r.kind.as_str());
        let lines = match map {
            Ok((m, _)) => ksyms::symbolise(&r.lines, m, offset),
            Err(_) => r.lines.clone(),
        };
        out += &lines.join("\n");
        out.push('\n');
    }
    out += "--- console tail ---\n";
    out += &s.tail.join("\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel_log::KernelLog;

    fn cell() -> Origin {
        Origin {
            kernel: "debian-7.2".into(),
            cgroup: "v2".into(),
            runtime: "isorun".into(),
            runtime_version: "isorun 0.1.0".into(),
            base_config: "spec".into(),
        }
    }

    fn seen(lines: &[&str]) -> Seen {
        let mut log = KernelLog::new(vec!["a.one".into(), "a.two".into()]);
        log.finished_one();
        lines.iter().for_each(|l| log.feed(l));
        Seen {
            vm: "a.one..a.two, first try".into(),
            reports: log.reports().to_vec(),
            tail: vec!["tail".into()],
        }
    }

    /// Three groups of one cell and one of another: one pair of kernel records per cell, last.
    #[test]
    fn combine_joins_the_groups_of_a_cell() {
        let mut parts = Vec::new();
        for (i, bad) in [false, true, true].into_iter().enumerate() {
            let s = bad.then(|| seen(&[&format!("Kernel panic - not syncing: number {i}")]));
            let mut recs = records(&cell(), "7.2.12", &Vec::from_iter(s), &[]);
            let mut a = recs[0].clone();
            a.assertion = format!("a.{i}");
            a.status = Outcome::Pass;
            recs.insert(0, a);
            parts.extend(recs);
        }
        let mut other = records(&cell(), "6.1", &[], &[]);
        other.iter_mut().for_each(|r| r.kernel = "debian-6.1".into());
        parts.extend(other);
        let got = combine(parts);
        let ids: Vec<(String, &str)> = got.iter().map(|r| (r.cell(), r.assertion.as_str())).collect();
        let c = |s: &str| s.to_string();
        assert_eq!(
            ids,
            [
                (c("debian-7.2/v2"), "a.0"),
                (c("debian-7.2/v2"), "a.1"),
                (c("debian-7.2/v2"), "a.2"),
                (c("debian-7.2/v2"), NO_PANIC),
                (c("debian-7.2/v2"), NO_OOPS),
                (c("debian-6.1/v2"), NO_PANIC),
                (c("debian-6.1/v2"), NO_OOPS),
            ]
        );
        assert_eq!((got[3].status, got[4].status), (Outcome::Fail, Outcome::Pass));
        assert!(
            got[3].detail.contains("number 1") && got[3].detail.contains("number 2"),
            "{}",
            got[3].detail
        );
        assert_eq!(got[5].status, Outcome::Pass);
    }

    #[test]
    fn a_clean_cell_passes_both() {
        let r = records(&cell(), "7.2.12", &[], &[]);
        assert_eq!(
            r.iter().map(|r| (r.assertion.as_str(), r.status)).collect::<Vec<_>>(),
            [(NO_PANIC, Outcome::Pass), (NO_OOPS, Outcome::Pass)]
        );
    }

    #[test]
    fn an_oops_in_interrupt_and_its_panic_fail_both_with_trace_and_assertion() {
        let dir = tempfile::tempdir().unwrap();
        let map = dir.path().join("System.map-7.2.12");
        std::fs::write(&map, "ffffffff81100000 t dequeue_task_fair\n").unwrap();
        let s = seen(&[
            "[ 8.1] BUG: unable to handle page fault for address: 0000000000000008",
            "[ 8.1]  ? 0xffffffff91100010",
            "[ 8.1] ---[ end trace 0 ]---",
            "[ 8.2] Kernel panic - not syncing: Fatal exception in interrupt",
            "[ 8.2] Kernel Offset: 0x10000000 from 0xffffffff81000000",
        ]);
        let r = records(&cell(), "7.2.12", &[s], std::slice::from_ref(&map));
        assert_eq!((r[0].status, r[1].status), (Outcome::Fail, Outcome::Fail));
        let d = &r[0].detail;
        assert!(d.starts_with("panic: Kernel panic - not syncing: Fatal exception in interrupt"), "{d}");
        assert!(d.contains("running: a.two"), "{d}");
        assert!(d.contains("0xffffffff91100010 <dequeue_task_fair+0x10>"), "the oops trace, symbolised: {d}");
        assert!(d.contains(&format!("resolved with {}", map.display())), "{d}");
        assert!(d.ends_with("--- console tail ---\ntail"), "{d}");
        assert!(r[1].detail.starts_with("oops: BUG: unable to handle page fault"), "{}", r[1].detail);
    }

    #[test]
    fn a_warning_alone_fails_only_no_oops_and_says_why_nothing_was_resolved() {
        let s = seen(&["WARNING: CPU: 0 PID: 1 at kernel/x.c:1 f+0x0/0x1"]);
        let r = records(&cell(), "7.2.12", &[s], &[PathBuf::from("/nonexistent/System.map")]);
        assert_eq!((r[0].status, r[1].status), (Outcome::Pass, Outcome::Fail));
        assert!(
            r[1].detail.contains("no System.map to resolve raw addresses: /nonexistent"),
            "{}",
            r[1].detail
        );
    }
}
