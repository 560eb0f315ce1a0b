//! Live migration under TCG: a container checkpointed in one VM is restored in a second VM
//! on the same kernel (`isolab migrate`); where CRIU cannot work (7.2: `criu check`; 5.10: a
//! plain process cannot be restored), a SKIP with its reason.

mod vm_support;

use isolab_harness::lab;
use isolab_harness::migrate::{migrate, Outcome};
use isolab_harness::protocol::CgroupMode;
use test_case::test_case;

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

/// Kernels where CRIU 3.17.1 cannot work: a SKIP whose reason is CRIU's (7.2: `criu check`'s
/// vDSO error; 5.10 under TCG: a plain process cannot be restored).
#[test_case("debian-7.2", "vDSO" ; "debian_7_2_criu_check_fails")]
#[test_case("debian-5.10", "criu restore of a plain process fails" ; "debian_5_10_restore_probe_fails")]
fn is_a_skip_naming_criu_s_reason(kernel: &str, reason: &str) {
    let o = vm_support::options();
    let k = vm_support::kernel(kernel, &o);
    let img = lab::image_for(&k, &o, None, &|_, _| {}).expect("image");
    match migrate(&k, &img, CgroupMode::V2, &o, &|s| eprintln!("{s}")) {
        Ok(Outcome::Skipped(why)) => {
            eprintln!("SKIP {kernel}: {why}");
            assert!(why.contains(reason), "the reason is CRIU's ({reason}): {why}");
        }
        other => panic!("CRIU 3.17.1 cannot work on {kernel}, yet: {other:?}"),
    }
}
