//! Cgroup enforcement, on whichever hierarchy the kernel runs (the matrix boots every
//! kernel once with v1 and once with v2): memory limit → OOM kill counted, pids limit →
//! fork fails, cpu quota → usage bounded, cpuset → affinity, freezer → pause/resume,
//! devices → mknod of a denied device fails.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::util::{add_cap, add_mount};
use super::{Assertion, Ctx, Need, Verdict};
use crate::v;

/// The cgroup assertions.
pub fn assertions() -> Vec<Assertion> {
    vec![
        Assertion {
            id: "cgroup.memory.oom_kill",
            description: "a process past the memory limit is OOM-killed and the kill is counted",
            needs: &[Need::Controller("memory")],
            check: oom_kill,
            weaken: no_memory_limit,
        },
        Assertion {
            id: "cgroup.pids.fork_eagain",
            description: "fork past pids.limit fails with EAGAIN",
            needs: &[Need::Controller("pids")],
            check: pids_limit,
            weaken: no_pids_limit,
        },
        Assertion {
            id: "cgroup.cpu.quota",
            description: "a busy loop under a 20% cpu quota uses at most ~20% of one cpu",
            needs: &[Need::Controller("cpu")],
            check: cpu_quota,
            weaken: no_cpu_quota,
        },
        Assertion {
            id: "cgroup.cpuset.affinity",
            description: "cpus from linux.resources.cpu.cpus restrict the affinity",
            needs: &[Need::Controller("cpuset")],
            check: cpuset,
            weaken: no_cpuset,
        },
        Assertion {
            id: "cgroup.freezer.pause_resume",
            description: "pause freezes every process, resume thaws them",
            needs: &[Need::Controller("freezer")],
            check: freezer,
            weaken: super::util::unchanged,
        },
        Assertion {
            id: "cgroup.devices.deny",
            description: "a device the rules deny cannot be created or opened, even with CAP_MKNOD",
            needs: &[],
            check: devices_deny,
            weaken: allow_all_devices,
        },
    ]
}

fn resources(cfg: &mut Value) -> &mut Value {
    &mut cfg["linux"]["resources"]
}

fn no_memory_limit(cfg: &mut Value) {
    if let Some(r) = resources(cfg).as_object_mut() {
        r.remove("memory");
    }
}

fn no_pids_limit(cfg: &mut Value) {
    if let Some(r) = resources(cfg).as_object_mut() {
        r.remove("pids");
    }
}

fn no_cpu_quota(cfg: &mut Value) {
    if let Some(cpu) = resources(cfg)["cpu"].as_object_mut() {
        cpu.remove("quota");
        cpu.remove("period");
    }
}

fn no_cpuset(cfg: &mut Value) {
    if let Some(cpu) = resources(cfg)["cpu"].as_object_mut() {
        cpu.remove("cpus");
    }
}

fn allow_all_devices(cfg: &mut Value) {
    resources(cfg)["devices"] = json!([{ "allow": true, "access": "rwm" }]);
}

/// The host directory of `pid`'s cgroup for `controller` (v1: its hierarchy; v2: the
/// unified one), from /proc/<pid>/cgroup and this process's mountinfo.
pub fn cgroup_dir(pid: i32, controller: &str) -> Option<PathBuf> {
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else { continue };
        let point = pre.split_whitespace().nth(4)?;
        let mut post = post.split_whitespace();
        let fstype = post.next()?;
        let opts = post.nth(1).unwrap_or("");
        let want = match fstype {
            "cgroup" if opts.split(',').any(|o| o == controller) => Some(false),
            "cgroup2" if point == "/sys/fs/cgroup" => Some(true),
            _ => None,
        };
        let Some(v2) = want else { continue };
        for l in cg.lines() {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            let hit = if v2 { ctrls.is_empty() } else { ctrls.split(',').any(|c| c == controller) };
            if hit {
                return Some(PathBuf::from(point).join(path.trim_start_matches('/')));
            }
        }
    }
    None
}

fn read_key(file: &PathBuf, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
}

