//! Lifecycle: the states of `create`/`start`/`kill`/`delete` follow the OCI runtime spec, and
//! after `delete` nothing of the container remains (process, cgroup, mount, state).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use super::util::detach;
use super::{Assertion, Container, Ctx, Verdict};
use crate::v;

/// The lifecycle assertions.
pub fn assertions() -> Vec<Assertion> {
    vec![
        Assertion {
            id: "lifecycle.states_follow_the_spec",
            description:
                "create → created, start → running, kill → stopped, delete → gone; bad transitions fail",
            needs: &[],
            check: states_follow_the_spec,
            weaken: exits_at_once,
        },
        Assertion {
            id: "lifecycle.delete_leaves_nothing",
            description:
                "after delete no state, process, cgroup directory or host mount of the container remains",
            needs: &[],
            check: delete_leaves_nothing,
            weaken: poststop_leaves_a_mount,
        },
    ]
}

/// The negative control of the state machine. No config can make a conforming runtime lie
/// about states, so the honest control is one under which the check's premise is false: a
/// process that exits at once is (correctly) `stopped` right after `start`, `running` is
/// never observed, and the check must FAIL rather than pass without looking at the state.
fn exits_at_once(cfg: &mut Value) {
    cfg["process"]["args"] = json!(["true"]);
}

/// The negative control of cleanup: a poststop hook (run by `delete`, on the host) mounts a
/// tmpfs under the bundle dir, which the state it reads on stdin names. `delete` then leaves a
/// host mount behind; the check must see it (and removes it afterwards).
fn poststop_leaves_a_mount(cfg: &mut Value) {
    let bb = Path::new(cfg["root"]["path"].as_str().unwrap_or("/")).join("bin/busybox");
    let bb = bb.to_string_lossy();
    let script = format!(
        "b=$({bb} sed -n 's/.*\"bundle\": *\"\\([^\"]*\\)\".*/\\1/p'); \
         {bb} mkdir -p \"$b/leftover\" && {bb} mount -t tmpfs isolab-leftover \"$b/leftover\""
    );
    cfg["hooks"] = json!({ "poststop": [{ "path": bb, "args": ["sh", "-c", script] }] });
}

