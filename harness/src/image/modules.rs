//! Kernel modules for the guest: which files, in which load order.
//!
//! Debian's packages ship no `modules.dep` (depmod runs at install time), so dependencies are
//! read from each module's `.modinfo` section (`depends=`, the list kbuild computed — the
//! same data depmod uses); a `modules.dep`, when present (a local kernel after
//! `make modules_install`), is used instead. Modules listed in `modules.builtin` are skipped.
//! Compressed modules (`.ko.xz`, `.ko.zst`) are decompressed on the host, so the agent always
//! loads a plain ELF with `finit_module(…, 0)` — this works on every kernel, also those
//! without `CONFIG_MODULE_DECOMPRESS`, at the price of a larger (but compressed) initramfs.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Errors finding, reading or ordering modules.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// Reading a file or directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// errno.
        source: std::io::Error,
    },
    /// A module is neither built in nor present as a file.
    #[error("module {module} (needed by {needed_by}) is neither built in nor in {dir}")]
    NotFound {
        /// The module.
        module: String,
        /// Who needs it (`suite` for a top-level module).
        needed_by: String,
        /// The modules directory.
        dir: PathBuf,
    },
    /// A module file is not a readable ELF object, or cannot be decompressed.
    #[error("module file {path}: {detail}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The dependencies form a cycle.
    #[error("module dependency cycle through {module}")]
    Cycle {
        /// A module in the cycle.
        module: String,
    },
}

/// Normalizes a module name (`nf-tables` and `nf_tables` are the same module).
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The module name of a file path (`…/veth.ko.xz` → `veth`).
pub fn name_of(path: &Path) -> Option<String> {
    let f = path.file_name()?.to_str()?;
    let stem = f.strip_suffix(".ko").or_else(|| f.split_once(".ko.").map(|(s, _)| s))?;
    Some(normalize(stem))
}

/// Orders `wanted` and their dependencies so each module comes after what it depends on.
/// Built-in modules are dropped (with their dependencies not followed). Pure: `deps` gives a
/// module's dependencies, `available` says whether a file exists.
pub fn resolve_order(
    wanted: &[String],
    builtin: &HashSet<String>,
    available: &dyn Fn(&str) -> bool,
    deps: &mut dyn FnMut(&str) -> Result<Vec<String>, ModuleError>,
    dir: &Path,
) -> Result<Vec<String>, ModuleError> {
    fn visit(
        m: &str,
        parent: &str,
        ctx: &mut (Vec<String>, HashSet<String>, HashSet<String>),
        builtin: &HashSet<String>,
        available: &dyn Fn(&str) -> bool,
        deps: &mut dyn FnMut(&str) -> Result<Vec<String>, ModuleError>,
        dir: &Path,
    ) -> Result<(), ModuleError> {
        let m = normalize(m);
        if builtin.contains(&m) || ctx.1.contains(&m) {
            return Ok(());
        }
        if !available(&m) {
            return Err(ModuleError::NotFound {
                module: m,
                needed_by: parent.into(),
                dir: dir.to_path_buf(),
            });
        }
        if !ctx.2.insert(m.clone()) {
            return Err(ModuleError::Cycle { module: m });
        }
        for d in deps(&m)? {
            visit(&d, &m, ctx, builtin, available, deps, dir)?;
        }
        ctx.2.remove(&m);
        ctx.1.insert(m.clone());
        ctx.0.push(m);
        Ok(())
    }
    let mut ctx = (Vec::new(), HashSet::new(), HashSet::new());
    for w in wanted {
        visit(w, "suite", &mut ctx, builtin, available, deps, dir)?;
    }
    Ok(ctx.0)
}

/// Parses `modules.dep` (`kernel/a.ko: kernel/b.ko kernel/c.ko`) into name → (path, deps).
pub fn parse_modules_dep(text: &str) -> HashMap<String, (String, Vec<String>)> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .filter_map(|(path, deps)| {
            let name = name_of(Path::new(path.trim()))?;
            let deps = deps.split_whitespace().filter_map(|d| name_of(Path::new(d))).collect();
            Some((name, (path.trim().to_string(), deps)))
        })
        .collect()
}

/// Parses `modules.builtin` (one path per line) into module names.
pub fn parse_builtin(text: &str) -> HashSet<String> {
    text.lines().filter_map(|l| name_of(Path::new(l.trim()))).collect()
}

