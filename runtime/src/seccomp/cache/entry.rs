//! The pure half of the cache: the key of a profile and the bytes of an entry.
//!
//! Entry layout (integers little-endian):
//!
//! ```text
//! 0        8 bytes   MAGIC "ISOBPF01"
//! 8       32 bytes   the key (an entry under another key's name is not used)
//! 40       8 bytes   SECCOMP_FILTER_FLAG_* bits
//! 48       4 bytes   n, the number of instructions
//! 52      8n bytes   the instructions (code u16, jt u8, jf u8, k u32)
//! 52+8n   32 bytes   SHA-256 of every byte before it
//! ```

use sha2::{Digest, Sha256};

use super::super::sock_filter;

/// First bytes of an entry (format version 1).
pub const MAGIC: &[u8; 8] = b"ISOBPF01";
const HEADER: usize = 8 + 32 + 8 + 4;
const CHECKSUM: usize = 32;
const INSN: usize = 8;

/// A cache key: SHA-256 over everything the compiled program depends on.
pub type Key = [u8; 32];

/// What a compiled program depends on besides the profile itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInputs<'a> {
    /// The profile's canonical bytes (its oci-spec value serialised as JSON, so key order and
    /// whitespace of config.json do not matter).
    pub profile: &'a [u8],
    /// The native architecture (`std::env::consts::ARCH`): always in the filter.
    pub arch: &'a str,
    /// The loaded libseccomp's version (major, minor, micro): it generates the program.
    pub libseccomp: (u32, u32, u32),
    /// The running kernel's release: libseccomp asks the kernel what it supports.
    pub kernel: &'a str,
    /// This isorun binary (version and file identity): its translation of the profile.
    pub runtime: &'a str,
}

/// The key of `inputs`: each field length-prefixed, so no two inputs share a byte stream.
pub fn derive_key(inputs: &KeyInputs<'_>) -> Key {
    let mut h = Sha256::new();
    h.update(b"isorun seccomp cache key v1\0");
    let (major, minor, micro) = inputs.libseccomp;
    let version = format!("{major}.{minor}.{micro}");
    for field in [
        inputs.profile,
        inputs.arch.as_bytes(),
        version.as_bytes(),
        inputs.kernel.as_bytes(),
        inputs.runtime.as_bytes(),
    ] {
        h.update((field.len() as u64).to_le_bytes());
        h.update(field);
    }
    h.finalize().into()
}

/// The file name of an entry: the key in hex, `.bpf`.
pub fn file_name(key: &Key) -> String {
    let mut s: String = key.iter().map(|b| format!("{b:02x}")).collect();
    s.push_str(".bpf");
    s
}

/// The bytes of an entry for `program` and `flags` under `key`.
pub fn encode(key: &Key, flags: u64, program: &[sock_filter]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + program.len() * INSN + CHECKSUM);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(key);
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&(program.len() as u32).to_le_bytes());
    for i in program {
        out.extend_from_slice(&i.code.to_le_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_le_bytes());
    }
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

/// Why an entry's bytes were not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Shorter than a header and a checksum.
    #[error("{len} bytes, shorter than an empty entry")]
    TooShort {
        /// Its length.
        len: usize,
    },
    /// Not an entry of this format.
    #[error("not an isorun seccomp cache entry (magic)")]
    Magic,
    /// The instruction count does not match the length.
    #[error("{count} instructions do not fit its {len} bytes")]
    Length {
        /// The count in the header.
        count: u32,
        /// The file's length.
        len: usize,
    },
    /// The checksum does not match the contents.
    #[error("checksum mismatch")]
    Checksum,
    /// A valid entry, but for another key.
    #[error("entry of another key")]
    OtherKey,
}

