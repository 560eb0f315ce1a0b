//! Kernel reports on a guest's console: panics, oopses and BUGs, WARNINGs, hung tasks and RCU
//! stalls, each kept with the console lines of its trace and the assertion that was running
//! when it was printed. Fed line by line while the VM runs ([`KernelLog::feed`]); pure.
//!
//! The console shows panics and oopses in full (the kernel raises its console log level for
//! them), but the harness boots with `loglevel=3`, which hides WARNINGs (level 4) and hung-task
//! reports (level 3 headline, level 6 trace): the agent reads those from `/dev/kmsg`
//! ([`KmsgFilter`] picks them) and sends them as `kmsg: ` log events, fed here like console lines.

/// What the kernel reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `Kernel panic - not syncing`.
    Panic,
    /// An oops, `BUG:`, `kernel BUG at`, a general protection fault, a soft lockup.
    Oops,
    /// `WARNING: CPU: …`.
    Warning,
    /// `INFO: task … blocked for more than … seconds`, or an RCU stall.
    HungTask,
}

impl Kind {
    /// Its name in a report.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Panic => "panic",
            Kind::Oops => "oops",
            Kind::Warning => "warning",
            Kind::HungTask => "hung task",
        }
    }
}

/// One report and its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelReport {
    /// What it is.
    pub kind: Kind,
    /// The line that opened it, without the console timestamp.
    pub headline: String,
    /// Its console lines, the headline first (at most [`MAX_LINES`]).
    pub lines: Vec<String>,
    /// The assertion running when it was printed (by the order the console and the agent's
    /// channel were read in), if the VM was running assertions.
    pub during: Option<String>,
    /// Still collecting lines (no end marker yet).
    open: bool,
}

/// Lines kept per report.
pub const MAX_LINES: usize = 80;

/// The line without its `[   12.345678] ` console timestamp.
pub fn strip_timestamp(line: &str) -> &str {
    let t = line.trim_start();
    match t.strip_prefix('[').and_then(|r| r.split_once("] ")) {
        Some((stamp, rest)) if stamp.trim().chars().all(|c| c.is_ascii_digit() || c == '.') => rest,
        _ => t,
    }
}

/// The kind of report a console line opens, if it opens one.
pub fn classify(line: &str) -> Option<Kind> {
    let l = strip_timestamp(line);
    let starts = |p: &[&str]| p.iter().any(|p| l.starts_with(p));
    if l.starts_with("Kernel panic - not syncing") {
        Some(Kind::Panic)
    } else if starts(&["BUG: ", "kernel BUG at", "Oops: ", "general protection fault", "watchdog: BUG: "]) {
        Some(Kind::Oops)
    } else if starts(&["WARNING: CPU: ", "WARNING: at "]) {
        Some(Kind::Warning)
    } else if (l.starts_with("INFO: task ") && l.contains("blocked for more than"))
        || (l.starts_with("rcu: INFO: ") && l.contains("detected stall"))
    {
        Some(Kind::HungTask)
    } else {
        None
    }
}

/// Whether a line ends the report it belongs to.
fn ends(line: &str) -> bool {
    let l = strip_timestamp(line);
    l.starts_with("---[ end trace") || l.starts_with("---[ end Kernel panic")
}

/// The reports seen so far on one VM's console.
#[derive(Debug, Clone, Default)]
pub struct KernelLog {
    reports: Vec<KernelReport>,
    /// The assertions requested, in the order the agent runs them.
    planned: Vec<String>,
    /// How many of them have reported a result.
    finished: usize,
}

impl KernelLog {
    /// A log for a VM that runs `planned` assertions in this order (empty: not assertions).
    pub fn new(planned: Vec<String>) -> Self {
        KernelLog { planned, ..Default::default() }
    }

    /// The agent reported the result of one more assertion.
    pub fn finished_one(&mut self) {
        self.finished += 1;
    }

    /// One console line.
    pub fn feed(&mut self, line: &str) {
        let line = line.trim_end();
        if let Some(kind) = classify(line) {
            self.reports.push(KernelReport {
                kind,
                headline: strip_timestamp(line).to_owned(),
                lines: vec![line.to_owned()],
                during: self.planned.get(self.finished).cloned(),
                open: true,
            });
            return;
        }
        if let Some(r) = self.reports.last_mut().filter(|r| r.open) {
            if r.lines.len() < MAX_LINES {
                r.lines.push(line.to_owned());
            }
            if ends(line) {
                r.open = false;
            }
        }
    }

    /// The reports, in console order.
    pub fn reports(&self) -> &[KernelReport] {
        &self.reports
    }
}

/// The prefix of an agent log event that carries a kernel log line.
pub const KMSG_PREFIX: &str = "kmsg: ";

