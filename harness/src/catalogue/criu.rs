//! What the checkpoint assertions share: whether the runtime and CRIU can checkpoint here
//! (else a SKIP naming the reason, CRIU's own line when `criu check` refuses the kernel), and
//! one checkpoint → restore round trip of a container through the runtime's command line.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};

use super::{Container, Ctx, Verdict};
// PATH for CRIU when the caller has none (the guest agent): it runs `ip` and `tar` by name.
use crate::agent::exec::GUEST_PATH;

/// The container's init: a counter ticking every 0.2 s in /tmp (a tmpfs CRIU saves), its stdio
/// on the container's /dev/null so that no process of it holds a host file CRIU must resolve.
pub const COUNTER: &str =
    "exec </dev/null >/dev/null 2>&1; i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.2; done";

/// Error lines CRIU prints while probing optional features, before the real reason: a
/// helper's exit status, no `tun` device, a missing sock_diag module.
pub const NOISE: &[&str] = &["exited, status=1", "tun: ", "Diag module missing"];

/// The first line of a CRIU log or output that says why (not [`NOISE`]).
pub fn criu_reason(out: &str) -> String {
    out.lines()
        .filter_map(|l| l.find("Error (").map(|i| l[i..].trim()))
        .find(|l| !NOISE.iter().any(|n| l.contains(n)))
        .map(str::to_string)
        .or_else(|| out.lines().rev().map(str::trim).find(|l| !l.is_empty()).map(str::to_string))
        .unwrap_or_else(|| "no output".into())
}

fn find_criu() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join("criu"))
        .find(|p| p.is_file())
}

/// `lo` must be up for `criu check` (it probes TCP repair on a loopback socket); a fresh
/// guest has it down. On a host it is up already and nothing changes.
fn loopback_up() {
    let flags = std::fs::read_to_string("/sys/class/net/lo/flags").unwrap_or_default();
    let up = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).is_ok_and(|f| f & 1 == 1);
    if !up {
        let ip = ["/usr/sbin/ip", "/sbin/ip", "/bin/ip"].into_iter().find(|p| Path::new(p).exists());
        let _ = std::process::Command::new(ip.unwrap_or("ip")).args(["link", "set", "lo", "up"]).status();
    }
}

/// Why CRIU cannot work on this machine (checked once per process), `None` when it can.
pub fn criu_unusable() -> Option<String> {
    static REASON: OnceLock<Option<String>> = OnceLock::new();
    REASON
        .get_or_init(|| {
            let Some(criu) = find_criu() else {
                return Some("criu is not installed (apt-get install criu)".into());
            };
            loopback_up();
            let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
            let path = std::env::var_os("PATH").unwrap_or_else(|| GUEST_PATH.into());
            match std::process::Command::new(&criu).env("PATH", &path).arg("check").output() {
                Err(e) => Some(format!("{} check: {e}", criu.display())),
                Ok(o) if o.status.success() => super::criu_probe::probe(&criu, &path)
                    .map(|why| format!("{why} (kernel {}, criu check passes)", kernel.trim())),
                Ok(o) => {
                    let all = format!(
                        "{}{}",
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    );
                    Some(format!("criu check fails on kernel {}: {}", kernel.trim(), criu_reason(&all)))
                }
            }
        })
        .clone()
}

/// SKIP unless the runtime has a `checkpoint` command and CRIU works on this kernel.
pub fn ready(ctx: &Ctx) -> Result<(), Verdict> {
    let help = ctx.runtime_cmd(&["checkpoint", "--help"]);
    if help.code != 0 {
        return Err(Verdict::skip(format!(
            "{} has no checkpoint command (exit {}): {}",
            ctx.runtime.display(),
            help.code,
            help.stderr.lines().next().unwrap_or("").trim()
        )));
    }
    match criu_unusable() {
        Some(reason) => Err(Verdict::skip(reason)),
        None => Ok(()),
    }
}

