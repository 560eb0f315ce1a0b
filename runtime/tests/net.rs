//! Container networking, for real and as root: every bridge, veth and address is made inside
//! a network namespace the test creates (`ip netns add`), never in the host's; isorun runs
//! there through `nsenter --net`, and traffic flows only between the test's own containers.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{require_root, text, unique_id, ISORUN};
use serde_json::{json, Value};

/// A network namespace of the test's own, deleted on drop.
struct TestNetns {
    name: String,
}

impl TestNetns {
    fn new() -> Self {
        require_root();
        let name = unique_id("isorun-nt");
        let ok = Command::new("ip").args(["netns", "add", &name]).status().expect("ip (iproute2)");
        assert!(ok.success(), "ip netns add {name}");
        TestNetns { name }
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Run `args` in this namespace; its output.
    fn run(&self, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net={}", self.path()))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// The link names in this namespace.
    fn links(&self) -> Vec<String> {
        let out = self.run(&["ip", "-o", "link", "show"]);
        text(&out.stdout)
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_owned())
            .collect()
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// isorun with its own root, run in a test netns; bundles per container.
struct Net {
    ns: TestNetns,
    tmp: tempfile::TempDir,
    ids: Vec<String>,
}

impl Net {
    fn new() -> Self {
        let ns = TestNetns::new();
        let tmp = tempfile::Builder::new().prefix("isorun-net-").tempdir_in("/tmp").unwrap();
        common::busybox_rootfs(&tmp.path().join("rootfs"));
        Net { ns, tmp, ids: Vec::new() }
    }

    fn root(&self) -> String {
        self.tmp.path().join("state").display().to_string()
    }

    /// `isorun --root R args...` inside the test netns (output through files: a detached
    /// container inherits them).
    fn isorun(&self, args: &[&str]) -> (i32, String, String) {
        let (o, e) = (tempfile::NamedTempFile::new().unwrap(), tempfile::NamedTempFile::new().unwrap());
        let status = Command::new("nsenter")
            .arg(format!("--net={}", self.ns.path()))
            .arg(ISORUN)
            .args(["--root", &self.root()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(o.reopen().unwrap())
            .stderr(e.reopen().unwrap())
            .status()
            .unwrap();
        let read = |f: &tempfile::NamedTempFile| text(&std::fs::read(f.path()).unwrap());
        (status.code().unwrap_or(-1), read(&o), read(&e))
    }

    /// The `net up`/`net down` hooks for `bridge` and `subnet` (+ extra `up` flags).
    fn hooks(&self, bridge: &str, subnet: &str, extra: &[&str]) -> Value {
        let hook = |args: Vec<&str>| {
            let mut all =
                vec!["isorun", "--root", self.tmp.path().join("state").to_str().unwrap().to_owned().leak()];
            all.push("net");
            all.extend(args);
            json!({"path": ISORUN, "args": all})
        };
        let mut up = vec!["up", "--bridge", bridge, "--subnet", subnet];
        up.extend_from_slice(extra);
        json!({"createRuntime": [hook(up)], "poststop": [hook(vec!["down", "--bridge", bridge])]})
    }

    /// Write a bundle running `args` (CAP_NET_RAW kept, for ping), then `edit`; its path.
    fn bundle(&self, name: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> String {
        let dir = self.tmp.path().join(format!("bundle-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut spec: Value = serde_json::from_str(include_str!("../src/spec/default.json")).unwrap();
        spec["process"]["terminal"] = json!(false);
        spec["process"]["args"] = json!(args);
        spec["root"]["path"] = json!(self.tmp.path().join("rootfs"));
        for set in ["bounding", "effective", "permitted"] {
            spec["process"]["capabilities"][set].as_array_mut().unwrap().push(json!("CAP_NET_RAW"));
        }
        edit(&mut spec);
        std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
        dir.display().to_string()
    }

    fn id(&mut self, p: &str) -> String {
        let id = unique_id(p);
        self.ids.push(id.clone());
        id
    }

    /// The leases file of `bridge`, if any.
    fn leases(&self, bridge: &str) -> Option<Value> {
        let p = self.tmp.path().join(format!("state/net/{bridge}.json"));
        std::fs::read(p).ok().map(|b| serde_json::from_slice(&b).unwrap())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = self.isorun(&["delete", "--force", id]);
        }
    }
}

const SERVER: &[&str] = &["sh", "-c", "while true; do echo pong | nc -l -p 7000; done"];

#[test]
fn two_containers_on_a_bridge_ping_and_connect() {
    let mut n = Net::new();
    let hooks = n.hooks("isobr-a", "10.231.0.0/24", &["--subnet6", "fd00:231::/64", "--mtu", "1400"]);
    let b = n.bundle("srv", SERVER, |s| s["hooks"] = hooks.clone());
    let srv = n.id("srv");
    let (code, _, err) = n.isorun(&["run", "-d", "--bundle", &b, &srv]);
    assert_eq!(code, 0, "{err}");
    let lease = &n.leases("isobr-a").expect("a lease file")["leases"][&srv];
    let (v4, v6) = (lease["v4"].as_str().unwrap().to_owned(), lease["v6"].as_str().unwrap().to_owned());
    assert_eq!((v4.as_str(), v6.as_str()), ("10.231.0.2", "fd00:231::2"));
    let script = format!(
        "cat /sys/class/net/eth0/mtu /sys/class/net/eth0/address; ping -c 1 -W 5 {v4} >/dev/null && echo ping4-ok; \
         ping -c 1 -W 5 {v6} >/dev/null && echo ping6-ok; nc -w 5 {v4} 7000 </dev/null"
    );
    let flags = ["--subnet6", "fd00:231::/64", "--mtu", "1400", "--mac", "02:00:00:00:00:42"];
    let cli_hooks = n.hooks("isobr-a", "10.231.0.0/24", &flags);
    let cli = n.bundle("cli", &["sh", "-c", &script], |s| s["hooks"] = cli_hooks);
    let c = n.id("cli");
    let (code, out, err) = n.isorun(&["run", "--bundle", &cli, &c]);
    assert_eq!(code, 0, "client: {out} {err}");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["1400", "02:00:00:00:00:42", "ping4-ok", "ping6-ok", "pong"],
        "{err}"
    );
    // The client was deleted by `run`: its lease and veth are gone, the server's remain.
    let leases = n.leases("isobr-a").unwrap();
    assert_eq!(leases["leases"].as_object().unwrap().keys().collect::<Vec<_>>(), [&srv]);
    let (code, _, err) = n.isorun(&["delete", "--force", &srv]);
    assert_eq!(code, 0, "{err}");
    assert!(n.leases("isobr-a").is_none(), "leases left: {:?}", n.leases("isobr-a"));
    assert_eq!(n.ns.links(), ["lo"], "bridge or veth left behind");
}

#[test]
fn without_net_config_only_lo_and_it_is_up() {
    let n = Net::new();
    let b = n.bundle("lo", &["sh", "-c", "ls /sys/class/net; cat /sys/class/net/lo/flags"], |_| {});
    let (code, out, err) = n.isorun(&["run", "--bundle", &b, &unique_id("lo")]);
    assert_eq!(code, 0, "{err}");
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words[0], "lo", "{out}");
    assert_eq!(words.len(), 2, "only lo: {out}");
    let flags = u32::from_str_radix(words[1].trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "lo is not UP (flags {})", words[1]);
}

#[test]
fn net_devices_move_in_renamed_and_back_after_delete() {
    let mut n = Net::new();
    let ok = n.ns.run(&["ip", "link", "add", "ndhost0", "type", "veth", "peer", "name", "ndpeer0"]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    // A create that fails after the move gives the device back (a veth would die with the netns).
    let b = n.bundle("ndfail", &["true"], |s| {
        s["linux"]["netDevices"] = json!({"ndhost0": {"name": "inner0"}});
        s["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]});
    });
    let failed = n.id("ndfail");
    assert_ne!(n.isorun(&["create", "--bundle", &b, &failed]).0, 0, "a failing hook must fail create");
    assert!(n.ns.links().contains(&"ndhost0".to_owned()), "lost by a failed create: {:?}", n.ns.links());
    let b = n.bundle("nd", &["sleep", "100"], |s| {
        s["linux"]["netDevices"] = json!({"ndhost0": {"name": "inner0"}});
    });
    let id = n.id("nd");
    let (code, _, err) = n.isorun(&["run", "-d", "--bundle", &b, &id]);
    assert_eq!(code, 0, "{err}");
    let (_, inside, _) = n.isorun(&["exec", &id, "ls", "/sys/class/net"]);
    assert!(inside.split_whitespace().any(|l| l == "inner0"), "inside: {inside}");
    assert!(!n.ns.links().contains(&"ndhost0".to_owned()), "still on the host: {:?}", n.ns.links());
    let (code, _, err) = n.isorun(&["delete", "--force", &id]);
    assert_eq!(code, 0, "{err}");
    assert!(n.ns.links().contains(&"ndhost0".to_owned()), "not given back: {:?}", n.ns.links());
}

#[test]
fn net_devices_come_back_after_a_foreground_run_exits_by_itself() {
    let n = Net::new();
    let ok = n.ns.run(&["ip", "link", "add", "ndhost1", "type", "veth", "peer", "name", "ndpeer1"]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let b = n.bundle("ndrun", &["ls", "/sys/class/net"], |s| {
        s["linux"]["netDevices"] = json!({"ndhost1": {"name": "inner1"}});
    });
    let (code, out, err) = n.isorun(&["run", "--bundle", &b, &unique_id("ndrun")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["inner1", "lo"], "{err}");
    assert!(
        n.ns.links().contains(&"ndhost1".to_owned()),
        "a veth moved in died with the netns: {:?}",
        n.ns.links()
    );
}

#[test]
fn a_crashed_containers_lease_is_reclaimed_by_the_next_create() {
    let mut n = Net::new();
    let hooks = n.hooks("isobr-r", "10.236.0.0/30", &[]);
    let b = n.bundle("crash", &["sleep", "100"], |s| s["hooks"] = hooks);
    let first = n.id("crash");
    assert_eq!(n.isorun(&["create", "--bundle", &b, &first]).0, 0);
    let pid = n.leases("isobr-r").unwrap()["leases"][&first]["pid"].as_i64().unwrap() as i32;
    // A crash: the init dies and nobody runs `delete` or `net down`.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    let gone = (0..500).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        !Path::new(&format!("/proc/{pid}")).exists()
    });
    assert!(gone, "init {pid} still there");
    // The /30 has one address: the next create gets it only if the stale lease is reclaimed.
    let second = n.id("crash");
    let (code, _, err) = n.isorun(&["create", "--bundle", &b, &second]);
    assert_eq!(code, 0, "{err}");
    let leases = n.leases("isobr-r").unwrap();
    let held: Vec<&String> = leases["leases"].as_object().unwrap().keys().collect();
    assert_eq!(held, [&second]);
    assert_eq!(leases["leases"][&second]["v4"], "10.236.0.2");
}

#[test]
fn fifty_concurrent_networked_creates_get_distinct_addresses_and_leave_nothing() {
    let mut n = Net::new();
    let hooks = n.hooks("isobr-c", "10.232.0.0/24", &[]);
    let b = n.bundle("many", &["sleep", "100"], |s| s["hooks"] = hooks);
    let ids: Vec<String> = (0..50).map(|_| n.id("many")).collect();
    let results: Vec<(i32, String, String)> = std::thread::scope(|s| {
        let hs: Vec<_> = ids.iter().map(|id| s.spawn(|| n.isorun(&["create", "--bundle", &b, id]))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (id, (code, _, err)) in ids.iter().zip(&results) {
        assert_eq!(*code, 0, "create {id}: {err}");
    }
    let leases = n.leases("isobr-c").unwrap();
    let mut addrs: Vec<&str> =
        leases["leases"].as_object().unwrap().values().map(|l| l["v4"].as_str().unwrap()).collect();
    addrs.sort_unstable();
    addrs.dedup();
    assert_eq!(addrs.len(), 50, "distinct addresses: {addrs:?}");
    assert_eq!(n.ns.links().iter().filter(|l| l.starts_with("iv")).count(), 50);
    std::thread::scope(|s| {
        for id in &ids {
            let n = &n;
            s.spawn(move || assert_eq!(n.isorun(&["delete", "--force", id]).0, 0));
        }
    });
    assert!(n.leases("isobr-c").is_none(), "leases left: {:?}", n.leases("isobr-c"));
    assert_eq!(n.ns.links(), ["lo"], "interfaces left");
}

/// A create that must fail with `want` in its error and leave nothing.
fn create_fails(n: &mut Net, bundle: &str, want: &str) {
    let id = n.id("bad");
    let (code, _, err) = n.isorun(&["create", "--bundle", bundle, &id]);
    assert_ne!(code, 0, "create succeeded");
    assert!(err.contains(want), "error {err:?} lacks {want:?}");
    let (_, list, _) = n.isorun(&["list", "-q"]);
    let state = Path::new(&n.root()).join(&id);
    assert!(!list.contains(&id) && !state.exists(), "container state left: {list}");
}

#[test]
fn bad_input_fails_before_anything_is_created() {
    let mut n = Net::new();
    // A route of the "host" (the test netns) that the subnet overlaps.
    for cmd in [
        &["ip", "link", "add", "hostnet0", "type", "veth", "peer", "name", "hostnet1"][..],
        &["ip", "addr", "add", "10.233.0.1/16", "dev", "hostnet0"],
        &["ip", "link", "set", "hostnet0", "up"],
    ] {
        let out = n.ns.run(cmd);
        assert!(out.status.success(), "{cmd:?}: {}", text(&out.stderr));
    }
    let links_before = n.ns.links();
    let hooks = n.hooks("isobr-x", "10.233.5.0/24", &[]);
    let b = n.bundle("overlap", &["true"], |s| s["hooks"] = hooks);
    create_fails(&mut n, &b, "overlaps the host route 10.233.0.0/16 on hostnet0");
    let long = n.hooks("a-bridge-too-long", "10.234.0.0/24", &[]);
    let b = n.bundle("long", &["true"], |s| s["hooks"] = long);
    create_fails(&mut n, &b, "--bridge: interface name \"a-bridge-too-long\" must be 1 to 15 bytes");
    let b = n.bundle("nodev", &["true"], |s| s["linux"]["netDevices"] = json!({"nosuchdev0": {}}));
    create_fails(&mut n, &b, "linux.netDevices.\"nosuchdev0\": no network device \"nosuchdev0\"");
    let b = n.bundle("longdev", &["true"], |s| {
        s["linux"]["netDevices"] = json!({"hostnet1": {"name": "sixteen-bytes-xx"}});
    });
    create_fails(&mut n, &b, "linux.netDevices.\"hostnet1\".name: interface name \"sixteen-bytes-xx\"");
    assert_eq!(n.ns.links(), links_before, "interfaces created");
    assert!(n.leases("isobr-x").is_none() && n.leases("a-bridge-too-long").is_none());

    // Exhausted: a /30 has room for one container.
    let small = n.hooks("isobr-s", "10.235.0.0/30", &[]);
    let b = n.bundle("small", &["sleep", "100"], |s| s["hooks"] = small);
    let first = n.id("first");
    let (code, _, err) = n.isorun(&["create", "--bundle", &b, &first]);
    assert_eq!(code, 0, "{err}");
    let links_one = n.ns.links();
    create_fails(&mut n, &b, "no free address left in 10.235.0.0/30");
    assert_eq!(n.ns.links(), links_one, "the failed create left an interface");
    assert_eq!(n.leases("isobr-s").unwrap()["leases"].as_object().unwrap().len(), 1);
}
