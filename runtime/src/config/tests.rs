//! Table tests of `parse_config`: the sample configs pass, every rule has a case naming the
//! exact path and part of the reason, several problems are reported together, and no input
//! makes it panic. Samples live in `runtime/tests/data/configs/` (also the fuzz seed corpus).

use std::path::Path;

use oci_spec::runtime::LinuxNamespaceType;
use serde_json::{json, Value};
use test_case::test_case;

use super::*;

const RUNC_SPEC: &str = include_str!("../../tests/data/configs/runc-spec.json");
const RUNC_ROOTLESS: &str = include_str!("../../tests/data/configs/runc-spec-rootless.json");
const FULL: &str = include_str!("../../tests/data/configs/full-1.3.json");
const INVALID_MANY: &str = include_str!("../../tests/data/configs/invalid-many.json");

/// Marks a member to delete in [`edit`].
const DELETE: &str = "__delete__";

/// `base` with each `(JSON pointer, value)` applied: set (appending at index == len), or
/// delete when the value is [`DELETE`]. Missing parents are created as objects.
fn edit(base: &str, edits: &[(&str, Value)]) -> Vec<u8> {
    let mut doc: Value = serde_json::from_str(base).expect("sample parses");
    for (pointer, value) in edits {
        let (parent, last) = pointer.rsplit_once('/').expect("pointer starts with /");
        let last = last.to_string();
        let mut at = &mut doc;
        for part in parent.split('/').skip(1) {
            at = match at {
                Value::Array(a) => &mut a[part.parse::<usize>().expect("index")],
                other => other.as_object_mut().expect("object").entry(part).or_insert(json!({})),
            };
        }
        match (at, value.as_str() == Some(DELETE)) {
            (Value::Array(a), true) => drop(a.remove(last.parse().expect("index"))),
            (Value::Array(a), false) => match last.parse::<usize>().expect("index") {
                i if i == a.len() => a.push(value.clone()),
                i => a[i] = value.clone(),
            },
            (other, true) => drop(other.as_object_mut().expect("object").remove(&last)),
            (other, false) => drop(other.as_object_mut().expect("object").insert(last, value.clone())),
        }
    }
    serde_json::to_vec(&doc).expect("serialises")
}

fn errors(bytes: &[u8]) -> Vec<ConfigError> {
    match parse_config(bytes) {
        Ok(_) => Vec::new(),
        Err(ConfigErrors(errors)) => errors,
    }
}

fn assert_has(errors: &[ConfigError], path: &str, reason: &str) {
    assert!(
        errors.iter().any(|e| e.path == path && e.reason.contains(reason)),
        "expected `{path}: …{reason}…` among:\n{}",
        ConfigErrors(errors.to_vec())
    );
}

#[test_case(RUNC_SPEC ; "runc spec")]
#[test_case(RUNC_ROOTLESS ; "runc spec rootless")]
#[test_case(FULL ; "full 1.3")]
fn samples_pass(sample: &str) {
    let config = parse_config(sample.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.warnings(), &[]);
}

#[test]
fn every_sample_in_the_corpus_behaves() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/configs");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("readable");
        let invalid = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("invalid-"));
        assert_eq!(parse_config(&bytes).is_err(), invalid, "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 4);
}

