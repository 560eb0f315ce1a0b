//! The rootless cell (`isolab matrix --rootless`) in a debian-6.12 guest on cgroup v2: the
//! runtime runs as an unprivileged uid, root of a user namespace of its own (rootless podman's
//! way, podman's rootless config as the base), the results carry the cell, and a kernel that
//! refuses unprivileged user namespaces SKIPs every assertion with the reason.

mod vm_support;

use isolab_harness::catalogue::base::BaseConfig;
use isolab_harness::check::write_outputs;
use isolab_harness::lab;
use isolab_harness::matrix::{plan, run_cell};
use isolab_harness::protocol::{CgroupMode, Outcome};
use isolab_harness::report::timing::RunTiming;
use isolab_harness::report::Record;

const KERNEL: &str = "debian-6.12";
const CELL: &str = "debian-6.12/v2/podman-rootless";

/// The rootless cell `--rootless` adds to the spec one.
fn rootless_base() -> BaseConfig {
    let bases = plan::bases(&[BaseConfig::default()], true);
    let rootless: Vec<&BaseConfig> = bases.iter().filter(|b| b.is_rootless()).collect();
    assert_eq!(rootless.len(), 1, "--rootless adds one rootless base: {bases:?}");
    rootless[0].clone()
}

fn run(ids: &[&str], extra_cmdline: &[&str]) -> Vec<Record> {
    let mut o = vm_support::options();
    o.extra_cmdline = extra_cmdline.iter().map(|s| s.to_string()).collect();
    let k = vm_support::kernel(KERNEL, &o);
    let img = lab::image_for(&k, &o, None, &|_, _| {}).expect("image");
    let cell = vm_support::cell_info(KERNEL, CgroupMode::V2, rootless_base(), &o);
    let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    run_cell(&k, &img, &cell, &ids, &o, &mut |_| {})
}

fn record<'a>(records: &'a [Record], id: &str) -> &'a Record {
    records.iter().find(|r| r.assertion == id).unwrap_or_else(|| panic!("no record of {id}: {records:?}"))
}

/// `container init uid A B C D in user:[N] (not the agent's user:[M])` of the probe note.
fn probe_seen(detail: &str) -> (Vec<u32>, String, String) {
    let seen = detail.split("container init uid ").nth(1).unwrap_or_else(|| panic!("no probe: {detail}"));
    let (uids, rest) = seen.split_once(" in ").expect("uids then the user namespace");
    let uids = uids.split_whitespace().map(|u| u.parse().expect("a uid")).collect();
    let (theirs, rest) = rest.split_once(" (not the agent's ").expect("the agent's namespace");
    let ours = rest.split(')').next().unwrap_or_default();
    (uids, theirs.to_owned(), ours.to_owned())
}

#[test]
fn the_runtime_runs_as_an_unprivileged_uid_in_a_user_namespace_in_a_guest() {
    let ids = [
        "pid.init_is_pid1",
        "cgroup.pids.fork_eagain",
        "lifecycle.delete_leaves_nothing",
        "checkpoint.pid1_survives",
        "user.root_maps_to_unprivileged",
    ];
    let records = run(&ids, &[]);
    // (a) The container's init, read from the agent's side, runs as uid 1000 (the guest has no
    // passwd: the first free uid) in a user namespace that is not the agent's.
    let pid1 = record(&records, "pid.init_is_pid1");
    assert_eq!(pid1.status, Outcome::Pass, "{}", pid1.detail);
    let (uids, theirs, ours) = probe_seen(&pid1.detail);
    assert_eq!(uids, [1000, 1000, 1000, 1000], "{}", pid1.detail);
    assert!(theirs.starts_with("user:[") && ours.starts_with("user:["), "{}", pid1.detail);
    assert_ne!(theirs, ours, "the init is in the agent's user namespace: {}", pid1.detail);
    assert!(pid1.detail.contains("mapped \"0 1000 1\""), "{}", pid1.detail);
    // The delegated cgroup v2 really limits, and delete leaves none of it behind.
    for id in ["cgroup.pids.fork_eagain", "lifecycle.delete_leaves_nothing"] {
        let r = record(&records, id);
        assert_eq!(r.status, Outcome::Pass, "{id}: {}", r.detail);
    }
    // What cannot hold rootless SKIPs with its reason.
    for id in ["checkpoint.pid1_survives", "user.root_maps_to_unprivileged"] {
        let r = record(&records, id);
        assert_eq!(r.status, Outcome::Skip, "{id}: {}", r.detail);
        assert!(r.detail.starts_with("rootless: "), "{id}: {}", r.detail);
    }
    // (b) The results carry the rootless dimension, in every output.
    for r in records.iter().filter(|r| ids.contains(&r.assertion.as_str())) {
        assert_eq!((r.base_config.as_str(), r.cell()), ("podman-rootless", CELL.to_owned()));
    }
    let out = tempfile::tempdir().expect("tempdir");
    let timing =
        RunTiming { wall_secs: Some(1.0), assertion_secs: 1.0, shards: None, shards_without_wall: 0 };
    write_outputs(out.path(), &records, &timing).expect("outputs");
    // results.json keeps the cell's parts in their fields, summary.md's table the kernel and
    // the rest in columns; the others print the label.
    for (file, want) in [
        ("results.json", "\"base_config\": \"podman-rootless\""),
        ("junit.xml", CELL),
        ("results.ktap", CELL),
        ("report.html", CELL),
        ("summary.md", "| debian-6.12 | "),
        ("summary.md", "| v2/podman-rootless |"),
    ] {
        let text = std::fs::read_to_string(out.path().join(file)).expect(file);
        assert!(text.contains(want), "{file} does not have {want}");
    }
}

#[test]
fn a_kernel_without_unprivileged_user_namespaces_skips_with_the_reason_in_a_guest() {
    let ids = ["pid.init_is_pid1", "security.no_new_privs"];
    let records = run(&ids, &["sysctl.user.max_user_namespaces=0"]);
    for id in ids {
        let r = record(&records, id);
        assert_eq!(r.status, Outcome::Skip, "{id}: {}", r.detail);
        assert!(
            r.detail.starts_with("rootless: this kernel refuses an unprivileged user namespace"),
            "{id}: {}",
            r.detail
        );
    }
}