fn oom_kill(ctx: &mut Ctx) -> Verdict {
    let mut cfg = ctx.config(&["sleep", "120"]);
    cfg["linux"]["resources"]["memory"] = json!({ "limit": 33554432 });
    // The fill must be tmpfs: the engines' configs mount none at /tmp (it is the rootfs's).
    if !cfg["mounts"].as_array().is_some_and(|l| l.iter().any(|m| m["destination"] == "/tmp")) {
        add_mount(
            &mut cfg,
            json!({ "destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"] }),
        );
    }
    let c = v!(ctx.start(cfg));
    let Some(dir) = cgroup_dir(c.pid, "memory") else {
        return Verdict::fail(format!("init {} is in no memory cgroup", c.pid));
    };
    // tmpfs pages are charged to the writer's cgroup and cannot be reclaimed without swap.
    let out =
        ctx.exec(&c, &["sh", "-c", "dd if=/dev/zero of=/tmp/fill bs=1M count=128 2>/dev/null; echo rc=$?"]);
    let counter = if dir.join("memory.events").exists() {
        dir.join("memory.events")
    } else {
        dir.join("memory.oom_control")
    };
    let kills = read_key(&counter, "oom_kill ").unwrap_or(0);
    let killed = out.stdout.contains("rc=137") || out.code == 137;
    Verdict::check(killed && kills >= 1, || {
        format!(
            "dd of 128 MiB under a 32 MiB limit: {} (exit {}); {} oom_kill {kills}",
            out.stdout.trim(),
            out.code,
            counter.display()
        )
    })
}

fn pids_limit(ctx: &mut Ctx) -> Verdict {
    // The init forks 30 long-lived sleeps itself: no pipeline, no subshell. `exec 2>&1`
    // first, so a failed fork's "can't fork" (the loop's `sleep`, the `$(seq 30)`) reaches
    // stdout; ash then exits on that error, its pid namespace goes with it and `run` returns
    // at once. (The earlier `... & done | head -n 1` waited for the sleeps to end: 10 s.)
    // Without a limit all 30 start, "started" is printed and nothing says "can't fork".
    let mut cfg =
        ctx.config(&["sh", "-c", "exec 2>&1; for i in $(seq 30); do sleep 10 & done; echo started"]);
    cfg["linux"]["resources"]["pids"] = json!({ "limit": 10 });
    let out = v!(ctx.run(cfg));
    let said = out.stdout.to_lowercase();
    Verdict::check(said.contains("resource temporarily unavailable") || said.contains("can't fork"), || {
        format!(
            "30 forks under pids.limit 10: stdout {:?}, exit {}, stderr {:?}",
            out.stdout.trim(),
            out.code,
            out.stderr.trim()
        )
    })
}

fn cpu_usage_ns(pid: i32) -> Option<u64> {
    if let Some(d) = cgroup_dir(pid, "cpuacct") {
        if let Some(ns) =
            std::fs::read_to_string(d.join("cpuacct.usage")).ok().and_then(|s| s.trim().parse().ok())
        {
            return Some(ns);
        }
    }
    let d = cgroup_dir(pid, "cpu")?;
    read_key(&d.join("cpu.stat"), "usage_usec ").map(|us| us * 1000)
}

/// How often the kernel has throttled the cgroup of `pid` for its cpu quota (v1 and v2 alike).
fn nr_throttled(pid: i32) -> Option<u64> {
    read_key(&cgroup_dir(pid, "cpu")?.join("cpu.stat"), "nr_throttled ")
}

fn cpu_quota(ctx: &mut Ctx) -> Verdict {
    let mut cfg = ctx.config(&["sh", "-c", "while :; do :; done"]);
    cfg["linux"]["resources"]["cpu"] = json!({ "quota": 20000, "period": 100000 });
    let c = v!(ctx.start(cfg));
    let (Some(before), Some(throttled_before)) = (cpu_usage_ns(c.pid), nr_throttled(c.pid)) else {
        return Verdict::fail(format!("no cpu accounting or cpu.stat for init {}", c.pid));
    };
    let t = Instant::now();
    let throttled_now = || nr_throttled(c.pid).unwrap_or(0).saturating_sub(throttled_before);
    // At least 2 s; on a busy host up to 10 s, until the loop has had a period to hit its quota in.
    std::thread::sleep(Duration::from_secs(2));
    while throttled_now() == 0 && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(250));
    }
    let used = cpu_usage_ns(c.pid).unwrap_or(before).saturating_sub(before) as f64;
    let secs = t.elapsed().as_secs_f64();
    let share = used / t.elapsed().as_nanos() as f64;
    let throttled = throttled_now();
    // 20% quota; allow scheduling slack up to 35%. The usage alone cannot tell a quota from a
    // busy host (an unlimited loop may get under 35% too), so the kernel must also have
    // throttled the loop: it asks for 100% and is stopped in every 100 ms period it runs 20 ms.
    Verdict::check(share <= 0.35 && throttled > 0, || {
        format!(
            "busy loop used {:.0}% of a cpu under a 20% quota and was throttled {throttled} times in {secs:.1} s",
            share * 100.0
        )
    })
}

