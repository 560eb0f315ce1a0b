//! `kernels.toml` text → [`Matrix::parse`] (TOML + validation). Properties: never panics; an
//! accepted matrix has unique, well-formed names, each kernel downloadable (packages with a
//! 64-hex sha256 and a suite) or local (a bzImage, no packages); `select` of every name
//! finds exactly those kernels and `select(&[])` only default ones.
#![no_main]

use std::path::Path;

use isolab_harness::kernels::spec::Matrix;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(m) = Matrix::parse(text, Path::new("kernels.toml")) else { return };
    let mut names = std::collections::HashSet::new();
    for k in &m.kernels {
        assert!(!k.name.is_empty() && names.insert(k.name.as_str()), "{:?}", k.name);
        assert!(k.name.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)));
        if k.is_local() {
            assert!(k.packages.is_empty());
        } else {
            assert!(!k.packages.is_empty() && k.suite.as_deref().is_some_and(|s| !s.is_empty()));
        }
        for p in &k.packages {
            assert_eq!(p.sha256.len(), 64);
            assert!(p.sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        }
    }
    let all: Vec<String> = m.kernels.iter().map(|k| k.name.clone()).collect();
    let picked = m.select(&all).expect("every listed name selects");
    assert_eq!(picked.len(), all.len());
    assert!(m.select(&[]).expect("the default set").iter().all(|k| k.default));
    let suites = m.suites();
    let unique: std::collections::HashSet<&String> = suites.iter().collect();
    assert_eq!(unique.len(), suites.len());
});
