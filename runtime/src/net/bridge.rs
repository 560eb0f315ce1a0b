//! `isorun net up|down`: a bridge (created when missing), a veth pair per container with
//! one end in the container's network namespace, addresses from the lease file, a default
//! route via the bridge. `down` removes the veth, the lease, and the bridge when we created
//! it and nothing else uses it. Bad input fails before anything is created.

use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::Path;

use super::cidr::Cidr;
use super::lease::{Lease, LeaseFile};
use super::link::Nl;
use super::{check_ifname, in_netns, netns_of, NetError};

/// What `net up` is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetOptions {
    /// The bridge (created when missing).
    pub bridge: String,
    /// IPv4 subnet: the bridge gets its first address, containers the next free ones.
    pub subnet: Cidr,
    /// Optional IPv6 subnet, likewise.
    pub subnet6: Option<Cidr>,
    /// MTU of the bridge (when we create it) and of both veth ends.
    pub mtu: Option<u32>,
    /// MAC address of the container's interface.
    pub mac: Option<[u8; 6]>,
    /// The container's interface name.
    pub ifname: String,
}

fn invalid(field: &str, reason: impl Into<String>) -> NetError {
    NetError::Invalid { field: field.to_owned(), reason: reason.into() }
}

/// Parse `aa:bb:cc:dd:ee:ff` (a unicast address).
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err(format!("{s:?} is not six hex octets separated by :"));
    }
    for (m, p) in mac.iter_mut().zip(&parts) {
        *m = u8::from_str_radix(p, 16)
            .ok()
            .filter(|_| p.len() == 2)
            .ok_or_else(|| format!("{s:?}: {p:?} is not a hex octet"))?;
    }
    if mac[0] & 1 == 1 {
        return Err(format!("{s} is a multicast address"));
    }
    if mac == [0; 6] {
        return Err("00:00:00:00:00:00 is not a usable address".into());
    }
    Ok(mac)
}

impl NetOptions {
    /// Check and parse the command-line values.
    pub fn new(
        bridge: &str,
        subnet: &str,
        subnet6: Option<&str>,
        mtu: Option<u32>,
        mac: Option<&str>,
        ifname: &str,
    ) -> Result<Self, NetError> {
        check_ifname("--bridge", bridge)?;
        check_ifname("--ifname", ifname)?;
        let subnet = Cidr::parse(subnet).map_err(|r| invalid("--subnet", r))?;
        if subnet.is_v6() {
            return Err(invalid("--subnet", format!("{subnet} is IPv6; use --subnet6")));
        }
        let subnet6 = subnet6.map(|s| Cidr::parse(s).map_err(|r| invalid("--subnet6", r))).transpose()?;
        if subnet6.is_some_and(|s| !s.is_v6()) {
            return Err(invalid("--subnet6", "must be an IPv6 subnet"));
        }
        if let Some(m) = mtu.filter(|m| !(68..=65535).contains(m)) {
            return Err(invalid("--mtu", format!("{m} is outside 68..=65535")));
        }
        let mac = mac.map(|m| parse_mac(m).map_err(|r| invalid("--mac", r))).transpose()?;
        Ok(NetOptions { bridge: bridge.to_owned(), subnet, subnet6, mtu, mac, ifname: ifname.to_owned() })
    }
}

/// What `net up` gave a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    /// Its IPv4 address.
    pub v4: IpAddr,
    /// Its IPv6 address.
    pub v6: Option<IpAddr>,
    /// The host end of its veth pair.
    pub host_veth: String,
}