// One case per rule: (edits to the runc spec, expected path, part of the reason).
#[test_case(&[("/ociVersion", json!(DELETE))], "ociVersion", "required" ; "version missing")]
#[test_case(&[("/ociVersion", json!("2.0.0"))], "ociVersion", "unsupported version" ; "version 2")]
#[test_case(&[("/ociVersion", json!("1.4.0"))], "ociVersion", "1.0 to 1.3" ; "version 1.4")]
#[test_case(&[("/ociVersion", json!("1.0"))], "ociVersion", "not a SemVer" ; "version not semver")]
#[test_case(&[("/ociVersion", json!(1))], "ociVersion", "expected a string, found a number" ; "version type")]
#[test_case(&[("/root", json!(DELETE))], "root", "required" ; "root missing")]
#[test_case(&[("/root/path", json!(""))], "root.path", "must not be empty" ; "root path empty")]
#[test_case(&[("/root/path", json!(DELETE))], "root.path", "required" ; "root path missing")]
#[test_case(&[("/root/readonly", json!("yes"))], "root.readonly", "expected a boolean" ; "root readonly type")]
#[test_case(&[("/process", json!(DELETE))], "process", "required" ; "process missing")]
#[test_case(&[("/process/args", json!([]))], "process.args", "at least one" ; "args empty")]
#[test_case(&[("/process/args", json!(DELETE))], "process.args", "required" ; "args missing")]
#[test_case(&[("/process/args", json!([""]))], "process.args[0]", "must not be empty" ; "args0 empty")]
#[test_case(&[("/process/args/1", json!(7))], "process.args[1]", "expected a string" ; "arg type")]
#[test_case(&[("/process/cwd", json!("home"))], "process.cwd", "absolute" ; "cwd relative")]
#[test_case(&[("/process/cwd", json!(DELETE))], "process.cwd", "required" ; "cwd missing")]
#[test_case(&[("/process/env/2", json!("NOEQUALS"))], "process.env[2]", "KEY=value" ; "env without equals")]
#[test_case(&[("/process/env/0", json!("=x"))], "process.env[0]", "KEY=value" ; "env empty key")]
#[test_case(&[("/process/user/uid", json!(DELETE))], "process.user.uid", "required" ; "uid missing")]
#[test_case(&[("/process/user/gid", json!(-1))], "process.user.gid", "out of range for uint32" ; "gid negative")]
#[test_case(&[("/process/user/umask", json!(4095))], "process.user.umask", "beyond 0o777" ; "umask")]
#[test_case(&[("/process/user/additionalGids", json!([1, 4294967296_u64]))], "process.user.additionalGids[1]", "out of range" ; "additional gid")]
#[test_case(&[("/process/rlimits/0/type", json!("RLIMIT_NOFILES"))], "process.rlimits[0].type", "unknown rlimit \"RLIMIT_NOFILES\"" ; "rlimit unknown")]
#[test_case(&[("/process/rlimits/0/type", json!("nofile"))], "process.rlimits[0].type", "did you mean RLIMIT_NOFILE" ; "rlimit hint")]
#[test_case(&[("/process/rlimits/0/soft", json!(2048))], "process.rlimits[0].soft", "above the hard limit 1024" ; "rlimit soft above hard")]
#[test_case(&[("/process/rlimits/1", json!({"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}))], "process.rlimits[1].type", "duplicate rlimit RLIMIT_NOFILE" ; "rlimit duplicate")]
#[test_case(&[("/process/rlimits/0/hard", json!(DELETE))], "process.rlimits[0].hard", "required" ; "rlimit hard missing")]
#[test_case(&[("/process/capabilities/bounding/3", json!("CAP_FOO"))], "process.capabilities.bounding[3]", "unknown capability \"CAP_FOO\"" ; "cap unknown")]
#[test_case(&[("/process/capabilities/ambient/0", json!("NET_BIND_SERVICE"))], "process.capabilities.ambient[0]", "did you mean CAP_NET_BIND_SERVICE" ; "cap hint")]
#[test_case(&[("/process/capabilities/inheritable", json!(["cap_kill"]))], "process.capabilities.inheritable[0]", "did you mean CAP_KILL" ; "cap lowercase")]
#[test_case(&[("/process/oomScoreAdj", json!(1001))], "process.oomScoreAdj", "outside -1000..=1000" ; "oom high")]
#[test_case(&[("/process/oomScoreAdj", json!(-1001))], "process.oomScoreAdj", "outside -1000..=1000" ; "oom low")]
#[test_case(&[("/process/terminal", json!("true"))], "process.terminal", "expected a boolean" ; "terminal type")]
#[test_case(&[("/process/consoleSize", json!({"height": 25}))], "process.consoleSize.width", "required" ; "console width missing")]
#[test_case(&[("/process/ioPriority", json!({"class": "IOPRIO_CLASS_BE", "priority": 8}))], "process.ioPriority.priority", "outside 0..=7" ; "ioprio")]
#[test_case(&[("/process/scheduler", json!({"policy": "SCHED_FAST"}))], "process.scheduler.policy", "unknown value" ; "sched policy")]
#[test_case(&[("/hostname", json!("h".repeat(65)))], "hostname", "at most 64" ; "hostname long")]
#[test_case(&[("/linux/namespaces/3", json!(DELETE))], "hostname", "requires a uts namespace" ; "hostname without uts")]
#[test_case(&[("/linux/namespaces/3", json!(DELETE)), ("/hostname", json!(DELETE)), ("/domainname", json!("d"))], "domainname", "requires a uts namespace" ; "domainname without uts")]
#[test_case(&[("/mounts/0/destination", json!(""))], "mounts[0].destination", "must not be empty" ; "mount dest empty")]
#[test_case(&[("/mounts/0/destination", json!(DELETE))], "mounts[0].destination", "required" ; "mount dest missing")]
#[test_case(&[("/mounts/0/type", json!(DELETE))], "mounts[0].type", "not a bind mount" ; "mount type missing")]
#[test_case(&[("/mounts/1/options", json!("nosuid"))], "mounts[1].options", "expected an array" ; "mount options type")]
#[test_case(&[("/mounts/1/options/0", json!(5))], "mounts[1].options[0]", "expected a string" ; "mount option type")]
#[test_case(&[("/mounts/0/options", json!(["idmap"]))], "mounts[0].options", "idmap/ridmap needs" ; "idmap without mappings")]
#[test_case(&[("/mounts/0/uidMappings", json!([{"containerID": 0, "hostID": 1000, "size": 1}]))], "mounts[0].gidMappings", "required when uidMappings" ; "mount gid mappings missing")]
#[test_case(&[("/mounts/0/uidMappings", json!([{"containerID": 0, "hostID": 1000, "size": 0}])), ("/mounts/0/gidMappings", json!([]))], "mounts[0].uidMappings[0]", "size must be greater than 0" ; "mount mapping size")]
#[test_case(&[("/linux/namespaces/1/type", json!("pidd"))], "linux.namespaces[1].type", "unknown namespace \"pidd\"" ; "ns unknown")]
#[test_case(&[("/linux/namespaces/1/type", json!("pid"))], "linux.namespaces[1].type", "duplicate namespace pid (first at linux.namespaces[0])" ; "ns duplicate")]
#[test_case(&[("/linux/namespaces/1/path", json!("netns"))], "linux.namespaces[1].path", "absolute" ; "ns path relative")]
#[test_case(&[("/linux/namespaces/1/type", json!(DELETE))], "linux.namespaces[1].type", "required" ; "ns type missing")]
#[test_case(&[("/linux/namespaces/5", json!({"type": "user"}))], "linux.uidMappings", "creates a new user namespace" ; "userns without uid map")]
#[test_case(&[("/linux/namespaces/5", json!({"type": "user"})), ("/linux/uidMappings", json!([{"containerID": 0, "hostID": 0, "size": 1}]))], "linux.gidMappings", "required" ; "userns without gid map")]
#[test_case(&[("/linux/uidMappings", json!([{"containerID": 0, "hostID": 1000, "size": 1}]))], "linux.uidMappings", "no user namespace" ; "mappings without userns")]
#[test_case(&[("/linux/namespaces/5", json!({"type": "user"})), ("/linux/gidMappings", json!([{"containerID": 0, "hostID": 1000, "size": 1}])), ("/linux/uidMappings", json!([{"containerID": 0, "hostID": 1000, "size": 10}, {"containerID": 5, "hostID": 2000, "size": 10}]))], "linux.uidMappings[1]", "container range [5, 15) overlaps entry [0]" ; "uid map container overlap")]
#[test_case(&[("/linux/namespaces/5", json!({"type": "user"})), ("/linux/uidMappings", json!([{"containerID": 0, "hostID": 1000, "size": 1}])), ("/linux/gidMappings", json!([{"containerID": 0, "hostID": 1000, "size": 10}, {"containerID": 100, "hostID": 1009, "size": 1}]))], "linux.gidMappings[1]", "host range [1009, 1010) overlaps entry [0]" ; "gid map host overlap")]
#[test_case(&[("/linux/namespaces/5", json!({"type": "user"})), ("/linux/gidMappings", json!([{"containerID": 0, "hostID": 1000, "size": 1}])), ("/linux/uidMappings", json!([{"containerID": 4294967295_u32, "hostID": 1000, "size": 1}]))], "linux.uidMappings[0]", "containerID 4294967295 + size 1 overflows" ; "uid map overflow")]
#[test_case(&[("/linux/namespaces/5", json!({"type": "user"})), ("/linux/gidMappings", json!([{"containerID": 0, "hostID": 1000, "size": 1}])), ("/linux/uidMappings", json!([{"containerID": -1, "hostID": 1000, "size": 1}]))], "linux.uidMappings[0].containerID", "out of range for uint32" ; "uid map negative")]
#[test_case(&[("/linux/timeOffsets", json!({"monotonic": {"secs": 1}}))], "linux.timeOffsets", "new time namespace" ; "time offsets without timens")]
#[test_case(&[("/linux/namespaces/5", json!({"type": "time", "path": "/proc/1/ns/time"})), ("/linux/timeOffsets", json!({"boottime": {"secs": 1}}))], "linux.timeOffsets", "new time namespace" ; "time offsets joined timens")]
#[test_case(&[("/linux/namespaces/5", json!({"type": "time"})), ("/linux/timeOffsets", json!({"realtime": {"secs": 1}}))], "linux.timeOffsets.\"realtime\"", "unknown clock" ; "time offsets realtime")]
#[test_case(&[("/linux/namespaces/5", json!({"type": "time"})), ("/linux/timeOffsets", json!({"monotonic": {"nanosecs": 1_000_000_000}}))], "linux.timeOffsets.\"monotonic\".nanosecs", "below one second" ; "time offsets nanosecs")]
#[test_case(&[("/linux/sysctl", json!({"kernel.core_pattern": "|/x"}))], "linux.sysctl.\"kernel.core_pattern\"", "not a namespaced sysctl" ; "sysctl host")]
#[test_case(&[("/linux/namespaces/1", json!(DELETE)), ("/linux/sysctl", json!({"net.ipv4.ip_forward": "1"}))], "linux.sysctl.\"net.ipv4.ip_forward\"", "type network" ; "sysctl net without netns")]
#[test_case(&[("/linux/namespaces/2", json!(DELETE)), ("/linux/sysctl", json!({"kernel.shmmax": "1"}))], "linux.sysctl.\"kernel.shmmax\"", "type ipc" ; "sysctl ipc without ipcns")]
#[test_case(&[("/linux/namespaces/2", json!(DELETE)), ("/linux/sysctl", json!({"fs.mqueue.msg_max": "1"}))], "linux.sysctl.\"fs.mqueue.msg_max\"", "type ipc" ; "sysctl mqueue without ipcns")]
#[test_case(&[("/linux/sysctl", json!({"kernel.hostname": "x"}))], "linux.sysctl.\"kernel.hostname\"", "conflicts with the hostname" ; "sysctl hostname conflict")]
#[test_case(&[("/linux/sysctl", json!({"net..x": "1"}))], "linux.sysctl.\"net..x\"", "malformed" ; "sysctl malformed")]
#[test_case(&[("/linux/sysctl", json!({"net.core.somaxconn": 256}))], "linux.sysctl.\"net.core.somaxconn\"", "expected a string" ; "sysctl value type")]
#[test_case(&[("/linux/devices", json!([{"path": "dev/fuse", "type": "c", "major": 10, "minor": 229}]))], "linux.devices[0].path", "absolute" ; "device path")]
#[test_case(&[("/linux/devices", json!([{"path": "/dev/x", "type": "a", "major": 1, "minor": 1}]))], "linux.devices[0].type", "unknown value \"a\"" ; "device type")]
#[test_case(&[("/linux/devices", json!([{"path": "/dev/x", "type": "c", "minor": 1}]))], "linux.devices[0].major", "required" ; "device major missing")]
#[test_case(&[("/linux/devices", json!([{"path": "/dev/x", "type": "b", "major": 1}]))], "linux.devices[0].minor", "required" ; "device minor missing")]
#[test_case(&[("/linux/maskedPaths/0", json!("proc/acpi"))], "linux.maskedPaths[0]", "absolute" ; "masked path")]
#[test_case(&[("/linux/readonlyPaths/4", json!("proc/sysrq-trigger"))], "linux.readonlyPaths[4]", "absolute" ; "readonly path")]
#[test_case(&[("/linux/rootfsPropagation", json!("sideways"))], "linux.rootfsPropagation", "unknown value \"sideways\"" ; "rootfs propagation")]
#[test_case(&[("/linux/cgroupsPath", json!("/isolab/../escape"))], "linux.cgroupsPath", "`..`" ; "cgroups path dotdot")]
#[test_case(&[("/linux/cgroupsPath", json!("system.slice:isolab:.."))], "linux.cgroupsPath", "`..`" ; "cgroups path systemd dotdot")]
#[test_case(&[("/hooks", json!({"prestart": [{"path": "hook"}]}))], "hooks.prestart[0].path", "absolute" ; "hook relative")]
#[test_case(&[("/hooks", json!({"poststop": [{"path": "/bin/true", "timeout": 0}]}))], "hooks.poststop[0].timeout", "greater than zero" ; "hook timeout")]
#[test_case(&[("/hooks", json!({"createRuntime": [{"args": []}]}))], "hooks.createRuntime[0].path", "required" ; "hook path missing")]
#[test_case(&[("/linux/seccomp", json!({"defaultAction": "SCMP_ACT_FOO"}))], "linux.seccomp.defaultAction", "unknown value \"SCMP_ACT_FOO\"" ; "seccomp default")]
#[test_case(&[("/linux/seccomp", json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/s"}))], "linux.seccomp.defaultAction", "cannot be the default" ; "seccomp notify default")]
#[test_case(&[("/linux/seccomp", json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kill"], "action": "ALLOW"}]}))], "linux.seccomp.syscalls[0].action", "unknown value \"ALLOW\"" ; "seccomp action")]
#[test_case(&[("/linux/seccomp", json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}))], "linux.seccomp.syscalls[0].args[0].index", "0..=5" ; "seccomp arg index")]
#[test_case(&[("/linux/seccomp", json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "EQ"}]}]}))], "linux.seccomp.syscalls[0].args[0].op", "unknown value" ; "seccomp arg op")]
#[test_case(&[("/linux/seccomp", json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["x86_64"]}))], "linux.seccomp.architectures[0]", "unknown value" ; "seccomp arch")]
#[test_case(&[("/linux/seccomp", json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_LOG"}]}))], "linux.seccomp.syscalls[0].names", "at least one" ; "seccomp names empty")]
#[test_case(&[("/linux/resources/memory", json!({"limit": -2}))], "linux.resources.memory.limit", "-1 for unlimited" ; "memory limit")]
#[test_case(&[("/linux/resources/memory", json!({"limit": 1000, "swap": 500}))], "linux.resources.memory.swap", "below the memory limit" ; "memory swap")]
#[test_case(&[("/linux/resources/memory", json!({"swappiness": 101}))], "linux.resources.memory.swappiness", "above 100" ; "swappiness")]
#[test_case(&[("/linux/resources/pids", json!({"limit": -5}))], "linux.resources.pids.limit", "-1 for unlimited" ; "pids limit")]
#[test_case(&[("/linux/resources/cpu", json!({"quota": 500}))], "linux.resources.cpu.quota", "at least 1000" ; "cpu quota")]
#[test_case(&[("/linux/resources/cpu", json!({"period": 10}))], "linux.resources.cpu.period", "outside the kernel's range" ; "cpu period")]
#[test_case(&[("/linux/resources/cpu", json!({"cpus": "0-"}))], "linux.resources.cpu.cpus", "not a list" ; "cpu list")]
#[test_case(&[("/linux/resources/cpu", json!({"shares": -1}))], "linux.resources.cpu.shares", "expected u64" ; "cpu shares negative via serde")]
#[test_case(&[("/linux/resources/devices/0/access", json!("rwx"))], "linux.resources.devices[0].access", "only contain r, w and m" ; "device rule access")]
#[test_case(&[("/linux/resources/unified", json!({"../memory.max": "1"}))], "linux.resources.unified.\"../memory.max\"", "not a cgroup file name" ; "unified key")]
#[test_case(&[("/linux/resources/blockIO", json!({"weight": 5}))], "linux.resources.blockIO.weight", "outside 10..=1000" ; "blkio weight")]
#[test_case(&[("/annotations", json!({"": "x"}))], "annotations.\"\"", "must not be empty" ; "annotation key")]
#[test_case(&[("/annotations", json!({"k": 1}))], "annotations.\"k\"", "expected a string" ; "annotation value")]
#[test_case(&[("/linux/intelRdt", json!({"closID": 5}))], "linux.intelRdt.closID", "invalid type" ; "leftover type error via serde")]
#[test_case(&[("/linux/namespaces", json!("pid"))], "linux.namespaces", "expected an array" ; "namespaces type")]
#[test_case(&[("/linux", json!([]))], "linux", "expected an object" ; "linux type")]
fn rule(edits: &[(&str, Value)], path: &str, reason: &str) {
    assert_has(&errors(&edit(RUNC_SPEC, edits)), path, reason);
}