fn status(ctx: &Ctx, id: &str) -> String {
    ctx.state(id).and_then(|s| s["status"].as_str().map(str::to_owned)).unwrap_or_else(|| "<no state>".into())
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// `create` a bundle of `cfg`; the container (its pid from `state`) or a FAIL.
pub(crate) fn create(ctx: &mut Ctx, cfg: Value) -> Result<(Container, PathBuf), Verdict> {
    let (id, dir) = ctx.bundle(cfg)?;
    let out = ctx.runtime_cmd(&["create", "--bundle", &dir.to_string_lossy(), &id]);
    if out.code != 0 {
        ctx.delete(&id);
        return Err(Verdict::fail(format!("runtime create failed ({}): {}", out.code, out.stderr.trim())));
    }
    let pid = ctx.state(&id).and_then(|s| s["pid"].as_i64()).unwrap_or(0) as i32;
    Ok((Container { id, pid }, dir))
}

fn states_follow_the_spec(ctx: &mut Ctx) -> Verdict {
    let (c, _) = v!(create(ctx, ctx.config(&["sleep", "300"])));
    // `create` registers nothing with ctx: delete the container on every path.
    let verdict = walk_states(ctx, &c);
    ctx.delete(&c.id);
    verdict
}

fn walk_states(ctx: &Ctx, c: &Container) -> Verdict {
    let st = status(ctx, &c.id);
    if st != "created" || c.pid <= 0 {
        return Verdict::fail(format!("after create: status {st:?}, pid {}", c.pid));
    }
    let cmd = cmdline(c.pid);
    if cmd.trim() == "sleep 300" {
        return Verdict::fail(format!(
            "after create the user process already runs: pid {} is {cmd:?}",
            c.pid
        ));
    }
    let out = ctx.runtime_cmd(&["start", &c.id]);
    if out.code != 0 {
        return Verdict::fail(format!("start failed ({}): {}", out.code, out.stderr.trim()));
    }
    let mut st = String::new();
    Ctx::wait_until(Duration::from_secs(5), || {
        st = status(ctx, &c.id);
        st != "created"
    });
    if st != "running" {
        return Verdict::fail(format!("after start: status {st:?}, not running"));
    }
    if !Ctx::wait_until(Duration::from_secs(5), || cmdline(c.pid).trim() == "sleep 300") {
        return Verdict::fail(format!("running, but pid {} is {:?}", c.pid, cmdline(c.pid)));
    }
    let again = ctx.runtime_cmd(&["start", &c.id]);
    if again.code == 0 {
        return Verdict::fail("start of a running container succeeded");
    }
    let del = ctx.runtime_cmd(&["delete", &c.id]);
    if del.code == 0 || status(ctx, &c.id) != "running" {
        return Verdict::fail(format!("delete of a running container without --force: exit {}", del.code));
    }
    let kill = ctx.runtime_cmd(&["kill", &c.id, "KILL"]);
    if kill.code != 0 {
        return Verdict::fail(format!("kill failed ({}): {}", kill.code, kill.stderr.trim()));
    }
    Ctx::wait_until(Duration::from_secs(5), || {
        st = status(ctx, &c.id);
        st == "stopped"
    });
    if st != "stopped" {
        return Verdict::fail(format!("after kill: status {st:?}, not stopped"));
    }
    let del = ctx.runtime_cmd(&["delete", &c.id]);
    if del.code != 0 {
        return Verdict::fail(format!(
            "delete of a stopped container failed ({}): {}",
            del.code,
            del.stderr.trim()
        ));
    }
    let gone = ctx.runtime_cmd(&["state", &c.id]);
    Verdict::check(gone.code != 0, || format!("state after delete still answers: {}", gone.stdout.trim()))
}

/// A process identity robust to pid reuse: pid and start time (field 22 of stat).
fn start_time(pid: i32) -> Option<(u64, bool)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((fields.get(19)?.parse().ok()?, fields.first() == Some(&"Z")))
}

/// `pid` and all its descendants (through /proc/<pid>/task/*/children).
fn descendants(pid: i32) -> Vec<i32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", all[i])).into_iter().flatten().flatten();
        for t in tasks {
            let kids = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            all.extend(kids.split_whitespace().filter_map(|k| k.parse::<i32>().ok()));
        }
        i += 1;
    }
    all
}

/// Host directories of the cgroups of `pid` that are not also ours (so the runtime made them).
fn cgroup_dirs(pid: i32) -> Vec<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let ours = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let theirs = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let mut dirs = Vec::new();
    for line in theirs.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (f.next(), f.next(), f.next()) else { continue };
        let mine = ours.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            (f.nth(1)? == ctrls).then(|| f.next()).flatten()
        });
        if path == "/" || mine.is_some_and(|m| m == path || m.starts_with(&format!("{path}/"))) {
            continue;
        }
        for m in mountinfo.lines() {
            let Some((pre, post)) = m.split_once(" - ") else { continue };
            let pre: Vec<&str> = pre.split_whitespace().collect();
            let mut post = post.split_whitespace();
            let (fstype, opts) = (post.next().unwrap_or(""), post.nth(1).unwrap_or(""));
            let (Some(root), Some(point)) = (pre.get(3), pre.get(4)) else { continue };
            let matches = match fstype {
                "cgroup2" => ctrls.is_empty(),
                "cgroup" => !ctrls.is_empty() && ctrls.split(',').all(|c| opts.split(',').any(|o| o == c)),
                _ => false,
            };
            if let (true, Some(rel)) = (matches, path.strip_prefix(root)) {
                dirs.push(Path::new(point).join(rel.trim_start_matches('/')));
            }
        }
    }
    dirs
}

