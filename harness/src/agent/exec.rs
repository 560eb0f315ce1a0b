//! Running the host's request inside the guest: commands, the interactive shell.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::EventSink;
use crate::protocol::{Event, Stream};

/// PATH for commands run by the agent.
pub const GUEST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const HEARTBEAT: Duration = Duration::from_secs(5);

enum Msg {
    Line(Stream, String),
    Eof,
}

fn pump<R: Read + Send + 'static>(r: R, stream: Stream, tx: mpsc::Sender<Msg>) {
    std::thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']).to_string();
                    if tx.send(Msg::Line(stream, line)).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = tx.send(Msg::Eof);
    });
}

/// Runs `argv`, streaming output lines as events, then sends `CommandExit`.
pub fn run_command(sink: &EventSink, argv: &[String], env: &[(String, String)], timeout_secs: u64) {
    let Some((prog, args)) = argv.split_first() else {
        sink.send(&Event::Error { message: "exec: empty argv".into() });
        return;
    };
    let mut cmd = Command::new(prog);
    cmd.args(args).env("PATH", GUEST_PATH).env("HOME", "/root").env("TERM", "linux");
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            sink.send(&Event::Error { message: format!("exec {prog}: {e}") });
            sink.send(&Event::CommandExit { code: 127, signal: None });
            return;
        }
    };
    let (tx, rx) = mpsc::channel();
    if let Some(o) = child.stdout.take() {
        pump(o, Stream::Stdout, tx.clone());
    }
    if let Some(e) = child.stderr.take() {
        pump(e, Stream::Stderr, tx.clone());
    }
    drop(tx);
    let started = Instant::now();
    let mut open_streams = 2;
    let mut status = None;
    let mut last_output = Instant::now();
    loop {
        if status.is_none() {
            status = child.try_wait().ok().flatten();
        }
        if status.is_some() && open_streams == 0 {
            break;
        }
        // A background grandchild may hold the pipes open: once the command has exited and
        // its output has been quiet for a while, stop waiting for EOF.
        if status.is_some() && last_output.elapsed() > Duration::from_millis(500) {
            break;
        }
        if timeout_secs > 0 && status.is_none() && started.elapsed() > Duration::from_secs(timeout_secs) {
            sink.send(&Event::Error {
                message: format!("{prog}: timed out after {timeout_secs}s, killing it"),
            });
            let _ = child.kill();
        }
        let wait = if status.is_some() { Duration::from_millis(50) } else { Duration::from_millis(100) };
        match rx.recv_timeout(wait) {
            Ok(Msg::Line(stream, line)) => {
                last_output = Instant::now();
                sink.send(&Event::CommandOutput { stream, line });
            }
            Ok(Msg::Eof) => open_streams -= 1,
            Err(mpsc::RecvTimeoutError::Timeout) => sink.heartbeat_if_due(HEARTBEAT),
            Err(mpsc::RecvTimeoutError::Disconnected) => open_streams = 0,
        }
    }
    let status = status.or_else(|| child.wait().ok());
    use std::os::unix::process::ExitStatusExt;
    let (code, signal) = match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => (c, None),
            (None, Some(sig)) => (128 + sig, Some(sig)),
            _ => (255, None),
        },
        None => (255, None),
    };
    crate::sys::reap_zombies();
    sink.send(&Event::CommandExit { code, signal });
}

/// Runs an interactive busybox shell on the console (ttyS0) with it as controlling terminal.
pub fn run_shell(sink: &EventSink) {
    let tty = |_| std::fs::OpenOptions::new().read(true).write(true).open("/dev/ttyS0");
    let (i, o, e) = match (tty(0), tty(1), tty(2)) {
        (Ok(i), Ok(o), Ok(e)) => (i, o, e),
        _ => {
            sink.send(&Event::Error { message: "shell: cannot open /dev/ttyS0".into() });
            return;
        }
    };
    let res = Command::new("/bin/busybox")
        .args(["setsid", "-c", "/bin/sh", "-l"])
        .env("PATH", GUEST_PATH)
        .env("HOME", "/root")
        .env("TERM", "linux")
        .env("PS1", "isolab:\\w# ")
        .stdin(i)
        .stdout(o)
        .stderr(e)
        .status();
    let code = match res {
        Ok(s) => s.code().unwrap_or(255),
        Err(e) => {
            sink.send(&Event::Error { message: format!("shell: {e}") });
            127
        }
    };
    sink.send(&Event::CommandExit { code, signal: None });
}
