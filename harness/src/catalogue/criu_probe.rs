//! Can CRIU restore anything on this kernel? `criu check` can pass where a restore still
//! fails (CRIU 3.17.1 on Debian's 5.10 under TCG: the restored task dies with SIGSEGV in
//! CRIU's restorer). The probe dumps and restores a plain process tree — a shell and its
//! `sleep` in their own pid namespace, no runtime involved — so that a kernel where CRIU
//! itself cannot work is a SKIP with CRIU's reason, and a FAIL always means the runtime.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::criu::criu_reason;
use super::Ctx;

fn children(pid: u32) -> Vec<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    text.split_whitespace().filter_map(|p| p.parse().ok()).collect()
}

fn log_reason(dir: &Path, log: &str) -> String {
    criu_reason(&std::fs::read_to_string(dir.join(log)).unwrap_or_default())
}

/// Removes the probe's directory and kills what it restored.
struct Cleanup(PathBuf, Option<i32>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(pid) = self.1 {
            // SAFETY: kill(2) with a pid we restored and SIGKILL; no memory is involved.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `None` when CRIU dumped and restored the probe; else why not, in CRIU's words.
pub fn probe(criu: &Path, path: &std::ffi::OsStr) -> Option<String> {
    let dir = std::env::temp_dir().join(format!("isolab-criu-probe-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).ok()?;
    let mut guard = Cleanup(dir.clone(), None);
    let unshare = Command::new("unshare")
        .args(["-p", "-f", "setsid", "sh", "-c", "while :; do sleep 0.2; done"])
        .env("PATH", path)
        .env("GLIBC_TUNABLES", "glibc.pthread.rseq=0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut unshare = match unshare {
        Ok(c) => c,
        Err(e) => return Some(format!("probe: cannot run unshare: {e}")),
    };
    let mut init = None;
    Ctx::wait_until(Duration::from_secs(10), || {
        init = children(unshare.id()).first().copied().filter(|p| !children(*p).is_empty());
        init.is_some()
    });
    let Some(init) = init else {
        let _ = unshare.kill();
        let _ = unshare.wait();
        return Some("probe: the shell in a new pid namespace did not start".into());
    };
    let d = dir.to_string_lossy().into_owned();
    let criu_cmd = |args: &[&str]| Command::new(criu).env("PATH", path).args(args).output();
    let dump = criu_cmd(&["dump", "-t", &init.to_string(), "-D", &d, "-o", "dump.log", "--shell-job"]);
    if !dump.as_ref().is_ok_and(|o| o.status.success()) {
        let _ = unshare.kill();
        let _ = unshare.wait();
        return Some(format!("criu dump of a plain process fails: {}", log_reason(&dir, "dump.log")));
    }
    let _ = unshare.wait();
    let pidfile = dir.join("pid").to_string_lossy().into_owned();
    let restore =
        criu_cmd(&["restore", "-D", &d, "-o", "restore.log", "-d", "--shell-job", "--pidfile", &pidfile]);
    let pid: Option<i32> = std::fs::read_to_string(dir.join("pid")).ok().and_then(|p| p.trim().parse().ok());
    guard.1 = pid;
    if !restore.as_ref().is_ok_and(|o| o.status.success()) {
        return Some(format!("criu restore of a plain process fails: {}", log_reason(&dir, "restore.log")));
    }
    None
}
