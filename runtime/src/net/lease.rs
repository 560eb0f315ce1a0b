//! The address leases of one bridge: `<root>/net/<bridge>.json`, read and written under an
//! exclusive flock of `<root>/net/<bridge>.lock`, so concurrent `create`s never share an
//! address. A lease whose container init is gone (a crash, a kill without `net down`) is
//! reclaimed by the next run.

use std::collections::BTreeMap;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::cidr::Cidr;
use super::NetError;

/// One container's addresses on a bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Its IPv4 address.
    pub v4: IpAddr,
    /// Its IPv6 address, with --subnet6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v6: Option<IpAddr>,
    /// The host end of its veth pair.
    pub host_veth: String,
    /// Its init's pid and start time: the lease is stale once that process is gone.
    pub pid: i32,
    /// Start time of `pid` (clock ticks since boot).
    pub start: u64,
}

/// Every lease of one bridge.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leases {
    /// We created the bridge: the last `net down` deletes it.
    pub created_bridge: bool,
    /// The index of the bridge we created: a same-named bridge elsewhere (another network
    /// namespace, a later one of someone else) is never deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge_index: Option<u32>,
    /// Container id → lease.
    pub leases: BTreeMap<String, Lease>,
}

/// The first free address of `subnet` (from the 2nd: the 1st is the gateway), trying at
/// most `cap` addresses.
pub fn allocate(subnet: &Cidr, taken: &[IpAddr], cap: u128) -> Option<IpAddr> {
    (2..2 + subnet.capacity(cap)).filter_map(|n| subnet.nth(n)).find(|ip| !taken.contains(ip))
}

impl Leases {
    /// Allocate the addresses of container `id`; `Exhausted` names the full subnet.
    pub fn allocate(&self, v4: &Cidr, v6: Option<&Cidr>) -> Result<(IpAddr, Option<IpAddr>), NetError> {
        let taken4: Vec<IpAddr> = self.leases.values().map(|l| l.v4).collect();
        let ip4 = allocate(v4, &taken4, 1 << 16).ok_or(NetError::Exhausted { subnet: *v4 })?;
        let ip6 = match v6 {
            Some(s) => {
                let taken6: Vec<IpAddr> = self.leases.values().filter_map(|l| l.v6).collect();
                Some(allocate(s, &taken6, 1 << 16).ok_or(NetError::Exhausted { subnet: *s })?)
            }
            None => None,
        };
        Ok((ip4, ip6))
    }

    /// Drop the leases whose init is gone; their ids.
    pub fn reclaim(&mut self, alive: impl Fn(i32, u64) -> bool) -> Vec<(String, Lease)> {
        let stale: Vec<String> =
            self.leases.iter().filter(|(_, l)| !alive(l.pid, l.start)).map(|(id, _)| id.clone()).collect();
        stale.into_iter().filter_map(|id| self.leases.remove(&id).map(|l| (id, l))).collect()
    }
}

/// The leases of one bridge, locked until dropped.
#[derive(Debug)]
pub struct LeaseFile {
    path: PathBuf,
    _lock: Flock<fs::File>,
    /// The current leases.
    pub leases: Leases,
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> NetError + 'a {
    move |source| NetError::Io { op, path: path.to_owned(), source }
}

impl LeaseFile {
    /// Lock and read the leases of `bridge` under `root`.
    pub fn open(root: &Path, bridge: &str) -> Result<Self, NetError> {
        let dir = root.join("net");
        fs::create_dir_all(&dir).map_err(io("mkdir", &dir))?;
        let lock_path = dir.join(format!("{bridge}.lock"));
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("open", &lock_path))?;
        let lock = Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| NetError::Io {
            op: "flock",
            path: lock_path.clone(),
            source: e.into(),
        })?;
        let path = dir.join(format!("{bridge}.json"));
        let leases = match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| NetError::Io {
                op: "parse",
                path: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Leases::default(),
            Err(e) => return Err(io("read", &path)(e)),
        };
        Ok(LeaseFile { path, _lock: lock, leases })
    }

    /// Write the leases back atomically; with no lease and no bridge of ours, remove the file.
    pub fn save(&self) -> Result<(), NetError> {
        if self.leases.leases.is_empty() && !self.leases.created_bridge {
            // The lock file stays: removing it would let a waiter lock an unlinked inode
            // while a newcomer locks a new one.
            return match fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", &self.path)(e)),
                _ => Ok(()),
            };
        }
        let tmp = self.path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(&self.leases).unwrap_or_default();
        fs::write(&tmp, text).map_err(io("write", &tmp))?;
        fs::rename(&tmp, &self.path).map_err(io("rename", &self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(v4: &str, pid: i32) -> Lease {
        Lease { v4: v4.parse().unwrap(), v6: None, host_veth: "x".into(), pid, start: 1 }
    }

    #[test]
    fn allocates_first_free_and_exhausts() {
        let s = Cidr::parse("10.1.0.0/29").unwrap(); // .1 gateway, .2-.6 free, .7 broadcast
        let mut l = Leases::default();
        let mut got = Vec::new();
        for i in 0..5 {
            let (ip, _) = l.allocate(&s, None).unwrap();
            got.push(ip.to_string());
            l.leases.insert(format!("c{i}"), lease(&ip.to_string(), i));
        }
        assert_eq!(got, ["10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5", "10.1.0.6"]);
        assert!(matches!(l.allocate(&s, None), Err(NetError::Exhausted { .. })));
        l.leases.remove("c1");
        assert_eq!(l.allocate(&s, None).unwrap().0.to_string(), "10.1.0.3");
    }

    #[test]
    fn v6_alongside() {
        let l = Leases::default();
        let (a, b) = l
            .allocate(&Cidr::parse("10.1.0.0/24").unwrap(), Some(&Cidr::parse("fd00:1::/64").unwrap()))
            .unwrap();
        assert_eq!((a.to_string(), b.unwrap().to_string()), ("10.1.0.2".into(), "fd00:1::2".into()));
    }

    #[test]
    fn reclaims_dead_holders_only() {
        let mut l = Leases::default();
        l.leases.insert("live".into(), lease("10.1.0.2", 10));
        l.leases.insert("dead".into(), lease("10.1.0.3", 20));
        let gone = l.reclaim(|pid, _| pid == 10);
        assert_eq!(gone.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), ["dead"]);
        assert_eq!(l.leases.keys().collect::<Vec<_>>(), ["live"]);
    }

    #[test]
    fn file_round_trip_and_cleanup() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = LeaseFile::open(dir.path(), "br0").unwrap();
        f.leases.leases.insert("a".into(), lease("10.1.0.2", 1));
        f.save().unwrap();
        drop(f);
        let mut f = LeaseFile::open(dir.path(), "br0").unwrap();
        assert_eq!(f.leases.leases.len(), 1);
        f.leases.leases.clear();
        f.save().unwrap();
        drop(f);
        assert!(!dir.path().join("net/br0.json").exists());
    }
}
