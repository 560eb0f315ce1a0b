//! cgroup and time namespace assertions on this host against isorun, each with its negative control.

mod common;

use test_case::test_case;

#[test_case("cgroupns.sees_own_root")]
#[test_case("timens.offsets_apply")]
fn passes_and_its_negative_control_fails(id: &str) {
    common::passes_and_control_fails(id);
}
