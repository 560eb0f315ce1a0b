//! lifecycle assertions on this host against isorun, each with its negative control.

mod common;

use test_case::test_case;

#[test_case("lifecycle.states_follow_the_spec")]
#[test_case("lifecycle.delete_leaves_nothing")]
fn passes_and_its_negative_control_fails(id: &str) {
    common::passes_and_control_fails(id);
}
