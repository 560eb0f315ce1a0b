use super::*;
use test_case::test_case;

fn res(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap()
}

fn files(json: &str, v2: bool) -> Vec<(String, String)> {
    plan(&res(json), v2).unwrap().into_iter().map(|s| (s.file, s.value)).collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

#[test_case(r#"{"memory":{"limit":1048576,"swap":2097152,"reservation":4096,"swappiness":10}}"#,
    &[("memory.limit_in_bytes","1048576"),("memory.memsw.limit_in_bytes","2097152"),("memory.soft_limit_in_bytes","4096"),("memory.swappiness","10")] ; "memory")]
#[test_case(r#"{"memory":{"limit":-1,"disableOOMKiller":true,"kernel":1}}"#,
    &[("memory.kmem.limit_in_bytes","1"),("memory.limit_in_bytes","-1"),("memory.memsw.limit_in_bytes","-1"),("memory.oom_control","1")] ; "memory unlimited no oom kernel limit")]
#[test_case(r#"{"memory":{"kernel":0,"kernelTCP":65536}}"#, &[("memory.kmem.tcp.limit_in_bytes","65536")] ; "kernel tcp limit zero kernel unset")]
#[test_case(r#"{"pids":{"limit":10}}"#, &[("pids.max","10")] ; "pids")]
#[test_case(r#"{"pids":{"limit":-1}}"#, &[("pids.max","max")] ; "pids unlimited")]
#[test_case(r#"{"cpu":{"shares":512,"quota":50000,"period":100000,"realtimeRuntime":950,"realtimePeriod":1000,"cpus":"0-1","mems":"0"}}"#,
    &[("cpu.shares","512"),("cpu.cfs_period_us","100000"),("cpu.cfs_quota_us","50000"),("cpu.rt_period_us","1000"),("cpu.rt_runtime_us","950"),("cpuset.cpus","0-1"),("cpuset.mems","0")] ; "cpu")]
#[test_case(r#"{"blockIO":{"weight":500,"weightDevice":[{"major":8,"minor":0,"weight":300}],"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1000}],"throttleWriteIOPSDevice":[{"major":8,"minor":16,"rate":20}]}}"#,
    &[("blkio.weight","500"),("blkio.weight_device","8:0 300"),("blkio.throttle.read_bps_device","8:0 1000"),("blkio.throttle.write_iops_device","8:16 20")] ; "blkio")]
#[test_case(r#"{"hugepageLimits":[{"pageSize":"2MB","limit":4194304}]}"#, &[("hugetlb.2MB.limit_in_bytes","4194304")] ; "hugetlb")]
#[test_case(r#"{"network":{"classID":1048577}}"#, &[("net_cls.classid","1048577")] ; "net_cls")]
fn v1_settings(json: &str, want: &[(&str, &str)]) {
    assert_eq!(files(json, false), pairs(want));
}

#[test]
fn v1_devices_then_defaults() {
    let got = files(
        r#"{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3}]}"#,
        false,
    );
    assert_eq!(got[0], ("devices.deny".into(), "a *:* rwm".into()));
    assert_eq!(got[1], ("devices.allow".into(), "c 1:3 rwm".into()));
    assert!(got[2..].iter().all(|(f, _)| f == "devices.allow"));
    assert!(got.contains(&("devices.allow".into(), "c 136:* rwm".into())));
}

#[test_case(r#"{"memory":{"limit":1048576,"swap":3145728,"reservation":4096}}"#,
    &[("memory.max","1048576"),("memory.low","4096"),("memory.swap.max","2097152")] ; "memory swap is swap minus limit")]
#[test_case(r#"{"memory":{"limit":-1,"swap":0}}"#, &[("memory.max","max"),("memory.swap.max","max")] ; "unlimited")]
#[test_case(r#"{"memory":{"limit":1048576,"swap":-1}}"#, &[("memory.max","1048576"),("memory.swap.max","max")] ; "swap unlimited")]
#[test_case(r#"{"cpu":{"shares":1024,"quota":50000,"period":100000}}"#, &[("cpu.weight","39"),("cpu.max","50000 100000")] ; "cpu weight and max")]
#[test_case(r#"{"cpu":{"shares":2,"quota":-1,"period":50000}}"#, &[("cpu.weight","1"),("cpu.max","max 50000")] ; "cpu min weight no quota")]
#[test_case(r#"{"cpu":{"shares":262144}}"#, &[("cpu.weight","10000")] ; "cpu max weight")]
#[test_case(r#"{"blockIO":{"weight":10,"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1000}]}}"#,
    &[("io.weight","default 1"),("io.max","8:0 rbps=1000")] ; "io")]
#[test_case(r#"{"hugepageLimits":[{"pageSize":"1GB","limit":0}]}"#, &[("hugetlb.1GB.max","0")] ; "hugetlb v2")]
#[test_case(r#"{"unified":{"memory.high":"1000000","cgroup.max.depth":"3"}}"#, &[("cgroup.max.depth","3"),("memory.high","1000000")] ; "unified")]
#[test_case(r#"{"devices":[{"allow":false,"access":"rwm"}]}"#, &[] ; "devices are a BPF program not files")]
fn v2_settings(json: &str, want: &[(&str, &str)]) {
    assert_eq!(files(json, true), pairs(want));
}

