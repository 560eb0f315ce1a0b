//! The checkpoint assertions where CRIU works (this host's kernel fails `criu check`): in one
//! debian-6.1 guest all five share one checkpoint/restore and PASS, and each FAILs against its
//! weakened config (`<id>:weakened`, its own round trip); in a second guest one of them,
//! selected alone, makes the shared round trip itself and PASSes.

mod vm_support;

use isolab_harness::catalogue::WEAKENED;
use isolab_harness::lab;
use isolab_harness::matrix::run_cell;
use isolab_harness::protocol::{CgroupMode, Outcome};

const IDS: [&str; 5] = [
    "checkpoint.pid1_survives",
    "checkpoint.hostname_survives",
    "checkpoint.mount_view_survives",
    "checkpoint.host_view_not_widened",
    "checkpoint.memory_limit_survives",
];

#[test]
fn shared_checkpoint_passes_its_controls_fail_and_one_alone_passes_in_a_guest() {
    let o = vm_support::options();
    let k = vm_support::kernel("debian-6.1", &o);
    let img = lab::image_for(&k, &o, None, &|_, _| {}).expect("image");
    let cell = vm_support::cell_info("debian-6.1", CgroupMode::V2, Default::default(), &o);
    let mut ids: Vec<String> = IDS.iter().map(|i| i.to_string()).collect();
    ids.extend(IDS.iter().map(|i| format!("{i}{WEAKENED}")));
    let records = run_cell(&k, &img, &cell, &ids, &o, &mut |_| {});
    let got = |id: &str| records.iter().find(|r| r.assertion == id).map(|r| (r.status, r.detail.clone()));
    for id in IDS {
        let (plain, detail) = got(id).unwrap_or_else(|| panic!("no record of {id}"));
        assert_eq!(plain, Outcome::Pass, "{id} in debian-6.1: {detail}");
        let weak = format!("{id}{WEAKENED}");
        let (control, detail) = got(&weak).unwrap_or_else(|| panic!("no record of {weak}"));
        eprintln!("{weak}: {detail}");
        assert_eq!(control, Outcome::Fail, "{weak} in debian-6.1 must FAIL: {detail}");
    }

    let alone = ["checkpoint.hostname_survives".to_string()];
    let records = run_cell(&k, &img, &cell, &alone, &o, &mut |_| {});
    let r = records.iter().find(|r| r.assertion == alone[0]).expect("a record of the one selected");
    assert_eq!(r.status, Outcome::Pass, "{} selected alone: {}", alone[0], r.detail);
}
