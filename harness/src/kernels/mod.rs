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
            let text = std::fs::read_to_string(path).map_err(|source| CheckError::Config {
                kernel: kernel.clone(),
                config: path.clone(),
                source,
            })?;
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
            let mut idx = ModuleIndex::scan(dir)
                .map_err(|source| CheckError::Module { kernel: kernel.clone(), source })?;
            // Without modules.builtin, trust the config: `=y` options are built in.
            if let Some(cfg) = &cfg {
                for m in &needs.modules {
                    if module_builtin_by_config(cfg, m) {
                        idx.builtin.insert(m.clone());
                    }
                }
            }
            idx.resolve(&needs.modules)
                .map_err(|source| CheckError::Module { kernel: kernel.clone(), source })?
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

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    fn kernel_with(config: &str, modules: &[(&str, &str)]) -> (tempfile::TempDir, KernelFiles) {
        let t = tempfile::tempdir().unwrap();
        let cfg = t.path().join("config");
        std::fs::write(&cfg, config).unwrap();
        let mdir = t.path().join("lib/modules/1.0");
        std::fs::create_dir_all(&mdir).unwrap();
        for (name, builtin) in modules {
            if *builtin == "builtin" {
                std::fs::write(mdir.join("modules.builtin"), format!("kernel/x/{name}.ko\n")).unwrap();
            }
        }
        let files = KernelFiles {
            name: "test-kernel".into(),
            release: "1.0".into(),
            vmlinuz: t.path().join("vmlinuz"),
            config: Some(cfg),
            modules_dir: Some(mdir),
            packages: vec![],
        };
        (t, files)
    }

    fn needs(modules: &[&str], opts: &[&str]) -> SuiteNeeds {
        SuiteNeeds {
            modules: modules.iter().map(|s| s.to_string()).collect(),
            required_config: opts.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test_case("CONFIG_PID_NS=y\n", &["CONFIG_PID_NS"], &[], None ; "all there")]
    #[test_case("CONFIG_PID_NS=m\n", &["CONFIG_PID_NS"], &[], Some("CONFIG_PID_NS is not enabled") ; "option only a module")]
    #[test_case("", &["CONFIG_TMPFS"], &[], Some("CONFIG_TMPFS is not enabled") ; "option missing")]
    #[test_case("", &[], &["veth"], Some("module veth (needed by suite) is neither built in") ; "module missing")]
    #[test_case("CONFIG_VETH=y\n", &[], &["veth"], None ; "module built in by config")]
    fn checks(config: &str, opts: &[&str], modules: &[&str], err: Option<&str>) {
        let (_t, files) = kernel_with(config, &[]);
        match (check(&files, &needs(modules, opts)), err) {
            (Ok(k), None) => assert!(k.modules.is_empty()),
            (Err(e), Some(want)) => {
                let msg = e.to_string();
                assert!(msg.contains("test-kernel") && msg.contains(want), "{msg}");
            }
            (res, want) => panic!("got {:?}, want error {want:?}", res.map(|k| k.modules)),
        }
    }

    #[test]
    fn builtin_list_skips_modules() {
        let (_t, files) = kernel_with("", &[("overlay", "builtin")]);
        assert!(check(&files, &needs(&["overlay"], &[])).unwrap().modules.is_empty());
    }
}