#[test]
fn too_many_id_mappings() {
    let many: Vec<Value> =
        (0..341).map(|i| json!({"containerID": i, "hostID": 100000 + i, "size": 1})).collect();
    let bytes = edit(
        RUNC_ROOTLESS,
        &[
            ("/linux/uidMappings", Value::Array(many.clone())),
            ("/linux/gidMappings", Value::Array(many[..340].to_vec())),
        ],
    );
    let found = errors(&bytes);
    assert_has(&found, "linux.uidMappings", "at most 340");
    assert!(!found.iter().any(|e| e.path.starts_with("linux.gidMappings")), "{found:?}");
}

#[test]
fn reports_every_problem_at_once() {
    let found = errors(INVALID_MANY.as_bytes());
    let expected = [
        ("ociVersion", "unsupported"),
        ("process.args", "at least one"),
        ("process.cwd", "absolute"),
        ("process.capabilities.bounding[1]", "unknown capability \"CAP_FOO\""),
        ("process.rlimits[0].type", "unknown rlimit"),
        ("hostname", "requires a uts namespace"),
        ("mounts[0].destination", "must not be empty"),
        ("linux.namespaces[1].type", "unknown namespace \"pidd\""),
        ("linux.namespaces[2].type", "duplicate namespace pid"),
        ("linux.sysctl.\"kernel.core_pattern\"", "not a namespaced sysctl"),
        ("linux.maskedPaths[0]", "absolute"),
        ("hooks.prestart[0].timeout", "greater than zero"),
    ];
    for (path, reason) in expected {
        assert_has(&found, path, reason);
    }
    assert_eq!(found.len(), expected.len(), "{}", ConfigErrors(found.clone()));
}