/// Decodes an entry, verifying its checksum and that it belongs to `key`.
pub fn decode(bytes: &[u8], key: &Key) -> Result<(u64, Vec<sock_filter>), EntryError> {
    let len = bytes.len();
    if len < HEADER + CHECKSUM {
        return Err(EntryError::TooShort { len });
    }
    if &bytes[..8] != MAGIC {
        return Err(EntryError::Magic);
    }
    let count = u32::from_le_bytes(bytes[48..52].try_into().expect("4 bytes"));
    if (count as usize).checked_mul(INSN).and_then(|n| n.checked_add(HEADER + CHECKSUM)) != Some(len) {
        return Err(EntryError::Length { count, len });
    }
    let (body, sum) = bytes.split_at(len - CHECKSUM);
    if Sha256::digest(body).as_slice() != sum {
        return Err(EntryError::Checksum);
    }
    if &body[8..40] != key {
        return Err(EntryError::OtherKey);
    }
    let flags = u64::from_le_bytes(body[40..48].try_into().expect("8 bytes"));
    let program = body[HEADER..]
        .chunks_exact(INSN)
        .map(|c| sock_filter {
            code: u16::from_le_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    Ok((flags, program))
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    fn inputs() -> KeyInputs<'static> {
        KeyInputs {
            profile: br#"{"defaultAction":"SCMP_ACT_ALLOW"}"#,
            arch: "x86_64",
            libseccomp: (2, 5, 4),
            kernel: "6.1.0-41-cloud-amd64",
            runtime: "0.1.0 2049:1234 5000000 1700000000000000000",
        }
    }

    fn prog() -> Vec<sock_filter> {
        vec![
            sock_filter { code: 0x20, jt: 0, jf: 0, k: 4 },
            sock_filter { code: 0x15, jt: 1, jf: 0, k: 0xc000_003e },
            sock_filter { code: 0x06, jt: 0, jf: 0, k: 0x7fff_0000 },
            sock_filter { code: 0x06, jt: 0, jf: 0, k: 0 },
        ]
    }

    #[test]
    fn the_same_inputs_give_the_same_key() {
        assert_eq!(derive_key(&inputs()), derive_key(&inputs()));
    }

    #[test_case(|i| i.profile = br#"{"defaultAction":"SCMP_ACT_KILL"}"# ; "profile")]
    #[test_case(|i| i.arch = "aarch64" ; "arch")]
    #[test_case(|i| i.libseccomp = (2, 5, 5) ; "libseccomp micro")]
    #[test_case(|i| i.libseccomp = (2, 6, 4) ; "libseccomp minor")]
    #[test_case(|i| i.kernel = "6.12.0-1-cloud-amd64" ; "kernel")]
    #[test_case(|i| i.runtime = "0.1.0 2049:1235 5000000 1700000000000000000" ; "runtime binary")]
    fn every_input_changes_the_key(change: fn(&mut KeyInputs<'static>)) {
        let mut other = inputs();
        change(&mut other);
        assert_ne!(derive_key(&inputs()), derive_key(&other));
    }

    #[test]
    fn fields_do_not_run_into_each_other() {
        let a = KeyInputs { arch: "x86_64", kernel: "6.1", ..inputs() };
        let b = KeyInputs { arch: "x86_646", kernel: ".1", ..inputs() };
        assert_ne!(derive_key(&a), derive_key(&b));
    }

    #[test]
    fn file_name_is_the_hex_key() {
        let name = file_name(&[0xab; 32]);
        assert_eq!(name, format!("{}.bpf", "ab".repeat(32)));
    }

    #[test]
    fn an_entry_decodes_to_what_was_encoded() {
        let key = derive_key(&inputs());
        let bytes = encode(&key, 0x5, &prog());
        assert_eq!(bytes.len(), 52 + 4 * 8 + 32);
        let (flags, program) = decode(&bytes, &key).unwrap();
        assert_eq!(flags, 0x5);
        let pairs: Vec<_> = program.iter().zip(prog()).collect();
        assert_eq!(pairs.len(), 4);
        for (got, want) in pairs {
            assert_eq!((got.code, got.jt, got.jf, got.k), (want.code, want.jt, want.jf, want.k));
        }
    }

    #[test]
    fn a_flipped_bit_anywhere_is_detected() {
        let key = derive_key(&inputs());
        let good = encode(&key, 0x1, &prog());
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            let err = decode(&bad, &key).expect_err(&format!("flip at byte {at} went unnoticed"));
            let expect = match at {
                0..=7 => EntryError::Magic,
                48..=51 => EntryError::Length {
                    count: u32::from_le_bytes(bad[48..52].try_into().unwrap()),
                    len: bad.len(),
                },
                _ => EntryError::Checksum,
            };
            assert_eq!(err, expect, "flip at byte {at}");
        }
    }

    #[test_case(0 ; "empty")]
    #[test_case(10 ; "inside the header")]
    #[test_case(52 + 8 ; "inside the program")]
    #[test_case(52 + 4 * 8 + 31 ; "one byte short")]
    fn a_truncated_entry_is_refused(keep: usize) {
        let key = derive_key(&inputs());
        let bytes = encode(&key, 0, &prog());
        let err = decode(&bytes[..keep], &key).unwrap_err();
        assert!(matches!(err, EntryError::TooShort { .. } | EntryError::Length { .. }), "{err:?}");
    }

    #[test]
    fn appended_bytes_are_refused() {
        let key = derive_key(&inputs());
        let mut bytes = encode(&key, 0, &prog());
        bytes.extend_from_slice(&[0; 8]);
        assert!(matches!(decode(&bytes, &key), Err(EntryError::Length { count: 4, .. })));
    }

    #[test]
    fn an_intact_entry_of_another_key_is_refused() {
        let key = derive_key(&inputs());
        let other = derive_key(&KeyInputs { arch: "aarch64", ..inputs() });
        assert_eq!(decode(&encode(&other, 0, &prog()), &key).unwrap_err(), EntryError::OtherKey);
    }

    #[test]
    fn a_huge_count_does_not_overflow() {
        let key = derive_key(&inputs());
        let mut bytes = encode(&key, 0, &prog());
        bytes[48..52].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode(&bytes, &key), Err(EntryError::Length { count: u32::MAX, .. })));
    }
}