/// The host and container-side veth names of container `id` on `bridge` (≤ 15 bytes).
fn veth_names(bridge: &str, id: &str) -> (String, String) {
    let mut h: u32 = 0x811c_9dc5;
    for b in bridge.bytes().chain([0]).chain(id.bytes()) {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (format!("iv{h:08x}"), format!("ic{h:08x}"))
}

/// Attach container `id` (init `pid`) to the bridge of `opts`, with leases under `root`.
pub fn up(root: &Path, opts: &NetOptions, id: &str, pid: i32) -> Result<Attached, NetError> {
    let ns = netns_of(pid)?;
    let own = netns_of(std::process::id() as i32)?;
    if same_file(&ns, &own) {
        return Err(invalid(
            "pid",
            format!("process {pid} shares isorun's network namespace (no network namespace of its own)"),
        ));
    }
    let nl = Nl::new()?;
    let mut leases = LeaseFile::open(root, &opts.bridge)?;
    let links = nl.links()?;
    let bridge_idx = links.iter().find(|l| l.1 == opts.bridge).map(|l| l.0);
    for subnet in std::iter::once(&opts.subnet).chain(opts.subnet6.as_ref()) {
        for (route, oif) in nl.routes(subnet.is_v6())? {
            if Some(oif) != bridge_idx && route.overlaps(subnet) {
                let dev =
                    links.iter().find(|l| l.0 == oif).map_or_else(|| format!("link {oif}"), |l| l.1.clone());
                return Err(NetError::Overlap { subnet: *subnet, route, dev });
            }
        }
    }
    for (_, stale) in leases.leases.reclaim(crate::state::process_alive) {
        if let Ok(Some(i)) = nl.index(&stale.host_veth) {
            let _ = nl.delete(i, &stale.host_veth);
        }
    }
    if leases.leases.leases.contains_key(id) {
        return Err(invalid("id", format!("container {id} is already attached to {}", opts.bridge)));
    }
    let (v4, v6) = leases.leases.allocate(&opts.subnet, opts.subnet6.as_ref())?;
    let start = crate::state::proc_stat(pid)
        .map(|s| s.1)
        .ok_or_else(|| invalid("pid", format!("process {pid} is gone")))?;

    let created = bridge_idx.is_none();
    let br = match bridge_idx {
        Some(i) => i,
        None => match create_bridge(&nl, opts) {
            Ok(i) => i,
            Err(e) => {
                if let Ok(Some(i)) = nl.index(&opts.bridge) {
                    let _ = nl.delete(i, &opts.bridge);
                }
                return Err(e);
            }
        },
    };
    if created {
        leases.leases.created_bridge = true;
        leases.leases.bridge_index = Some(br);
    }
    let (host, peer) = veth_names(&opts.bridge, id);
    let attached = attach(&nl, opts, br, &ns, (&host, &peer), (v4, v6));
    if let Err(e) = attached {
        if let Ok(Some(i)) = nl.index(&host) {
            let _ = nl.delete(i, &host);
        }
        if created && leases.leases.leases.is_empty() {
            let _ = nl.delete(br, &opts.bridge);
            leases.leases.created_bridge = false;
            leases.leases.bridge_index = None;
        }
        leases.save()?;
        return Err(e);
    }
    leases.leases.leases.insert(id.to_owned(), Lease { v4, v6, host_veth: host.clone(), pid, start });
    leases.save()?;
    Ok(Attached { v4, v6, host_veth: host })
}

fn same_file(a: &std::fs::File, b: &std::fs::File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (a.metadata(), b.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn create_bridge(nl: &Nl, opts: &NetOptions) -> Result<u32, NetError> {
    let br = nl.add_bridge(&opts.bridge, opts.mtu)?;
    for s in std::iter::once(&opts.subnet).chain(opts.subnet6.as_ref()) {
        let gw = s.nth(1).ok_or(NetError::Exhausted { subnet: *s })?;
        nl.add_addr(br, gw, s.prefix)?;
    }
    nl.set_up(br, true)?;
    Ok(br)
}

fn attach(
    nl: &Nl,
    opts: &NetOptions,
    br: u32,
    ns: &std::fs::File,
    (host, peer): (&str, &str),
    (v4, v6): (IpAddr, Option<IpAddr>),
) -> Result<(), NetError> {
    let h = nl.add_veth(host, peer, opts.mtu)?;
    nl.attach_up(h, br)?;
    nl.move_to(nl.must_index(peer)?, peer, ns.as_fd())?;
    in_netns(ns, "container network namespace", || {
        let nl = Nl::new()?;
        let i = nl.must_index(peer)?;
        nl.rename(i, &opts.ifname)?;
        if let Some(mac) = opts.mac {
            nl.set_mac(i, mac)?;
        }
        if let Some(mtu) = opts.mtu {
            nl.set_mtu(i, mtu)?;
        }
        nl.set_up(i, true)?;
        nl.set_up(nl.must_index("lo")?, true)?;
        nl.add_addr(i, v4, opts.subnet.prefix)?;
        let gw4 = opts.subnet.nth(1).ok_or(NetError::Exhausted { subnet: opts.subnet })?;
        nl.add_default_route(i, gw4)?;
        if let (Some(ip), Some(s)) = (v6, &opts.subnet6) {
            nl.add_addr(i, ip, s.prefix)?;
            nl.add_default_route(i, s.nth(1).ok_or(NetError::Exhausted { subnet: *s })?)?;
        }
        Ok(())
    })
}

/// Detach container `id` from `bridge`: its veth and lease go, and the bridge too when we
/// created it and no port is left. A container without a lease is not an error (a
/// `poststop` hook after a failed `up`).
pub fn down(root: &Path, bridge: &str, id: &str) -> Result<(), NetError> {
    check_ifname("--bridge", bridge)?;
    let nl = Nl::new()?;
    let mut leases = LeaseFile::open(root, bridge)?;
    let mut gone: Vec<Lease> = leases.leases.leases.remove(id).into_iter().collect();
    gone.extend(leases.leases.reclaim(crate::state::process_alive).into_iter().map(|(_, l)| l));
    // The leases go even when a veth cannot be deleted; the first error is returned after.
    let mut first = Ok(());
    for l in &gone {
        if let Err(e) = nl.index(&l.host_veth).and_then(|i| i.map_or(Ok(()), |i| nl.delete(i, &l.host_veth)))
        {
            first = first.and(Err(e));
        }
    }
    if leases.leases.leases.is_empty() && leases.leases.created_bridge {
        let links = nl.links()?;
        match links.iter().find(|l| l.1 == bridge).map(|l| l.0) {
            Some(br) if links.iter().any(|l| l.2 == Some(br)) => {}
            Some(br) if leases.leases.bridge_index == Some(br) => nl.delete(br, bridge)?,
            _ => {}
        }
        if nl.index(bridge)?.is_none_or(|i| leases.leases.bridge_index != Some(i)) {
            leases.leases.created_bridge = false;
            leases.leases.bridge_index = None;
        }
    }
    leases.save()?;
    first
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("02:42:ac:11:00:02", true ; "unicast")]
    #[test_case("03:42:ac:11:00:02", false ; "multicast")]
    #[test_case("02:42:ac:11:00", false ; "five")]
    #[test_case("02:42:ac:11:00:zz", false ; "not hex")]
    #[test_case("00:00:00:00:00:00", false ; "zero")]
    fn macs(s: &str, ok: bool) {
        assert_eq!(parse_mac(s).is_ok(), ok, "{s}");
    }

    #[test]
    fn options_are_checked_before_anything() {
        let ok = NetOptions::new("isobr0", "10.88.0.0/24", Some("fd00:88::/64"), Some(1400), None, "eth0");
        assert!(ok.is_ok());
        for (args, field) in [
            (("a-bridge-name-too-long", "10.88.0.0/24", None, None), "--bridge"),
            (("br", "10.88.0.1/24", None, None), "--subnet"),
            (("br", "fd00::/64", None, None), "--subnet"),
            (("br", "10.88.0.0/24", Some("10.1.0.0/24"), None), "--subnet6"),
            (("br", "10.88.0.0/24", None, Some(10)), "--mtu"),
        ] {
            let e = NetOptions::new(args.0, args.1, args.2, args.3, None, "eth0").unwrap_err();
            assert!(e.to_string().starts_with(field), "{e}");
        }
    }

    #[test]
    fn veth_names_fit_and_differ() {
        let (h, p) = veth_names("isobr0", "container-1");
        assert!(h.len() <= 15 && p.len() <= 15 && h != p);
        assert_ne!(veth_names("isobr0", "container-2").0, h);
        assert_ne!(veth_names("isobr1", "container-1").0, h);
    }
}
