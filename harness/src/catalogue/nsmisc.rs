//! cgroup and time namespaces: the container sees its cgroup as `/`, and time offsets apply
//! to the monotonic and boot-time clocks.

use serde_json::{json, Value};

use super::util::{add_namespace, drop_namespace};
use super::{Assertion, Ctx, Need, Verdict};
use crate::v;

/// The time offset applied to monotonic and boottime: ten days.
const OFFSET_SECS: f64 = 864_000.0;

/// The cgroup and time namespace assertions.
pub fn assertions() -> Vec<Assertion> {
    vec![
        Assertion {
            id: "cgroupns.sees_own_root",
            description: "inside a cgroup namespace every /proc/self/cgroup path is `/`",
            needs: &[Need::Namespace("cgroup")],
            check: sees_own_root,
            weaken: no_cgroupns,
        },
        Assertion {
            id: "timens.offsets_apply",
            description: "time namespace offsets (+10 days) apply to monotonic and boottime",
            needs: &[Need::Namespace("time")],
            check: offsets_apply,
            weaken: no_timens,
        },
    ]
}

fn no_cgroupns(cfg: &mut Value) {
    drop_namespace(cfg, "cgroup");
}

fn no_timens(cfg: &mut Value) {
    drop_namespace(cfg, "time");
    if let Some(linux) = cfg["linux"].as_object_mut() {
        linux.remove("timeOffsets");
    }
}

/// The cgroup path of each line of a /proc/<pid>/cgroup (`hier:controllers:path`).
fn cgroup_paths(text: &str) -> Vec<&str> {
    text.lines().filter_map(|l| l.splitn(3, ':').nth(2)).collect()
}

fn sees_own_root(ctx: &mut Ctx) -> Verdict {
    let cfg = ctx.config(&["sleep", "300"]);
    let no_ns =
        !cfg["linux"]["namespaces"].as_array().is_some_and(|l| l.iter().any(|n| n["type"] == "cgroup"));
    let note = ctx.base_note(no_ns, "no cgroup namespace");
    let c = v!(ctx.start(cfg));
    // From the host the init sits in a non-root cgroup somewhere (else the check proves nothing).
    let host_view = std::fs::read_to_string(format!("/proc/{}/cgroup", c.pid)).unwrap_or_default();
    if cgroup_paths(&host_view).iter().all(|p| *p == "/") {
        return Verdict::error(format!("the runtime left the container in the root cgroup: {host_view:?}"));
    }
    // From inside, the init's cgroup (and the exec'd process's own) is the namespace root.
    let out = ctx.exec(&c, &["cat", "/proc/1/cgroup"]);
    if out.code != 0 {
        return Verdict::fail(format!("exec failed ({}): {}", out.code, out.stderr.trim()));
    }
    let lines = out.lines();
    let ok = !lines.is_empty() && lines.iter().all(|l| l.ends_with(":/"));
    Verdict::check(ok, || {
        format!("/proc/1/cgroup inside: {lines:?}; from the host: {:?}{note}", host_view.trim())
    })
}

fn uptime(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

fn offsets_apply(ctx: &mut Ctx) -> Verdict {
    let mut cfg = ctx.config(&["sh", "-c", "cat /proc/uptime; cat /proc/self/timens_offsets"]);
    add_namespace(&mut cfg, "time");
    cfg["linux"]["timeOffsets"] = json!({
        "monotonic": { "secs": OFFSET_SECS as i64, "nanosecs": 0 },
        "boottime": { "secs": OFFSET_SECS as i64, "nanosecs": 0 },
    });
    let host_uptime = || std::fs::read_to_string("/proc/uptime").ok().as_deref().and_then(uptime);
    let before = v!(host_uptime().ok_or_else(|| Verdict::error("cannot read the host's /proc/uptime")));
    let out = v!(ctx.run_ok(cfg));
    let after = host_uptime().unwrap_or(before);
    let lines = out.lines();
    let inside = lines.first().and_then(|l| uptime(l)).unwrap_or(0.0);
    // boottime: the uptime inside is the host's plus the offset (within the run's duration).
    let boot_ok = inside >= before + OFFSET_SECS - 1.0 && inside <= after + OFFSET_SECS + 1.0;
    // monotonic: the kernel reports the offsets of the namespace the process lives in.
    let offsets: Vec<Vec<&str>> = lines.iter().skip(1).map(|l| l.split_whitespace().collect()).collect();
    let has = |clock: &str| offsets.iter().any(|o| o.len() == 3 && o[0] == clock && o[1] == "864000");
    let ok = boot_ok && has("monotonic") && has("boottime");
    Verdict::check(ok, || {
        format!(
            "uptime inside {inside}, on the host {before}..{after} (want +{OFFSET_SECS}); \
             timens_offsets inside {:?}",
            lines.get(1..)
        )
    })
}
