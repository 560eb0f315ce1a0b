//! Property tests of config.json validation: real configs (isorun's and runc's `spec`, the
//! test corpus) mutated at random paths (values replaced by other JSON, members deleted or
//! added). Validation never panics; every error names a JSON path that exists in the input
//! (or, for a missing member, whose parent does); an accepted config round-trips through serde
//! unchanged; the id maps it would write are valid kernel maps.

use isolab_runtime::config::idmap::{check_id_map, render_id_map, IdMapEntry, MAX_ID_MAP_ENTRIES};
use isolab_runtime::config::parse_config;
use oci_spec::runtime::Spec;
use proptest::prelude::*;
use serde_json::{json, Value};

const BASES: &[&str] = &[
    include_str!("../src/spec/default.json"),
    include_str!("../src/spec/rootless.json"),
    include_str!("data/configs/runc-spec.json"),
    include_str!("data/configs/runc-spec-rootless.json"),
    include_str!("data/configs/full-1.3.json"),
    include_str!("data/configs/minimal.json"),
];

/// Words of runtime-spec, so mutations often hit meaningful keys and values.
const WORDS: &[&str] = &[
    "ociVersion",
    "root",
    "path",
    "process",
    "args",
    "env",
    "cwd",
    "user",
    "uid",
    "gid",
    "linux",
    "namespaces",
    "type",
    "mounts",
    "destination",
    "options",
    "uidMappings",
    "gidMappings",
    "containerID",
    "hostID",
    "size",
    "rlimits",
    "soft",
    "hard",
    "capabilities",
    "bounding",
    "hooks",
    "sysctl",
    "resources",
    "memory",
    "limit",
    "cpu",
    "quota",
    "cpus",
    "devices",
    "seccomp",
    "pid",
    "user",
    "network",
    "mount",
    "CAP_KILL",
    "RLIMIT_NOFILE",
    "rbind",
    "1.2.0",
    "/",
    "",
    "..",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1i64..5).prop_map(Value::from),
        (-1.0e9f64..1.0e9).prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::from),
        prop::sample::select(WORDS).prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::vec((prop::sample::select(WORDS), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, Value),
    Delete(usize),
    Insert(usize, String, Value),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), json_value()).prop_map(|(at, v)| Edit::Replace(at, v)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), prop::sample::select(WORDS), json_value()).prop_map(|(at, k, v)| Edit::Insert(
            at,
            k.to_owned(),
            v
        )),
    ]
}

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Every path of `v` (the document itself is the empty path).
fn paths(v: &Value, at: Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            m.iter().for_each(|(k, x)| paths(x, [at.clone(), vec![Seg::Key(k.clone())]].concat(), out))
        }
        Value::Array(a) => {
            a.iter().enumerate().for_each(|(i, x)| paths(x, [at.clone(), vec![Seg::Index(i)]].concat(), out))
        }
        _ => {}
    }
}

fn at_mut<'a>(v: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, s| match (s, v) {
        (Seg::Key(k), Value::Object(m)) => m.get_mut(k),
        (Seg::Index(i), Value::Array(a)) => a.get_mut(*i),
        _ => None,
    })
}