#[test_case(r#"{"memory":{"disableOOMKiller":true}}"#, true, "linux.resources.memory.disableOOMKiller" ; "v2 oom killer")]
#[test_case(r#"{"memory":{"kernel":1048576}}"#, true, "linux.resources.memory.kernel" ; "v2 kernel memory")]
#[test_case(r#"{"memory":{"kernelTCP":1048576}}"#, true, "linux.resources.memory.kernelTCP" ; "v2 kernel tcp memory")]
#[test_case(r#"{"memory":{"swappiness":10}}"#, true, "linux.resources.memory.swappiness" ; "v2 swappiness")]
#[test_case(r#"{"memory":{"swap":10}}"#, true, "needs a memory limit" ; "v2 swap without limit")]
#[test_case(r#"{"memory":{"limit":100,"swap":10}}"#, true, ">= the memory limit" ; "v2 swap below limit")]
#[test_case(r#"{"cpu":{"realtimeRuntime":10}}"#, true, "realtimeRuntime" ; "v2 realtime")]
#[test_case(r#"{"unified":{"memory.high":"1"}}"#, false, "linux.resources.unified.memory.high" ; "v1 unified")]
#[test_case(r#"{"unified":{"../x":"1"}}"#, true, "not a cgroup file name" ; "unified traversal")]
#[test_case(r#"{"memory":{"swappiness":101}}"#, false, "0..=100" ; "v1 swappiness range")]
#[test_case(r#"{"network":{"classID":1}}"#, true, "linux.resources.network" ; "v2 net_cls")]
// Found by the exec_update_json fuzz target: `update --resources` planned a write to
// `hugetlb.4MB////….limit_in_bytes`, a path, not a file of the cgroup.
#[test_case(r#"{"hugepageLimits":[{"pageSize":"4MB////////","limit":209715200}]}"#, false, "linux.resources.hugepageLimits: \"4MB////////\" is not a page size" ; "hugetlb slashes")]
#[test_case(r#"{"hugepageLimits":[{"pageSize":"2MB/../../x","limit":1}]}"#, true, "is not a page size" ; "hugetlb traversal")]
#[test_case(r#"{"hugepageLimits":[{"pageSize":"","limit":1}]}"#, true, "is not a page size" ; "hugetlb empty")]
#[test_case(r#"{"hugepageLimits":[{"pageSize":"MB","limit":1}]}"#, false, "is not a page size" ; "hugetlb no digits")]
#[test_case(r#"{"network":{"priorities":[{"name":"eth0\n1","priority":1}]}}"#, false, "linux.resources.network.priorities" ; "net_prio newline")]
#[test_case(r#"{"network":{"priorities":[{"name":"","priority":1}]}}"#, false, "not an interface name" ; "net_prio empty")]
fn plan_errors(json: &str, v2: bool, msg: &str) {
    let e = plan(&res(json), v2).unwrap_err().to_string();
    assert!(e.contains(msg), "{e}");
}

#[test_case("2MB", true ; "2MB")]
#[test_case("1GB", true ; "1GB")]
#[test_case("64KB", true ; "64KB")]
#[test_case("2M", false ; "no B")]
#[test_case("2mb", false ; "lower case")]
#[test_case("2MB ", false ; "trailing space")]
#[test_case("99999999999MB", false ; "eleven digits")]
fn page_sizes(s: &str, ok: bool) {
    assert_eq!(is_page_size(s), ok, "{s:?}");
}

#[test]
fn conversions() {
    assert_eq!(shares_to_weight(0), 0);
    assert_eq!(shares_to_weight(2), 1);
    assert_eq!(shares_to_weight(1024), 39);
    assert_eq!(blkio_weight_to_io(1000), 10000);
}

/// What Docker sends for the fields it does not change: runc writes none of it.
const ENGINE_ZEROS: &str = r#"{"memory":{"limit":0,"reservation":0,"swap":0,"kernel":0},"pids":{"limit":0},
    "cpu":{"shares":0,"quota":0,"period":0,"realtimeRuntime":0,"realtimePeriod":0,"cpus":"","mems":""},
    "blockIO":{"weight":0,"leafWeight":0,"weightDevice":[{"major":8,"minor":0,"weight":0,"leafWeight":0}]},
    "network":{"classID":0}}"#;

#[test_case(false ; "v1")]
#[test_case(true ; "v2")]
fn engine_zeros_are_unset(v2: bool) {
    assert_eq!(files(ENGINE_ZEROS, v2), pairs(&[]));
}

#[test_case(r#"{"memory":{"limit":0,"reservation":0},"pids":{"limit":5}}"#, false, &[("pids.max","5")] ; "v1 zeros beside a pids limit")]
#[test_case(r#"{"memory":{"limit":1048576,"reservation":0}}"#, false, &[("memory.limit_in_bytes","1048576")] ; "v1 no soft limit 0")]
#[test_case(r#"{"memory":{"limit":1048576,"reservation":0,"swap":0}}"#, true, &[("memory.max","1048576")] ; "v2 zeros")]
#[test_case(r#"{"memory":{"limit":-1}}"#, true, &[("memory.max","max"),("memory.swap.max","max")] ; "v2 unlimited memory means unlimited swap")]
#[test_case(r#"{"memory":{"limit":2097152,"swap":2097152}}"#, true, &[("memory.max","2097152"),("memory.swap.max","0")] ; "v2 swap equal to memory disables swap")]
fn zeros_beside_values(json: &str, v2: bool, want: &[(&str, &str)]) {
    assert_eq!(files(json, v2), pairs(want));
}

#[test]
fn v1_unlimited_memory_also_unlimits_swap_where_accounted() {
    let got = plan(&res(r#"{"memory":{"limit":-1}}"#), false).unwrap();
    let swap = got.iter().find(|s| s.file == "memory.memsw.limit_in_bytes").expect("memsw setting");
    assert_eq!((swap.value.as_str(), swap.optional), ("-1", true));
}