/// Reads the `depends=` entry of a module ELF's `.modinfo` section.
pub fn modinfo_depends(elf: &[u8], path: &Path) -> Result<Vec<String>, ModuleError> {
    let bad = |detail: String| ModuleError::BadFile { path: path.to_path_buf(), detail };
    let obj = goblin::elf::Elf::parse(elf).map_err(|e| bad(e.to_string()))?;
    let sec = obj
        .section_headers
        .iter()
        .find(|s| obj.shdr_strtab.get_at(s.sh_name) == Some(".modinfo"))
        .ok_or_else(|| bad("no .modinfo section".into()))?;
    let start = sec.sh_offset as usize;
    let data =
        elf.get(start..start + sec.sh_size as usize).ok_or_else(|| bad(".modinfo out of bounds".into()))?;
    Ok(data
        .split(|b| *b == 0)
        .filter_map(|e| std::str::from_utf8(e).ok()?.strip_prefix("depends="))
        .flat_map(|d| d.split(',').filter(|s| !s.is_empty()).map(normalize).collect::<Vec<_>>())
        .collect())
}

/// Reads a module file, decompressing `.xz` / `.zst`.
pub fn read_module(path: &Path) -> Result<Vec<u8>, ModuleError> {
    let raw = std::fs::read(path).map_err(|source| ModuleError::Io { path: path.to_path_buf(), source })?;
    let bad = |detail: String| ModuleError::BadFile { path: path.to_path_buf(), detail };
    match path.extension().and_then(|e| e.to_str()) {
        Some("ko") => Ok(raw),
        Some("xz") => {
            let mut out = Vec::new();
            lzma_rs::xz_decompress(&mut raw.as_slice(), &mut out).map_err(|e| bad(format!("xz: {e}")))?;
            Ok(out)
        }
        Some("zst") => zstd::decode_all(raw.as_slice()).map_err(|e| bad(format!("zstd: {e}"))),
        other => Err(bad(format!("unsupported module compression {other:?}"))),
    }
}

/// The marker that ends an appended module signature.
const SIG_MARKER: &[u8] = b"~Module signature appended~\n";

/// Removes an appended module signature (pure). The kernel then skips the signature check —
/// RSA/SHA in an emulated CPU cost ~30 ms per module under TCG — and, as
/// `CONFIG_MODULE_SIG_FORCE` is off in Debian's kernels, loads the module with the `E` taint.
/// Returns the input unchanged when there is no (well-formed) signature.
pub fn strip_signature(ko: &[u8]) -> &[u8] {
    let Some(body) = ko.strip_suffix(SIG_MARKER) else { return ko };
    // struct module_signature: 12 bytes, sig_len (big-endian u32) last.
    let Some(info_at) = body.len().checked_sub(12) else { return ko };
    let len = &body[info_at + 8..info_at + 12];
    let sig_len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    match info_at.checked_sub(sig_len) {
        Some(end) => &ko[..end],
        None => ko,
    }
}

/// All module files under a modules directory, by name.
#[derive(Debug, Clone)]
pub struct ModuleIndex {
    /// The `lib/modules/<release>` directory.
    pub dir: PathBuf,
    /// name → file.
    pub files: HashMap<String, PathBuf>,
    /// Built-in module names.
    pub builtin: HashSet<String>,
    /// From modules.dep, when the directory has one.
    pub dep: Option<HashMap<String, (String, Vec<String>)>>,
}