/// Which /dev/kmsg lines the agent forwards: a WARNING or hung-task headline and the lines
/// after it, up to its end marker or [`MAX_LINES`] (panics and oopses reach the console).
#[derive(Debug, Default)]
pub struct KmsgFilter {
    open: Option<usize>,
}

impl KmsgFilter {
    /// Whether to forward this kmsg text line.
    pub fn keep(&mut self, text: &str) -> bool {
        if matches!(classify(text), Some(Kind::Warning | Kind::HungTask)) {
            self.open = Some(1);
            return true;
        }
        match self.open {
            Some(n) if n < MAX_LINES => {
                self.open = if ends(text) { None } else { Some(n + 1) };
                true
            }
            _ => {
                self.open = None;
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("[    8.412345] Kernel panic - not syncing: Fatal exception in interrupt", Some(Kind::Panic) ; "panic")]
    #[test_case("[    1.0] BUG: kernel NULL pointer dereference, address: 0000000000000000", Some(Kind::Oops) ; "null deref")]
    #[test_case("kernel BUG at mm/slub.c:379!", Some(Kind::Oops) ; "kernel bug")]
    #[test_case("[    3.2] general protection fault, probably for non-canonical address", Some(Kind::Oops) ; "gpf")]
    #[test_case("[    3.2] Oops: 0000 [#1] PREEMPT SMP NOPTI", Some(Kind::Oops) ; "oops")]
    #[test_case("[    5.0] WARNING: CPU: 1 PID: 7 at kernel/sched/fair.c:4321 foo+0x1/0x2", Some(Kind::Warning) ; "warn")]
    #[test_case("[  242.0] INFO: task sh:77 blocked for more than 120 seconds.", Some(Kind::HungTask) ; "hung")]
    #[test_case("[   30.0] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:", Some(Kind::HungTask) ; "rcu")]
    #[test_case("[    0.5] isolab: BUG: not really", None ; "not at the start")]
    #[test_case("[    0.1] Run /init as init process", None ; "plain")]
    fn classifies(line: &str, want: Option<Kind>) {
        assert_eq!(classify(line), want);
    }

    /// An oops in an interrupt, then the panic it caused: two reports, each with its lines,
    /// both during the assertion that had not reported yet.
    #[test]
    fn an_oops_then_its_panic() {
        let mut log = KernelLog::new(vec!["a.one".into(), "a.two".into()]);
        log.feed("[    1.0] boot noise");
        log.finished_one();
        for l in [
            "[    8.1] BUG: unable to handle page fault for address: ffff88800a000000",
            "[    8.1] RIP: 0010:dequeue_task_fair+0x1c/0x2a0",
            "[    8.1] Call Trace:",
            "[    8.1]  <IRQ>",
            "[    8.1]  ? 0xffffffffa1234567",
            "[    8.1] ---[ end trace 0000000000000000 ]---",
            "[    8.2] unrelated line",
            "[    8.3] Kernel panic - not syncing: Fatal exception in interrupt",
            "[    8.3] Kernel Offset: 0x20000000 from 0xffffffff81000000",
            "[    8.3] ---[ end Kernel panic - not syncing: Fatal exception in interrupt ]---",
            "[    8.4] after the end",
        ] {
            log.feed(l);
        }
        let r = log.reports();
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].kind, r[1].kind), (Kind::Oops, Kind::Panic));
        assert_eq!(r[0].lines.len(), 6, "{:?}", r[0].lines);
        assert_eq!(r[1].lines.len(), 3, "{:?}", r[1].lines);
        assert_eq!(r[1].headline, "Kernel panic - not syncing: Fatal exception in interrupt");
        assert_eq!(r[0].during.as_deref(), Some("a.two"));
    }

    #[test]
    fn kmsg_forwards_warnings_and_hung_tasks_with_their_lines_only() {
        let mut f = KmsgFilter::default();
        let kept: Vec<bool> = [
            "eth0: link up",
            "WARNING: CPU: 0 PID: 9 at kernel/x.c:1 f+0x0/0x1",
            " f+0x0/0x1",
            "---[ end trace 0000000000000000 ]---",
            "isolab-bx: port 1 entered forwarding state",
            "INFO: task sh:7 blocked for more than 120 seconds.",
            "task:sh state:D stack:0",
            "Kernel panic - not syncing: x",
        ]
        .iter()
        .map(|l| f.keep(l))
        .collect();
        assert_eq!(kept, [false, true, true, true, false, true, true, true]);
    }

    #[test]
    fn a_report_keeps_at_most_max_lines() {
        let mut log = KernelLog::new(vec![]);
        log.feed("WARNING: CPU: 0 PID: 1 at x.c:1 f+0x0/0x1");
        for i in 0..200 {
            log.feed(&format!("line {i}"));
        }
        assert_eq!(log.reports()[0].lines.len(), MAX_LINES);
        assert_eq!(log.reports()[0].during, None);
    }
}
