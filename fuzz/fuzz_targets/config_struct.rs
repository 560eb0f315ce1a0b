//! Structure-aware config.json: an OCI config built through `arbitrary` from runtime-spec's
//! vocabulary (namespaces, mounts, id maps, rlimits, capabilities, resources, sysctls, hooks)
//! mixed with free strings and numbers, so most inputs get past JSON syntax and reach the
//! deep validation rules. Properties as `config_parse`: every error names a JSON path that
//! exists in the input (its first segment is a top-level key of the document, or the
//! document itself); a config that validates round-trips through serde to the same spec.
#![no_main]

use arbitrary::Arbitrary;
use isolab_runtime::config::parse_config;
use libfuzzer_sys::fuzz_target;

#[path = "../common/round_trip.rs"]
mod round_trip;
use serde_json::{json, Map, Value};

const NS: &[&str] = &["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time", "pidd"];
const CAPS: &[&str] =
    &["CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN", "CAP_NET_RAW", "CAP_BPF", "cap_kill", "CHOWN"];
const RLIMITS: &[&str] = &["RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_CORE", "RLIMIT_FOO", "RLIMIT_AS"];
const DESTS: &[&str] = &["/proc", "/dev", "/dev/pts", "/sys", "/tmp", "tmp", "/../etc", "/a/../../b", ""];
const TYPES: &[&str] = &["proc", "tmpfs", "devpts", "sysfs", "bind", "cgroup", "mqueue", "none"];
const OPTS: &[&str] = &[
    "nosuid",
    "noexec",
    "nodev",
    "ro",
    "rw",
    "rbind",
    "bind",
    "rprivate",
    "mode=755",
    "idmap",
    "rro",
    "tmpcopyup",
    "size=65536k",
];
const SYSCTLS: &[&str] = &[
    "net.ipv4.ip_forward",
    "kernel.shmmax",
    "fs.mqueue.msg_max",
    "kernel.hostname",
    "vm.swappiness",
    "net..x",
    "kernel/../x",
];
const VERSIONS: &[&str] = &["1.0.2", "1.1.0", "1.2.0", "1.3.0", "1.0.0-rc1", "2.0.0", ""];

#[derive(Debug, Arbitrary)]
enum S {
    Pick(u8),
    Free(String),
}

