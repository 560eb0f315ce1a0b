//! user namespace assertions on this host against isorun, each with its negative control.

mod common;

use test_case::test_case;

#[test_case("user.root_maps_to_unprivileged")]
#[test_case("user.unmapped_owner_is_overflow")]
#[test_case("user.container_root_cannot_touch_host_files")]
fn passes_and_its_negative_control_fails(id: &str) {
    common::passes_and_control_fails(id);
}
