//! net assertions on this host against isorun, each with its negative control.

mod common;

use test_case::test_case;

#[test_case("net.only_lo")]
#[test_case("net.host_interfaces_invisible")]
#[test_case("net.abstract_socket_unreachable")]
#[test_case("net.bridge_reachable")]
#[test_case("net.bridge_isolated")]
#[test_case("net.net_devices")]
fn passes_and_its_negative_control_fails(id: &str) {
    common::passes_and_control_fails(id);
}
