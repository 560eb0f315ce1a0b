//! OCI seccomp profile → BPF filter, installed as the last step before exec.
//! OWNER: seccomp helper. The interface below is what the core calls; fill it in.

use oci_spec::runtime::LinuxSeccomp;

/// Failures of translating or installing a profile.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// Placeholder.
    #[error("seccomp: {0}")]
    Other(String),
}

/// A compiled filter, ready to install.
#[derive(Debug)]
pub struct Filter {}

/// Translate the profile (in the child, before `Ready`, so errors reach `create`).
pub fn compile(profile: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    let _ = profile;
    Ok(Filter {})
}

/// Install the filter on this process (and its future children).
pub fn install(filter: &Filter) -> Result<(), SeccompError> {
    let _ = filter;
    Ok(())
}
