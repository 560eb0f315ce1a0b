//! Fetching a kernel: download its pinned .debs, verify them, extract image, config, modules.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::apt::{AptError, PrivateApt};
use super::spec::{KernelSpec, PackagePin};
use crate::cache::sha256_file;

/// Errors fetching or locating a kernel; every variant names the kernel.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// apt could not download a pinned package.
    #[error("kernel {kernel}: package {package}={version} cannot be downloaded (gone from the archive? refresh the pin): {source}")]
    PackageMissing {
        /// Kernel name.
        kernel: String,
        /// Package name.
        package: String,
        /// Pinned version.
        version: String,
        /// apt's failure.
        source: AptError,
    },
    /// The downloaded .deb does not have the pinned hash.
    #[error("kernel {kernel}: {path}: sha256 {actual}, kernels.toml pins {expected}")]
    HashMismatch {
        /// Kernel name.
        kernel: String,
        /// The .deb.
        path: PathBuf,
        /// Pinned hash.
        expected: String,
        /// Hash of the file.
        actual: String,
    },
    /// A file system operation failed.
    #[error("kernel {kernel}: {path}: {source}")]
    Io {
        /// Kernel name.
        kernel: String,
        /// The path.
        path: PathBuf,
        /// errno.
        source: std::io::Error,
    },
    /// `dpkg-deb -x` failed.
    #[error("kernel {kernel}: `dpkg-deb -x {deb}` failed: {detail}")]
    Extract {
        /// Kernel name.
        kernel: String,
        /// The .deb.
        deb: PathBuf,
        /// Status and stderr.
        detail: String,
    },
    /// An expected file is not in the packages / local paths.
    #[error("kernel {kernel}: no {what} found (looked in {looked})")]
    Missing {
        /// Kernel name.
        kernel: String,
        /// What was looked for.
        what: String,
        /// Where.
        looked: String,
    },
    /// A kernel is not in the cache yet.
    #[error("kernel {kernel} is not fetched; run `isolab kernels fetch {kernel}`")]
    NotFetched {
        /// Kernel name.
        kernel: String,
    },
}

/// A kernel ready to boot: where its files are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelFiles {
    /// Short name from kernels.toml.
    pub name: String,
    /// `uname -r`.
    pub release: String,
    /// The bzImage.
    pub vmlinuz: PathBuf,
    /// The kernel config, when known.
    pub config: Option<PathBuf>,
    /// `lib/modules/<release>`, when the kernel has modules.
    pub modules_dir: Option<PathBuf>,
    /// The pins this was extracted from (to notice a changed kernels.toml).
    pub packages: Vec<(String, String, String)>,
}

fn pins(spec: &KernelSpec) -> Vec<(String, String, String)> {
    spec.packages.iter().map(|p| (p.name.clone(), p.version.clone(), p.sha256.clone())).collect()
}

/// The cache directory of one kernel.
pub fn kernel_dir(cache: &Path, name: &str) -> PathBuf {
    cache.join("kernels").join(name)
}

/// The cached kernel if it is there and matches the spec's pins; local kernels resolve directly.
pub fn cached(spec: &KernelSpec, cache: &Path) -> Result<KernelFiles, FetchError> {
    if spec.is_local() {
        return resolve_local(spec);
    }
    let manifest = kernel_dir(cache, &spec.name).join("manifest.json");
    let files: Option<KernelFiles> =
        std::fs::read(&manifest).ok().and_then(|b| serde_json::from_slice(&b).ok());
    match files {
        Some(f) if f.packages == pins(spec) && f.vmlinuz.exists() => Ok(f),
        _ => Err(FetchError::NotFetched { kernel: spec.name.clone() }),
    }
}

