//! The negative controls of escapes that need kernel features this host may lack (loadable
//! modules, kexec, /proc/kcore, /dev/mem; the CI host's kernel has none of them): run in one
//! debian-6.1 guest, each assertion PASSes and FAILs against its weakened config there
//! (`<id>:weakened`, see `catalogue::WEAKENED`).

mod vm_support;

use isolab_harness::catalogue::WEAKENED;
use isolab_harness::lab;
use isolab_harness::matrix::run_cell;
use isolab_harness::protocol::{CgroupMode, Outcome};

const IDS: [&str; 4] = [
    "escape.kcore_unreadable",
    "escape.module_load_refused",
    "escape.kexec_load_refused",
    "escape.dev_mem_refused",
];

#[test]
fn kernel_feature_escapes_pass_and_their_controls_fail_in_a_guest() {
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
}
