//! The manager against a fake cgroup root in a temp dir (pure v1, pure v2, hybrid).

use super::layout::tests::{HYBRID, V1, V2};
use super::*;
use test_case::test_case;

struct Fake {
    _tmp: tempfile::TempDir,
    mgr: CgroupManager,
}

/// A fake host: the mount points of `mountinfo` under a temp dir, and the container's
/// directory pre-made (the kernel would populate it) with `files` in every hierarchy.
fn fake(mountinfo: &str, files: &[(&str, &str)]) -> Fake {
    let tmp = tempfile::tempdir().unwrap();
    let hier = Hierarchies::detect(mountinfo, "0::/\n", tmp.path()).unwrap();
    let mgr = CgroupManager::with_hierarchies(Arc::new(hier), "c1", None).unwrap();
    for d in mgr.dirs() {
        std::fs::create_dir_all(&d).unwrap();
        for (f, content) in files {
            std::fs::write(d.join(f), content).unwrap();
        }
    }
    // v2 ancestors have cgroup.controllers and cgroup.subtree_control too.
    if let (Layout::Unified, Some(root)) = (mgr.layout(), &mgr.hier.unified) {
        for d in [root.clone(), root.join("isorun")] {
            std::fs::write(d.join("cgroup.controllers"), "cpu memory pids").unwrap();
            std::fs::write(d.join("cgroup.subtree_control"), "").unwrap();
        }
    }
    Fake { _tmp: tmp, mgr }
}

fn res(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap()
}

fn read_in(mgr: &CgroupManager, controller: &str, file: &str) -> String {
    std::fs::read_to_string(mgr.dir(controller).unwrap().join(file)).unwrap()
}

const V1_FILES: &[(&str, &str)] = &[
    ("memory.limit_in_bytes", ""),
    ("memory.memsw.limit_in_bytes", ""),
    ("pids.max", ""),
    ("cpu.shares", ""),
    ("cpu.cfs_quota_us", ""),
    ("cpu.cfs_period_us", ""),
    ("cgroup.procs", ""),
];

#[test_case(V1, "memory", "memory.limit_in_bytes", r#"{"memory":{"limit":1048576}}"#, "1048576" ; "v1 memory")]
#[test_case(V1, "memory", "memory.memsw.limit_in_bytes", r#"{"memory":{"limit":1048576,"swap":2097152}}"#, "2097152" ; "v1 memsw")]
#[test_case(V1, "pids", "pids.max", r#"{"pids":{"limit":7}}"#, "7" ; "v1 pids")]
#[test_case(V1, "cpu", "cpu.cfs_quota_us", r#"{"cpu":{"quota":5000,"period":10000}}"#, "5000" ; "v1 cpu comounted")]
#[test_case(HYBRID, "cpu", "cpu.shares", r#"{"cpu":{"shares":100}}"#, "100" ; "hybrid cpu")]
#[test_case(HYBRID, "pids", "pids.max", r#"{"pids":{"limit":-1}}"#, "max" ; "hybrid pids")]
fn v1_writes(mountinfo: &str, controller: &str, file: &str, json: &str, want: &str) {
    let f = fake(mountinfo, V1_FILES);
    f.mgr.create(Some(&res(json))).unwrap();
    assert_eq!(read_in(&f.mgr, controller, file), want);
}

#[test_case(r#"{"memory":{"limit":1048576,"swap":3145728}}"#, "memory.swap.max", "2097152" ; "swap")]
#[test_case(r#"{"cpu":{"shares":1024,"quota":1000}}"#, "cpu.max", "1000" ; "cpu max")]
#[test_case(r#"{"pids":{"limit":3}}"#, "pids.max", "3" ; "pids")]
#[test_case(r#"{"unified":{"memory.high":"5000"}}"#, "memory.high", "5000" ; "unified key")]
fn v2_writes(json: &str, file: &str, want: &str) {
    let files = [
        ("cgroup.controllers", "cpu memory pids"),
        ("cgroup.subtree_control", ""),
        ("memory.max", ""),
        ("memory.swap.max", ""),
        ("memory.high", ""),
        ("cpu.weight", ""),
        ("cpu.max", ""),
        ("pids.max", ""),
    ];
    let f = fake(V2, &files);
    f.mgr.create(Some(&res(json))).unwrap();
    assert_eq!(read_in(&f.mgr, "", file), want);
}