fn apply(doc: &mut Value, e: &Edit) {
    let mut all = Vec::new();
    paths(doc, vec![], &mut all);
    let pick = |n: usize| all[n % all.len()].clone();
    match e {
        Edit::Replace(n, v) => {
            if let Some(slot) = at_mut(doc, &pick(*n)) {
                *slot = v.clone();
            }
        }
        Edit::Delete(n) => {
            let path = pick(*n);
            let Some((last, parent)) = path.split_last() else { return };
            match (at_mut(doc, parent), last) {
                (Some(Value::Object(m)), Seg::Key(k)) => drop(m.remove(k)),
                (Some(Value::Array(a)), Seg::Index(i)) => drop(a.remove(*i)),
                _ => {}
            }
        }
        Edit::Insert(n, k, v) => {
            if let Some(Value::Object(m)) = at_mut(doc, &pick(*n)) {
                m.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Parses an error path of the validator's notation: `a.b[2]."quoted.key"`. A quoted key cut
/// short ends in `…` and matches by prefix.
fn parse_path(p: &str) -> Option<Vec<(Seg, bool)>> {
    let mut out = Vec::new();
    let mut rest = p;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let close = r.find(']')?;
            out.push((Seg::Index(r[..close].parse().ok()?), false));
            rest = &r[close + 1..];
        } else if rest.starts_with('"') {
            let mut de = serde_json::Deserializer::from_str(rest).into_iter::<String>();
            let key = de.next()?.ok()?;
            let used = de.byte_offset();
            let cut = key.ends_with('…');
            out.push((Seg::Key(key.trim_end_matches('…').to_owned()), cut));
            rest = &rest[used..];
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            out.push((Seg::Key(rest[..end].to_owned()), false));
            rest = &rest[end..];
        }
        rest = rest.strip_prefix('.').unwrap_or(rest);
    }
    Some(out)
}

fn resolves(doc: &Value, path: &[(Seg, bool)]) -> bool {
    let mut v = doc;
    for (seg, cut) in path {
        v = match (seg, v) {
            (Seg::Key(k), Value::Object(m)) if *cut => {
                match m.iter().find(|(key, _)| key.starts_with(k.as_str())) {
                    Some((_, x)) => x,
                    None => return false,
                }
            }
            (Seg::Key(k), Value::Object(m)) => match m.get(k) {
                Some(x) => x,
                None => return false,
            },
            (Seg::Index(i), Value::Array(a)) => match a.get(*i) {
                Some(x) => x,
                None => return false,
            },
            _ => return false,
        };
    }
    true
}

fn check_round_trip(spec: &Spec) {
    let value = serde_json::to_value(spec).expect("a valid spec serialises");
    let back: Spec = serde_json::from_value(value).expect("and deserialises");
    assert_eq!(&back, spec, "serde round trip changed the spec");
    let again = parse_config(&serde_json::to_vec(spec).unwrap()).expect("the round-tripped config validates");
    assert_eq!(again.spec(), spec);
}

fn check_map(text: &str) {
    let entries: Vec<IdMapEntry> = text
        .lines()
        .map(|l| {
            let n: Vec<u32> = l.split(' ').map(|x| x.parse().unwrap()).collect();
            assert_eq!(n.len(), 3, "{l:?}");
            IdMapEntry { container_id: n[0], host_id: n[1], size: n[2] }
        })
        .collect();
    assert!(entries.len() <= MAX_ID_MAP_ENTRIES);
    for (i, a) in entries.iter().enumerate() {
        assert!(a.size > 0);
        assert!(u64::from(a.container_id) + u64::from(a.size) <= 1 << 32);
        assert!(u64::from(a.host_id) + u64::from(a.size) <= 1 << 32);
        for b in &entries[i + 1..] {
            let apart = |x: u32, y: u32| {
                u64::from(x) + u64::from(a.size) <= u64::from(y)
                    || u64::from(y) + u64::from(b.size) <= u64::from(x)
            };
            assert!(apart(a.container_id, b.container_id), "container sides overlap: {a:?} {b:?}");
            assert!(apart(a.host_id, b.host_id), "host sides overlap: {a:?} {b:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn errors_name_existing_paths_and_accepted_configs_round_trip(
        base in 0..BASES.len(),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        let mut doc: Value = serde_json::from_str(BASES[base]).unwrap();
        for e in &edits {
            apply(&mut doc, e);
        }
        match parse_config(&serde_json::to_vec(&doc).unwrap()) {
            Ok(valid) => {
                check_round_trip(valid.spec());
                if let Some(m) = valid.uid_map_content() { check_map(&m); }
                if let Some(m) = valid.gid_map_content() { check_map(&m); }
            }
            Err(errors) => {
                prop_assert!(!errors.0.is_empty());
                for e in &errors.0 {
                    if e.path == "(json)" {
                        prop_assert!(!doc.is_object(), "a JSON object got a document-level error: {}", e);
                        continue;
                    }
                    let path = parse_path(&e.path);
                    prop_assert!(path.is_some(), "unparsable error path {:?}", e.path);
                    let path = path.unwrap();
                    let ok = resolves(&doc, &path)
                        || ((e.reason.contains("missing") || e.reason.contains("required")) && resolves(&doc, &path[..path.len() - 1]));
                    prop_assert!(ok, "error path {:?} is not in the input: {}\n{}", e.path, e, doc);
                }
            }
        }
    }

    #[test]
    fn accepted_id_maps_are_valid_kernel_maps(
        maps in prop::collection::vec((0u32..300, 0u32..300, 0u32..120), 0..6),
        wide in prop::collection::vec((any::<u32>(), any::<u32>(), any::<u32>()), 0..3),
    ) {
        for set in [&maps, &wide] {
            let entries: Vec<IdMapEntry> =
                set.iter().map(|&(container_id, host_id, size)| IdMapEntry { container_id, host_id, size }).collect();
            if check_id_map(&entries).is_empty() {
                check_map(&render_id_map(&entries));
            }
            let mut doc: Value = serde_json::from_str(BASES[0]).unwrap();
            doc["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
            let list: Vec<Value> = set.iter().map(|(c, h, s)| json!({"containerID": c, "hostID": h, "size": s})).collect();
            doc["linux"]["uidMappings"] = list.clone().into();
            doc["linux"]["gidMappings"] = list.into();
            if let Ok(valid) = parse_config(&serde_json::to_vec(&doc).unwrap()) {
                check_map(&valid.uid_map_content().expect("a new user namespace has a uid map"));
                check_map(&valid.gid_map_content().expect("and a gid map"));
            }
        }
    }
}

#[test]
fn every_base_config_is_accepted_and_round_trips() {
    for base in BASES {
        let valid = parse_config(base.as_bytes()).expect("a base config validates");
        check_round_trip(valid.spec());
    }
}

#[test]
fn the_path_parser_reads_the_validators_notation() {
    let doc: Value =
        serde_json::from_str(r#"{"linux": {"sysctl": {"net.a.b": "1"}, "x": [0, {"y": 1}]}}"#).unwrap();
    for (path, ok) in [
        ("linux.sysctl.\"net.a.b\"", true),
        ("linux.x[1].y", true),
        ("linux.x[2]", false),
        ("linux.sysctl.\"net…\"", true),
        ("linux.z", false),
    ] {
        assert_eq!(resolves(&doc, &parse_path(path).unwrap()), ok, "{path}");
    }
}
