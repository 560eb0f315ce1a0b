//! network namespace: a new netns has only `lo`, the host's interfaces are invisible, and an
//! abstract unix socket bound on the host is out of reach.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};

use super::util::drop_namespace;
use super::{Assertion, Ctx, Need, Verdict};
use crate::v;

const NEEDS: &[Need] = &[Need::Namespace("net")];

fn no_net_ns(cfg: &mut serde_json::Value) {
    drop_namespace(cfg, "network");
}

/// The net assertions.
pub fn assertions() -> Vec<Assertion> {
    vec![
        Assertion {
            id: "net.only_lo",
            description:
                "a new network namespace has only lo, and it is up (seen inside and via /proc/<pid>/net)",
            needs: NEEDS,
            check: only_lo,
            weaken: no_net_ns,
        },
        Assertion {
            id: "net.host_interfaces_invisible",
            description: "no host interface name shows in the container's /proc/net/dev or /sys/class/net",
            needs: NEEDS,
            check: host_interfaces_invisible,
            weaken: no_net_ns,
        },
        Assertion {
            id: "net.abstract_socket_unreachable",
            description: "an abstract unix socket bound on the host is not in the container's /proc/net/unix",
            needs: NEEDS,
            check: abstract_socket_unreachable,
            weaken: no_net_ns,
        },
    ]
}

/// The interface names of a /proc/net/dev text.
fn dev_names(text: &str) -> Vec<String> {
    text.lines().filter_map(|l| Some(l.split_once(':')?.0.trim().to_owned())).collect()
}

fn ns_link(pid: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/net")).map(|l| l.display().to_string()).unwrap_or_default()
}

fn only_lo(ctx: &mut Ctx) -> Verdict {
    let c = v!(ctx.start(ctx.config(&["sleep", "120"])));
    let out = ctx.exec(&c, &["cat", "/proc/net/dev"]);
    if out.code != 0 {
        return Verdict::fail(format!("exec cat /proc/net/dev failed ({}): {}", out.code, out.stderr.trim()));
    }
    let inside = dev_names(&out.stdout);
    let from_host =
        dev_names(&std::fs::read_to_string(format!("/proc/{}/net/dev", c.pid)).unwrap_or_default());
    let own_ns = ns_link(&c.pid.to_string()) != ns_link("self");
    // lo is UP (IFF_UP, bit 0 of its flags), as runc leaves it.
    let flags = ctx.exec(&c, &["cat", "/sys/class/net/lo/flags"]).stdout;
    let lo_up = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).is_ok_and(|f| f & 1 == 1);
    Verdict::check(inside == ["lo"] && from_host == ["lo"] && own_ns && lo_up, || {
        format!(
            "interfaces inside {inside:?}, via /proc/{}/net/dev {from_host:?}, own netns: {own_ns}, lo flags {:?}",
            c.pid,
            flags.trim()
        )
    })
}

/// The host's interfaces but `lo`.
fn host_interfaces() -> Vec<String> {
    let all: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|rd| rd.filter_map(Result::ok).filter_map(|e| e.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    all.into_iter().filter(|n| n != "lo").collect()
}

/// `ip` wherever this system keeps it (the guest agent runs without a PATH).
fn ip_binary() -> &'static str {
    ["/sbin/ip", "/usr/sbin/ip", "/bin/ip", "/usr/bin/ip"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("ip")
}

/// A veth pair made on a host that has only `lo` (a throwaway guest), deleted on drop.
struct TempVeth(String);

impl TempVeth {
    fn create() -> Option<Self> {
        let name = format!("isolab-h{}", std::process::id() % 100_000);
        let ok = std::process::Command::new(ip_binary())
            .args(["link", "add", &name, "type", "veth"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(TempVeth(name))
    }
}

impl Drop for TempVeth {
    fn drop(&mut self) {
        let _ = std::process::Command::new(ip_binary()).args(["link", "del", &self.0]).status();
    }
}

fn host_interfaces_invisible(ctx: &mut Ctx) -> Verdict {
    let mut host = host_interfaces();
    // A guest has only `lo`: give it a veth pair so there is something to hide.
    let _veth = if host.is_empty() { TempVeth::create() } else { None };
    if host.is_empty() {
        host = host_interfaces();
    }
    if host.is_empty() {
        return Verdict::skip("the host has no interface but lo, and `ip link add ... type veth` failed");
    }
    let out = v!(ctx.run_ok(ctx.config(&["sh", "-c", "cat /proc/net/dev; echo ---; ls -1 /sys/class/net"])));
    let Some((dev, sys)) = out.stdout.split_once("---") else {
        return Verdict::error(format!("unexpected output: {:?}", out.stdout));
    };
    let mut inside = dev_names(dev);
    inside.extend(sys.split_whitespace().map(str::to_owned));
    let seen: Vec<&String> = host.iter().filter(|h| inside.contains(h)).collect();
    Verdict::check(seen.is_empty(), || format!("host interfaces visible inside: {seen:?}"))
}

/// The abstract names (`@...`) of a /proc/net/unix text.
fn abstract_names(text: &str) -> Vec<&str> {
    text.lines().filter_map(|l| l.split_whitespace().nth(7)).filter(|p| p.starts_with('@')).collect()
}

fn abstract_socket_unreachable(ctx: &mut Ctx) -> Verdict {
    let name = format!("isolab-{}", std::process::id());
    let addr = v!(SocketAddr::from_abstract_name(name.as_bytes())
        .map_err(|e| Verdict::error(format!("abstract address {name}: {e}"))));
    let _listener =
        v!(UnixListener::bind_addr(&addr)
            .map_err(|e| Verdict::error(format!("bind @{name} on the host: {e}"))));
    let at = format!("@{name}");
    if !abstract_names(&std::fs::read_to_string("/proc/net/unix").unwrap_or_default()).contains(&at.as_str())
    {
        return Verdict::error(format!("the host's /proc/net/unix lacks its own {at}"));
    }
    let c = v!(ctx.start(ctx.config(&["sleep", "120"])));
    let out = ctx.exec(&c, &["cat", "/proc/net/unix"]);
    if out.code != 0 {
        return Verdict::fail(format!(
            "exec cat /proc/net/unix failed ({}): {}",
            out.code,
            out.stderr.trim()
        ));
    }
    let from_host = std::fs::read_to_string(format!("/proc/{}/net/unix", c.pid)).unwrap_or_default();
    let (inside, via_pid) = (
        abstract_names(&out.stdout).contains(&at.as_str()),
        abstract_names(&from_host).contains(&at.as_str()),
    );
    Verdict::check(!inside && !via_pid && !from_host.is_empty(), || {
        format!("{at} listed inside: {inside}; in /proc/{}/net/unix: {via_pid}", c.pid)
    })
}