impl S {
    fn of(&self, list: &[&str]) -> Value {
        match self {
            S::Pick(i) => list[usize::from(*i) % list.len()].into(),
            S::Free(s) => s.as_str().into(),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Process {
    terminal: Option<bool>,
    args: Vec<String>,
    env: Vec<String>,
    cwd: S,
    uid: u32,
    gid: u32,
    additional_gids: Vec<u32>,
    caps: Option<Vec<S>>,
    rlimits: Vec<(S, u64, u64)>,
    no_new_privs: Option<bool>,
    oom_score_adj: Option<i32>,
    console: Option<(u32, u32)>,
}

#[derive(Debug, Arbitrary)]
struct Mount {
    destination: S,
    typ: Option<S>,
    source: Option<String>,
    options: Vec<S>,
    uid_mappings: Vec<(u32, u32, u32)>,
}

#[derive(Debug, Arbitrary)]
struct Resources {
    memory_limit: Option<i64>,
    memory_swap: Option<i64>,
    swappiness: Option<u64>,
    shares: Option<u64>,
    quota: Option<i64>,
    period: Option<u64>,
    cpus: Option<String>,
    pids: Option<i64>,
    devices: Vec<(bool, Option<S>, Option<i64>, Option<i64>, Option<String>)>,
    unified: Vec<(String, String)>,
}

#[derive(Debug, Arbitrary)]
struct Linux {
    namespaces: Vec<(S, Option<String>)>,
    uid_mappings: Vec<(u32, u32, u32)>,
    gid_mappings: Vec<(u32, u32, u32)>,
    sysctl: Vec<(S, String)>,
    resources: Option<Resources>,
    cgroups_path: Option<String>,
    masked: Vec<String>,
    readonly: Vec<String>,
    devices: Vec<(String, S, i64, i64)>,
}

#[derive(Debug, Arbitrary)]
struct Config {
    version: S,
    root: Option<(S, Option<bool>)>,
    hostname: Option<String>,
    process: Option<Process>,
    mounts: Vec<Mount>,
    linux: Option<Linux>,
    hooks: Vec<(u8, String, Vec<String>, Option<i64>)>,
    annotations: Vec<(String, String)>,
    /// A value replaced by a JSON value of another kind, to reach the type errors.
    clobber: Option<(u8, u8)>,
}

fn maps(m: &[(u32, u32, u32)]) -> Value {
    m.iter().map(|(c, h, s)| json!({"containerID": c, "hostID": h, "size": s})).collect()
}

fn build(c: &Config) -> Value {
    let mut doc = Map::new();
    doc.insert("ociVersion".into(), c.version.of(VERSIONS));
    if let Some((path, ro)) = &c.root {
        let mut r = json!({"path": path.of(&["rootfs", "/", "", "../x"])});
        if let Some(ro) = ro {
            r["readonly"] = (*ro).into();
        }
        doc.insert("root".into(), r);
    }
    if let Some(h) = &c.hostname {
        doc.insert("hostname".into(), h.as_str().into());
    }
    if let Some(p) = &c.process {
        let mut o = json!({
            "args": p.args, "env": p.env, "cwd": p.cwd.of(&["/", "/tmp", "relative", ""]),
            "user": {"uid": p.uid, "gid": p.gid, "additionalGids": p.additional_gids},
            "rlimits": p.rlimits.iter().map(|(t, s, h)| json!({"type": t.of(RLIMITS), "soft": s, "hard": h})).collect::<Vec<_>>(),
        });
        if let Some(t) = p.terminal {
            o["terminal"] = t.into();
        }
        if let Some(caps) = &p.caps {
            let list: Vec<Value> = caps.iter().map(|c| c.of(CAPS)).collect();
            o["capabilities"] = json!({"bounding": list, "effective": list, "permitted": list});
        }
        if let Some(n) = p.no_new_privs {
            o["noNewPrivileges"] = n.into();
        }
        if let Some(n) = p.oom_score_adj {
            o["oomScoreAdj"] = n.into();
        }
        if let Some((h, w)) = p.console {
            o["consoleSize"] = json!({"height": h, "width": w});
        }
        doc.insert("process".into(), o);
    }
    let mounts: Vec<Value> = c
        .mounts
        .iter()
        .map(|m| {
            let mut o = json!({"destination": m.destination.of(DESTS),
                "options": m.options.iter().map(|x| x.of(OPTS)).collect::<Vec<_>>()});
            if let Some(t) = &m.typ {
                o["type"] = t.of(TYPES);
            }
            if let Some(s) = &m.source {
                o["source"] = s.as_str().into();
            }
            if !m.uid_mappings.is_empty() {
                o["uidMappings"] = maps(&m.uid_mappings);
                o["gidMappings"] = maps(&m.uid_mappings);
            }
            o
        })
        .collect();
    doc.insert("mounts".into(), mounts.into());
    if let Some(l) = &c.linux {
        let mut o = Map::new();
        let ns: Vec<Value> = l
            .namespaces
            .iter()
            .map(|(t, p)| {
                let mut n = json!({"type": t.of(NS)});
                if let Some(p) = p {
                    n["path"] = p.as_str().into();
                }
                n
            })
            .collect();
        o.insert("namespaces".into(), ns.into());
        o.insert("uidMappings".into(), maps(&l.uid_mappings));
        o.insert("gidMappings".into(), maps(&l.gid_mappings));
        let sysctl: Map<String, Value> = l
            .sysctl
            .iter()
            .map(|(k, v)| (k.of(SYSCTLS).as_str().unwrap_or_default().to_owned(), v.as_str().into()))
            .collect();
        o.insert("sysctl".into(), sysctl.into());
        if let Some(r) = &l.resources {
            let devices: Vec<Value> = r
                .devices
                .iter()
                .map(|(allow, t, maj, min, acc)| {
                    let mut d = json!({"allow": allow});
                    if let Some(t) = t {
                        d["type"] = t.of(&["a", "b", "c", "x"]);
                    }
                    if let Some(v) = maj {
                        d["major"] = (*v).into();
                    }
                    if let Some(v) = min {
                        d["minor"] = (*v).into();
                    }
                    if let Some(a) = acc {
                        d["access"] = a.as_str().into();
                    }
                    d
                })
                .collect();
            let mut res = json!({"devices": devices,
                "memory": {}, "cpu": {}, "unified": r.unified.iter().cloned().map(|(k, v)| (k, Value::from(v))).collect::<Map<String, Value>>() });
            let set = |v: &mut Value, k: &str, x: Option<Value>| {
                if let Some(x) = x {
                    v[k] = x;
                }
            };
            set(&mut res["memory"], "limit", r.memory_limit.map(Into::into));
            set(&mut res["memory"], "swap", r.memory_swap.map(Into::into));
            set(&mut res["memory"], "swappiness", r.swappiness.map(Into::into));
            set(&mut res["cpu"], "shares", r.shares.map(Into::into));
            set(&mut res["cpu"], "quota", r.quota.map(Into::into));
            set(&mut res["cpu"], "period", r.period.map(Into::into));
            set(&mut res["cpu"], "cpus", r.cpus.clone().map(Into::into));
            if let Some(p) = r.pids {
                res["pids"] = json!({"limit": p});
            }
            o.insert("resources".into(), res);
        }
        if let Some(p) = &l.cgroups_path {
            o.insert("cgroupsPath".into(), p.as_str().into());
        }
        o.insert("maskedPaths".into(), l.masked.clone().into());
        o.insert("readonlyPaths".into(), l.readonly.clone().into());
        let devices: Vec<Value> = l
            .devices
            .iter()
            .map(|(p, t, maj, min)| json!({"path": p, "type": t.of(&["c", "b", "u", "p", "x"]), "major": maj, "minor": min}))
            .collect();
        o.insert("devices".into(), devices.into());
        doc.insert("linux".into(), o.into());
    }
    if !c.hooks.is_empty() {
        let mut hooks = Map::new();
        for (kind, path, args, timeout) in &c.hooks {
            let kinds =
                ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"];
            let k = kinds[usize::from(*kind) % kinds.len()];
            let mut h = json!({"path": path, "args": args});
            if let Some(t) = timeout {
                h["timeout"] = (*t).into();
            }
            let list = hooks.entry(k).or_insert_with(|| Value::Array(vec![]));
            if let Value::Array(a) = list {
                a.push(h);
            }
        }
        doc.insert("hooks".into(), hooks.into());
    }
    if !c.annotations.is_empty() {
        doc.insert(
            "annotations".into(),
            c.annotations.iter().cloned().map(|(k, v)| (k, Value::from(v))).collect::<Map<_, _>>().into(),
        );
    }
    if let Some((key, kind)) = c.clobber {
        let keys: Vec<String> = doc.keys().cloned().collect();
        if !keys.is_empty() {
            let k = &keys[usize::from(key) % keys.len()];
            doc[k] = [json!(null), json!(1), json!("x"), json!([]), json!({}), json!(true)]
                [usize::from(kind) % 6]
                .clone();
        }
    }
    Value::Object(doc)
}

fuzz_target!(|c: Config| {
    let doc = build(&c);
    let bytes = serde_json::to_vec(&doc).expect("serialises");
    match parse_config(&bytes) {
        Ok(valid) => {
            round_trip::assert_round_trips(&valid);
        }
        Err(errors) => {
            let top = doc.as_object().expect("an object");
            for e in &errors.0 {
                let first = e.path.split(['.', '[']).next().unwrap_or_default();
                assert!(
                    e.path == "(json)" || top.contains_key(first) || e.reason.contains("missing"),
                    "error path {:?} names no member of the input: {e}",
                    e.path
                );
            }
        }
    }
});
