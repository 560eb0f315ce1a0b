//! Bridge networking and `linux.netDevices`: containers on one bridge reach each other (ping
//! and TCP), a container on another bridge sees only `lo` and its `eth0` and reaches neither;
//! a device moved in is visible only inside and back on the host after delete.
//!
//! Each check runs on a thread that entered a network namespace of its own, so every bridge,
//! veth and address it makes (and every runtime command it spawns) lives there, never in the
//! host's; the namespace dies with the check. The host settings it would inherit (forwarding,
//! rp_filter, bridge-nf-call-*) are pinned there first, and the result says what they were
//! (`net_sysctl`). Bridge networking comes from `isorun net` as
//! createRuntime/poststop hooks: with another runtime under test the hooks still need an
//! isorun binary (`ISOLAB_NET_HOOK`), else those checks SKIP saying so.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::{Assertion, Container, Ctx, Need, Verdict};
use crate::outcome::Outcome;
use crate::v;

const NEEDS: &[Need] = &[Need::Namespace("net")];
const BRIDGE_X: &str = "isolab-bx";
const BRIDGE_Y: &str = "isolab-by";
const SUBNET_X: &str = "10.77.1.0/24";
const SUBNET_Y: &str = "10.77.2.0/24";
const SERVER: &[&str] = &["sh", "-c", "while true; do echo pong | nc -l -p 7000; done"];

/// The bridge assertions.
pub fn assertions() -> Vec<Assertion> {
    vec![
        Assertion {
            id: "net.bridge_reachable",
            description: "two containers on one bridge reach each other: ping and a TCP connect",
            needs: NEEDS,
            check: bridge_reachable,
            weaken: no_hooks,
        },
        Assertion {
            id: "net.bridge_isolated",
            description: "a container on another bridge sees only lo and eth0 and cannot reach the first bridge's container",
            needs: NEEDS,
            check: bridge_isolated,
            weaken: same_bridge,
        },
        Assertion {
            id: "net.net_devices",
            description: "a linux.netDevices interface is visible only inside (renamed) and back on the host after delete",
            needs: NEEDS,
            check: net_devices,
            weaken: no_net_devices,
        },
    ]
}

fn no_hooks(cfg: &mut Value) {
    if let Some(o) = cfg.as_object_mut() {
        o.remove("hooks");
    }
}

/// The negative control of isolation: the second bridge's container joins the first bridge.
fn same_bridge(cfg: &mut Value) {
    for kind in ["createRuntime", "poststop"] {
        for hook in cfg["hooks"][kind].as_array_mut().into_iter().flatten() {
            for arg in hook["args"].as_array_mut().into_iter().flatten() {
                if arg == BRIDGE_Y {
                    *arg = json!(BRIDGE_X);
                } else if arg == SUBNET_Y {
                    *arg = json!(SUBNET_X);
                }
            }
        }
    }
}

fn no_net_devices(cfg: &mut Value) {
    if let Some(l) = cfg["linux"].as_object_mut() {
        l.remove("netDevices");
    }
}

/// Run `check` on a thread in a new network namespace; its containers are deleted there.
fn in_private_netns(ctx: &mut Ctx, check: impl FnOnce(&mut Ctx) -> Verdict + Send) -> Verdict {
    std::thread::scope(|s| {
        s.spawn(|| {
            if let Err(e) = crate::sys::unshare_net() {
                return Verdict::error(format!("unshare(CLONE_NEWNET) for the check's own namespace: {e}"));
            }
            let pinned = match super::net_sysctl::pin_own_netns() {
                Ok(s) => s,
                Err(e) => return Verdict::error(format!("pinning the check's netns settings: {e}")),
            };
            let mut v = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&mut *ctx)))
                .unwrap_or_else(|_| Verdict::error("check panicked"));
            ctx.cleanup();
            // A pass says so when the namespace inherited something else; any other outcome always.
            let changed = pinned.contains("inherited");
            v.detail = match (v.detail.is_empty(), v.outcome == Outcome::Pass && !changed) {
                (_, true) => v.detail,
                (true, false) => pinned,
                (false, false) => format!("{} [{pinned}]", v.detail),
            };
            v
        })
        .join()
        .unwrap_or_else(|_| Verdict::error("the check's thread panicked"))
    })
}

