//! A small QMP client (QEMU's JSON machine protocol) over the unix socket QEMU connects to:
//! what saving and restoring a snapshot needs — stop, migrate, migrate-incoming, cont —
//! waiting on replies (the end of a migration is polled every 2 ms), never on fixed sleeps.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A QMP exchange that failed, naming the command.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// The socket failed or closed (QEMU died).
    #[error("QMP {command}: {source}")]
    Io {
        /// The command being run.
        command: String,
        /// errno (or EOF).
        source: std::io::Error,
    },
    /// QEMU answered with an error.
    #[error("QMP {command}: {class}: {desc}")]
    Command {
        /// The command.
        command: String,
        /// QMP error class.
        class: String,
        /// QEMU's description.
        desc: String,
    },
    /// No answer in time.
    #[error("QMP {command}: no answer within {secs}s")]
    Timeout {
        /// The command.
        command: String,
        /// The timeout.
        secs: u64,
    },
    /// A migration ended in another state than `completed`.
    #[error("migration {status}{detail}")]
    Migration {
        /// The final status (e.g. `failed`).
        status: String,
        /// QEMU's error description, if any.
        detail: String,
    },
}

/// One QMP connection, capabilities negotiated.
#[derive(Debug)]
pub struct Qmp {
    r: BufReader<UnixStream>,
    w: UnixStream,
    events: Vec<Value>,
    deadline: Instant,
}

impl Qmp {
    /// Reads the greeting and negotiates; every later call must finish before `deadline`.
    pub fn connect(s: UnixStream, deadline: Instant) -> Result<Qmp, QmpError> {
        let io = |source| QmpError::Io { command: "greeting".into(), source };
        let w = s.try_clone().map_err(io)?;
        let mut q = Qmp { r: BufReader::new(s), w, events: vec![], deadline };
        q.read_value("greeting")?;
        q.execute("qmp_capabilities", json!({}))?;
        Ok(q)
    }

    fn read_value(&mut self, command: &str) -> Result<Value, QmpError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(QmpError::Timeout { command: command.into(), secs: 0 });
        }
        let io = |source| QmpError::Io { command: command.into(), source };
        self.r.get_ref().set_read_timeout(Some(left)).map_err(io)?;
        let mut line = String::new();
        match self.r.read_line(&mut line) {
            Ok(0) => Err(io(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(_) => serde_json::from_str(&line).map_err(|e| io(std::io::Error::other(e))),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                Err(QmpError::Timeout { command: command.into(), secs: 0 })
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Runs a command and returns its `return` value; events read meanwhile are kept.
    pub fn execute(&mut self, command: &str, arguments: Value) -> Result<Value, QmpError> {
        let msg = json!({ "execute": command, "arguments": arguments });
        let io = |source| QmpError::Io { command: command.into(), source };
        self.w.write_all(format!("{msg}\n").as_bytes()).map_err(io)?;
        loop {
            let v = self.read_value(command)?;
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                return Err(QmpError::Command {
                    command: command.into(),
                    class: s("class"),
                    desc: s("desc"),
                });
            }
            self.events.push(v);
        }
    }

    /// Moves the deadline of later calls.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }

    /// Turns a migration capability on.
    pub fn set_capability(&mut self, name: &str) -> Result<(), QmpError> {
        let caps = json!({ "capabilities": [{ "capability": name, "state": true }] });
        self.execute("migrate-set-capabilities", caps).map(drop)
    }

    /// Polls `query-migrate` until the migration (outgoing or incoming) is over.
    pub fn wait_migration(&mut self) -> Result<(), QmpError> {
        loop {
            let r = self.execute("query-migrate", json!({}))?;
            match r.get("status").and_then(Value::as_str) {
                Some("completed") => return Ok(()),
                Some(s @ ("failed" | "cancelled")) => {
                    let detail = r.get("error-desc").and_then(Value::as_str).map(|d| format!(": {d}"));
                    return Err(QmpError::Migration { status: s.into(), detail: detail.unwrap_or_default() });
                }
                _ => {}
            }
            if Instant::now() > self.deadline {
                return Err(QmpError::Timeout { command: "query-migrate".into(), secs: 0 });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}
