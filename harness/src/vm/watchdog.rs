//! The watchdog of one VM run, as a pure state machine: it is told what happened (a console
//! line, an agent event, time passing, QEMU gone) and when, as time since QEMU was spawned,
//! and answers what to do (wait, read the console to its end, give up and why). The I/O
//! loop around it is `vm::run`.
//!
//! What it watches: the hello must come within the boot timeout; after it, the agent must not
//! be silent for longer than the step timeout (unless there is none, e.g. an interactive
//! shell); a `Kernel panic` line ends the run [`PANIC_GRACE`] later (so the console tail has
//! the backtrace; nothing else is checked meanwhile); a halted guest (no ACPI power-off keeps
//! QEMU alive) ends it [`STOP_GRACE`] after the kernel said so; QEMU exiting ends it once its
//! console is drained, as a kernel panic when the console showed one.

use std::time::Duration;

use super::error::VmError;

/// Console lines meaning the guest kernel has stopped for good.
pub const STOP_MARKERS: &[&str] =
    &["reboot: System halted", "reboot: Power down", "reboot: Restarting system"];

/// A console line with this is a kernel panic.
pub const PANIC_MARKER: &str = "Kernel panic";

/// How long the console gets after a panic line, so the tail has the backtrace.
pub const PANIC_GRACE: Duration = Duration::from_millis(300);

/// How long the channel gets to deliver `Done` after the guest halted.
pub const STOP_GRACE: Duration = Duration::from_secs(1);

/// What the watchdog is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// A console line.
    Console(&'a str),
    /// The agent's hello (progress, and the boot timeout no longer applies).
    Hello,
    /// Any other agent event (progress).
    Event,
    /// A look at the clock (after every message, or after a poll without one); whether QEMU's
    /// process has exited.
    Tick {
        /// QEMU is gone.
        qemu_exited: bool,
    },
    /// After [`Decision::Drain`]: the console lines QEMU left were fed; what now.
    Drained,
}

/// What the watchdog decides.
#[derive(Debug)]
pub enum Decision {
    /// Nothing to do: keep waiting.
    Wait,
    /// QEMU exited: read what is left of the console (feeding each line), then [`Input::Drained`].
    Drain,
    /// QEMU exited and the console showed no panic: the run is an ERROR with QEMU's status.
    QemuDied,
    /// The run is an ERROR for this reason.
    Fail(VmError),
}

/// The watchdog's state: see the module docs.
#[derive(Debug, Clone)]
pub struct Watchdog {
    boot: Duration,
    step: Option<Duration>,
    hello: bool,
    last_progress: Duration,
    panic: Option<(String, Duration)>,
    stop: Option<(String, Duration)>,
}

impl Watchdog {
    /// A watchdog for a run with these timeouts: spawn → hello, and the longest silence after
    /// it (None: unlimited).
    pub fn new(boot: Duration, step: Option<Duration>) -> Self {
        Watchdog { boot, step, hello: false, last_progress: Duration::ZERO, panic: None, stop: None }
    }

    /// Feeds what happened at `now` (time since QEMU was spawned) and says what to do.
    pub fn feed(&mut self, input: Input<'_>, now: Duration) -> Decision {
        match input {
            Input::Console(line) => {
                if self.panic.is_none() && line.contains(PANIC_MARKER) {
                    self.panic = Some((line.trim().to_string(), now));
                }
                if self.stop.is_none() && STOP_MARKERS.iter().any(|m| line.contains(m)) {
                    self.stop = Some((line.trim().to_string(), now));
                }
                Decision::Wait
            }
            Input::Hello => {
                self.hello = true;
                self.last_progress = now;
                Decision::Wait
            }
            Input::Event => {
                self.last_progress = now;
                Decision::Wait
            }
            Input::Tick { qemu_exited } => self.tick(now, qemu_exited),
            Input::Drained => match &self.panic {
                Some((line, _)) => Decision::Fail(VmError::KernelPanic { line: line.clone() }),
                None => Decision::QemuDied,
            },
        }
    }

