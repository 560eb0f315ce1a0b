//! Live migration under TCG: a container checkpointed in one VM is restored in a second VM
//! on the same kernel (`isolab migrate`); where CRIU cannot work (7.2: `criu check`; 5.10: a
//! plain process cannot be restored), a SKIP with its reason.

mod vm_support;

use isolab_harness::lab;
use isolab_harness::migrate::{migrate, Outcome};
use isolab_harness::protocol::CgroupMode;

#[test]
fn a_container_migrates_between_two_debian_6_1_guests_with_its_state() {
    let o = vm_support::options();
    let k = vm_support::kernel("debian-6.1", &o);
    let img = lab::image_for(&k, &o, None, &|_, _| {}).expect("image");
    match migrate(&k, &img, CgroupMode::V2, &o, &|s| eprintln!("{s}")) {
        Ok(Outcome::Migrated(figures)) => figures.iter().for_each(|f| eprintln!("{f}")),
        Ok(Outcome::Skipped(why)) => panic!("CRIU works on debian-6.1, yet: {why}"),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn debian_7_2_is_a_skip_naming_criu_s_reason() {
    let o = vm_support::options();
    let k = vm_support::kernel("debian-7.2", &o);
    let img = lab::image_for(&k, &o, None, &|_, _| {}).expect("image");
    match migrate(&k, &img, CgroupMode::V2, &o, &|s| eprintln!("{s}")) {
        Ok(Outcome::Skipped(why)) => {
            eprintln!("SKIP debian-7.2: {why}");
            assert!(why.contains("vDSO"), "the reason is CRIU's vDSO failure: {why}");
        }
        other => panic!("CRIU 3.17.1 cannot dump on debian-7.2, yet: {other:?}"),
    }
}

#[test]
fn debian_5_10_is_a_skip_because_criu_cannot_restore_a_plain_process() {
    let o = vm_support::options();
    let k = vm_support::kernel("debian-5.10", &o);
    let img = lab::image_for(&k, &o, None, &|_, _| {}).expect("image");
    match migrate(&k, &img, CgroupMode::V2, &o, &|s| eprintln!("{s}")) {
        Ok(Outcome::Skipped(why)) => {
            eprintln!("SKIP debian-5.10: {why}");
            assert!(why.contains("criu restore of a plain process fails"), "the probe's reason: {why}");
        }
        other => panic!("CRIU 3.17.1 cannot restore on debian-5.10 under TCG, yet: {other:?}"),
    }
}
