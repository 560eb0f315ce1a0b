//! The host ⇄ guest protocol: JSON lines over the VM's second serial port (`ttyS1`).
//!
//! The kernel console stays on `ttyS0`; nothing but this protocol is written on `ttyS1`.
//! Flow: the guest agent boots and sends [`Event::Hello`]; the host answers with one
//! [`Request`] line; the agent streams [`Event`]s, one JSON object per line, ending with
//! [`Event::Done`]. A VM restored from a snapshot (taken while its agent waited after the
//! hello) gets a [`Resume`] line first; the agent answers it with the hello again, then reads
//! the request as usual. Because every event is a complete line, a stream cut short by a crash is
//! still useful up to its last line. Unknown event types decode as an error the host reports
//! with the raw line, never silently.

use serde::{Deserialize, Serialize};

pub use crate::outcome::Outcome;

/// Version of this protocol; bumped on any incompatible change. The host refuses a guest whose
/// hello carries another version.
pub const PROTOCOL_VERSION: u32 = 1;

/// Errors encoding or decoding a protocol line.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// A line is not a valid JSON message of the expected type.
    #[error("malformed protocol line {line:?}: {source}")]
    Malformed {
        /// The offending line (trimmed).
        line: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A message could not be serialized.
    #[error("cannot encode protocol message: {0}")]
    Encode(serde_json::Error),
}

/// Which cgroup hierarchy the guest mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CgroupMode {
    /// Legacy hierarchy: tmpfs at /sys/fs/cgroup, one mount per controller.
    V1,
    /// Unified hierarchy: cgroup2 at /sys/fs/cgroup.
    #[default]
    V2,
}

impl CgroupMode {
    /// The value used on the kernel command line (`isolab.cgroup=`) and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupMode::V1 => "v1",
            CgroupMode::V2 => "v2",
        }
    }

    /// Parses `v1` / `v2`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "v1" | "1" => Some(CgroupMode::V1),
            "v2" | "2" => Some(CgroupMode::V2),
            _ => None,
        }
    }
}

/// The single request the host sends after the guest's hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Must equal [`PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// What to do.
    pub action: Action,
}

/// Sent by the host to a VM restored from a snapshot, before its [`Request`]: what makes this
/// copy of the snapshot its own. The agent applies it and answers with the snapshot's
/// [`Event::Hello`] again (its `phases_ms` ending with `restored`), then reads the request.
/// Copies restored from one snapshot share every byte of memory, so without this they would
/// share the kernel's random state and the wall clock of the moment of the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resume {
    /// Fresh random bytes from the host, hex: mixed into the guest's entropy pool (credited)
    /// and the CRNG reseeded from it.
    pub seed_hex: String,
    /// The host's wall clock, nanoseconds since the Unix epoch: the guest's `CLOCK_REALTIME`.
    pub unix_time_ns: u64,
    /// The runtime under test (and its libraries) waits in the payload device: unpack it.
    #[serde(default)]
    pub payload: bool,
}

/// What the agent should do once booted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Nothing: answer `Done` at once (boot checks and timing).
    Idle,
    /// Run a command and stream its output.
    Exec {
        /// Program and arguments; looked up in `PATH` (busybox applets, the runtime).
        argv: Vec<String>,
        /// Extra environment variables.
        #[serde(default)]
        env: Vec<(String, String)>,
        /// Kill the command after this many seconds (0 = no limit).
        #[serde(default)]
        timeout_secs: u64,
    },
    /// Start an interactive shell on the console (ttyS0) and finish when it exits.
    Shell,
    /// Run isolation assertions against a runtime; one [`Event::Result`] per assertion.
    /// (Defined now so the protocol need not change for the catalogue.)
    Assert {
        /// Path of the runtime binary in the guest.
        runtime: String,
        /// Assertion ids to run; empty = all.
        #[serde(default)]
        ids: Vec<String>,
        /// The config every bundle starts from (absent: `spec`, isolab's own).
        #[serde(default)]
        base: crate::catalogue::BaseConfig,
    },
}

/// Which output stream a command line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Guest → host events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// First line after boot: who the guest is.
    Hello {
        /// The guest's [`PROTOCOL_VERSION`].
        protocol_version: u32,
        /// `uname -r`.
        kernel_release: String,
        /// The cgroup hierarchy mounted.
        cgroup_mode: CgroupMode,
        /// Controllers usable in that hierarchy (v1: one mount each; v2: cgroup.controllers).
        cgroup_controllers: Vec<String>,
        /// Modules loaded, in load order.
        modules_loaded: Vec<String>,
        /// Problems met while booting (module or mount failures); empty when all went well.
        boot_warnings: Vec<String>,
        /// Guest uptime when the hello was sent, milliseconds.
        uptime_ms: u64,
        /// Uptime (ms) at the end of each agent boot phase, for boot-time analysis.
        #[serde(default)]
        phases_ms: Vec<(String, u64)>,
    },
    /// A free-form progress message from the agent.
    Log {
        /// The message.
        message: String,
    },
    /// Still alive (sent periodically while a command runs).
    Heartbeat {
        /// Guest uptime, milliseconds.
        uptime_ms: u64,
    },
    /// One line of a command's output.
    CommandOutput {
        /// Which stream.
        stream: Stream,
        /// The line, without its newline (lossy UTF-8).
        line: String,
    },
    /// The command finished.
    CommandExit {
        /// Exit code; for a signal death 128 + signal number.
        code: i32,
        /// The signal that killed it, if any.
        signal: Option<i32>,
    },
    /// Result of one assertion.
    Result {
        /// Stable assertion id.
        id: String,
        /// Outcome.
        outcome: Outcome,
        /// Why (skip reason, failure detail).
        #[serde(default)]
        detail: String,
        /// How long it took, milliseconds.
        #[serde(default)]
        duration_ms: u64,
    },
    /// The agent could not do what was asked.
    Error {
        /// What went wrong.
        message: String,
    },
    /// Last event: the agent is about to power off.
    Done,
}

