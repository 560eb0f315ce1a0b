//! Host settings a bridge check depends on, pinned in the network namespace the check owns.
//!
//! A new network namespace inherits its IPv4 settings (`ip_forward`, `rp_filter`) from the
//! host's (`net.core.devconf_inherit_init_net=0`, the default), and br_netfilter's
//! `bridge-nf-call-*` start at 1 in every namespace: on a host where Docker left
//! `ip_forward=1`, two bridges of a check's namespace route to each other. So each bridge
//! check pins these in its own namespace and states what it found there and what it set.
//!
//! A setting absent from the namespace's /proc/sys (no IPv6, no br_netfilter, or a kernel whose
//! bridge-nf sysctls are global and so not visible outside the host's namespace) is left
//! alone and said to be absent: nothing here ever writes the host's settings.

use std::path::Path;

/// The settings pinned, each with the value a check's namespace gets: no forwarding between
/// its interfaces, no reverse-path filter, bridged frames not through iptables.
pub const PINS: &[(&str, &str)] = &[
    ("net/ipv4/ip_forward", "0"),
    ("net/ipv4/conf/all/forwarding", "0"),
    ("net/ipv4/conf/default/forwarding", "0"),
    ("net/ipv6/conf/all/forwarding", "0"),
    ("net/ipv6/conf/default/forwarding", "0"),
    ("net/ipv4/conf/all/rp_filter", "0"),
    ("net/ipv4/conf/default/rp_filter", "0"),
    ("net/bridge/bridge-nf-call-iptables", "0"),
    ("net/bridge/bridge-nf-call-ip6tables", "0"),
    ("net/bridge/bridge-nf-call-arptables", "0"),
];

/// What one setting was when the namespace was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Its inherited value (pinned to the `PINS` value since).
    Was(String),
    /// Not in this namespace's /proc/sys.
    Absent,
}

/// One line that says what the namespace inherited and what it runs with: the settings that
/// differed from their pin as `name inherited→pinned`, then the absent ones.
pub fn summary(found: &[(&str, &str, Found)]) -> String {
    let short = |p: &str| p.trim_start_matches("net/").replace('/', ".");
    let changed: Vec<String> = found
        .iter()
        .filter_map(|(p, want, f)| match f {
            Found::Was(v) if v != want => Some(format!("{} {v}→{want}", short(p))),
            _ => None,
        })
        .collect();
    let absent: Vec<String> =
        found.iter().filter(|(_, _, f)| *f == Found::Absent).map(|(p, _, _)| short(p)).collect();
    let mut s = String::from("check's netns: forwarding, rp_filter, bridge-nf-call-* pinned to 0");
    if !changed.is_empty() {
        s += &format!(" (inherited {})", changed.join(", "));
    }
    if !absent.is_empty() {
        s += &format!("; absent: {}", absent.join(", "));
    }
    s
}

/// Pin `PINS` in the calling thread's network namespace, which must not be its process's
/// (the thread unshared its own); the summary, or what failed.
pub fn pin_own_netns() -> Result<String, String> {
    let ns = |p: &str| std::fs::read_link(p).map_err(|e| format!("readlink {p}: {e}"));
    if ns("/proc/thread-self/ns/net")? == ns("/proc/self/ns/net")? {
        return Err("refusing to pin sysctls: this thread is in its process's network namespace".into());
    }
    let mut found = Vec::new();
    for (p, want) in PINS {
        let path = Path::new("/proc/sys").join(p);
        let f = match std::fs::read_to_string(&path) {
            Ok(v) => Found::Was(v.trim().to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Found::Absent,
            Err(e) => return Err(format!("read {}: {e}", path.display())),
        };
        if f != Found::Absent {
            std::fs::write(&path, want).map_err(|e| format!("write {want} to {}: {e}", path.display()))?;
        }
        found.push((*p, *want, f));
    }
    Ok(summary(&found))
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case(&[("net/ipv4/ip_forward", "0", Found::Was("0".into()))],
        "check's netns: forwarding, rp_filter, bridge-nf-call-* pinned to 0" ; "nothing to change")]
    #[test_case(&[("net/ipv4/ip_forward", "0", Found::Was("1".into())),
                  ("net/bridge/bridge-nf-call-iptables", "0", Found::Was("1".into()))],
        "check's netns: forwarding, rp_filter, bridge-nf-call-* pinned to 0 (inherited ipv4.ip_forward 1→0, bridge.bridge-nf-call-iptables 1→0)" ; "docker host")]
    #[test_case(&[("net/ipv4/ip_forward", "0", Found::Was("0".into())),
                  ("net/bridge/bridge-nf-call-iptables", "0", Found::Absent)],
        "check's netns: forwarding, rp_filter, bridge-nf-call-* pinned to 0; absent: bridge.bridge-nf-call-iptables" ; "no br_netfilter")]
    fn summaries(found: &[(&str, &str, Found)], want: &str) {
        assert_eq!(summary(found), want);
    }

    /// Run on a thread of its own that stays in the process's namespace: refused, nothing written.
    #[test]
    fn refuses_the_process_namespace() {
        let got = std::thread::spawn(pin_own_netns).join().unwrap();
        assert!(got.is_err_and(|e| e.contains("refusing")), "must refuse the process's netns");
    }
}