/// Host mount points (mountinfo field 5) under one of `paths`.
fn host_mounts_under(paths: &[&Path]) -> Vec<String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mountinfo
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|p| paths.iter().any(|b| Path::new(p).starts_with(b)))
        .map(str::to_owned)
        .collect()
}

fn delete_leaves_nothing(ctx: &mut Ctx) -> Verdict {
    let (c, bundle) = v!(create(ctx, ctx.config(&["sh", "-c", "sleep 300 & exec sleep 301"])));
    let verdict = leaves_nothing(ctx, &c, &bundle);
    ctx.delete(&c.id);
    for point in host_mounts_under(&[&bundle, ctx.rootfs()]).iter().rev() {
        detach(point);
    }
    verdict
}

fn leaves_nothing(ctx: &Ctx, c: &Container, bundle: &Path) -> Verdict {
    let out = ctx.runtime_cmd(&["start", &c.id]);
    if out.code != 0 {
        return Verdict::fail(format!("start failed ({}): {}", out.code, out.stderr.trim()));
    }
    if !Ctx::wait_until(Duration::from_secs(5), || descendants(c.pid).len() >= 2) {
        return Verdict::error(format!("the container's init {} started no child", c.pid));
    }
    let procs: Vec<(i32, u64)> =
        descendants(c.pid).into_iter().filter_map(|p| Some((p, start_time(p)?.0))).collect();
    let cgroups = cgroup_dirs(c.pid);
    // Rootless without a delegated cgroup, isorun (as runc) makes none for a container that
    // asks for no resources: nothing to leave behind there.
    let none_expected = ctx.rootless_without_cgroup();
    if cgroups.is_empty() && !none_expected {
        return Verdict::error(format!("no cgroup directory of the container found (pid {})", c.pid));
    }
    let kill = ctx.runtime_cmd(&["kill", &c.id, "KILL"]);
    if kill.code != 0 {
        return Verdict::fail(format!("kill failed ({}): {}", kill.code, kill.stderr.trim()));
    }
    let stopped = Ctx::wait_until(Duration::from_secs(5), || {
        ctx.state(&c.id).is_some_and(|s| s["status"] == "stopped")
    });
    if !stopped {
        return Verdict::fail("the container is not stopped 5 s after kill KILL");
    }
    let del = ctx.runtime_cmd(&["delete", &c.id]);
    if del.code != 0 {
        return Verdict::fail(format!("delete failed ({}): {}", del.code, del.stderr.trim()));
    }
    let mut left = Vec::new();
    if ctx.runtime_cmd(&["state", &c.id]).code == 0 {
        left.push("state still answers".to_owned());
    }
    let state_dir = ctx.dir().join("state").join(&c.id);
    if state_dir.exists() {
        left.push(format!("state dir {}", state_dir.display()));
    }
    let alive = |&(p, t): &(i32, u64)| start_time(p).is_some_and(|(t2, zombie)| t2 == t && !zombie);
    Ctx::wait_until(Duration::from_secs(5), || !procs.iter().any(alive));
    left.extend(procs.iter().filter(|p| alive(p)).map(|(p, _)| format!("process {p}")));
    Ctx::wait_until(Duration::from_secs(2), || !cgroups.iter().any(|d| d.exists()));
    left.extend(cgroups.iter().filter(|d| d.exists()).map(|d| format!("cgroup {}", d.display())));
    left.extend(host_mounts_under(&[bundle, ctx.rootfs()]).into_iter().map(|m| format!("host mount {m}")));
    let mut v = Verdict::check(left.is_empty(), || format!("after delete: {}", left.join(", ")));
    if cgroups.is_empty() {
        let n = "(rootless, no cgroup delegated: the container had no cgroup to leave)";
        v.detail = if v.detail.is_empty() { n.into() } else { format!("{} {n}", v.detail) };
    }
    v
}
