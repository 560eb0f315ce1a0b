//! Stage 1 of every flow that makes a container (`create`, `run`, `restore`): the bundle
//! read and validated. Nothing is made here; every error names the file it is about.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::ContainerError;
use crate::config::{parse_config, ValidConfig};

/// A loaded bundle: its directory, its validated `config.json` and its rootfs, all resolved.
#[derive(Debug, Clone)]
pub struct Bundle {
    dir: PathBuf,
    rootfs: PathBuf,
    config: ValidConfig,
    config_sha256: String,
}

impl Bundle {
    /// Resolve `path`, read and validate its `config.json` and resolve `root.path`, which
    /// must be a directory other than the host's root.
    pub fn load(path: &Path) -> Result<Bundle, ContainerError> {
        let dir = fs::canonicalize(path).map_err(bundle_err("bundle", path))?;
        let config_path = dir.join("config.json");
        let bytes = fs::read(&config_path).map_err(bundle_err("config", &config_path))?;
        let config = parse_config(&bytes)
            .map_err(|errors| ContainerError::Config { path: config_path.clone(), errors })?;
        let config_sha256 = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        let root = config.rootfs_path(&dir);
        let rootfs = fs::canonicalize(&root).map_err(bundle_err("root.path", &root))?;
        if !rootfs.is_dir() {
            return Err(ContainerError::Bundle {
                what: "root.path",
                path: rootfs,
                source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            });
        }
        if rootfs == Path::new("/") {
            // A rootfs that is (or links to) the host's root would have the container's
            // mounts and masks set up over the host's own tree.
            return Err(ContainerError::Bundle {
                what: "root.path",
                path: root,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "resolves to the host's root directory",
                ),
            });
        }
        Ok(Bundle { dir, rootfs, config, config_sha256 })
    }

    /// The bundle directory, canonical.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The rootfs directory on the host, canonical.
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// The validated config: the only input of [`super::Plan`].
    pub fn config(&self) -> &ValidConfig {
        &self.config
    }

    /// sha256 of `config.json` as read, hex (a checkpoint names the config it was made from).
    pub fn config_sha256(&self) -> &str {
        &self.config_sha256
    }
}

/// A bundle file that could not be used: [`ContainerError::Bundle`] naming what and where.
pub(super) fn bundle_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> ContainerError + use<'a> {
    move |source| ContainerError::Bundle { what, path: path.to_owned(), source }
}
