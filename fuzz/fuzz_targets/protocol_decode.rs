//! One guest → host protocol line (or a host → guest request) → [`decode_line`]. The guest is
//! untrusted: a compromised or crashing guest can write anything on ttyS1. Properties: never
//! panics; a decoded message re-encodes to one line (no raw newline) that decodes to an
//! equal message; a malformed line's error quotes the (trimmed) line.
#![no_main]

use isolab_harness::protocol::{decode_line, encode_line, Event, ProtocolError, Request};
use libfuzzer_sys::fuzz_target;

fn check<T>(line: &str)
where
    T: serde::Serialize + for<'de> serde::Deserialize<'de> + PartialEq + std::fmt::Debug,
{
    match decode_line::<T>(line) {
        Ok(msg) => {
            let enc = encode_line(&msg).expect("a decoded message encodes");
            assert!(enc.ends_with('\n') && !enc[..enc.len() - 1].contains('\n'), "{enc:?}");
            let back: T = decode_line(&enc).expect("an encoded message decodes");
            assert_eq!(back, msg);
        }
        Err(ProtocolError::Malformed { line: quoted, .. }) => assert_eq!(quoted, line.trim()),
        Err(e) => panic!("decode returned {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    // The host reads the channel lossily, line by line, as the VM runner does.
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        check::<Event>(line);
        check::<Request>(line);
    }
});
