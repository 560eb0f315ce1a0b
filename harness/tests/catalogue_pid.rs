//! pid assertions on this host against isorun, each with its negative control.

mod common;

use test_case::test_case;

#[test_case("pid.init_is_pid1")]
#[test_case("pid.proc_shows_only_container")]
#[test_case("pid.host_sees_other_pid")]
#[test_case("pid.host_pids_unreachable")]
#[test_case("pid.init_ignores_sigkill_from_inside")]
#[test_case("pid.init_death_kills_all")]
fn passes_and_its_negative_control_fails(id: &str) {
    common::passes_and_control_fails(id);
}
