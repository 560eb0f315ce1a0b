//! config.json bytes → parse + validate. Properties: never panics; every error names a
//! non-empty JSON path and a reason; a config that validates serialises back to JSON that
//! validates again, to the same spec and the same warnings.
#![no_main]

use isolab_runtime::config::parse_config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_config(data) {
        Ok(valid) => {
            let again = serde_json::to_vec(valid.spec()).expect("a valid spec serialises");
            let second = match parse_config(&again) {
                Ok(v) => v,
                Err(e) => panic!("a validated config must validate again after a serde round trip:\n{e}"),
            };
            assert_eq!(second.spec(), valid.spec(), "the serde round trip changed the spec");
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
