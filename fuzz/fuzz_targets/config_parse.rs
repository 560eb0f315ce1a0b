//! config.json bytes → parse + validate. Property: never panics; a config that validates
//! serialises back to JSON that validates again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(valid) = isolab_runtime::config::parse_config(data) {
        let again = serde_json::to_vec(valid.spec()).expect("a valid spec serialises");
        assert!(
            isolab_runtime::config::parse_config(&again).is_ok(),
            "a validated config must validate again after a serde round trip"
        );
    }
});