#[test]
fn v2_enables_controllers_in_ancestors() {
    let f = fake(V2, &[("cgroup.controllers", "cpu memory")]);
    let root = f.mgr.hier.unified.clone().unwrap();
    for d in [root.clone(), root.join("isorun")] {
        std::fs::write(d.join("cgroup.controllers"), "cpu memory pids").unwrap();
        std::fs::write(d.join("cgroup.subtree_control"), "cpu").unwrap();
    }
    f.mgr.create(None).unwrap();
    for d in [root.clone(), root.join("isorun")] {
        assert_eq!(std::fs::read_to_string(d.join("cgroup.subtree_control")).unwrap(), "+memory +pids");
    }
    assert!(f.mgr.clone_into_fd().is_some());
}

#[test_case(HYBRID, r#"{"hugepageLimits":[{"pageSize":"2MB","limit":1}]}"#, "linux.resources.hugepageLimits: the hugetlb controller is not available: no v1 hierarchy has it in /proc/self/mountinfo" ; "hybrid no hugetlb")]
#[test_case(V1, r#"{"cpu":{"cpus":"0"}}"#, "the cpuset controller is not available" ; "v1 no cpuset")]
#[test_case(V2, r#"{"cpu":{"cpus":"0"}}"#, "the cpuset controller is not available: not listed in" ; "v2 cpuset not enabled")]
#[test_case(HYBRID, r#"{"unified":{"memory.high":"1"}}"#, "linux.resources.unified.memory.high" ; "hybrid unified")]
#[test_case(V1, r#"{"memory":{"swappiness":5}}"#, "memory.swappiness does not exist (ENOENT): the host's memory controller cannot enforce it" ; "v1 missing file")]
#[test_case(V2, r#"{"devices":[{"allow":false,"access":"rwm"}]}"#, "attach BPF device program to /tmp/" ; "v2 devices need a real cgroup2 dir")]
fn errors(mountinfo: &str, json: &str, msg: &str) {
    let f = fake(mountinfo, &[("cgroup.controllers", "memory pids"), ("cgroup.subtree_control", "")]);
    let e = f.mgr.create(Some(&res(json))).unwrap_err().to_string();
    assert!(e.contains(msg), "{e}");
    assert!(e.contains("cgroup.controllers") || !msg.contains("not listed"), "{e}");
}

