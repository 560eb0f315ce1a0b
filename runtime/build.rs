//! Links `isorun` as a position-dependent executable, as Debian's runc is: a PIE of this
//! size carries about 18,000 relative relocations that the dynamic loader applies, and
//! copy-on-writes ~90 data pages for, on every command (~0.35 ms of each `run`, `create`,
//! `start`, `delete`; README "Where isorun's time goes above the floor"). Shared libraries,
//! heap, stack and mmap stay randomised.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg-bin=isorun=-no-pie");
}
