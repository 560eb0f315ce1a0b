//! Escapes through what the runtime hands the container: a host fd left open (CVE-2024-21626:
//! `process.cwd` or `exec --cwd` of `/proc/self/fd/N` lands on a host directory) and the
//! runtime's own process, visible in the container's pid namespace while it sets up an `exec`
//! (CVE-2016-9962: its fds, cwd and root opened through /proc from inside).
//!
//! Each attempt reads a marker file the host wrote outside the rootfs; reading it proves the
//! escape and changes nothing.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use super::escape::host_marker;
use super::util::{add_cap, drop_namespace, unchanged};
use super::{Assertion, Container, Ctx, Need, Verdict};
use crate::v;

/// The fd numbers tried as `/proc/self/fd/N`.
const FDS: std::ops::Range<u32> = 3..32;

/// The assertions of this theme.
pub fn assertions() -> Vec<Assertion> {
    vec![
        Assertion {
            id: "escape.cve_2024_21626_fds",
            description: "CVE-2024-21626: no fd >= 3 of the init or of an exec'd process is a host file or directory (host view of /proc/PID/fd)",
            needs: &[],
            check: fds,
            // The control is a runtime that leaks an fd (a wrapper adding --preserve-fds):
            // harness/tests/catalogue_escape_fds.rs.
            weaken: unchanged,
        },
        Assertion {
            id: "escape.cve_2024_21626_cwd",
            description: "CVE-2024-21626: process.cwd and exec --cwd of /proc/self/fd/N (N in 3..32), and a cd there from inside, never reach a host directory",
            needs: &[],
            check: cwd,
            weaken: unchanged,
        },
        Assertion {
            id: "escape.cve_2016_9962_exec_ptrace",
            description: "CVE-2016-9962: while exec runs, a process inside cannot reach a host file through /proc/N/{fd,cwd,root} of any process it sees",
            needs: &[Need::Namespace("pid")],
            check: exec_race,
            weaken: no_pid_ns_with_ptrace,
        },
    ]
}

/// Negative control: the host's processes visible and traceable.
fn no_pid_ns_with_ptrace(cfg: &mut Value) {
    drop_namespace(cfg, "pid");
    add_cap(cfg, "CAP_SYS_PTRACE");
}

/// The fds >= 3 of `pid` (host view) that are files outside `rootfs` (pipes, sockets and
/// anonymous inodes are no path; a /dev node of the container shows as /dev/...).
fn foreign_fds(pid: i32, rootfs: &Path) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    let mut bad = Vec::new();
    for e in dir.flatten() {
        let n: u32 = e.file_name().to_string_lossy().parse().unwrap_or(0);
        let Ok(target) = std::fs::read_link(e.path()) else { continue };
        let t = target.to_string_lossy();
        // A memfd (a runtime's sealed copy of itself) is no host file either; a container's
        // own /dev node shows as /dev/... too, so that one is compared with the host's node.
        let harmless = !t.starts_with('/')
            || target.starts_with(rootfs)
            || t.starts_with("/memfd:")
            || (t.starts_with("/dev/") && !same_file(&e.path(), &target));
        if n >= 3 && !harmless {
            bad.push(format!("pid {pid} fd {n} -> {t}"));
        }
    }
    bad
}

/// Whether two paths are the same inode (both followed).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => (x.dev(), x.ino()) == (y.dev(), y.ino()),
        _ => false,
    }
}

/// The foreign fds (see [`foreign_fds`]) the exec'd process `pid` holds once its execve is
/// complete. execve shows the new cmdline before it closes the O_CLOEXEC fds (the kernel's
/// begin_new_exec: exec_mmap, then do_close_on_exec), so a reading in that window lists the
/// runtime's own fds (seen once in a TCG guest: `fd 5 -> /sys/fs/cgroup/isorun/<id>`, gone an
/// instant later). A fd counts when it is there before and still there once the process
/// sleeps (state S, in `sleep`'s nanosleep): only `sleep` itself could close it then, and it
/// does not, so a fd the runtime handed it is in both readings.
fn handed_fds(pid: i32, rootfs: &Path) -> Vec<String> {
    let first = foreign_fds(pid, rootfs);
    if first.is_empty() {
        return first;
    }
    let _ = Ctx::wait_until(Duration::from_secs(5), || proc_state(pid) == Some('S'));
    let second = foreign_fds(pid, rootfs);
    first.into_iter().filter(|f| second.contains(f)).collect()
}

