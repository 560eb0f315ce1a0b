//! The main job as nextest tests: the whole catalogue but `escape.*` in a throwaway VM per kernel × cgroup
//! cell, against the packed runtime; any FAIL or ERROR fails the cell. One test per cell, so
//! `cargo nextest run --partition hash:I/N` spreads the matrix across CI machines.

mod vm_support;

use isolab_harness::lab;
use isolab_harness::matrix::{run_cell, selected_ids};
use isolab_harness::protocol::{CgroupMode, Outcome};
use test_case::test_case;

#[test_case("debian-5.10", CgroupMode::V1 ; "debian_5_10_cgroup_v1")]
#[test_case("debian-5.10", CgroupMode::V2 ; "debian_5_10_cgroup_v2")]
#[test_case("debian-6.1", CgroupMode::V1 ; "debian_6_1_cgroup_v1")]
#[test_case("debian-6.1", CgroupMode::V2 ; "debian_6_1_cgroup_v2")]
#[test_case("debian-6.12", CgroupMode::V1 ; "debian_6_12_cgroup_v1")]
#[test_case("debian-6.12", CgroupMode::V2 ; "debian_6_12_cgroup_v2")]
#[test_case("debian-7.2", CgroupMode::V1 ; "debian_7_2_cgroup_v1")]
#[test_case("debian-7.2", CgroupMode::V2 ; "debian_7_2_cgroup_v2")]
fn catalogue_cell_has_no_fail_or_error(name: &str, mode: CgroupMode) {
    let mut o = vm_support::options();
    o.cpus = 2;
    let k = vm_support::kernel(name, &o);
    let img = lab::image_for(&k, &o, None, &|_, _| {}).expect("image");
    // Everything but escape.*: those run in every cell of `ci/matrix` (and in full from
    // `ci/escapes`); here their controls run on the host and in one guest (catalogue_escape*).
    let ids = selected_ids("!escape.*");
    let cell = vm_support::cell_info(name, mode, Default::default(), &o);
    let records = run_cell(&k, &img, &cell, &ids, &o, &mut |_| {});
    assert_eq!(records.len(), ids.len() + 2, "one record per assertion, kernel.no_panic and kernel.no_oops");
    let bad: Vec<String> = records
        .iter()
        .filter(|r| matches!(r.status, Outcome::Fail | Outcome::Error))
        .map(|r| format!("{:?} {}: {}", r.status, r.assertion, r.detail))
        .collect();
    assert!(bad.is_empty(), "{name}/{}:\n{}", mode.as_str(), bad.join("\n"));
    for r in records.iter().filter(|r| r.status == Outcome::Skip) {
        assert!(!r.detail.is_empty(), "a SKIP without a reason: {}", r.assertion);
    }
}
