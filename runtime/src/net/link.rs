//! rtnetlink, synchronously: one netlink connection on a current-thread tokio runtime built
//! on demand (only the net code paths pay for it). The socket belongs to the network
//! namespace of the thread that opened it.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

use futures::TryStreamExt;
use netlink_packet_route::address::AddressHeaderFlags;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::cidr::Cidr;
use super::NetError;

/// A netlink connection in the calling thread's network namespace.
pub(crate) struct Nl {
    rt: tokio::runtime::Runtime,
    handle: Handle,
}

impl std::fmt::Debug for Nl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Nl")
    }
}

fn nl_err(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetError {
    let op = op.into();
    move |source| NetError::Netlink { op, source }
}

/// The errno of a netlink error, if it is one.
fn errno_of(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(-m.raw_code()),
        _ => None,
    }
}

impl Nl {
    /// Open a connection in the current thread's network namespace.
    pub(crate) fn new() -> Result<Self, NetError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|source| NetError::Io { op: "build the netlink runtime", path: "-".into(), source })?;
        let handle = rt.block_on(async {
            let (conn, handle, _) = rtnetlink::new_connection()?;
            tokio::spawn(conn);
            Ok::<_, std::io::Error>(handle)
        });
        let handle = handle.map_err(|source| NetError::Io {
            op: "open a netlink socket",
            path: "-".into(),
            source,
        })?;
        Ok(Nl { rt, handle })
    }

    /// The index of link `name`, None if there is none.
    pub(crate) fn index(&self, name: &str) -> Result<Option<u32>, NetError> {
        let req = self.handle.link().get().match_name(name.to_owned()).execute();
        match self.rt.block_on(async {
            futures::pin_mut!(req);
            req.try_next().await
        }) {
            Ok(msg) => Ok(msg.map(|m| m.header.index)),
            Err(e) if errno_of(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(nl_err(format!("get link {name}"))(e)),
        }
    }

    /// The index of link `name`, which must exist.
    pub(crate) fn must_index(&self, name: &str) -> Result<u32, NetError> {
        self.index(name)?.ok_or_else(|| NetError::NoSuchDevice { name: name.to_owned() })
    }

    fn set(&self, op: String, msg: LinkMessage) -> Result<(), NetError> {
        self.rt.block_on(self.handle.link().set(msg).execute()).map_err(nl_err(op))
    }

    /// Create bridge `name` (up, with `mtu` if given).
    pub(crate) fn add_bridge(&self, name: &str, mtu: Option<u32>) -> Result<u32, NetError> {
        let mut b = LinkBridge::new(name);
        if let Some(m) = mtu {
            b = b.mtu(m);
        }
        self.rt
            .block_on(self.handle.link().add(b.build()).execute())
            .map_err(nl_err(format!("add bridge {name}")))?;
        self.must_index(name)
    }

    /// Create a veth pair `host` ↔ `peer`.
    pub(crate) fn add_veth(&self, host: &str, peer: &str, mtu: Option<u32>) -> Result<u32, NetError> {
        let mut v = LinkVeth::new(host, peer);
        if let Some(m) = mtu {
            v = v.mtu(m);
        }
        self.rt
            .block_on(self.handle.link().add(v.build()).execute())
            .map_err(nl_err(format!("add veth {host} peer {peer}")))?;
        self.must_index(host)
    }

    /// Enslave link `index` to `bridge` and bring it up.
    pub(crate) fn attach_up(&self, index: u32, bridge: u32) -> Result<(), NetError> {
        let msg = LinkUnspec::new_with_index(index).controller(bridge).up().build();
        self.set(format!("attach link {index} to bridge {bridge}"), msg)
    }

    /// Bring link `index` up or down.
    pub(crate) fn set_up(&self, index: u32, up: bool) -> Result<(), NetError> {
        let b = LinkUnspec::new_with_index(index);
        let msg = if up { b.up() } else { b.down() }.build();
        self.set(format!("set link {index} {}", if up { "up" } else { "down" }), msg)
    }

    /// Rename link `index` (it must be down).
    pub(crate) fn rename(&self, index: u32, name: &str) -> Result<(), NetError> {
        self.set(
            format!("rename link {index} to {name}"),
            LinkUnspec::new_with_index(index).name(name).build(),
        )
    }

    /// Set the MTU of link `index`.
    pub(crate) fn set_mtu(&self, index: u32, mtu: u32) -> Result<(), NetError> {
        self.set(
            format!("set the MTU of link {index} to {mtu}"),
            LinkUnspec::new_with_index(index).mtu(mtu).build(),
        )
    }

    /// Set the MAC address of link `index`.
    pub(crate) fn set_mac(&self, index: u32, mac: [u8; 6]) -> Result<(), NetError> {
        let msg = LinkUnspec::new_with_index(index).address(mac.to_vec()).build();
        self.set(format!("set the MAC of link {index}"), msg)
    }

    /// Move link `index` into the network namespace `ns`.
    pub(crate) fn move_to(&self, index: u32, name: &str, ns: BorrowedFd<'_>) -> Result<(), NetError> {
        let msg = LinkUnspec::new_with_index(index).setns_by_fd(ns.as_raw_fd()).build();
        self.set(format!("move link {name} to another network namespace"), msg)
    }

    /// Delete link `index` (already gone is fine: a veth dies with its peer's namespace,
    /// asynchronously).
    pub(crate) fn delete(&self, index: u32, name: &str) -> Result<(), NetError> {
        match self.rt.block_on(self.handle.link().del(index).execute()) {
            Err(e) if errno_of(&e) == Some(libc::ENODEV) => Ok(()),
            r => r.map_err(nl_err(format!("delete link {name}"))),
        }
    }

    /// Add `ip/prefix` to link `index` (IPv6 without duplicate address detection, so it is
    /// usable at once).
    pub(crate) fn add_addr(&self, index: u32, ip: IpAddr, prefix: u8) -> Result<(), NetError> {
        let mut req = self.handle.address().add(index, ip, prefix);
        if ip.is_ipv6() {
            req.message_mut().header.flags |= AddressHeaderFlags::Nodad;
        }
        self.rt.block_on(req.execute()).map_err(nl_err(format!("add address {ip}/{prefix} to link {index}")))
    }

    /// Add a default route via `gw` on link `index`.
    pub(crate) fn add_default_route(&self, index: u32, gw: IpAddr) -> Result<(), NetError> {
        let msg = match gw {
            IpAddr::V4(g) => {
                RouteMessageBuilder::<std::net::Ipv4Addr>::new().gateway(g).output_interface(index).build()
            }
            IpAddr::V6(g) => {
                RouteMessageBuilder::<std::net::Ipv6Addr>::new().gateway(g).output_interface(index).build()
            }
        };
        self.rt
            .block_on(self.handle.route().add(msg).execute())
            .map_err(nl_err(format!("add default route via {gw}")))
    }

    /// Every route of the main tables with a destination (not a default route): its
    /// destination and output link index.
    pub(crate) fn routes(&self, v6: bool) -> Result<Vec<(Cidr, u32)>, NetError> {
        let query = if v6 {
            RouteMessageBuilder::<std::net::Ipv6Addr>::new().build()
        } else {
            RouteMessageBuilder::<std::net::Ipv4Addr>::new().build()
        };
        let req = self.handle.route().get(query).execute();
        let msgs: Vec<RouteMessage> = self.rt.block_on(req.try_collect()).map_err(nl_err(if v6 {
            "list IPv6 routes"
        } else {
            "list IPv4 routes"
        }))?;
        Ok(msgs.iter().filter_map(route_dst).collect())
    }

    /// Every link: index, name and the index of its bridge (controller), if any.
    pub(crate) fn links(&self) -> Result<Vec<(u32, String, Option<u32>)>, NetError> {
        let req = self.handle.link().get().execute();
        let msgs: Vec<LinkMessage> = self.rt.block_on(req.try_collect()).map_err(nl_err("list links"))?;
        Ok(msgs
            .iter()
            .map(|m| {
                let mut name = String::new();
                let mut controller = None;
                for a in &m.attributes {
                    match a {
                        LinkAttribute::IfName(n) => name = n.clone(),
                        LinkAttribute::Controller(c) => controller = Some(*c),
                        _ => {}
                    }
                }
                (m.header.index, name, controller)
            })
            .collect())
    }
}

/// The destination and output link of a route with a non-empty prefix.
fn route_dst(m: &RouteMessage) -> Option<(Cidr, u32)> {
    let prefix = m.header.destination_prefix_length;
    if prefix == 0 {
        return None;
    }
    let mut dst = None;
    let mut oif = 0;
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = Some(IpAddr::V4(*a)),
            RouteAttribute::Destination(RouteAddress::Inet6(a)) => dst = Some(IpAddr::V6(*a)),
            RouteAttribute::Oif(i) => oif = *i,
            _ => {}
        }
    }
    Some((Cidr { addr: dst?, prefix }, oif))
}