#[test]
fn display_is_one_line_per_error() {
    let e = ConfigErrors(vec![
        ConfigError { path: "a.b".into(), reason: "bad".into() },
        ConfigError { path: "c[0]".into(), reason: "worse".into() },
    ]);
    assert_eq!(e.to_string(), "a.b: bad\nc[0]: worse");
    let boxed: Box<dyn std::error::Error> = Box::new(e);
    assert!(boxed.to_string().contains("worse"));
}

#[test_case(&[("/mounts/0/destination", json!("proc"))], "mounts[0].destination", "relative destination" ; "relative mount destination")]
#[test_case(&[("/process/terminal", json!(false)), ("/process/consoleSize", json!({"height": 1, "width": 1}))], "process.consoleSize", "ignored" ; "console size without terminal")]
#[test_case(&[("/hooks", json!({"preStart": []}))], "hooks.\"preStart\"", "unknown hook kind" ; "unknown hook kind")]
fn warnings(edits: &[(&str, Value)], path: &str, reason: &str) {
    let config = parse_config(&edit(RUNC_SPEC, edits)).unwrap_or_else(|e| panic!("{e}"));
    assert_has(config.warnings(), path, reason);
}

#[test]
fn syntax_errors_name_line_and_column() {
    let found = errors(b"{\n  \"ociVersion\": \"1.0.2\",\n  oops\n}");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].path, "(json)");
    assert!(found[0].reason.contains("line 3 column 3"), "{}", found[0].reason);
}

