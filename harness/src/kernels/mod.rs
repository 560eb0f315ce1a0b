//! The kernel matrix: `vm-images/kernels.toml`, fetching through private apt, config features.

pub mod apt;
pub mod features;
pub mod fetch;
pub mod spec;

use std::path::PathBuf;

pub use features::{Features, KernelConfig};
pub use fetch::{FetchError, KernelFiles};
pub use spec::{KernelSpec, Matrix, SpecError, SuiteNeeds};

use crate::image::modules::{ModuleError, ModuleIndex};

/// A kernel that does not meet the suite's needs.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A required config option is not `y`.
    #[error("kernel {kernel}: {option} is not enabled in {config}")]
    MissingOption {
        /// Kernel name.
        kernel: String,
        /// The option.
        option: String,
        /// The config file.
        config: PathBuf,
    },
    /// The config could not be read.
    #[error("kernel {kernel}: read {config}: {source}")]
    Config {
        /// Kernel name.
        kernel: String,
        /// The config file.
        config: PathBuf,
        /// errno.
        source: std::io::Error,
    },
    /// A needed module is missing or broken.
    #[error("kernel {kernel}: {source}")]
    Module {
        /// Kernel name.
        kernel: String,
        /// The module problem.
        source: ModuleError,
    },
}

/// What a checked kernel offers: its features and the modules to load, in order.
#[derive(Debug, Clone)]
pub struct CheckedKernel {
    /// Where the files are.
    pub files: KernelFiles,
    /// Features from its config (empty when there is no config).
    pub features: Features,
    /// Modules to load in the guest, in order (name, file).
    pub modules: Vec<(String, PathBuf)>,
}

/// Reads the kernel's config and modules and checks them against the suite's needs.
pub fn check(files: &KernelFiles, needs: &SuiteNeeds) -> Result<CheckedKernel, CheckError> {
    let kernel = files.name.clone();
    let (cfg, features) = match &files.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|source| CheckError::Config { kernel: kernel.clone(), config: path.clone(), source })?;
            let cfg = KernelConfig::parse(&text);
            let f = Features::from_config(&cfg, &text);
            if let Some(opt) = needs.required_config.iter().find(|o| !cfg.is_builtin(o)) {
                return Err(CheckError::MissingOption { kernel, option: opt.clone(), config: path.clone() });
            }
            (Some(cfg), f)
        }
        None => (None, Features::default()),
    };
    let modules = match &files.modules_dir {
        Some(dir) => {
            let mut idx = ModuleIndex::scan(dir).map_err(|source| CheckError::Module { kernel: kernel.clone(), source })?;
            // Without modules.builtin, trust the config: `=y` options are built in.
            if let Some(cfg) = &cfg {
                for m in &needs.modules {
                    if module_builtin_by_config(cfg, m) {
                        idx.builtin.insert(m.clone());
                    }
                }
            }
            idx.resolve(&needs.modules).map_err(|source| CheckError::Module { kernel: kernel.clone(), source })?
        }
        None => vec![],
    };
    Ok(CheckedKernel { files: files.clone(), features, modules })
}

fn module_builtin_by_config(cfg: &KernelConfig, module: &str) -> bool {
    let opt = match module {
        "veth" => "CONFIG_VETH",
        "bridge" => "CONFIG_BRIDGE",
        "overlay" => "CONFIG_OVERLAY_FS",
        "virtio_pci" => "CONFIG_VIRTIO_PCI",
        "virtio_console" => "CONFIG_VIRTIO_CONSOLE",
        "virtio_blk" => "CONFIG_VIRTIO_BLK",
        _ => return false,
    };
    cfg.is_builtin(opt)
}
