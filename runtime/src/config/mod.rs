//! config.json: parse and validate, as one pure function.
//!
//! [`parse_config`] works in three steps, so that a bad config is answered with every
//! problem at once, each with its JSON path (`linux.namespaces[2].type: unknown namespace
//! "pidd"`):
//!
//! 1. the bytes are parsed into a `serde_json::Value` (a syntax error is reported at the path
//!    `(json)` with its line and column);
//! 2. the tree is walked by the validators (`validate.rs`, `process.rs`, `linux.rs`,
//!    `resources.rs`, `seccomp.rs`), which check types, required members and the rules of
//!    runtime-spec 1.3 and runc, recording every error (and a few warnings) with its path;
//! 3. the tree is deserialised into `oci_spec::runtime::Spec` through
//!    `serde_path_to_error`, so a leftover type error also names its path.
//!
//! Choices where the spec and runc differ are documented where they are made. In short:
//! relative mount destinations are accepted (runc; deprecated by the spec) and reported as a
//! warning, `consoleSize` without `terminal` is ignored with a warning (the spec's MUST),
//! unknown capability names are errors (oci-spec's types cannot hold them), and
//! hostname/sysctl rules follow runc's (a joined namespace of the right type is enough).
//!
//! Nothing here touches the system, panics, or allocates beyond a small multiple of the
//! input size; serde_json bounds the nesting depth.

use std::fmt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Mount, Spec};
use serde_json::Value;

pub mod idmap;
mod linux;
mod locate;
pub mod mount_options;
pub mod names;
mod process;
mod report;
mod resources;
mod seccomp;
#[cfg(test)]
mod tests;
mod validate;

pub use mount_options::{parse_mount_options, MountOptions};

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

impl fmt::Display for ConfigErrors {
    /// One line per error, `path: reason`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A config that parsed and validated: the only input of planning
/// (`container::Plan`).
#[derive(Debug, Clone)]
pub struct ValidConfig {
    spec: Spec,
    warnings: Vec<ConfigError>,
}

impl ValidConfig {
    /// The validated spec.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Things accepted but worth telling the user (deprecated or ignored settings), in the
    /// same `path: reason` form as errors.
    pub fn warnings(&self) -> &[ConfigError] {
        &self.warnings
    }

    /// `linux.namespaces` in order: each type with the path to join, `None` for a new one.
    pub fn namespaces(&self) -> Vec<(LinuxNamespaceType, Option<&Path>)> {
        let list = self.spec.linux().as_ref().and_then(|l| l.namespaces().as_ref());
        list.map(|l| {
            l.iter()
                .map(|ns| (ns.typ(), ns.path().as_deref().filter(|p| !p.as_os_str().is_empty())))
                .collect()
        })
        .unwrap_or_default()
    }

    /// The container gets a new namespace of type `ty` (listed, without a path).
    fn has_new_namespace(&self, ty: LinuxNamespaceType) -> bool {
        self.namespaces().iter().any(|(t, path)| *t == ty && path.is_none())
    }

    /// The rootfs on the host: `root.path`, taken relative to `bundle` when it is relative.
    pub fn rootfs_path(&self, bundle: &Path) -> PathBuf {
        let root = self.spec.root().as_ref().map(|r| r.path().as_path()).unwrap_or(Path::new("rootfs"));
        bundle.join(root)
    }

    /// The text to write to the container's `/proc/<pid>/uid_map`, when it gets a new user
    /// namespace (`None` otherwise).
    pub fn uid_map_content(&self) -> Option<String> {
        self.id_map(|l| l.uid_mappings().as_deref())
    }

    /// The text to write to the container's `/proc/<pid>/gid_map`, when it gets a new user
    /// namespace (`None` otherwise).
    pub fn gid_map_content(&self) -> Option<String> {
        self.id_map(|l| l.gid_mappings().as_deref())
    }

    fn id_map(
        &self,
        pick: impl Fn(&oci_spec::runtime::Linux) -> Option<&[oci_spec::runtime::LinuxIdMapping]>,
    ) -> Option<String> {
        if !self.has_new_namespace(LinuxNamespaceType::User) {
            return None;
        }
        let mappings = self.spec.linux().as_ref().and_then(pick)?;
        Some(idmap::render_mappings(mappings))
    }

    /// The parsed options of `mounts[i]` (`None` past the end).
    pub fn mount_options(&self, i: usize) -> Option<MountOptions> {
        let m = self.spec.mounts().as_ref()?.get(i)?;
        Some(parse_mount_options(m.options().as_deref().unwrap_or_default()))
    }
}

/// Where `mount` goes inside the container: its destination, a relative one taken relative
/// to `/` (runc's behaviour, allowed but deprecated by runtime-spec 1.1+).
pub fn mount_destination(mount: &Mount) -> PathBuf {
    Path::new("/").join(mount.destination())
}

/// Parse and validate config.json bytes. Pure: touches nothing on the system.
pub fn parse_config(bytes: &[u8]) -> Result<ValidConfig, ConfigErrors> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        let reason = match locate::path_at(bytes, e.line(), e.column()) {
            Some(at) => format!("{e}, in {at}"),
            None => e.to_string(),
        };
        ConfigErrors(vec![ConfigError { path: validate::DOCUMENT.into(), reason }])
    })?;
    let mut report = report::Report::default();
    validate::validate(&value, &mut report);
    let spec = deserialize(value, &mut report);
    match spec {
        Some(spec) if report.errors.is_empty() => Ok(ValidConfig { spec, warnings: report.warnings }),
        _ => Err(ConfigErrors(report.errors)),
    }
}

/// Most type errors the typed deserialisation reports beyond those validation found.
const MAX_LEFTOVER_ERRORS: usize = 16;

/// Deserialises the tree into a [`Spec`]. serde stops at the first error, so each failing
/// value is reported, nulled out and the attempt repeated (a bounded number of times), to
/// report every leftover type error at once. Errors inside a path validation already
/// reported are not repeated.
fn deserialize(mut value: Value, report: &mut report::Report) -> Option<Spec> {
    for _ in 0..MAX_LEFTOVER_ERRORS {
        let e = match serde_path_to_error::deserialize::<_, Spec>(&value) {
            Ok(spec) => return Some(spec),
            Err(e) => e,
        };
        let path = match report::serde_path(e.path()) {
            p if p.is_empty() => validate::DOCUMENT.to_owned(),
            p => p,
        };
        // Validation usually found the same problem first, with a better reason.
        let known = report.errors.iter().any(|x| {
            x.path == validate::DOCUMENT || report::covers(&x.path, &path) || report::covers(&path, &x.path)
        });
        if !known {
            report.error(path, e.inner().to_string());
        }
        match value_at(&mut value, e.path()) {
            Some(v) if !v.is_null() => *v = Value::Null,
            _ => return None, // no progress possible
        }
    }
    None
}

/// The value at a path reported by `serde_path_to_error`.
fn value_at<'a>(mut value: &'a mut Value, path: &serde_path_to_error::Path) -> Option<&'a mut Value> {
    use serde_path_to_error::Segment;
    for segment in path {
        value = match (segment, value) {
            (Segment::Seq { index }, Value::Array(items)) => items.get_mut(*index)?,
            (Segment::Map { key }, Value::Object(map)) => map.get_mut(key)?,
            _ => return None,
        };
    }
    Some(value)
}