#[test]
fn helpers_for_the_core() {
    let full = parse_config(FULL.as_bytes()).expect("valid");
    assert_eq!(full.namespaces().len(), 8);
    assert!(full.has_new_namespace(LinuxNamespaceType::User));
    assert_eq!(full.uid_map_content().as_deref(), Some("0 100000 1000\n1000 1000 1\n1001 101001 64535\n"));
    assert_eq!(full.gid_map_content().as_deref(), Some("0 100000 65536\n"));
    assert_eq!(full.rootfs_path(Path::new("/bundle")), Path::new("/var/lib/isolab/bundle/rootfs"));
    let data = full.mount_options(5).expect("mount 5");
    assert!(data.bind && data.rec && !data.propagation.is_empty());
    assert_eq!(full.mount_options(1).map(|o| o.data), Some("mode=755,size=65536k".into()));
    assert!(full.mount_options(99).is_none());

    let runc = parse_config(RUNC_SPEC.as_bytes()).expect("valid");
    assert_eq!(runc.rootfs_path(Path::new("/bundle")), Path::new("/bundle/rootfs"));
    assert!(runc.has_new_namespace(LinuxNamespaceType::Network));
    assert!(!runc.namespaces().iter().any(|(t, _)| *t == LinuxNamespaceType::User));
    assert_eq!(runc.uid_map_content(), None);

    let joined = edit(RUNC_SPEC, &[("/linux/namespaces/1/path", json!("/var/run/netns/x"))]);
    let joined = parse_config(&joined).expect("valid");
    assert!(!joined.has_new_namespace(LinuxNamespaceType::Network));
    assert!(joined
        .namespaces()
        .contains(&(LinuxNamespaceType::Network, Some(Path::new("/var/run/netns/x")))));

    let rootless = parse_config(RUNC_ROOTLESS.as_bytes()).expect("valid");
    assert!(rootless.uid_map_content().is_some_and(|m| m.ends_with(" 1\n")));

    let rel = parse_config(&edit(RUNC_SPEC, &[("/mounts/0/destination", json!("proc"))])).expect("valid");
    let first = &rel.spec().mounts().as_ref().expect("mounts")[0];
    assert_eq!(mount_destination(first), Path::new("/proc"));
}

