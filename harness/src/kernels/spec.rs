//! `vm-images/kernels.toml`: the pinned kernel matrix. Parsing and validation are pure.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Errors in kernels.toml.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// errno.
        source: std::io::Error,
    },
    /// The TOML does not match the schema.
    #[error("parse {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        source: toml::de::Error,
    },
    /// An entry is inconsistent.
    #[error("kernels.toml: kernel {kernel:?}: {problem}")]
    Invalid {
        /// The entry's name.
        kernel: String,
        /// What is wrong.
        problem: String,
    },
    /// A name was asked for that the matrix does not have.
    #[error("no kernel named {name:?} in kernels.toml (have: {have})")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The names there are.
        have: String,
    },
}

/// The whole file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    /// What every kernel must provide.
    #[serde(default)]
    pub suite: SuiteNeeds,
    /// The kernels.
    #[serde(rename = "kernel", default)]
    pub kernels: Vec<KernelSpec>,
}

/// What the test suite needs from every kernel.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct SuiteNeeds {
    /// Modules to load in the guest (skipped when built in), with their dependencies.
    #[serde(default)]
    pub modules: Vec<String>,
    /// Config options that must be `y` (or `m` when the module is then loaded).
    #[serde(default)]
    pub required_config: Vec<String>,
}

/// One kernel of the matrix.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KernelSpec {
    /// Short name, e.g. `debian-6.1`.
    pub name: String,
    /// Part of the default set (all runs) — default true.
    #[serde(default = "yes")]
    pub default: bool,
    /// Archive suite (`bookworm`) for downloaded kernels.
    #[serde(default)]
    pub suite: Option<String>,
    /// Kernel release (`uname -r`), used to find files in the packages.
    #[serde(default)]
    pub release: Option<String>,
    /// The .deb packages holding image, config and modules.
    #[serde(default)]
    pub packages: Vec<PackagePin>,
    /// A local kernel instead: path of a bzImage / vmlinuz.
    #[serde(default)]
    pub bzimage: Option<PathBuf>,
    /// Local kernel: its `lib/modules/<release>` directory.
    #[serde(default)]
    pub modules_dir: Option<PathBuf>,
    /// Local kernel: its `.config`.
    #[serde(default)]
    pub config: Option<PathBuf>,
}

fn yes() -> bool {
    true
}

/// A pinned package.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PackagePin {
    /// Package name.
    pub name: String,
    /// Exact version.
    pub version: String,
    /// sha256 of the .deb, lower-case hex.
    pub sha256: String,
}

impl KernelSpec {
    /// True for an entry with a local image (no download).
    pub fn is_local(&self) -> bool {
        self.bzimage.is_some()
    }
}

impl Matrix {
    /// Parses and validates TOML text.
    pub fn parse(text: &str, path: &Path) -> Result<Self, SpecError> {
        let m: Matrix =
            toml::from_str(text).map_err(|source| SpecError::Parse { path: path.to_path_buf(), source })?;
        m.validate()?;
        Ok(m)
    }

