//! Container networking over rtnetlink: a bridge with a veth pair per container and
//! addresses from a small allocator (`isorun net up|down`, usable as OCI hooks), and
//! `linux.netDevices` (host interfaces moved into the container and given back on delete).
//!
//! Nothing here runs unless a container asks for it: the tokio runtime rtnetlink needs is
//! built on demand (`link::Nl`), never on the path of a container without network config.

mod bridge;
pub mod cidr;
mod devices;
pub mod lease;
mod link;

use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;

pub use bridge::{down, up, Attached, NetOptions};
pub use cidr::Cidr;
pub use devices::{check_devices_exist, move_in, move_in_for, move_out, MovedDevices};

/// Longest interface name (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

/// A networking step failed; every variant names what it was working on.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A bad argument or config value, found before anything was created.
    #[error("{field}: {reason}")]
    Invalid {
        /// The flag or JSON path.
        field: String,
        /// Why.
        reason: String,
    },
    /// The subnet overlaps a route of the host.
    #[error("--subnet {subnet} overlaps the host route {route} on {dev}")]
    Overlap {
        /// Our subnet.
        subnet: Cidr,
        /// The host's route.
        route: Cidr,
        /// Its device.
        dev: String,
    },
    /// Every address of the subnet is leased.
    #[error("no free address left in {subnet}")]
    Exhausted {
        /// The subnet.
        subnet: Cidr,
    },
    /// A device that must exist does not.
    #[error("network device {name:?} does not exist")]
    NoSuchDevice {
        /// Its name.
        name: String,
    },
    /// A netlink request failed.
    #[error("{op}: {source}")]
    Netlink {
        /// The request.
        op: String,
        /// The error.
        source: rtnetlink::Error,
    },
    /// A file step failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Entering a network namespace failed.
    #[error("setns {path}: {errno}")]
    Setns {
        /// The namespace file.
        path: PathBuf,
        /// The errno.
        errno: nix::errno::Errno,
    },
}

/// Check an interface name: 1 to 15 bytes, no `/`, `:` or whitespace, not `.` or `..`.
pub fn check_ifname(field: &str, name: &str) -> Result<(), NetError> {
    let bad = |reason: String| Err(NetError::Invalid { field: field.to_owned(), reason });
    if name.is_empty() || name.len() > IFNAME_MAX {
        return bad(format!(
            "interface name {name:?} must be 1 to {IFNAME_MAX} bytes (IFNAMSIZ), it is {}",
            name.len()
        ));
    }
    if name == "."
        || name == ".."
        || name.bytes().any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
    {
        return bad(format!("interface name {name:?} may not be . or .. or hold /, :, NUL or whitespace"));
    }
    Ok(())
}

/// The network namespace of `pid` (`/proc/<pid>/ns/net`).
pub fn netns_of(pid: i32) -> Result<File, NetError> {
    let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
    File::open(&path).map_err(|source| NetError::Io { op: "open", path, source })
}

/// Run `f` on a thread that has entered the network namespace `ns` (netlink sockets opened
/// there belong to it); this thread stays where it is.
pub(crate) fn in_netns<T: Send>(
    ns: &File,
    what: &str,
    f: impl FnOnce() -> Result<T, NetError> + Send,
) -> Result<T, NetError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|errno| NetError::Setns { path: PathBuf::from(what), errno })?;
            f()
        })
        .join()
        .unwrap_or_else(|_| {
            Err(NetError::Invalid { field: what.to_owned(), reason: "netns thread panicked".into() })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("eth0", true ; "plain")]
    #[test_case("fifteen-bytes-x", true ; "fifteen")]
    #[test_case("sixteen-bytes-xx", false ; "sixteen")]
    #[test_case("", false ; "empty")]
    #[test_case("a/b", false ; "slash")]
    #[test_case("a b", false ; "space")]
    #[test_case("..", false ; "dotdot")]
    fn ifnames(name: &str, ok: bool) {
        assert_eq!(check_ifname("x", name).is_ok(), ok);
    }
}