fn resolve_local(spec: &KernelSpec) -> Result<KernelFiles, FetchError> {
    let img = spec.bzimage.clone().unwrap_or_default();
    if !img.is_file() {
        return Err(FetchError::Missing {
            kernel: spec.name.clone(),
            what: "bzImage".into(),
            looked: img.display().to_string(),
        });
    }
    let release = spec
        .release
        .clone()
        .or_else(|| {
            spec.modules_dir.as_ref().and_then(|d| d.file_name()).map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    Ok(KernelFiles {
        name: spec.name.clone(),
        release,
        vmlinuz: img,
        config: spec.config.clone(),
        modules_dir: spec.modules_dir.clone(),
        packages: vec![],
    })
}

/// What a fetch reports while it works (for a progress bar).
#[derive(Debug, Clone, Copy)]
pub enum FetchProgress<'a> {
    /// A new step begins (a short message).
    Step(&'a str),
    /// Bytes of a package downloaded so far, of its archive size (0 when unknown).
    Download {
        /// Package name.
        package: &'a str,
        /// Bytes on disk.
        done: u64,
        /// Expected size.
        total: u64,
    },
}

/// Downloads (unless already present with the right hash), verifies and extracts a kernel.
pub fn fetch(
    spec: &KernelSpec,
    apt: &PrivateApt,
    cache: &Path,
    progress: &(dyn Fn(FetchProgress<'_>) + Sync),
) -> Result<KernelFiles, FetchError> {
    if let Ok(f) = cached(spec, cache) {
        return Ok(f);
    }
    let kernel = spec.name.clone();
    let lock_path = cache.join("fetch.lock");
    let _lock = crate::cache::CacheLock::acquire(&lock_path).map_err(|source| FetchError::Io {
        kernel: kernel.clone(),
        path: lock_path,
        source,
    })?;
    // Someone else may have fetched it while we waited.
    if let Ok(f) = cached(spec, cache) {
        return Ok(f);
    }
    let io = |path: &Path| {
        let (kernel, path) = (kernel.clone(), path.to_path_buf());
        move |source| FetchError::Io { kernel, path, source }
    };
    let debs_dir = cache.join("debs");
    std::fs::create_dir_all(&debs_dir).map_err(io(&debs_dir))?;
    let mut debs = Vec::new();
    if spec.packages.iter().any(|p| find_deb(&debs_dir, p).is_none()) {
        progress(FetchProgress::Step(&format!("{kernel}: apt-get update (private lists)")));
        apt.update(false).map_err(|source| FetchError::PackageMissing {
            kernel: kernel.clone(),
            package: spec.packages[0].name.clone(),
            version: spec.packages[0].version.clone(),
            source,
        })?;
    }
    let wanted: Vec<(&str, &str)> =
        spec.packages.iter().map(|p| (p.name.as_str(), p.version.as_str())).collect();
    let sizes = apt.package_sizes(&wanted);
    for (pin, size) in spec.packages.iter().zip(sizes) {
        progress(FetchProgress::Step(&format!("{kernel}: {}", pin.name)));
        debs.push(download_verified(&kernel, pin, apt, &debs_dir, size, progress)?);
    }
    progress(FetchProgress::Step(&format!("{kernel}: extracting")));
    let dir = kernel_dir(cache, &kernel);
    let tree = dir.join("tree");
    let tmp = dir.join("tree.partial");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    for deb in &debs {
        let out = Command::new("dpkg-deb").arg("-x").arg(deb).arg(&tmp).output().map_err(io(deb))?;
        if !out.status.success() {
            let detail = format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
            return Err(FetchError::Extract { kernel, deb: deb.clone(), detail });
        }
    }
    let _ = std::fs::remove_dir_all(&tree);
    std::fs::rename(&tmp, &tree).map_err(io(&tree))?;
    let mut files = locate(&kernel, &tree, spec.release.as_deref())?;
    files.packages = pins(spec);
    let manifest = dir.join("manifest.json");
    let json = serde_json::to_vec_pretty(&files).unwrap_or_default();
    std::fs::write(&manifest, json).map_err(io(&manifest))?;
    Ok(files)
}

fn find_deb(dir: &Path, pin: &PackagePin) -> Option<PathBuf> {
    let version = pin.version.replace(':', "%3a");
    let prefix = format!("{}_{}_", pin.name, version);
    std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| {
        p.file_name().is_some_and(|n| {
            let n = n.to_string_lossy();
            n.starts_with(&prefix) && n.ends_with(".deb")
        })
    })
}

/// Runs `download` while a poller reports the size of the growing .deb every 200 ms.
fn with_byte_progress<T>(
    pin: &PackagePin,
    total: u64,
    dir: &Path,
    progress: &(dyn Fn(FetchProgress<'_>) + Sync),
    download: impl FnOnce() -> T,
) -> T {
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let size = find_deb(dir, pin).and_then(|p| std::fs::metadata(p).ok()).map_or(0, |m| m.len());
                progress(FetchProgress::Download { package: &pin.name, done: size, total });
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        });
        let r = download();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        r
    })
}

fn download_verified(
    kernel: &str,
    pin: &PackagePin,
    apt: &PrivateApt,
    dir: &Path,
    total: u64,
    progress: &(dyn Fn(FetchProgress<'_>) + Sync),
) -> Result<PathBuf, FetchError> {
    let hash_of = |p: &Path| {
        sha256_file(p).map_err(|source| FetchError::Io {
            kernel: kernel.into(),
            path: p.to_path_buf(),
            source,
        })
    };
    if let Some(p) = find_deb(dir, pin) {
        if hash_of(&p)? == pin.sha256 {
            return Ok(p);
        }
        let _ = std::fs::remove_file(&p);
    }
    let missing = |source| FetchError::PackageMissing {
        kernel: kernel.into(),
        package: pin.name.clone(),
        version: pin.version.clone(),
        source,
    };
    apt.update(false).map_err(missing)?;
    let download = || apt.download(&pin.name, &pin.version, dir);
    if with_byte_progress(pin, total, dir, progress, download).is_err() {
        // The lists may be stale: refresh once and retry.
        apt.update(true).map_err(missing)?;
        with_byte_progress(pin, total, dir, progress, download).map_err(missing)?;
    }
    progress(FetchProgress::Download { package: &pin.name, done: total, total });
    let p = find_deb(dir, pin).ok_or_else(|| FetchError::Missing {
        kernel: kernel.into(),
        what: format!("downloaded {}", pin.name),
        looked: dir.display().to_string(),
    })?;
    let actual = hash_of(&p)?;
    if actual != pin.sha256 {
        let _ = std::fs::remove_file(&p);
        return Err(FetchError::HashMismatch {
            kernel: kernel.into(),
            path: p,
            expected: pin.sha256.clone(),
            actual,
        });
    }
    Ok(p)
}

/// Finds image, config and modules in an extracted package tree. Handles `/boot/vmlinuz-*`
/// (≤6.12) and `usr/lib/modules/<rel>/vmlinuz[.unsigned]` + `config` (forky's split packages).
pub fn locate(kernel: &str, tree: &Path, release: Option<&str>) -> Result<KernelFiles, FetchError> {
    let mut mod_dirs: Vec<PathBuf> = ["lib/modules", "usr/lib/modules"]
        .iter()
        .filter_map(|d| std::fs::read_dir(tree.join(d)).ok())
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    mod_dirs.sort();
    let release = match release {
        Some(r) => r.to_string(),
        None => mod_dirs
            .first()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| FetchError::Missing {
                kernel: kernel.into(),
                what: "lib/modules/<release>".into(),
                looked: tree.display().to_string(),
            })?,
    };
    let modules_dir =
        ["lib/modules", "usr/lib/modules"].iter().map(|d| tree.join(d).join(&release)).find(|p| p.is_dir());
    let mut candidates = vec![tree.join(format!("boot/vmlinuz-{release}"))];
    let mut configs = vec![tree.join(format!("boot/config-{release}"))];
    if let Some(m) = &modules_dir {
        candidates.extend([m.join("vmlinuz"), m.join("vmlinuz.unsigned")]);
        configs.push(m.join("config"));
    }
    let first = |c: &[PathBuf], what: &str| {
        c.iter().find(|p| p.is_file()).cloned().ok_or_else(|| FetchError::Missing {
            kernel: kernel.into(),
            what: what.into(),
            looked: c.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        })
    };
    Ok(KernelFiles {
        name: kernel.into(),
        vmlinuz: first(&candidates, "kernel image")?,
        config: Some(first(&configs, "kernel config")?),
        modules_dir,
        release,
        packages: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case(&["boot/vmlinuz-6.1.0-1", "boot/config-6.1.0-1", "lib/modules/6.1.0-1/modules.order"], "boot/vmlinuz-6.1.0-1", "boot/config-6.1.0-1" ; "bookworm layout")]
    #[test_case(&["usr/lib/modules/7.2-c/vmlinuz.unsigned", "usr/lib/modules/7.2-c/config"], "usr/lib/modules/7.2-c/vmlinuz.unsigned", "usr/lib/modules/7.2-c/config" ; "forky layout")]
    fn locates(files: &[&str], image: &str, config: &str) {
        let t = tempfile::tempdir().unwrap();
        for f in files {
            let p = t.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
        let k = locate("k", t.path(), None).unwrap();
        assert_eq!(k.vmlinuz, t.path().join(image));
        assert_eq!(k.config, Some(t.path().join(config)));
        assert!(k.modules_dir.is_some());
    }

    #[test]
    fn missing_image_names_the_kernel() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("lib/modules/5.10")).unwrap();
        let err = locate("debian-5.10", t.path(), None).unwrap_err().to_string();
        assert!(err.contains("debian-5.10") && err.contains("kernel image"), "{err}");
    }
}
