//! Builds the guest initramfs, cached by a hash of everything that goes in.
//!
//! Layout: `/init` = isolab-agent (static); `/bin/busybox` + applet links (the agent's tools);
//! the runtime under test at `/usr/bin/<name>` (+ `/isolab/runtime` link) with its shared
//! libraries and interpreter at their host paths; `/isolab/rootfs` = a busybox root for
//! containers; decompressed modules in `/lib/modules/<release>/` and their load order in
//! `/isolab/modules.list`.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::cpio::CpioWriter;
use super::elf::{self, ElfError};
use super::modules::{self, ModuleError};
use crate::cache::hex;

/// Bump when the layout changes, so cached images are rebuilt.
const LAYOUT_VERSION: &str = "isolab-initramfs-1";

/// Errors building an image; each names the input that failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Reading an input or writing the image failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// errno.
        source: std::io::Error,
    },
    /// The agent is dynamically linked (it runs before any library exists in the guest).
    #[error("agent {path} is not statically linked; build it with ci/vm-build (RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build --target x86_64-unknown-linux-gnu -p isolab-harness --bin isolab-agent --no-default-features)")]
    AgentNotStatic {
        /// The agent binary.
        path: PathBuf,
    },
    /// A shared-library problem with the runtime.
    #[error("runtime libraries: {0}")]
    Elf(#[from] ElfError),
    /// A module problem.
    #[error("modules: {0}")]
    Module(#[from] ModuleError),
    /// `busybox --list-full` failed.
    #[error("`{busybox} --list-full` failed: {detail}")]
    Busybox {
        /// The busybox binary.
        busybox: PathBuf,
        /// What happened.
        detail: String,
    },
}

/// How the cpio is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain cpio: no decompression in the guest (fastest under TCG).
    None,
    /// zstd level 3.
    Zstd,
}

/// Everything that goes into an image.
#[derive(Debug, Clone)]
pub struct ImageInputs {
    /// The static agent, installed as `/init` (unless `init_override`).
    pub agent: PathBuf,
    /// The runtime under test (none: an image without one, for kernel-only work).
    pub runtime: Option<PathBuf>,
    /// A static busybox.
    pub busybox: PathBuf,
    /// Kernel release (module directory name).
    pub release: String,
    /// Modules in load order.
    pub modules: Vec<(String, PathBuf)>,
    /// Use this file as `/init` instead of the agent (tests of broken images).
    pub init_override: Option<PathBuf>,
    /// Compression.
    pub compression: Compression,
    /// Strip module signatures (faster loading, `E` taint; see `modules::strip_signature`).
    pub strip_module_signatures: bool,
    /// Extra host programs (e.g. `/usr/sbin/criu`) packed at their host paths with their
    /// shared libraries.
    pub tools: Vec<PathBuf>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |source| ImageError::Io { path: path.to_path_buf(), source }
}

fn read(path: &Path) -> Result<Vec<u8>, ImageError> {
    std::fs::read(path).map_err(io_err(path))
}

/// Checks that the agent is static (no interpreter, no DT_NEEDED).
pub fn check_static(agent: &Path) -> Result<(), ImageError> {
    let info = elf::dyn_info(agent)?;
    if info.interpreter.is_some() || !info.needed.is_empty() {
        return Err(ImageError::AgentNotStatic { path: agent.to_path_buf() });
    }
    Ok(())
}

fn applets(busybox: &Path) -> Result<Vec<String>, ImageError> {
    let out = std::process::Command::new(busybox)
        .arg("--list-full")
        .output()
        .map_err(|e| ImageError::Busybox { busybox: busybox.to_path_buf(), detail: e.to_string() })?;
    if !out.status.success() {
        let detail = format!("{}", out.status);
        return Err(ImageError::Busybox { busybox: busybox.to_path_buf(), detail });
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).filter(|l| !l.is_empty()).collect())
}

