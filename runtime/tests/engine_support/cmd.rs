//! Commands with a deadline: an engine that hangs fails its step instead of the test run.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a command gave back. `code` is -1 when it was killed at its deadline (and `stderr`
/// then says so) or died of a signal.
#[derive(Debug, Clone)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// A one-line summary for a failed step: exit code and the tails of both streams.
    pub fn brief(&self) -> String {
        format!("exit {}, stdout {:?}, stderr {:?}", self.code, tail(&self.stdout), tail(&self.stderr))
    }

    /// Both streams, for output that an engine may put on either (a tty merges them).
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Ok when the exit code is `code` and stdout+stderr contain every one of `needles`.
    pub fn expect(&self, code: i32, needles: &[&str]) -> Result<(), String> {
        let all = self.all();
        if self.code != code {
            return Err(format!("want exit {code}; got {}", self.brief()));
        }
        match needles.iter().find(|n| !all.contains(*n)) {
            Some(n) => Err(format!("want output containing {n:?}; got {}", self.brief())),
            None => Ok(()),
        }
    }

    /// Ok when the command exited 0 and its stdout, trimmed, is `want`.
    pub fn expect_stdout(&self, want: &str) -> Result<(), String> {
        if self.code == 0 && self.stdout.trim() == want {
            Ok(())
        } else {
            Err(format!("want exit 0 and stdout {want:?}; got {}", self.brief()))
        }
    }
}

fn tail(s: &str) -> &str {
    let s = s.trim();
    match s.char_indices().rev().nth(400) {
        Some((i, _)) => &s[i..],
        None => s,
    }
}

/// Run `argv` with `env` added, `stdin` written then closed (or /dev/null), killed at `limit`.
pub fn run(argv: &[String], env: &[(String, String)], stdin: Option<&str>, limit: Duration) -> Out {
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]).stdout(Stdio::piped()).stderr(Stdio::piped());
    c.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = match c.spawn() {
        Ok(c) => c,
        Err(e) => return Out { code: -1, stdout: String::new(), stderr: format!("spawn {}: {e}", argv[0]) },
    };
    if let (Some(input), Some(mut w)) = (stdin, child.stdin.take()) {
        let input = input.to_owned();
        std::thread::spawn(move || {
            let _ = w.write_all(input.as_bytes());
        });
    }
    let reader = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut s);
            }
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out_t = reader(child.stdout.take().map(|r| Box::new(r) as Box<dyn Read + Send>));
    let err_t = reader(child.stderr.take().map(|r| Box::new(r) as Box<dyn Read + Send>));
    let deadline = Instant::now() + limit;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
        }
    };
    // A grandchild holding the pipes (a detached shim) must not block us: bounded join.
    let join = |t: std::thread::JoinHandle<String>| {
        let end = Instant::now() + Duration::from_secs(5);
        while !t.is_finished() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        if t.is_finished() {
            t.join().unwrap_or_default()
        } else {
            String::from("<output still open after exit>")
        }
    };
    let stdout = join(out_t);
    let mut stderr = join(err_t);
    if timed_out {
        stderr.push_str(&format!("\nTIMEOUT: {} killed after {limit:?}", argv.join(" ")));
    }
    Out { code: status.and_then(|s| s.code()).unwrap_or(-1), stdout, stderr }
}

/// `argv` as owned strings.
pub fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// `argv` run by `script`, so that the client has a terminal (`docker run -it`, `ctr run -t`).
pub fn under_script(client: &[String]) -> Vec<String> {
    let line = client.iter().map(|a| format!("'{}'", a.replace('\'', "'\\''"))).collect::<Vec<_>>().join(" ");
    argv(&["/usr/bin/script", "-qec", &line, "/dev/null"])
}