/// Encodes a message as one line (with trailing `\n`).
pub fn encode_line<T: Serialize>(msg: &T) -> Result<String, ProtocolError> {
    let mut s = serde_json::to_string(msg).map_err(ProtocolError::Encode)?;
    s.push('\n');
    Ok(s)
}

/// Decodes one line (surrounding whitespace and a `\r` are ignored).
pub fn decode_line<T: for<'de> Deserialize<'de>>(line: &str) -> Result<T, ProtocolError> {
    let line = line.trim();
    serde_json::from_str(line).map_err(|source| ProtocolError::Malformed { line: line.to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case(Event::Done, r#"{"event":"done"}"# ; "done")]
    #[test_case(Event::CommandExit { code: 3, signal: None }, r#"{"event":"command_exit","code":3,"signal":null}"# ; "exit")]
    #[test_case(Event::CommandOutput { stream: Stream::Stderr, line: "x".into() }, r#"{"event":"command_output","stream":"stderr","line":"x"}"# ; "output")]
    #[test_case(Event::Result { id: "pid.init".into(), outcome: Outcome::Skip, detail: "no".into(), duration_ms: 1 }, r#"{"event":"result","id":"pid.init","outcome":"SKIP","detail":"no","duration_ms":1}"# ; "result")]
    fn event_encoding(ev: Event, json: &str) {
        assert_eq!(encode_line(&ev).unwrap(), format!("{json}\n"));
        assert_eq!(decode_line::<Event>(json).unwrap(), ev);
    }

    #[test_case(Action::Idle ; "idle")]
    #[test_case(Action::Shell ; "shell")]
    #[test_case(Action::Exec { argv: vec!["uname".into(), "-r".into()], env: vec![("A".into(), "b".into())], timeout_secs: 5 } ; "exec")]
    #[test_case(Action::Assert { runtime: "/usr/bin/isorun".into(), ids: vec![], base: Default::default() } ; "assert")]
    #[test_case(Action::Assert { runtime: "/r".into(), ids: vec!["a".into()], base: crate::catalogue::BaseConfig { name: "mine".into(), contents: Some("{}".into()) } } ; "assert with a file base")]
    fn request_roundtrip(action: Action) {
        let req = Request { protocol_version: PROTOCOL_VERSION, action };
        let line = encode_line(&req).unwrap();
        assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
        assert_eq!(decode_line::<Request>(&line).unwrap(), req);
    }

    #[test]
    fn resume_and_request_lines_are_told_apart() {
        let r = Resume { seed_hex: "00ff".into(), unix_time_ns: 1, payload: true };
        let line = encode_line(&r).unwrap();
        assert_eq!(decode_line::<Resume>(&line).unwrap(), r);
        assert!(decode_line::<Request>(&line).is_err(), "a resume line is not a request");
        let req = encode_line(&Request { protocol_version: PROTOCOL_VERSION, action: Action::Idle }).unwrap();
        assert!(decode_line::<Resume>(&req).is_err(), "a request line is not a resume");
    }

    #[test]
    fn hello_roundtrip_with_crlf() {
        let ev = Event::Hello {
            protocol_version: 1,
            kernel_release: "6.1.0-50-cloud-amd64".into(),
            cgroup_mode: CgroupMode::V1,
            cgroup_controllers: vec!["cpu".into()],
            modules_loaded: vec!["veth".into()],
            boot_warnings: vec![],
            uptime_ms: 1234,
            phases_ms: vec![("start".into(), 1000)],
        };
        let line = encode_line(&ev).unwrap().replace('\n', "\r\n");
        assert_eq!(decode_line::<Event>(&line).unwrap(), ev);
    }

    #[test_case("" ; "empty")]
    #[test_case("{\"event\":\"bogus\"}" ; "unknown event")]
    #[test_case("[    1.234] random kernel noise" ; "noise")]
    fn malformed_lines_are_errors(line: &str) {
        let err = decode_line::<Event>(line).unwrap_err();
        assert!(matches!(err, ProtocolError::Malformed { .. }));
    }

    #[test_case("v1", Some(CgroupMode::V1) ; "v1")]
    #[test_case("v2", Some(CgroupMode::V2) ; "v2")]
    #[test_case("v3", None ; "bad")]
    fn cgroup_mode_parse(s: &str, want: Option<CgroupMode>) {
        assert_eq!(CgroupMode::parse(s), want);
    }
}