impl ModuleIndex {
    /// Scans `dir` (recursively for `*.ko*`, plus modules.builtin and modules.dep).
    pub fn scan(dir: &Path) -> Result<Self, ModuleError> {
        let mut files = HashMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let rd = std::fs::read_dir(&d).map_err(|source| ModuleError::Io { path: d.clone(), source })?;
            for e in rd.flatten() {
                let p = e.path();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(p);
                } else if let Some(n) = name_of(&p) {
                    files.insert(n, p);
                }
            }
        }
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
        Ok(ModuleIndex {
            dir: dir.to_path_buf(),
            files,
            builtin: read("modules.builtin").map(|t| parse_builtin(&t)).unwrap_or_default(),
            dep: read("modules.dep").map(|t| parse_modules_dep(&t)),
        })
    }

    /// The load order for `wanted` (+ dependencies), as (name, file) pairs.
    pub fn resolve(&self, wanted: &[String]) -> Result<Vec<(String, PathBuf)>, ModuleError> {
        let available = |m: &str| self.files.contains_key(m);
        let mut deps = |m: &str| -> Result<Vec<String>, ModuleError> {
            if let Some((_, d)) = self.dep.as_ref().and_then(|dep| dep.get(m)) {
                return Ok(d.clone());
            }
            let path = &self.files[m];
            modinfo_depends(&read_module(path)?, path)
        };
        let order = resolve_order(wanted, &self.builtin, &available, &mut deps, &self.dir)?;
        Ok(order.into_iter().map(|m| (m.clone(), self.files[&m].clone())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    fn graph() -> HashMap<&'static str, Vec<&'static str>> {
        HashMap::from([
            ("bridge", vec!["stp", "llc"]),
            ("stp", vec!["llc"]),
            ("llc", vec![]),
            ("veth", vec![]),
            ("overlay", vec![]),
            ("a", vec!["b"]),
            ("b", vec!["a"]),
            ("needs-gone", vec!["gone"]),
        ])
    }

    #[test_case(&["veth", "bridge"], &[], Ok(vec!["veth", "llc", "stp", "bridge"]) ; "deps first")]
    #[test_case(&["bridge", "stp"], &[], Ok(vec!["llc", "stp", "bridge"]) ; "no duplicates")]
    #[test_case(&["bridge", "overlay"], &["bridge"], Ok(vec!["overlay"]) ; "builtin skipped")]
    #[test_case(&["virtio-pci"], &["virtio_pci"], Ok(vec![]) ; "dash normalized")]
    #[test_case(&["a"], &[], Err("cycle") ; "cycle")]
    #[test_case(&["needs-gone"], &[], Err("module gone (needed by needs_gone)") ; "missing dependency")]
    #[test_case(&["nope"], &[], Err("module nope (needed by suite)") ; "missing top level")]
    fn order(wanted: &[&str], builtin: &[&str], want: Result<Vec<&str>, &str>) {
        let g = graph();
        let norm: HashMap<String, Vec<String>> =
            g.iter().map(|(k, v)| (normalize(k), v.iter().map(|s| s.to_string()).collect())).collect();
        let builtin: HashSet<String> = builtin.iter().map(|s| s.to_string()).collect();
        let wanted: Vec<String> = wanted.iter().map(|s| s.to_string()).collect();
        let available = |m: &str| norm.contains_key(m);
        let mut deps = |m: &str| Ok(norm[m].clone());
        let got = resolve_order(&wanted, &builtin, &available, &mut deps, Path::new("/m"));
        match (got, want) {
            (Ok(g), Ok(w)) => assert_eq!(g, w),
            (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{e}"),
            (g, w) => panic!("got {g:?}, want {w:?}"),
        }
    }

    #[test]
    fn modules_dep_and_builtin() {
        let dep = parse_modules_dep("kernel/net/bridge/bridge.ko.xz: kernel/net/802/stp.ko.xz kernel/net/llc/llc.ko.xz\nkernel/drivers/net/veth.ko:\n");
        assert_eq!(dep["bridge"].1, vec!["stp", "llc"]);
        assert!(dep["veth"].1.is_empty());
        let b = parse_builtin("kernel/drivers/virtio/virtio_pci.ko\nkernel/fs/ext4/ext4.ko\n");
        assert!(b.contains("virtio_pci") && b.contains("ext4"));
    }

    #[test_case(b"ELF" as &[u8], b"ELF" ; "unsigned")]
    #[test_case(b"ELFsig\0\0\0\0\0\0\0\0\0\0\0\x03~Module signature appended~\n", b"ELF" ; "signed")]
    #[test_case(b"\0\0\0\0\0\0\0\0\0\0\0\x09~Module signature appended~\n", b"\0\0\0\0\0\0\0\0\0\0\0\x09~Module signature appended~\n" ; "bad length kept")]
    fn signatures(ko: &[u8], want: &[u8]) {
        assert_eq!(strip_signature(ko), want);
    }

    #[test_case("veth.ko", Some("veth") ; "plain")]
    #[test_case("nf-tables.ko.xz", Some("nf_tables") ; "xz dashed")]
    #[test_case("x.ko.zst", Some("x") ; "zst")]
    #[test_case("modules.order", None ; "not a module")]
    fn names(f: &str, want: Option<&str>) {
        assert_eq!(name_of(Path::new(f)).as_deref(), want);
    }
}
