//! checkpoint/restore (CRIU through the runtime's `checkpoint` and `restore`): a restored
//! container is the same isolated container — PID 1 stays PID 1 and keeps counting, its
//! hostname, its mount view, its memory limit enforced, and it sees no more of the host.
//! SKIP when the runtime has no checkpoint command or CRIU cannot work on the kernel (the
//! reason is `criu check`'s own line).

use std::time::Duration;

use serde_json::json;

use super::cgroup::cgroup_dir;
use super::checkpoint_shared::restored;
use super::criu::count;
use super::util::{drop_namespace, nspid};
use super::{Assertion, Ctx, Need, Verdict};
use crate::v;

/// The memory limit of `checkpoint.memory_limit_survives`: 32 MiB.
pub const LIMIT: u64 = 32 << 20;

/// The hostname of `checkpoint.hostname_survives`.
pub const HOSTNAME: &str = "isolab-ckpt";

/// The checkpoint assertions. They share one container, checkpoint and restore
/// (`checkpoint_shared`); `memory_limit_survives` comes last, as its OOM kill ends the container.
pub fn assertions() -> Vec<Assertion> {
    vec![
        Assertion {
            id: "checkpoint.pid1_survives",
            description: "after checkpoint and restore the init is still PID 1 (ppid 0) and keeps counting",
            needs: &[Need::Namespace("pid")],
            check: pid1_survives,
            weaken: |c| drop_namespace(c, "pid"),
        },
        Assertion {
            id: "checkpoint.hostname_survives",
            description: "a restored container keeps the config's hostname; the host's is untouched",
            needs: &[Need::Namespace("uts")],
            check: hostname_survives,
            weaken: |c| drop_namespace(c, "uts"),
        },
        Assertion {
            id: "checkpoint.mount_view_survives",
            description: "a restored container has the same mounts, a read-only root and masked paths",
            needs: &[Need::Namespace("mnt")],
            check: mount_view_survives,
            weaken: |c| c["root"]["readonly"] = json!(false),
        },
        Assertion {
            id: "checkpoint.host_view_not_widened",
            description: "a restored container sees no more processes or interfaces than before",
            needs: &[Need::Namespace("pid"), Need::Namespace("net")],
            check: host_view_not_widened,
            weaken: |c| drop_namespace(c, "pid"),
        },
        Assertion {
            id: "checkpoint.memory_limit_survives",
            description: "a restored container's memory limit is set and enforced (OOM kill)",
            needs: &[Need::Controller("memory")],
            check: memory_limit_survives,
            weaken: |c| {
                if let Some(r) = c["linux"]["resources"].as_object_mut() {
                    r.remove("memory");
                }
            },
        },
    ]
}

fn pid1_survives(ctx: &mut Ctx) -> Verdict {
    let r = v!(restored(ctx));
    let (c, n0) = (r.c, r.count);
    let out = ctx.exec(&c, &["sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline; echo; cut -d' ' -f4 /proc/1/stat"]);
    let l = out.lines();
    let is_counter = l.first().is_some_and(|s| s.contains("while true"));
    let ppid0 = l.get(1) == Some(&"0");
    let ns = nspid(c.pid);
    let n1 = count(&c).unwrap_or(0);
    let counting = Ctx::wait_until(Duration::from_secs(10), || count(&c).is_some_and(|n| n > n1));
    Verdict::check(
        is_counter && ppid0 && ns.last() == Some(&1) && ns.len() >= 2 && n1 >= n0 && counting,
        || {
            format!(
                "after restore: /proc/1 inside is {:?} with ppid {:?}; NSpid of the host pid {}: {ns:?}; \
             count {n0} before, {n1} after, still counting: {counting}",
                l.first(),
                l.get(1),
                c.pid
            )
        },
    )
}

fn hostname_survives(ctx: &mut Ctx) -> Verdict {
    let r = v!(restored(ctx));
    let host = r.host_hostname;
    let inside = ctx.exec(&r.c, &["hostname"]).stdout.trim().to_string();
    let host_after = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    Verdict::check(inside == HOSTNAME && host_after == host, || {
        format!("hostname after restore: {inside:?}; host's {:?} → {:?}", host.trim(), host_after.trim())
    })
}