#[test_case(b"" ; "empty")]
#[test_case(b"null" ; "null")]
#[test_case(b"[]" ; "array")]
#[test_case(b"{}" ; "empty object")]
#[test_case(b"\xff\xfe\x00garbage" ; "garbage")]
#[test_case(b"{\"ociVersion\": \"1.0.0\", \"process\": {\"args\": [1e400]}}" ; "huge float")]
#[test_case(b"{\"process\": {\"user\": {\"uid\": 18446744073709551616}}}" ; "huge int")]
fn never_panics(input: &[u8]) {
    assert!(parse_config(input).is_err());
}

#[test]
fn deep_nesting_does_not_overflow() {
    for depth in [100, 200, 100_000] {
        let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(parse_config(deep.as_bytes()).is_err());
        let inside = format!("{{\"annotations\": {{\"k\": {}{}}}}}", "[".repeat(depth), "]".repeat(depth));
        assert!(parse_config(inside.as_bytes()).is_err());
    }
}

#[test]
fn every_prefix_and_byte_flip_of_a_sample_is_handled() {
    let sample = FULL.as_bytes();
    for end in 0..sample.len() {
        let _ = parse_config(&sample[..end]);
    }
    // A small deterministic mutation loop (xorshift), standing in for the fuzzer.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let mut bytes = sample.to_vec();
        for _ in 0..(next() % 4 + 1) {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] = b"0-1\"{}[],:aZ\\ \x00\xff"[(next() % 16) as usize];
        }
        if let Err(e) = parse_config(&bytes) {
            assert!(!e.0.is_empty());
        }
    }
}

