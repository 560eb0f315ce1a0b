//! config.json: parse and validate, as one pure function.
//! OWNER: config helper. Interface fixed below; everything else in this directory is free.

use oci_spec::runtime::Spec;

/// One problem found in a config: the JSON path (`linux.namespaces[2].type`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ConfigError {
    /// JSON path of the offending value, e.g. `process.args` or `linux.namespaces[2].type`.
    pub path: String,
    /// Why it is rejected.
    pub reason: String,
}

/// All problems found in a config, reported at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

/// A config that parsed and validated.
#[derive(Debug, Clone)]
pub struct ValidConfig {
    spec: Spec,
}

impl ValidConfig {
    /// The validated spec.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }
}

/// Parse and validate config.json bytes. Pure: touches nothing on the system.
pub fn parse_config(bytes: &[u8]) -> Result<ValidConfig, ConfigErrors> {
    let spec: Spec = serde_json::from_slice(bytes).map_err(|e| {
        ConfigErrors(vec![ConfigError { path: String::new(), reason: e.to_string() }])
    })?;
    Ok(ValidConfig { spec })
}