/// `mountpoint options fstype` of every mount, sorted (mount ids change with a restore).
pub fn mount_view(ctx: &Ctx, c: &super::Container) -> Vec<String> {
    let out = ctx.exec(c, &["cat", "/proc/self/mountinfo"]);
    let mut v: Vec<String> = out
        .stdout
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let f: Vec<&str> = pre.split_whitespace().collect();
            Some(format!("{} {} {}", f.get(4)?, f.get(5)?, post.split_whitespace().next()?))
        })
        .collect();
    v.sort();
    v
}

fn mount_view_survives(ctx: &mut Ctx) -> Verdict {
    let r = v!(restored(ctx));
    let (c, before) = (r.c, r.mounts);
    let after = mount_view(ctx, &c);
    let probe = ctx.exec(
        &c,
        &[
            "sh",
            "-c",
            "touch /ckpt-probe 2>&1 && echo wrote && rm -f /ckpt-probe; wc -c < /proc/kcore; \
             test -e /isolab-rootfs-marker && echo marker",
        ],
    );
    let ro = !probe.stdout.contains("wrote");
    // The root is as read-only as the config asks (isolab's base: yes; an engine's: no).
    let ro_wanted = ctx.config(&[])["root"]["readonly"] == true;
    let masked = probe.stdout.lines().nth(1).map(str::trim) == Some("0");
    let marker = probe.stdout.contains("marker");
    Verdict::check(!before.is_empty() && before == after && ro == ro_wanted && masked && marker, || {
        format!(
            "mounts before {before:?}, after {after:?}; root read-only: {ro} (the config asks: {ro_wanted}), \
             /proc/kcore masked: {masked}, bundle rootfs: {marker} ({:?})",
            probe.stdout.trim()
        )
    })
}

fn memory_limit_survives(ctx: &mut Ctx) -> Verdict {
    let c = v!(restored(ctx)).c;
    let Some(dir) = cgroup_dir(c.pid, "memory") else {
        return Verdict::fail(format!("restored init {} is in no memory cgroup", c.pid));
    };
    let file = ["memory.max", "memory.limit_in_bytes"].map(|f| dir.join(f)).into_iter().find(|p| p.exists());
    let limit = file.as_ref().and_then(|f| std::fs::read_to_string(f).ok()).unwrap_or_default();
    let out =
        ctx.exec(&c, &["sh", "-c", "dd if=/dev/zero of=/tmp/fill bs=1M count=128 2>/dev/null; echo rc=$?"]);
    let killed = out.stdout.contains("rc=137") || out.code == 137;
    Verdict::check(limit.trim() == LIMIT.to_string() && killed, || {
        format!(
            "after restore: {} = {:?}; dd of 128 MiB: {} (exit {})",
            dir.display(),
            limit.trim(),
            out.stdout.trim(),
            out.code
        )
    })
}

/// (processes in /proc by name, network interfaces) seen inside.
pub fn view(ctx: &Ctx, c: &super::Container) -> (Vec<String>, Vec<String>) {
    let out = ctx.exec(
        c,
        &["sh", "-c", "for p in /proc/[0-9]*; do cat $p/comm 2>/dev/null; done; echo --; ls /sys/class/net"],
    );
    let text = out.stdout;
    let (procs, ifs) = text.split_once("--\n").unwrap_or((text.as_str(), ""));
    let words = |s: &str| s.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
    (words(procs), words(ifs))
}

/// The container's own processes as the probe sees them: init (`sh`), its `sleep`, the probe's
/// `sh` and its `cat` (whether the sleep is alive at that moment is a matter of timing).
fn own_only(procs: &[String]) -> bool {
    !procs.is_empty()
        && procs.len() <= 4
        && procs.iter().all(|p| ["sh", "sleep", "cat"].contains(&p.as_str()))
}

fn host_view_not_widened(ctx: &mut Ctx) -> Verdict {
    let r = v!(restored(ctx));
    let (c, (p0, if0)) = (r.c, r.view);
    let (p1, if1) = view(ctx, &c);
    let no_new_if = if1.iter().all(|i| if0.contains(i)) && if1 == ["lo"];
    Verdict::check(own_only(&p0) && own_only(&p1) && no_new_if, || {
        format!("before restore: processes {p0:?}, interfaces {if0:?}; after: processes {p1:?}, interfaces {if1:?}")
    })
}