    /// Reads, parses and validates a file.
    pub fn load(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| SpecError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text, path)
    }

    /// Checks every entry; the first problem found is returned.
    pub fn validate(&self) -> Result<(), SpecError> {
        let mut seen = HashSet::new();
        for k in &self.kernels {
            let bad =
                |problem: &str| SpecError::Invalid { kernel: k.name.clone(), problem: problem.to_string() };
            let name_ok = !k.name.is_empty()
                && k.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
            if !name_ok {
                return Err(bad("name must be non-empty and use only [A-Za-z0-9._-]"));
            }
            if !seen.insert(k.name.as_str()) {
                return Err(bad("duplicate name"));
            }
            match (k.is_local(), k.packages.is_empty()) {
                (true, false) => return Err(bad("has both `bzimage` and `packages`; choose one")),
                (false, true) => return Err(bad("needs `packages` (with `suite`) or a local `bzimage`")),
                (false, false) if k.suite.as_deref().unwrap_or("").is_empty() => {
                    return Err(bad("downloaded kernels need a `suite`"))
                }
                _ => {}
            }
            for p in &k.packages {
                if p.name.is_empty() || p.name.contains(char::is_whitespace) || p.version.is_empty() {
                    return Err(bad(&format!("package {:?} needs a name and a version", p.name)));
                }
                if p.sha256.len() != 64
                    || !p.sha256.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
                {
                    return Err(bad(&format!("package {}: sha256 must be 64 lower-case hex digits", p.name)));
                }
            }
        }
        Ok(())
    }

    /// The kernels named (all default ones when `names` is empty).
    pub fn select(&self, names: &[String]) -> Result<Vec<&KernelSpec>, SpecError> {
        if names.is_empty() {
            return Ok(self.kernels.iter().filter(|k| k.default).collect());
        }
        names
            .iter()
            .map(|n| {
                self.kernels.iter().find(|k| &k.name == n).ok_or_else(|| SpecError::Unknown {
                    name: n.clone(),
                    have: self.kernels.iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join(", "),
                })
            })
            .collect()
    }

    /// The archive suites the downloaded kernels come from (deduplicated, in order).
    pub fn suites(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in self.kernels.iter().filter_map(|k| k.suite.clone()) {
            if !out.contains(&s) {
                out.push(s);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    const SHA: &str = "4f217f710203cdfedde21f836bc66a0a4d773752d7fe8e5e13f701f891788945";

    fn parse(s: &str) -> Result<Matrix, SpecError> {
        Matrix::parse(s, Path::new("kernels.toml"))
    }

    #[test]
    fn parses_a_matrix() {
        let m = parse(&format!(
            r#"
[suite]
modules = ["veth", "bridge"]
required_config = ["CONFIG_PID_NS"]
[[kernel]]
name = "debian-6.1"
suite = "bookworm"
release = "6.1.0-50-cloud-amd64"
packages = [{{ name = "linux-image-6.1.0-50-cloud-amd64-unsigned", version = "6.1.176-1", sha256 = "{SHA}" }}]
[[kernel]]
name = "mine"
default = false
bzimage = "/tmp/bzImage"
"#
        ))
        .unwrap();
        assert_eq!(m.kernels.len(), 2);
        assert_eq!(m.suite.modules, vec!["veth", "bridge"]);
        assert!(m.kernels[1].is_local());
        assert_eq!(m.suites(), vec!["bookworm"]);
        assert_eq!(m.select(&[]).unwrap().len(), 1, "non-default kernels are not selected by default");
        assert_eq!(m.select(&["mine".into()]).unwrap()[0].name, "mine");
        assert!(matches!(m.select(&["nope".into()]), Err(SpecError::Unknown { .. })));
    }

    #[test_case("[[kernel]]\nname = \"a\"\n", "needs `packages`" ; "no source")]
    #[test_case("[[kernel]]\nname = \"a b\"\nbzimage = \"/x\"\n", "name must be" ; "bad name")]
    #[test_case("[[kernel]]\nname = \"a\"\nbzimage = \"/x\"\n[[kernel]]\nname = \"a\"\nbzimage = \"/y\"\n", "duplicate" ; "duplicate")]
    #[test_case("[[kernel]]\nname = \"a\"\npackages = [{ name = \"p\", version = \"1\", sha256 = \"SHA\" }]\n", "need a `suite`" ; "no suite")]
    #[test_case("[[kernel]]\nname = \"a\"\nsuite = \"s\"\npackages = [{ name = \"p\", version = \"1\", sha256 = \"abc\" }]\n", "sha256 must be" ; "short hash")]
    #[test_case("[[kernel]]\nname = \"a\"\nsuite = \"s\"\nbzimage = \"/x\"\npackages = [{ name = \"p\", version = \"1\", sha256 = \"SHA\" }]\n", "both" ; "both")]
    fn invalid(text: &str, want: &str) {
        let err = parse(&text.replace("SHA", SHA)).unwrap_err().to_string();
        assert!(err.contains(want), "{err}");
        assert!(err.contains("kernel \""), "error names the kernel: {err}");
    }

    #[test]
    fn unknown_field_is_a_parse_error() {
        let err = parse("[[kernel]]\nname = \"a\"\nbzimage = \"/x\"\nbogus = 1\n").unwrap_err();
        assert!(matches!(err, SpecError::Parse { .. }), "{err}");
    }

    #[test]
    fn the_committed_matrix_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vm-images/kernels.toml");
        let m = Matrix::load(&path).unwrap();
        assert!(m.select(&[]).unwrap().len() >= 4);
    }
}