/// Files the image consists of, hashed for the cache key: (guest path, host path).
fn file_list(inp: &ImageInputs) -> Result<Vec<(String, PathBuf)>, ImageError> {
    let init = inp.init_override.clone().unwrap_or_else(|| inp.agent.clone());
    let mut files = vec![
        ("init".to_string(), init),
        ("bin/busybox".to_string(), inp.busybox.clone()),
        ("isolab/rootfs/bin/busybox".to_string(), inp.busybox.clone()),
    ];
    if let Some(rt) = &inp.runtime {
        files.push((format!("usr/bin/{}", runtime_name(rt)), rt.clone()));
        if elf::dyn_info(rt)?.interpreter.is_some() {
            for lib in elf::closure(rt)? {
                files.push((lib.to_string_lossy().trim_start_matches('/').to_string(), lib));
            }
        }
    }
    for tool in &inp.tools {
        files.push((tool.to_string_lossy().trim_start_matches('/').to_string(), tool.clone()));
        if elf::dyn_info(tool)?.interpreter.is_some() {
            for lib in elf::closure(tool)? {
                files.push((lib.to_string_lossy().trim_start_matches('/').to_string(), lib));
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    files.retain(|(guest, _)| seen.insert(guest.clone()));
    for (name, path) in &inp.modules {
        files.push((format!("lib/modules/{}/{name}.ko", inp.release), path.clone()));
    }
    Ok(files)
}

fn runtime_name(rt: &Path) -> String {
    rt.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "runtime".into())
}

/// The cache key of an image (hash of layout version, options and every input's bytes).
pub fn image_key(inp: &ImageInputs, files: &[(String, PathBuf)], memo: &Path) -> Result<String, ImageError> {
    let mut h = Sha256::new();
    h.update(LAYOUT_VERSION);
    h.update(format!("{:?}{}{}", inp.compression, inp.release, inp.strip_module_signatures));
    for (guest, host) in files {
        h.update(guest.as_bytes());
        h.update([0]);
        h.update(crate::cache::sha256_file_memo(host, memo).map_err(io_err(host))?);
    }
    Ok(hex(&h.finalize()))
}

/// Builds (or finds in `dir`) the image; returns its path. `progress(done, total)` is called
/// while files are added.
pub fn build(inp: &ImageInputs, dir: &Path, progress: &dyn Fn(usize, usize)) -> Result<PathBuf, ImageError> {
    if inp.init_override.is_none() {
        check_static(&inp.agent)?;
    }
    let files = file_list(inp)?;
    let key = image_key(inp, &files, &dir.join("hashes"))?;
    let ext = match inp.compression {
        Compression::None => "cpio",
        Compression::Zstd => "cpio.zst",
    };
    let out = dir.join(format!("{}.{ext}", &key[..32]));
    if out.is_file() {
        return Ok(out);
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let partial = dir.join(format!("{}.{ext}.partial.{}", &key[..32], std::process::id()));
    let f = std::fs::File::create(&partial).map_err(io_err(&partial))?;
    let w: Box<dyn Write> = match inp.compression {
        Compression::None => Box::new(std::io::BufWriter::new(f)),
        Compression::Zstd => Box::new(zstd::Encoder::new(f, 3).map_err(io_err(&partial))?.auto_finish()),
    };
    let mut cpio = CpioWriter::new(w);
    write_skeleton(&mut cpio, inp).map_err(io_err(&partial))?;
    let total = files.len();
    for (i, (guest, host)) in files.iter().enumerate() {
        progress(i, total);
        let data = if guest.starts_with("lib/modules/") {
            let ko = modules::read_module(host)?;
            if inp.strip_module_signatures {
                modules::strip_signature(&ko).to_vec()
            } else {
                ko
            }
        } else {
            read(host)?
        };
        cpio.file(guest, 0o755, &data).map_err(io_err(&partial))?;
    }
    let applets = applets(&inp.busybox)?;
    for a in applets.iter().filter(|a| a.as_str() != "bin/busybox") {
        // Relative to / of whichever root it ends up in: absolute target works in both.
        cpio.symlink(a, "/bin/busybox").map_err(io_err(&partial))?;
        cpio.symlink(&format!("isolab/rootfs/{a}"), "/bin/busybox").map_err(io_err(&partial))?;
    }
    if let Some(rt) = &inp.runtime {
        cpio.symlink("isolab/runtime", &format!("/usr/bin/{}", runtime_name(rt)))
            .map_err(io_err(&partial))?;
    }
    let list: String =
        inp.modules.iter().map(|(n, _)| format!("{n} /lib/modules/{}/{n}.ko\n", inp.release)).collect();
    cpio.file("isolab/modules.list", 0o644, list.as_bytes()).map_err(io_err(&partial))?;
    let w = cpio.finish().map_err(io_err(&partial))?;
    drop(w);
    progress(total, total);
    std::fs::rename(&partial, &out).map_err(io_err(&out))?;
    prune(dir, KEEP_IMAGES);
    Ok(out)
}

/// Images kept in the cache; older ones (by mtime) are removed after a build.
const KEEP_IMAGES: usize = 24;

fn prune(dir: &Path, keep: usize) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut images: Vec<(std::time::SystemTime, PathBuf)> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "cpio" || e == "zst"))
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    images.sort();
    let excess = images.len().saturating_sub(keep);
    for (_, p) in images.into_iter().take(excess) {
        let _ = std::fs::remove_file(p);
    }
}

