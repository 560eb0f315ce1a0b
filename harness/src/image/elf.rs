//! Shared-library closure of a dynamic executable, resolved the way ld.so does it:
//! `DT_RPATH` (when there is no `DT_RUNPATH`), `DT_RUNPATH`, the `ld.so.conf` directories,
//! then the default directories; `$ORIGIN` expanded; recursively; plus the `PT_INTERP`
//! interpreter. (`LD_LIBRARY_PATH` is deliberately ignored: the guest does not have it.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Errors reading an ELF file or resolving its libraries.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// errno.
        source: std::io::Error,
    },
    /// Not a parseable ELF.
    #[error("{path}: not an ELF file: {detail}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Parser message.
        detail: String,
    },
    /// A needed library was not found in any search directory.
    #[error("{library} (needed by {needed_by}) not found in {searched}")]
    NotFound {
        /// The DT_NEEDED name.
        library: String,
        /// The object needing it.
        needed_by: PathBuf,
        /// Directories searched.
        searched: String,
    },
}

/// What one ELF object says about its dynamic linking.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DynInfo {
    /// `PT_INTERP`, for executables.
    pub interpreter: Option<String>,
    /// `DT_NEEDED` entries.
    pub needed: Vec<String>,
    /// `DT_RPATH` entries.
    pub rpath: Vec<String>,
    /// `DT_RUNPATH` entries.
    pub runpath: Vec<String>,
    /// 64-bit object.
    pub is_64: bool,
}

/// Reads the dynamic-linking information of an ELF file.
pub fn dyn_info(path: &Path) -> Result<DynInfo, ElfError> {
    let bytes = std::fs::read(path).map_err(|source| ElfError::Io { path: path.to_path_buf(), source })?;
    let elf = goblin::elf::Elf::parse(&bytes)
        .map_err(|e| ElfError::Parse { path: path.to_path_buf(), detail: e.to_string() })?;
    let split = |v: &[&str]| {
        v.iter().flat_map(|s| s.split(':')).filter(|s| !s.is_empty()).map(str::to_string).collect()
    };
    Ok(DynInfo {
        interpreter: elf.interpreter.map(str::to_string),
        needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
        rpath: split(&elf.rpaths),
        runpath: split(&elf.runpaths),
        is_64: elf.is_64,
    })
}

/// The default library directories of an x86_64 Debian system.
pub const DEFAULT_DIRS: &[&str] =
    &["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"];

/// Directories from `ld.so.conf` (with its `include` globs of the form `dir/*.conf`).
pub fn ld_so_conf_dirs(conf: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(conf) else { return vec![] };
    let mut out = Vec::new();
    for line in text.lines().map(|l| l.split('#').next().unwrap_or("").trim()).filter(|l| !l.is_empty()) {
        if let Some(pattern) = line.strip_prefix("include").map(str::trim) {
            let p = Path::new(pattern);
            let (dir, suffix) = match (p.parent(), p.file_name().and_then(|f| f.to_str())) {
                (Some(d), Some(f)) => (d.to_path_buf(), f.trim_start_matches('*').to_string()),
                _ => continue,
            };
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map(|rd| rd.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            files.sort();
            for f in files.iter().filter(|f| f.to_string_lossy().ends_with(&suffix)) {
                out.extend(ld_so_conf_dirs(f));
            }
        } else {
            out.push(line.to_string());
        }
    }
    out
}

/// The search directories for one object, in ld.so order (pure).
pub fn search_dirs(info: &DynInfo, origin: &Path, conf_dirs: &[String]) -> Vec<String> {
    let expand = |d: &String| {
        d.replace("$ORIGIN", &origin.to_string_lossy()).replace("${ORIGIN}", &origin.to_string_lossy())
    };
    let mut dirs: Vec<String> = Vec::new();
    if info.runpath.is_empty() {
        dirs.extend(info.rpath.iter().map(expand));
    }
    dirs.extend(info.runpath.iter().map(expand));
    dirs.extend(conf_dirs.iter().cloned());
    dirs.extend(DEFAULT_DIRS.iter().map(|s| s.to_string()));
    dirs
}

/// Everything `exe` needs at run time: the interpreter and all libraries (transitively), as
/// absolute paths on this host (the guest gets them at the same paths).
pub fn closure(exe: &Path) -> Result<BTreeSet<PathBuf>, ElfError> {
    let conf = ld_so_conf_dirs(Path::new("/etc/ld.so.conf"));
    let mut out = BTreeSet::new();
    let root = dyn_info(exe)?;
    if let Some(i) = &root.interpreter {
        out.insert(PathBuf::from(i));
    }
    let mut todo = vec![(exe.to_path_buf(), root)];
    let mut seen_names = BTreeSet::new();
    while let Some((obj, info)) = todo.pop() {
        let origin = obj.parent().unwrap_or(Path::new("/")).to_path_buf();
        let dirs = search_dirs(&info, &origin, &conf);
        for lib in &info.needed {
            if !seen_names.insert(lib.clone()) {
                continue;
            }
            let found = if lib.contains('/') {
                Some(PathBuf::from(lib)).filter(|p| p.is_file())
            } else {
                dirs.iter()
                    .map(|d| Path::new(d).join(lib))
                    .find(|p| p.is_file() && dyn_info(p).is_ok_and(|i| i.is_64 == info.is_64))
            };
            let path = found.ok_or_else(|| ElfError::NotFound {
                library: lib.clone(),
                needed_by: obj.clone(),
                searched: dirs.join(":"),
            })?;
            let li = dyn_info(&path)?;
            out.insert(path.clone());
            todo.push((path, li));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    fn info(rpath: &[&str], runpath: &[&str]) -> DynInfo {
        DynInfo {
            rpath: rpath.iter().map(|s| s.to_string()).collect(),
            runpath: runpath.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test_case(&["/r"], &[], "/r" ; "rpath used without runpath")]
    #[test_case(&["/r"], &["/u"], "/u" ; "runpath overrides rpath")]
    #[test_case(&["$ORIGIN/../lib"], &[], "/opt/x/bin/../lib" ; "origin expanded")]
    #[test_case(&[], &[], "/etc-conf-dir" ; "conf dirs before defaults")]
    fn search_order(rpath: &[&str], runpath: &[&str], first: &str) {
        let dirs = search_dirs(&info(rpath, runpath), Path::new("/opt/x/bin"), &["/etc-conf-dir".into()]);
        assert_eq!(dirs[0], first);
        assert_eq!(dirs.last().map(String::as_str), Some("/usr/lib"));
        assert!(!dirs.contains(&"/r".to_string()) || runpath.is_empty());
    }

    #[test]
    fn closure_of_a_dynamic_host_binary() {
        let exe = Path::new("/bin/ls");
        let libs = closure(exe).unwrap();
        assert!(libs.iter().any(|p| p.to_string_lossy().contains("ld-linux-x86-64")), "{libs:?}");
        assert!(libs.iter().any(|p| p.file_name().is_some_and(|n| n == "libc.so.6")), "{libs:?}");
    }
}
