//! pid namespace: init is PID 1, /proc shows only the container, the host sees another pid,
//! host pids are unreachable, init ignores SIGKILL from inside, init's death ends everything.

use std::time::Duration;

use super::util::{drop_namespace, nspid, HostSleeper};
use super::{Assertion, Ctx, Need, Verdict};
use crate::v;

const NEEDS: &[Need] = &[Need::Namespace("pid")];

fn no_pid_ns(cfg: &mut serde_json::Value) {
    drop_namespace(cfg, "pid");
}

/// The pid assertions.
pub fn assertions() -> Vec<Assertion> {
    vec![
        Assertion {
            id: "pid.init_is_pid1",
            description: "the container's init is PID 1 with parent 0",
            needs: NEEDS,
            check: init_is_pid1,
            weaken: no_pid_ns,
        },
        Assertion {
            id: "pid.proc_shows_only_container",
            description: "/proc inside lists only the container's processes",
            needs: NEEDS,
            check: proc_only_container,
            weaken: no_pid_ns,
        },
        Assertion {
            id: "pid.host_sees_other_pid",
            description: "the host sees the init under another pid (NSpid has two levels)",
            needs: NEEDS,
            check: host_sees_other_pid,
            weaken: no_pid_ns,
        },
        Assertion {
            id: "pid.host_pids_unreachable",
            description: "signalling a host pid from inside fails with ESRCH",
            needs: NEEDS,
            check: host_pids_unreachable,
            weaken: no_pid_ns,
        },
        Assertion {
            id: "pid.init_ignores_sigkill_from_inside",
            description: "SIGKILL to PID 1 from inside the container is ignored",
            needs: NEEDS,
            check: init_ignores_sigkill,
            weaken: no_pid_ns,
        },
        Assertion {
            id: "pid.init_death_kills_all",
            description: "when init dies every process of the container dies",
            needs: NEEDS,
            check: init_death_kills_all,
            weaken: no_pid_ns,
        },
    ]
}

fn init_is_pid1(ctx: &mut Ctx) -> Verdict {
    let out = v!(ctx.run_ok(ctx.config(&["sh", "-c", "echo $$; cut -d' ' -f4 /proc/self/stat"])));
    let l = out.lines();
    Verdict::check(l.first() == Some(&"1") && l.get(1) == Some(&"0"), || {
        format!("pid and ppid inside: {:?}", l)
    })
}

fn proc_only_container(ctx: &mut Ctx) -> Verdict {
    // sh, ls and wc are the only processes of the container while ls runs.
    let out = v!(ctx.run_ok(ctx.config(&["sh", "-c", "ls -d /proc/[0-9]* | wc -l"])));
    let n: u32 = out.stdout.trim().parse().unwrap_or(u32::MAX);
    Verdict::check(n <= 3, || format!("/proc inside lists {n} processes"))
}

fn host_sees_other_pid(ctx: &mut Ctx) -> Verdict {
    let c = v!(ctx.start(ctx.config(&["sleep", "60"])));
    let levels = nspid(c.pid);
    Verdict::check(levels.len() >= 2 && levels.last() == Some(&1) && levels[0] == i64::from(c.pid), || {
        format!("host pid {}: NSpid {:?}", c.pid, levels)
    })
}

fn host_pids_unreachable(ctx: &mut Ctx) -> Verdict {
    let host = v!(HostSleeper::start().map_err(|e| Verdict::error(format!("start a host sleep: {e}"))));
    let script = format!("kill -0 {} 2>&1; echo rc=$?", host.pid());
    let out = v!(ctx.run_ok(ctx.config(&["sh", "-c", &script])));
    Verdict::check(
        out.stdout.contains("rc=1") && out.stdout.to_lowercase().contains("no such process"),
        || format!("kill -0 of host pid {} from inside: {}", host.pid(), out.stdout.trim()),
    )
}

fn init_ignores_sigkill(ctx: &mut Ctx) -> Verdict {
    let out = v!(ctx.run_ok(ctx.config(&["sh", "-c", "kill -9 1; echo $$ survived"])));
    Verdict::check(out.stdout.trim() == "1 survived", || {
        format!("after kill -9 1 inside: {:?}", out.stdout.trim())
    })
}

fn init_death_kills_all(ctx: &mut Ctx) -> Verdict {
    let c = v!(ctx.start(ctx.config(&["sh", "-c", "sleep 300 & exec sleep 301"])));
    let children_file = format!("/proc/{0}/task/{0}/children", c.pid);
    let mut child = 0;
    Ctx::wait_until(Duration::from_secs(5), || {
        child = std::fs::read_to_string(&children_file)
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        child > 0
    });
    if child == 0 {
        return Verdict::error(format!("no child of the container's init found in {children_file}"));
    }
    let out = ctx.runtime_cmd(&["kill", &c.id, "KILL"]);
    if out.code != 0 {
        return Verdict::fail(format!("runtime kill failed: {}", out.stderr.trim()));
    }
    let gone = Ctx::wait_until(Duration::from_secs(5), || !alive(child));
    if !gone {
        // SAFETY-free cleanup of the survivor through a plain kill(1) of its pid.
        let _ = std::process::Command::new("kill").args(["-9", &child.to_string()]).status();
    }
    Verdict::check(gone, || format!("process {child} of the container outlived its init {}", c.pid))
}

fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.is_empty() && !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z')
}