/// The base config running [`COUNTER`]. glibc's rseq registration is turned off: CRIU 3.17
/// cannot dump a task with rseq on kernels without `PTRACE_GET_RSEQ_CONFIGURATION` (< 5.13),
/// the workaround CRIU documents.
pub fn counter_config(ctx: &Ctx) -> Value {
    let mut cfg = ctx.config(&["sh", "-c", COUNTER]);
    if let Some(env) = cfg["process"]["env"].as_array_mut() {
        env.push(json!("GLIBC_TUNABLES=glibc.pthread.rseq=0"));
    }
    cfg
}

/// The counter's current value inside `c`, read through its init's root from this side
/// (/proc/<pid>/root/tmp/count, the container's own tmpfs) rather than by an `exec` of `cat`,
/// a runtime round trip (~110 ms in a TCG guest) per poll. A read that lands between the
/// counter's truncate and its write (an empty file) is read again, for up to 100 ms.
pub fn count(c: &Container) -> Option<u64> {
    let path = format!("/proc/{}/root/tmp/count", c.pid);
    for _ in 0..20 {
        if let Some(n) = std::fs::read_to_string(&path).ok().and_then(|s| s.trim().parse().ok()) {
            return Some(n);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// Removes a checkpoint's image directory when dropped.
#[derive(Debug)]
pub struct Images(pub PathBuf);

impl Drop for Images {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Start `cfg` (the counter running), let `before` look at it, checkpoint it, restore it
/// under the same id from the same bundle, and return the restored container with what
/// `before` found. A failing checkpoint or restore is a FAIL with the runtime's words.
pub fn round_trip<T>(
    ctx: &mut Ctx,
    cfg: Value,
    before: impl FnOnce(&Ctx, &Container) -> Result<T, Verdict>,
) -> Result<(Container, T, Images), Verdict> {
    ready(ctx)?;
    let c = ctx.start(cfg)?;
    if !Ctx::wait_until(Duration::from_secs(20), || count(&c).is_some_and(|n| n >= 2)) {
        return Err(Verdict::fail("the counter in the container never reached 2 before the checkpoint"));
    }
    let seen = before(ctx, &c)?;
    let images = Images(ctx.dir().join("images").join(&c.id));
    let img = images.0.to_string_lossy().into_owned();
    let out = ctx.runtime_cmd(&["checkpoint", "--image-path", &img, &c.id]);
    if out.code != 0 {
        // Which processes the container held when CRIU refused it (a leftover is the usual cause).
        let ps = ctx.runtime_cmd(&["ps", &c.id]);
        return Err(Verdict::fail(format!(
            "checkpoint failed ({}): {}; processes: {}",
            out.code,
            out.stderr.trim(),
            ps.stdout.split_whitespace().collect::<Vec<_>>().join(" ")
        )));
    }
    let bundle: PathBuf = ctx.dir().join("bundles").join(&c.id);
    let b = bundle.to_string_lossy().into_owned();
    let out = ctx.runtime_cmd(&["restore", "-d", "--image-path", &img, "--bundle", &b, &c.id]);
    if out.code != 0 {
        return Err(Verdict::fail(format!("restore failed ({}): {}", out.code, out.stderr.trim())));
    }
    let pid = ctx.state(&c.id).and_then(|s| s["pid"].as_i64()).unwrap_or(0) as i32;
    if pid <= 0 || !Path::new(&format!("/proc/{pid}")).exists() {
        return Err(Verdict::fail(format!("state after restore shows no live init (pid {pid})")));
    }
    Ok((Container { id: c.id, pid }, seen, images))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_is_criu_s_own_line() {
        let out = "Error (criu/util.c:642): exited, status=1\n\
                   Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds\n";
        assert_eq!(criu_reason(out), "Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds");
        assert_eq!(criu_reason("Looks good.\n"), "Looks good.");
        let out = "Error (criu/tun.c:85): tun: Unable to create tun: No such file or directory\n\
                   Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds\n";
        assert!(criu_reason(out).contains("vDSO"), "the tun probe is noise");
        assert_eq!(criu_reason(""), "no output");
    }
}
