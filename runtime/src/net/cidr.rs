//! Subnets (pure): parsing `10.88.0.0/24` / `fd00:88::/64`, overlap, and the n-th address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A subnet: its network address (host bits cleared) and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The network address.
    pub addr: IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn bits(addr: IpAddr) -> (u128, u8) {
    match addr {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

fn from_bits(v: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(v))
    } else {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    }
}

fn mask(prefix: u8, width: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        let all = if width == 128 { u128::MAX } else { (1u128 << width) - 1 };
        all & !((1u128 << (width - prefix)) - 1)
    }
}

impl Cidr {
    /// Parse `ADDR/PREFIX`. Host bits must be zero, and the subnet must leave room for a
    /// gateway and at least one container (prefix ≤ 30 for IPv4, ≤ 126 for IPv6).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, p) = s.split_once('/').ok_or_else(|| format!("{s:?} is not ADDR/PREFIX"))?;
        let addr: IpAddr = a.parse().map_err(|_| format!("{a:?} is not an IP address"))?;
        let prefix: u8 = p.parse().map_err(|_| format!("{p:?} is not a prefix length"))?;
        let (v, width) = bits(addr);
        if prefix > width - 2 {
            return Err(format!(
                "/{prefix} leaves no room for a gateway and a container (at most /{})",
                width - 2
            ));
        }
        if v & !mask(prefix, width) != 0 {
            return Err(format!(
                "{s} has host bits set (the network is {})",
                from_bits(v & mask(prefix, width), width == 128)
            ));
        }
        Ok(Cidr { addr, prefix })
    }

    /// IPv6?
    pub fn is_v6(&self) -> bool {
        self.addr.is_ipv6()
    }

    fn width(&self) -> u8 {
        if self.is_v6() {
            128
        } else {
            32
        }
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (v, w) = bits(ip);
        w == self.width() && v & mask(self.prefix, w) == bits(self.addr).0
    }

    /// Whether the two subnets share an address (different families never do).
    pub fn overlaps(&self, other: &Cidr) -> bool {
        if self.is_v6() != other.is_v6() {
            return false;
        }
        let p = self.prefix.min(other.prefix);
        let m = mask(p, self.width());
        bits(self.addr).0 & m == bits(other.addr).0 & m
    }

    /// The `n`-th address (1 = the gateway); None past the end (or on the IPv4 broadcast).
    pub fn nth(&self, n: u128) -> Option<IpAddr> {
        let host_bits = self.width() - self.prefix;
        let size = if host_bits >= 128 { u128::MAX } else { 1u128 << host_bits };
        let last = if self.is_v6() { size - 1 } else { size - 2 };
        (n >= 1 && n <= last).then(|| from_bits(bits(self.addr).0 + n, self.is_v6()))
    }

    /// How many container addresses the subnet has (all but network, gateway, broadcast),
    /// capped at `cap`.
    pub fn capacity(&self, cap: u128) -> u128 {
        let host_bits = self.width() - self.prefix;
        if host_bits >= 64 {
            return cap;
        }
        let size = 1u128 << host_bits;
        let usable = if self.is_v6() { size - 2 } else { size - 3 };
        usable.min(cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("10.88.0.0/24", Ok("10.88.0.0/24") ; "v4")]
    #[test_case("fd00:88::/64", Ok("fd00:88::/64") ; "v6")]
    #[test_case("10.88.0.1/24", Err("host bits") ; "host bits")]
    #[test_case("10.88.0.0/31", Err("no room") ; "too small")]
    #[test_case("10.88.0.0", Err("ADDR/PREFIX") ; "no prefix")]
    #[test_case("10.88.0/24", Err("not an IP") ; "bad addr")]
    #[test_case("10.88.0.0/x", Err("prefix length") ; "bad prefix")]
    fn parse(s: &str, want: Result<&str, &str>) {
        match (Cidr::parse(s), want) {
            (Ok(c), Ok(w)) => assert_eq!(c.to_string(), w),
            (Err(e), Err(w)) => assert!(e.contains(w), "{e}"),
            (got, want) => panic!("{s}: got {got:?}, want {want:?}"),
        }
    }

    #[test_case("10.88.0.0/24", "10.88.0.0/16", true ; "inside")]
    #[test_case("10.88.0.0/24", "10.89.0.0/24", false ; "beside")]
    #[test_case("10.0.0.0/8", "10.200.0.0/30", true ; "contains")]
    #[test_case("10.88.0.0/24", "fd00::/64", false ; "families")]
    #[test_case("fd00:88::/64", "fd00:88::/48", true ; "v6 inside")]
    fn overlap(a: &str, b: &str, want: bool) {
        let (a, b) = (Cidr::parse(a).unwrap(), Cidr::parse(b).unwrap());
        assert_eq!(a.overlaps(&b), want);
        assert_eq!(b.overlaps(&a), want);
    }

    #[test]
    fn nth_and_capacity() {
        let c = Cidr::parse("10.88.0.0/30").unwrap();
        assert_eq!(c.nth(1), Some("10.88.0.1".parse().unwrap()));
        assert_eq!(c.nth(2), Some("10.88.0.2".parse().unwrap()));
        assert_eq!(c.nth(3), None, "broadcast");
        assert_eq!(c.capacity(1000), 1);
        assert!(c.contains("10.88.0.2".parse().unwrap()));
        assert!(!c.contains("10.88.0.4".parse().unwrap()));
        let c6 = Cidr::parse("fd00::/64").unwrap();
        assert_eq!(c6.nth(2), Some("fd00::2".parse().unwrap()));
        assert_eq!(c6.capacity(4096), 4096);
        assert_eq!(Cidr::parse("10.0.0.0/24").unwrap().capacity(1000), 253);
    }
}
