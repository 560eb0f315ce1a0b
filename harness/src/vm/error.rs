//! Why a VM run is an ERROR: each cause with what failed (command, path, timeout, the
//! kernel's last words).

use crate::protocol::PROTOCOL_VERSION;

/// Why a VM run is an ERROR.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// QEMU could not be started.
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        /// The command.
        command: String,
        /// errno.
        source: std::io::Error,
    },
    /// Temp dir / socket setup failed.
    #[error("{what}: {source}")]
    Setup {
        /// What was being set up (with its path).
        what: String,
        /// errno.
        source: std::io::Error,
    },
    /// No hello from the agent within the boot timeout.
    #[error("no agent hello within {secs}s of boot")]
    BootTimeout {
        /// The timeout.
        secs: u64,
    },
    /// No event from the agent within the step timeout.
    #[error("no progress from the agent for {secs}s")]
    StepTimeout {
        /// The timeout.
        secs: u64,
    },
    /// The console showed a kernel panic.
    #[error("kernel panic: {line}")]
    KernelPanic {
        /// The panic line.
        line: String,
    },
    /// QEMU exited before the agent said `Done`.
    #[error("QEMU exited before the agent finished ({status}){stderr}")]
    QemuDied {
        /// Exit status.
        status: String,
        /// QEMU's stderr, if any.
        stderr: String,
    },
    /// The guest halted or powered off without the agent saying `Done`.
    #[error("the guest stopped before the agent finished: {line}")]
    GuestStopped {
        /// The kernel's last words.
        line: String,
    },
    /// Saving or restoring a snapshot failed (QMP).
    #[error("snapshot: {0}")]
    Snapshot(#[from] super::qmp::QmpError),
    /// The agent speaks another protocol version.
    #[error("agent speaks protocol v{guest}, host v{PROTOCOL_VERSION}")]
    Version {
        /// The guest's version.
        guest: u32,
    },
}

impl VmError {
    /// Whether a VM that ended with this is worth one more boot: it went silent (boot or step
    /// timeout) or its kernel panicked, not something a second boot would only repeat. The
    /// matrix retries a cell on it, `isolab migrate` a guest.
    pub fn worth_a_retry(&self) -> bool {
        matches!(
            self,
            VmError::StepTimeout { .. } | VmError::BootTimeout { .. } | VmError::KernelPanic { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::VmError;
    use test_case::test_case;

    #[test_case(VmError::BootTimeout { secs: 1 } => true ; "boot timeout")]
    #[test_case(VmError::StepTimeout { secs: 1 } => true ; "step timeout")]
    #[test_case(VmError::KernelPanic { line: "Kernel panic - not syncing".into() } => true ; "panic")]
    #[test_case(VmError::QemuDied { status: "exit status: 1".into(), stderr: String::new() } => false ; "qemu died")]
    #[test_case(VmError::GuestStopped { line: "reboot: Power down".into() } => false ; "guest stopped")]
    #[test_case(VmError::Version { guest: 0 } => false ; "protocol version")]
    fn worth_a_retry(e: VmError) -> bool {
        e.worth_a_retry()
    }
}