/// The isorun that provides `net up|down` hooks: the runtime under test if it is isorun,
/// else `ISOLAB_NET_HOOK`.
fn hook_binary(ctx: &Ctx) -> Result<PathBuf, Verdict> {
    let version = super::runtime_version(&ctx.runtime);
    if version.starts_with("isorun") {
        // A hook's path must be absolute.
        return Ok(std::fs::canonicalize(&ctx.runtime).unwrap_or_else(|_| ctx.runtime.clone()));
    }
    match std::env::var_os("ISOLAB_NET_HOOK").map(PathBuf::from) {
        Some(p) if p.exists() => Ok(p),
        _ => Err(Verdict::skip(format!(
            "bridge networking comes from `isorun net` OCI hooks; the runtime under test ({version}) is not \
             isorun and ISOLAB_NET_HOOK names no isorun binary"
        ))),
    }
}

/// Config of a container on `bridge`: hooks `net up`/`net down`, CAP_NET_RAW for ping.
fn on_bridge(ctx: &Ctx, hook: &PathBuf, args: &[&str], bridge: &str, subnet: &str) -> Value {
    let root = ctx.dir().join("net-state").display().to_string();
    let h = |rest: &[&str]| {
        let mut a = vec!["isorun", "--root", root.as_str(), "net"];
        a.extend_from_slice(rest);
        json!({"path": hook, "args": a})
    };
    let mut cfg = ctx.config(args);
    cfg["hooks"] = json!({
        "createRuntime": [h(&["up", "--bridge", bridge, "--subnet", subnet])],
        "poststop": [h(&["down", "--bridge", bridge])],
    });
    for set in ["bounding", "effective", "permitted"] {
        if let Some(a) = cfg["process"]["capabilities"][set].as_array_mut() {
            a.push(json!("CAP_NET_RAW"));
        }
    }
    cfg
}

/// The IPv4 address leased to container `id` on `bridge`.
fn leased(ctx: &Ctx, bridge: &str, id: &str) -> Option<String> {
    let p = ctx.dir().join("net-state/net").join(format!("{bridge}.json"));
    let v: Value = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
    v["leases"][id]["v4"].as_str().map(str::to_owned)
}

/// Start the server on bridge X and run `script` (with `$A` its address) on `bridge`.
fn server_and_client(
    ctx: &mut Ctx,
    bridge: &str,
    subnet: &str,
    script: &str,
) -> Result<(Container, String), Verdict> {
    let hook = hook_binary(ctx)?;
    let server = ctx.start(on_bridge(ctx, &hook, SERVER, BRIDGE_X, SUBNET_X))?;
    let Some(a) = leased(ctx, BRIDGE_X, &server.id) else {
        return Err(Verdict::fail(format!("container {} got no address on {BRIDGE_X}", server.id)));
    };
    let script = format!("A={a}; {script}");
    let out = ctx.run(on_bridge(ctx, &hook, &["sh", "-c", &script], bridge, subnet))?;
    if out.code != 0 {
        return Err(Verdict::fail(format!(
            "client exit {}: {} {}",
            out.code,
            out.stdout.trim(),
            out.stderr.trim()
        )));
    }
    Ok((server, out.stdout))
}

/// The client's side of `net.bridge_reachable`: a ping, then up to three TCP exchanges, each
/// bounded by `timeout` (busybox nc's -w bounds only the connect). A stalled exchange prints
/// the client's sockets and neighbours, so a flake says where it stalled.
const REACH_SCRIPT: &str = "ping -c 1 -W 5 $A >/dev/null && echo ping-ok; \
    for i in 1 2 3; do r=$(timeout -s KILL 10 nc -w 5 $A 7000 </dev/null); e=$?; \
    if [ \"$r\" = pong ]; then echo pong; break; fi; \
    echo \"stalled: attempt $i printed '$r', exit $e; client tcp and arp:\"; cat /proc/net/tcp /proc/net/arp; done";

