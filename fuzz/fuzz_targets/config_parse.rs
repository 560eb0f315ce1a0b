//! config.json bytes → parse + validate. Properties: never panics; every error names a
//! non-empty JSON path and a reason; a config that validates serialises back to JSON that
//! validates again, to the same spec and the same warnings.
#![no_main]

use isolab_runtime::config::parse_config;
use libfuzzer_sys::fuzz_target;

#[path = "../common/round_trip.rs"]
mod round_trip;

fuzz_target!(|data: &[u8]| {
    match parse_config(data) {
        Ok(valid) => {
            round_trip::assert_round_trips(&valid);
            // Helpers the runtime calls on every valid config must not panic either.
            let _ = valid.namespaces();
            let _ = valid.uid_map_content();
            let _ = valid.gid_map_content();
            for i in 0..valid.spec().mounts().as_ref().map_or(0, Vec::len) {
                assert!(valid.mount_options(i).is_some());
            }
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "a rejected config names at least one error");
            for e in &errors.0 {
                assert!(!e.path.is_empty() && !e.reason.is_empty(), "error without path or reason: {e:?}");
            }
        }
    }
});
