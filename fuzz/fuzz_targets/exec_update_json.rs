//! The JSON `isorun` reads besides config.json, each decoded as the binary does: `exec
//! --process` (an OCI process), `update --resources` (linux.resources, then planned into
//! cgroup v1 and v2 writes), the state record under `--root`, plus `update`'s size flags
//! and `/proc/<pid>/stat`. The first byte picks the reader.
//! Properties: never panics; a decoded process/resources/record re-serialises to the same
//! value (a record without its seccomp profile, which state.json no longer carries); planned
//! cgroup values are single-line and name a `linux.resources` field; a parsed size is −1 or a
//! non-negative byte count that formats back to itself when plain digits.
#![no_main]

use isolab_runtime::cgroups::resources::plan;
use isolab_runtime::container::parse_size;
use isolab_runtime::state::{parse_stat, validate_id, ContainerRecord};
use libfuzzer_sys::fuzz_target;
use oci_spec::runtime::{LinuxResources, Process};

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(de) {
        Ok(v) => Some(v),
        Err(e) => {
            // The binary prints `<what>.<path>: <reason>`; the reason must say something.
            assert!(!e.inner().to_string().is_empty());
            None
        }
    }
}

fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(v: &T) {
    let bytes = serde_json::to_vec(v).expect("serialises");
    let back: T = serde_json::from_slice(&bytes).expect("re-parses");
    assert_eq!(&back, v, "serde round trip changed the value");
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    match which % 4 {
        0 => {
            if let Some(p) = decode::<Process>(rest) {
                round_trip(&p);
            }
        }
        1 => {
            if let Some(r) = decode::<LinuxResources>(rest) {
                round_trip(&r);
                for v2 in [false, true] {
                    if let Ok(settings) = plan(&r, v2) {
                        for s in settings {
                            assert!(s.field.starts_with("linux.resources"), "{s:?}");
                            assert!(!s.file.is_empty() && !s.file.contains('/'), "{s:?}");
                            assert!(!s.value.contains('\n'), "a cgroup value spans lines: {s:?}");
                        }
                    }
                }
            }
        }
        2 => {
            if let Some(rec) = decode::<ContainerRecord>(rest) {
                // An older isorun's record may hold the seccomp profile; it is read, never
                // written back (it lives in seccomp.json now): the record re-serialises to
                // itself without it.
                let back: ContainerRecord =
                    serde_json::from_slice(&serde_json::to_vec(&rec).expect("serialises"))
                        .expect("re-parses");
                let without = ContainerRecord { seccomp: None, ..rec.clone() };
                assert_eq!(back, without, "serde round trip changed the record, or kept its seccomp profile");
                let _ = validate_id(&rec.id);
            }
        }
        _ => {
            let text = String::from_utf8_lossy(rest);
            if let Some(n) = parse_size(&text) {
                assert!(n >= -1, "{text:?} → {n}");
                let t = text.trim();
                if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
                    assert_eq!(t.trim_start_matches('0').parse::<i64>().unwrap_or(0), n);
                }
            }
            if let Some((state, _start)) = parse_stat(&text) {
                assert!(!state.is_whitespace());
            }
        }
    }
});