fn bridge_reachable(ctx: &mut Ctx) -> Verdict {
    if let Err(v) = hook_binary(ctx) {
        return v;
    }
    in_private_netns(ctx, |ctx| {
        let (server, out) = v!(server_and_client(ctx, BRIDGE_X, SUBNET_X, REACH_SCRIPT));
        let words: Vec<&str> = out.split_whitespace().collect();
        if words == ["ping-ok", "pong"] {
            return Verdict::pass();
        }
        // Reaching is shown by one exchange; a stalled one before it is disclosed, not hidden.
        if words.first() == Some(&"ping-ok") && words.last() == Some(&"pong") {
            return Verdict {
                detail: format!("a TCP exchange stalled before one worked: {out:?}"),
                ..Verdict::pass()
            };
        }
        let seen = ctx.exec(&server, &["sh", "-c", "ps -o pid,stat,args; cat /proc/net/tcp"]);
        Verdict::fail(format!(
            "client on {BRIDGE_X} printed {out:?}; the server container then: {:?}",
            seen.stdout
        ))
    })
}

/// The client's side of `net.bridge_isolated`: its own gateway answers a ping; then a ping and
/// a TCP connect to the first bridge's container, each given its full wait (2 s) but run at the
/// same time (backgrounded, then `wait`), so two timeouts cost one; its interfaces last.
const ISOLATED_SCRIPT: &str = "GW=$(ip route | awk '/^default/ {print $3}'); \
    ping -c 1 -W 3 $GW >/dev/null && echo gw-ok; \
    (ping -c 1 -W 2 $A >/dev/null && echo ping-ok) & (nc -w 2 $A 7000 </dev/null) & wait; \
    echo ifs $(ls /sys/class/net)";

fn bridge_isolated(ctx: &mut Ctx) -> Verdict {
    if let Err(v) = hook_binary(ctx) {
        return v;
    }
    in_private_netns(ctx, |ctx| {
        let (_, out) = v!(server_and_client(ctx, BRIDGE_Y, SUBNET_Y, ISOLATED_SCRIPT));
        if !out.contains("gw-ok") {
            return Verdict::error(format!(
                "the container on {BRIDGE_Y} cannot reach its own gateway: {out:?}"
            ));
        }
        let ifs: Vec<&str> = out.split("ifs").nth(1).unwrap_or_default().split_whitespace().collect();
        let reached = out.contains("ping-ok") || out.contains("pong");
        Verdict::check(!reached && ifs == ["eth0", "lo"], || {
            format!("from {BRIDGE_Y}: reached the container on {BRIDGE_X}: {reached}; interfaces {ifs:?}")
        })
    })
}

/// `ip` wherever this system keeps it.
fn ip(args: &[&str]) -> Result<String, String> {
    let bin = ["/sbin/ip", "/usr/sbin/ip", "/bin/ip", "/usr/bin/ip"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("ip");
    let out =
        Command::new(bin).args(args).stdin(Stdio::null()).output().map_err(|e| format!("{bin}: {e}"))?;
    if !out.status.success() {
        return Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether link `name` exists in this thread's network namespace.
fn has_link(name: &str) -> bool {
    ip(&["-o", "link", "show"]).is_ok_and(|t| {
        t.lines().filter_map(|l| l.split(": ").nth(1)).any(|n| n.split('@').next() == Some(name))
    })
}

fn net_devices(ctx: &mut Ctx) -> Verdict {
    in_private_netns(ctx, |ctx| {
        if let Err(e) = ip(&["link", "add", "isolab-nd0", "type", "veth", "peer", "name", "isolab-nd1"]) {
            return Verdict::skip(format!("cannot make a veth pair to move: {e}"));
        }
        let mut cfg = ctx.config(&["sleep", "120"]);
        cfg["linux"]["netDevices"] = json!({"isolab-nd0": {"name": "nd-inner"}});
        let c = v!(ctx.start(cfg));
        let inside = ctx.exec(&c, &["ls", "/sys/class/net"]).stdout;
        let seen_inside = inside.split_whitespace().any(|n| n == "nd-inner");
        let on_host_during = has_link("isolab-nd0");
        ctx.delete(&c.id);
        let back = has_link("isolab-nd0");
        Verdict::check(seen_inside && !on_host_during && back, || {
            format!(
                "inside {:?}; on the host while the container runs: {on_host_during}; back after delete: {back}",
                inside.split_whitespace().collect::<Vec<_>>()
            )
        })
    })
}
