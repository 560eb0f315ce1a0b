//! Shared by the config targets: a config that validated serialises back to JSON that
//! validates again, to the same spec.

use isolab_runtime::config::{parse_config, ValidConfig};

/// Panics unless `valid`'s spec survives a serde round trip through validation unchanged.
pub fn assert_round_trips(valid: &ValidConfig) {
    let again = serde_json::to_vec(valid.spec()).expect("a valid spec serialises");
    let second = match parse_config(&again) {
        Ok(v) => v,
        Err(e) => panic!("a validated config must validate again after a serde round trip:\n{e}"),
    };
    assert_eq!(second.spec(), valid.spec(), "the serde round trip changed the spec");
}