/// The state letter of `/proc/<pid>/stat` (R, S, D, Z, ...).
fn proc_state(pid: i32) -> Option<char> {
    state_letter(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The state field of a `/proc/<pid>/stat` line: the first one after the command name, which
/// is in parentheses and may itself hold spaces and `)`.
fn state_letter(stat: &str) -> Option<char> {
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

fn runs_sleep(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep\0"))
}

/// The processes in `c`'s pid namespace other than its init (host pids).
fn others_in(c: &Container) -> Vec<i32> {
    let ns = std::fs::read_link(format!("/proc/{}/ns/pid", c.pid)).ok();
    let Ok(procs) = std::fs::read_dir("/proc") else { return Vec::new() };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|p| *p != c.pid && ns.is_some() && std::fs::read_link(format!("/proc/{p}/ns/pid")).ok() == ns)
        .collect()
}

fn fds(ctx: &mut Ctx) -> Verdict {
    let c = v!(ctx.start(ctx.config(&["sleep", "300"])));
    let rootfs = ctx.rootfs().to_owned();
    let mut bad = foreign_fds(c.pid, &rootfs);
    let mut seen = 0;
    let ctx_ref = &*ctx;
    std::thread::scope(|s| {
        let exec = s.spawn(|| ctx_ref.exec(&c, &["sleep", "20"]));
        // Look at the exec'd process as it runs. Once it runs `sleep` its fds are the ones
        // the runtime handed it (the runtime's own transient process is CVE-2016-9962's
        // business, checked from inside there); once looked at, it is killed, so the exec
        // returns then rather than after a fixed sleep.
        Ctx::wait_until(Duration::from_secs(30), || {
            for p in others_in(&c).into_iter().filter(|p| runs_sleep(*p)) {
                seen += 1;
                bad.extend(handed_fds(p, &rootfs));
                // SAFETY: kill(2) with a pid and a signal number has no memory effects; `p`
                // is the exec'd `sleep` in the container's pid namespace, just inspected.
                unsafe {
                    libc::kill(p, libc::SIGKILL);
                }
            }
            exec.is_finished()
        });
    });
    bad.sort();
    bad.dedup();
    if seen == 0 {
        return Verdict::error("never saw the exec'd process in the container's pid namespace");
    }
    Verdict::check(bad.is_empty(), || format!("host files open in the container: {}", bad.join("; ")))
}

/// `cat` of the marker through a relative path: from a host directory it climbs to the host's
/// root and reaches the marker; from inside the rootfs `..` stops at its root.
fn climb(marker: &Path) -> String {
    format!(
        "cat {}{} 2>/dev/null; echo",
        "../".repeat(24),
        marker.display().to_string().trim_start_matches('/')
    )
}

fn cwd(ctx: &mut Ctx) -> Verdict {
    let (marker, content) = v!(host_marker(ctx, "cwd"));
    let script = climb(&marker);
    let mut hits = Vec::new();
    for n in FDS {
        let mut cfg = ctx.config(&["sh", "-c", &script]);
        cfg["process"]["cwd"] = json!(format!("/proc/self/fd/{n}"));
        let out = v!(ctx.run(cfg));
        if out.stdout.contains(&content) {
            hits.push(format!("process.cwd /proc/self/fd/{n}"));
        }
    }
    // The same fds from the process itself: a leaked one is a door even when the runtime
    // refuses it as a cwd.
    let itself = format!(
        "for n in $(seq {} {}); do (cd /proc/self/fd/$n 2>/dev/null && {script}); done",
        FDS.start,
        FDS.end - 1
    );
    let out = v!(ctx.run(ctx.config(&["sh", "-c", &itself])));
    if out.stdout.contains(&content) {
        hits.push("cd /proc/self/fd/N in the init".to_owned());
    }
    let c = v!(ctx.start(ctx.config(&["sleep", "300"])));
    if ctx.exec(&c, &["sh", "-c", &itself]).stdout.contains(&content) {
        hits.push("cd /proc/self/fd/N in an exec'd process".to_owned());
    }
    for n in FDS {
        let dir = format!("/proc/self/fd/{n}");
        let out = ctx.runtime_cmd(&["exec", "--cwd", &dir, &c.id, "sh", "-c", &script]);
        if out.stdout.contains(&content) {
            hits.push(format!("exec --cwd /proc/self/fd/{n}"));
        }
    }
    Verdict::check(hits.is_empty(), || {
        format!("the host marker was read from a host cwd through: {}", hits.join(", "))
    })
}

fn exec_race(ctx: &mut Ctx) -> Verdict {
    let (marker, content) = v!(host_marker(ctx, "ptrace"));
    let m = marker.display().to_string();
    let up = climb(&marker).replace(" 2>/dev/null; echo", "");
    // Every process the watcher sees but itself: its root, its cwd and each of its fds.
    let watcher = format!(
        "n=0; end=$(($(date +%s) + 120)); while [ ! -e /tmp/stop ] && [ $(date +%s) -lt $end ]; do n=$((n+1)); \
         for p in /proc/[0-9]*; do [ $p = /proc/$$ ] && continue; \
           cat $p/root{m} 2>/dev/null; (cd $p/cwd 2>/dev/null && {up} 2>/dev/null); \
           for f in $p/fd/*; do (cd $f 2>/dev/null && {up} 2>/dev/null); done; \
         done; done; echo rounds=$n"
    );
    let c = v!(ctx.start(ctx.config(&["sh", "-c", &format!("( {watcher} ) > /tmp/found 2>&1; sleep 300")])));
    let mut failed = Vec::new();
    for _ in 0..20 {
        let out = ctx.exec(&c, &["true"]);
        if out.code != 0 {
            failed.push(out.stderr.trim().to_owned());
        }
    }
    // The stop file and the watcher's findings through the init's root from this side: no
    // runtime round trip (each exec is ~110 ms in a TCG guest, more beside the busy watcher).
    let tmp = format!("/proc/{}/root/tmp", c.pid);
    let found_at = |tmp: &str| std::fs::read_to_string(format!("{tmp}/found")).unwrap_or_default();
    if let Err(e) = std::fs::write(format!("{tmp}/stop"), "") {
        ctx.delete(&c.id);
        return Verdict::error(format!("write {tmp}/stop: {e}"));
    }
    let _ = Ctx::wait_until(Duration::from_secs(30), || found_at(&tmp).contains("rounds="));
    let found = found_at(&tmp);
    ctx.delete(&c.id);
    if !failed.is_empty() {
        return Verdict::fail(format!("exec failed: {}", failed.join("; ")));
    }
    Verdict::check(!found.contains(&content) && found.contains("rounds="), || {
        format!("the watcher reached the host marker through another process: {:?}", found.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::state_letter;
    use test_case::test_case;

    #[test_case("472 (sleep) S 1 472 0", Some('S'); "sleeping")]
    #[test_case("15 (isorun) R 1 15 0", Some('R'); "running")]
    #[test_case("7 (a) b) D 1 7 0", Some('D'); "a name holding a parenthesis")]
    #[test_case("8 (x y) Z 1 8 0", Some('Z'); "a name holding a space")]
    #[test_case("", None; "empty")]
    #[test_case("9 (sleep)", None; "cut short")]
    fn reads_the_state_after_the_name(stat: &str, want: Option<char>) {
        assert_eq!(state_letter(stat), want);
    }
}