#[test]
fn reports_every_leftover_type_error() {
    let bytes = edit(
        RUNC_SPEC,
        &[
            ("/linux/resources/cpu", json!({"shares": -1})),
            ("/linux/intelRdt", json!({"closID": 5})),
            ("/process/user/additionalGids", json!([1.5])),
        ],
    );
    let found = errors(&bytes);
    assert_has(&found, "linux.resources.cpu.shares", "expected u64");
    assert_has(&found, "linux.intelRdt.closID", "expected a string");
    assert_has(&found, "process.user.additionalGids[0]", "expected an integer, found 1.5");
    assert_eq!(found.len(), 3, "{}", ConfigErrors(found.clone()));
}

/// `linux.netDevices` validation (config/linux.rs), every problem with its JSON path.
#[test_case(json!({"eth1": {"name": "inner0"}}), true, None, "" ; "valid")]
#[test_case(json!({"eth1": {}}), true, None, "" ; "no new name")]
#[test_case(json!({"eth1": {}}), false, Some("linux.netDevices"), "requires a network namespace" ; "no netns")]
#[test_case(json!({"sixteen-bytes-xx": {}}), true, Some("linux.netDevices.\"sixteen-bytes-xx\""), "1 to 15 bytes" ; "long host")]
#[test_case(json!({"eth1": {"name": "a/b"}}), true, Some("linux.netDevices.\"eth1\".name"), "may not" ; "slash")]
#[test_case(json!({"eth1": {"name": "x0"}, "eth2": {"name": "x0"}}), true, Some("linux.netDevices.\"eth2\""), "like linux.netDevices.eth1" ; "same name inside")]
#[test_case(json!({"eth1": 3}), true, Some("linux.netDevices.\"eth1\""), "object" ; "not an object")]
fn net_devices_config(devs: serde_json::Value, netns: bool, path: Option<&str>, reason: &str) {
    let mut spec: serde_json::Value = serde_json::from_str(include_str!("../spec/default.json")).unwrap();
    spec["linux"]["netDevices"] = devs;
    if !netns {
        spec["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "network");
    }
    let got = parse_config(&serde_json::to_vec(&spec).unwrap());
    match (got, path) {
        (Ok(_), None) => {}
        (Err(errs), Some(path)) => assert!(
            errs.0.iter().any(|e| e.path == path && e.reason.contains(reason)),
            "expected {path}: {reason} in {errs}"
        ),
        (Ok(_), Some(path)) => panic!("accepted; expected {path}: {reason}"),
        (Err(errs), None) => panic!("rejected: {errs}"),
    }
}