fn cpuset(ctx: &mut Ctx) -> Verdict {
    let n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    if n < 2 {
        return Verdict::skip("needs at least 2 cpus to show a restriction");
    }
    let mut cfg = ctx.config(&["sh", "-c", "grep Cpus_allowed_list /proc/self/status"]);
    cfg["linux"]["resources"]["cpu"] = json!({ "cpus": "0", "mems": "0" });
    let out = v!(ctx.run_ok(cfg));
    let list = out.stdout.split(':').nth(1).unwrap_or("").trim().to_owned();
    Verdict::check(list == "0", || format!("Cpus_allowed_list inside: {list:?} (wanted \"0\")"))
}

fn counter_at(pid: i32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/root/tmp/counter")).ok()?.trim().parse().ok()
}

fn freezer(ctx: &mut Ctx) -> Verdict {
    // Written through a rename so a read never sees a half-written (empty) file.
    let cfg = ctx.config(&[
        "sh",
        "-c",
        "i=0; while :; do i=$((i+1)); echo $i > /tmp/c.new; mv /tmp/c.new /tmp/counter; done",
    ]);
    let c = v!(ctx.start(cfg));
    if !Ctx::wait_until(Duration::from_secs(5), || counter_at(c.pid).is_some()) {
        return Verdict::error("the container's counter never started");
    }
    // Negative control: the pause is not asked for; the check must then see progress.
    if ctx.weaken.is_none() {
        let out = ctx.runtime_cmd(&["pause", &c.id]);
        if out.code != 0 {
            return Verdict::fail(format!("runtime pause failed: {}", out.stderr.trim()));
        }
    }
    let status = ctx.state(&c.id).map(|s| s["status"].as_str().unwrap_or("").to_owned()).unwrap_or_default();
    let a = counter_at(c.pid);
    std::thread::sleep(Duration::from_millis(300));
    let b = counter_at(c.pid);
    let frozen = a.is_some() && a == b && status == "paused";
    if ctx.weaken.is_none() {
        let out = ctx.runtime_cmd(&["resume", &c.id]);
        if out.code != 0 {
            return Verdict::fail(format!("runtime resume failed: {}", out.stderr.trim()));
        }
    }
    let thawed = Ctx::wait_until(Duration::from_secs(3), || counter_at(c.pid) > b);
    Verdict::check(frozen && thawed, || {
        format!("status {status:?}, counter {a:?} -> {b:?} while paused, thawed: {thawed}")
    })
}

fn devices_deny(ctx: &mut Ctx) -> Verdict {
    // c 10:237 (loop-control) is not among the default devices runtimes allow; opening it
    // needs no capability, so only the device rules stand in the way. runc allows mknod of
    // any node ("c *:* m") and denies the open; either denial is a pass.
    let script = "mknod /dev/lc c 10 237 2>&1; (: < /dev/lc) 2>&1 && echo OPENED; true";
    let mut cfg = ctx.config(&["sh", "-c", script]);
    add_cap(&mut cfg, "CAP_MKNOD");
    let out = v!(ctx.run_ok(cfg));
    let said = out.stdout.to_lowercase();
    let denied = said.contains("not permitted") || said.contains("permission denied");
    Verdict::check(denied && !said.contains("opened"), || {
        format!("mknod + open of c 10:237 inside with CAP_MKNOD: {:?}", out.stdout.trim())
    })
}