    fn tick(&self, now: Duration, qemu_exited: bool) -> Decision {
        if let Some((line, at)) = &self.panic {
            return if now.saturating_sub(*at) > PANIC_GRACE {
                Decision::Fail(VmError::KernelPanic { line: line.clone() })
            } else {
                Decision::Wait
            };
        }
        if let Some((line, at)) = &self.stop {
            if now.saturating_sub(*at) > STOP_GRACE {
                return Decision::Fail(VmError::GuestStopped { line: line.clone() });
            }
        }
        if qemu_exited {
            return Decision::Drain;
        }
        if !self.hello && now > self.boot {
            return Decision::Fail(VmError::BootTimeout { secs: self.boot.as_secs() });
        }
        match self.step {
            Some(step) if self.hello && now.saturating_sub(self.last_progress) > step => {
                Decision::Fail(VmError::StepTimeout { secs: step.as_secs() })
            }
            _ => Decision::Wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;
    use Input::{Console, Drained, Event, Hello};

    const RUNNING: Input<'static> = Input::Tick { qemu_exited: false };
    const EXITED: Input<'static> = Input::Tick { qemu_exited: true };
    const PANIC: &str = "[    1.5] Kernel panic - not syncing: Attempted to kill init! ";

    /// Feeds `script` ((ms since spawn, input)) to a watchdog with a 60 s boot timeout and
    /// `step_s`; the last decision, as a word or the error's message.
    fn last(step_s: Option<u64>, script: &[(u64, Input<'static>)]) -> String {
        let mut w = Watchdog::new(Duration::from_secs(60), step_s.map(Duration::from_secs));
        let mut d = Decision::Wait;
        for (ms, input) in script {
            d = w.feed(*input, Duration::from_millis(*ms));
        }
        match d {
            Decision::Wait => "wait".into(),
            Decision::Drain => "drain".into(),
            Decision::QemuDied => "qemu died".into(),
            Decision::Fail(e) => e.to_string(),
        }
    }

    #[test_case(&[(60_000, RUNNING)], "wait" ; "the boot timeout is not reached at its last instant")]
    #[test_case(&[(60_001, RUNNING)], "no agent hello within 60s of boot" ; "no hello within the boot timeout")]
    #[test_case(&[(59_000, Hello), (61_000, RUNNING)], "wait" ; "a hello ends the boot timeout")]
    #[test_case(&[(1_000, Hello), (31_000, RUNNING)], "wait" ; "silence up to the step timeout is fine")]
    #[test_case(&[(1_000, Hello), (31_001, RUNNING)], "no progress from the agent for 30s" ; "silence longer than the step timeout")]
    #[test_case(&[(1_000, Hello), (20_000, Event), (50_000, RUNNING)], "wait" ; "an event restarts the step timeout")]
    #[test_case(&[(1_000, Hello), (20_000, Console("x")), (31_001, RUNNING)], "no progress from the agent for 30s" ; "console lines are no progress")]
    #[test_case(&[(30_000, Console("x")), (30_001, RUNNING)], "wait" ; "no step timeout before the hello")]
    fn timeouts(script: &[(u64, Input<'static>)], want: &str) {
        assert_eq!(last(Some(30), script), want);
    }

    #[test]
    fn without_a_step_timeout_silence_is_unlimited() {
        assert_eq!(last(None, &[(1_000, Hello), (86_400_000, RUNNING)]), "wait");
        assert_eq!(
            last(None, &[(60_001, RUNNING)]),
            "no agent hello within 60s of boot",
            "boot still applies"
        );
    }

    #[test_case(&[(1_000, Console(PANIC)), (1_300, RUNNING)], "wait" ; "the console gets its grace")]
    #[test_case(&[(1_000, Console(PANIC)), (1_301, RUNNING)], "kernel panic: [    1.5] Kernel panic - not syncing: Attempted to kill init!" ; "then the panic ends the run, trimmed")]
    #[test_case(&[(1_000, Console(PANIC)), (1_100, EXITED)], "wait" ; "QEMU exiting within the grace waits for it")]
    #[test_case(&[(59_900, Console(PANIC)), (60_100, RUNNING)], "wait" ; "the grace masks the boot timeout")]
    #[test_case(&[(1_000, Console(PANIC)), (1_001, Console("Kernel panic again")), (1_400, RUNNING)], "kernel panic: [    1.5] Kernel panic - not syncing: Attempted to kill init!" ; "the first panic line is kept")]
    #[test_case(&[(100, EXITED)], "drain" ; "QEMU exited: drain the console first")]
    #[test_case(&[(100, EXITED), (150, Drained)], "qemu died" ; "nothing in the console: QEMU died")]
    #[test_case(&[(100, EXITED), (150, Console(PANIC)), (150, Drained)], "kernel panic: [    1.5] Kernel panic - not syncing: Attempted to kill init!" ; "a panic in the drained console")]
    #[test_case(&[(70_000, EXITED)], "drain" ; "QEMU's exit goes before the boot timeout")]
    fn panics_and_exits(script: &[(u64, Input<'static>)], want: &str) {
        assert_eq!(last(Some(30), script), want);
    }

    #[test_case(&[(1_000, Hello), (2_000, Console(" reboot: Power down ")), (3_000, RUNNING)], "wait" ; "the channel gets a second for Done")]
    #[test_case(&[(1_000, Hello), (2_000, Console(" reboot: Power down ")), (3_001, RUNNING)], "the guest stopped before the agent finished: reboot: Power down" ; "then the stop is an error")]
    #[test_case(&[(2_000, Console("reboot: System halted")), (2_500, EXITED)], "drain" ; "QEMU exiting within the stop grace is an exit")]
    #[test_case(&[(2_000, Console("reboot: Restarting system")), (2_000, Console("reboot: System halted")), (3_001, EXITED)], "the guest stopped before the agent finished: reboot: Restarting system" ; "an expired stop goes before QEMU's exit")]
    #[test_case(&[(2_000, Console("reboot: System halted")), (2_100, Console(PANIC)), (3_500, RUNNING)], "kernel panic: [    1.5] Kernel panic - not syncing: Attempted to kill init!" ; "a panic goes before a stop")]
    fn guest_stops(script: &[(u64, Input<'static>)], want: &str) {
        assert_eq!(last(Some(30), script), want);
    }
}