fn write_skeleton<W: Write>(c: &mut CpioWriter<W>, _inp: &ImageInputs) -> std::io::Result<()> {
    for d in
        ["dev", "proc", "sys", "run", "tmp", "root", "etc", "usr/bin", "usr/sbin", "sbin", "bin", "isolab"]
    {
        c.dir(d, if d == "tmp" { 0o1777 } else { 0o755 })?;
    }
    c.char_dev("dev/console", 0o600, 5, 1)?;
    c.char_dev("dev/null", 0o666, 1, 3)?;
    c.file(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    c.file("etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n")?;
    c.file("etc/hostname", 0o644, b"isolab\n")?;
    for d in ["dev", "proc", "sys", "tmp", "etc", "root", "run"] {
        c.dir(&format!("isolab/rootfs/{d}"), 0o755)?;
    }
    c.file(
        "isolab/rootfs/etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    c.file("isolab/rootfs/etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(dir: &Path, init: Option<PathBuf>) -> ImageInputs {
        ImageInputs {
            agent: PathBuf::from("/bin/busybox"),    // any static binary will do
            runtime: Some(PathBuf::from("/bin/ls")), // dynamic: libraries get packed
            busybox: PathBuf::from("/bin/busybox"),
            release: "1.0".into(),
            modules: vec![],
            init_override: init.or_else(|| Some(dir.join("init"))),
            compression: Compression::None,
            strip_module_signatures: true,
            tools: vec![PathBuf::from("/usr/bin/getconf")],
        }
    }

    #[test]
    fn cached_by_content_and_rebuilt_on_change() {
        assert!(
            Path::new("/bin/busybox").is_file(),
            "busybox-static is required (apt-get install busybox-static)"
        );
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("init"), b"#!/bin/sh\n").unwrap();
        let out = t.path().join("images");
        let a = build(&inputs(t.path(), None), &out, &|_, _| {}).unwrap();
        let mtime = std::fs::metadata(&a).unwrap().modified().unwrap();
        let b = build(&inputs(t.path(), None), &out, &|_, _| {}).unwrap();
        assert_eq!(a, b);
        assert_eq!(std::fs::metadata(&b).unwrap().modified().unwrap(), mtime, "not rebuilt");
        std::fs::write(t.path().join("init"), b"#!/bin/sh\necho changed\n").unwrap();
        let c = build(&inputs(t.path(), None), &out, &|_, _| {}).unwrap();
        assert_ne!(a, c, "a changed input makes a new image");

        let entries = super::super::cpio::read_archive(&std::fs::read(&c).unwrap()).unwrap();
        let has = |n: &str| entries.iter().any(|e| e.name == n);
        assert!(has("init") && has("bin/busybox") && has("bin/sh") && has("isolab/rootfs/bin/sh"));
        assert!(has("usr/bin/ls") && has("isolab/runtime") && has("dev/console"));
        assert!(has("usr/bin/getconf"), "extra tools packed at their host path");
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        let unique: std::collections::HashSet<&str> = names.iter().copied().collect();
        assert_eq!(names.len(), unique.len(), "a library shared by runtime and tool is packed once");
        assert!(entries.iter().any(|e| e.name.ends_with("libc.so.6")), "runtime libraries packed");
        assert!(entries.iter().any(|e| e.name.contains("ld-linux-x86-64")), "interpreter packed");
    }

    #[test]
    fn a_dynamic_agent_is_refused() {
        let err = check_static(Path::new("/bin/ls")).unwrap_err();
        assert!(matches!(err, ImageError::AgentNotStatic { .. }), "{err}");
    }
}