#[test]
fn write_error_names_file_value_and_errno() {
    let f = fake(V1, &[]);
    std::fs::create_dir(f.mgr.dir("pids").unwrap().join("pids.max")).unwrap(); // EISDIR on open for write
    let e = f.mgr.create(Some(&res(r#"{"pids":{"limit":100}}"#))).unwrap_err().to_string();
    assert!(
        e.starts_with("write 100 to ") && e.contains("/sys/fs/cgroup/pids/isorun/c1/pids.max: EISDIR"),
        "{e}"
    );
}

#[test_case(V1 ; "v1")]
#[test_case(HYBRID ; "hybrid")]
#[test_case(V2 ; "v2")]
fn add_task_pids_and_remove(mountinfo: &str) {
    let f = fake(mountinfo, &[("cgroup.procs", "")]);
    f.mgr.add_task(Pid::from_raw(4242)).unwrap();
    for d in f.mgr.dirs() {
        assert_eq!(std::fs::read_to_string(d.join("cgroup.procs")).unwrap(), "4242", "{}", d.display());
    }
    assert_eq!(f.mgr.pids().unwrap(), vec![4242]);
    for d in f.mgr.dirs() {
        std::fs::remove_file(d.join("cgroup.procs")).unwrap(); // real cgroupfs rmdir ignores files
    }
    f.mgr.remove().unwrap();
    assert!(f.mgr.dirs().iter().all(|d| !d.exists()));
    f.mgr.remove().unwrap(); // already gone is fine
}

#[test]
fn freeze_thaw_v1() {
    let f = fake(
        "37 31 0:33 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer\n",
        &[("freezer.state", "THAWED\n")],
    );
    assert!(!f.mgr.is_frozen());
    f.mgr.freeze().unwrap();
    assert!(f.mgr.is_frozen());
    f.mgr.thaw().unwrap();
    assert_eq!(read_in(&f.mgr, "freezer", "freezer.state").trim(), "THAWED");
}

#[test]
fn freeze_v2_waits_for_events_and_missing_freezer_v1_errors() {
    let f = fake(V2, &[("cgroup.freeze", "0"), ("cgroup.events", "populated 1\nfrozen 1\n")]);
    f.mgr.freeze().unwrap();
    assert!(f.mgr.is_frozen());
    f.mgr.thaw().unwrap();
    assert!(!f.mgr.is_frozen());
    let e = fake(V1, &[]).mgr.freeze().unwrap_err().to_string();
    assert!(e.contains("the freezer controller is not available"), "{e}");
}

#[test]
fn stats_v2_and_json_shape() {
    let files = [
        ("cgroup.controllers", "cpu memory pids io"),
        (
            "cpu.stat",
            "usage_usec 10\nuser_usec 6\nsystem_usec 4\nnr_periods 2\nnr_throttled 1\nthrottled_usec 3\n",
        ),
        ("memory.events", "low 0\nhigh 0\nmax 5\noom 2\noom_kill 2\n"),
        ("memory.max", "max\n"),
        ("memory.current", "4096\n"),
        ("memory.stat", "anon 1\nfile 2\n"),
        ("pids.current", "3\n"),
        ("pids.max", "10\n"),
        ("io.stat", "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n"),
    ];
    let f = fake(V2, &files);
    let s = f.mgr.stats().unwrap();
    assert_eq!((s.cpu.usage.total, s.cpu.throttling.throttled_time), (10_000, 3_000));
    assert_eq!(
        (s.memory.oom_kill, s.memory.usage.failcnt, s.memory.usage.limit, s.memory.cache),
        (2, 5, u64::MAX, 2)
    );
    assert_eq!((s.pids.current, s.pids.limit), (3, 10));
    assert_eq!(
        s.blkio.io_service_bytes_recursive[1],
        stats::BlkioEntry { major: 8, minor: 0, op: "Write".into(), value: 200 }
    );
    let j = serde_json::to_value(Event::stats("c1", s)).unwrap();
    assert_eq!(j["type"], "stats");
    assert_eq!(j["data"]["cpu"]["usage"]["kernel"], 4000);
    assert_eq!(j["data"]["memory"]["raw"]["anon"], 1);
    assert_eq!(j["data"]["blkio"]["ioServicedRecursive"][0]["op"], "Read");
}

#[test]
fn stats_v1_oom_counter() {
    let files = [
        ("memory.limit_in_bytes", "1048576\n"),
        ("memory.usage_in_bytes", "4096\n"),
        ("memory.max_usage_in_bytes", "8192\n"),
        ("memory.failcnt", "9\n"),
        ("memory.stat", "cache 7\nrss 1\n"),
        ("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n"),
        ("pids.current", "1\n"),
        ("pids.max", "max\n"),
    ];
    let mi = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n";
    let s = fake(mi, &files).mgr.stats().unwrap();
    assert_eq!(
        (s.memory.oom_kill, s.memory.usage.max, s.memory.usage.failcnt, s.memory.cache),
        (1, 8192, 9, 7)
    );
    assert_eq!((s.pids.current, s.pids.limit), (1, 0));
}
