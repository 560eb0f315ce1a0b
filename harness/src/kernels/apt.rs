//! apt through a private configuration: our own sources list, lists and cache directories
//! under the isolab cache. The host's apt configuration is read (for the mirror) but never
//! written.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Errors running apt.
#[derive(Debug, thiserror::Error)]
pub enum AptError {
    /// No Debian mirror found in the host's apt configuration and none given.
    #[error("no Debian mirror: none found in /etc/apt/sources.list{{,.d/*}}; set ISOLAB_APT_MIRROR")]
    NoMirror,
    /// An apt command could not be started or failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status and the tail of stderr.
        detail: String,
    },
    /// Creating the private apt directories failed.
    #[error("prepare {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// errno.
        source: std::io::Error,
    },
}

/// Where an archive is and which key signs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// Base URI (`…/debian`).
    pub uri: String,
    /// Keyring for `signed-by`, when the host's entry names one.
    pub signed_by: Option<String>,
}

/// Finds the first Debian mirror in sources text: deb822 (`URIs:`) or one-line (`deb URI …`).
/// Security and update-only archives (`*-security`) are passed over. Pure.
pub fn find_mirror(text: &str) -> Option<Mirror> {
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
        };
        let types = field("Types").unwrap_or_default();
        let (Some(uris), Some(suites)) = (field("URIs"), field("Suites")) else { continue };
        if !types.split_whitespace().any(|t| t == "deb") || suites.contains("-security") {
            continue;
        }
        if let Some(uri) = uris.split_whitespace().next() {
            return Some(Mirror {
                uri: uri.trim_end_matches('/').to_string(),
                signed_by: field("Signed-By"),
            });
        }
    }
    for line in text.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("deb ") else { continue };
        let rest = rest.trim_start();
        let (opts, rest) = match rest.strip_prefix('[').and_then(|r| r.split_once(']')) {
            Some((o, r)) => (o, r),
            None => ("", rest),
        };
        let signed_by =
            opts.split_whitespace().find_map(|o| o.strip_prefix("signed-by=")).map(str::to_string);
        let mut words = rest.split_whitespace();
        if let (Some(uri), Some(suite)) = (words.next(), words.next()) {
            if !suite.contains("-security") {
                return Some(Mirror { uri: uri.trim_end_matches('/').to_string(), signed_by });
            }
        }
    }
    None
}

/// The `Size:` of package `name` version `version` in `apt-cache show` output (pure).
pub fn stanza_size(show: &str, name: &str, version: &str) -> Option<u64> {
    show.split("\n\n").find_map(|st| {
        let f = |k: &str| st.lines().find_map(|l| l.strip_prefix(k)).map(str::trim);
        (f("Package:") == Some(name) && f("Version:") == Some(version)).then(|| f("Size:")?.parse().ok())?
    })
}

/// The mirror to use: `$ISOLAB_APT_MIRROR`, else the host's configuration.
pub fn host_mirror() -> Result<Mirror, AptError> {
    if let Ok(uri) = std::env::var("ISOLAB_APT_MIRROR") {
        if !uri.is_empty() {
            return Ok(Mirror { uri: uri.trim_end_matches('/').to_string(), signed_by: None });
        }
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir("/etc/apt/sources.list.d")
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files.retain(|p| p.extension().is_some_and(|e| e == "sources" || e == "list"));
    files.insert(0, PathBuf::from("/etc/apt/sources.list"));
    files
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .find_map(|t| find_mirror(&t))
        .ok_or(AptError::NoMirror)
}

/// A private apt setup rooted at `dir`.
#[derive(Debug, Clone)]
pub struct PrivateApt {
    /// Root of the private state (`sources.list`, `lists/`, `cache/`).
    pub dir: PathBuf,
    /// The archive.
    pub mirror: Mirror,
}

/// The default keyring when the host names none.
pub const DEFAULT_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

impl PrivateApt {
    /// The sources list text for `suites` (pure).
    pub fn sources_list(&self, suites: &[String]) -> String {
        let key = self.mirror.signed_by.as_deref().unwrap_or(DEFAULT_KEYRING);
        suites.iter().map(|s| format!("deb [signed-by={key}] {} {s} main\n", self.mirror.uri)).collect()
    }

    /// The `-o` options that make apt use only the private state (pure).
    pub fn options(&self) -> Vec<String> {
        let d = self.dir.display();
        [
            format!("Dir::Etc::SourceList={d}/sources.list"),
            "Dir::Etc::SourceParts=/dev/null".to_string(),
            format!("Dir::State::Lists={d}/lists"),
            format!("Dir::Cache={d}/cache"),
            "Dir::State::status=/dev/null".to_string(),
            "APT::Sandbox::User=root".to_string(),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_string(), o])
        .collect()
    }

    /// Writes the sources list and creates the directories.
    pub fn prepare(&self, suites: &[String]) -> Result<(), AptError> {
        for sub in ["lists/partial", "cache/archives/partial"] {
            let p = self.dir.join(sub);
            std::fs::create_dir_all(&p).map_err(|source| AptError::Io { path: p, source })?;
        }
        let p = self.dir.join("sources.list");
        let text = self.sources_list(suites);
        if std::fs::read_to_string(&p).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&p, text).map_err(|source| AptError::Io { path: p.clone(), source })?;
            // New suites: force a fresh update.
            let _ = std::fs::remove_file(self.dir.join("lists/.isolab-updated"));
        }
        Ok(())
    }

    /// `apt-get update` unless already done for this sources list (or `force`).
    pub fn update(&self, force: bool) -> Result<(), AptError> {
        let stamp = self.dir.join("lists/.isolab-updated");
        if !force && stamp.exists() {
            return Ok(());
        }
        self.run("apt-get", &["update".to_string()], None)?;
        std::fs::write(&stamp, b"").map_err(|source| AptError::Io { path: stamp, source })
    }

    /// `apt-get download name=version` into `dest`.
    pub fn download(&self, name: &str, version: &str, dest: &Path) -> Result<(), AptError> {
        self.run("apt-get", &["download".to_string(), format!("{name}={version}")], Some(dest)).map(|_| ())
    }

    /// The archive's `Size:` of each `(name, version)`, in one apt-cache call (0 if unknown).
    pub fn package_sizes(&self, pkgs: &[(&str, &str)]) -> Vec<u64> {
        let args: Vec<String> =
            std::iter::once("show".to_string()).chain(pkgs.iter().map(|(n, v)| format!("{n}={v}"))).collect();
        let show = self.cache_query(&args).unwrap_or_default();
        pkgs.iter().map(|(n, v)| stanza_size(&show, n, v).unwrap_or(0)).collect()
    }

    /// `apt-cache <args>`; returns stdout.
    pub fn cache_query(&self, args: &[String]) -> Result<String, AptError> {
        self.run("apt-cache", args, None)
    }

    fn run(&self, tool: &str, args: &[String], cwd: Option<&Path>) -> Result<String, AptError> {
        let mut cmd = Command::new(tool);
        cmd.args(self.options()).args(args).env("LC_ALL", "C");
        if let Some(d) = cwd {
            cmd.current_dir(d);
        }
        let command = format!("{tool} {}", args.join(" "));
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let fail = |e: std::io::Error| AptError::Command { command: command.clone(), detail: e.to_string() };
        let child = cmd.spawn().map_err(fail)?;
        // Killed with the VMs on SIGINT/SIGTERM/SIGHUP: nothing outlives the harness.
        let registration = crate::vm::guard::register(child.id());
        let out = child.wait_with_output();
        drop(registration);
        let out = out.map_err(fail)?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = err.lines().rev().take(5).collect();
            let detail =
                format!("{}: {}", out.status, tail.into_iter().rev().collect::<Vec<_>>().join(" | "));
            return Err(AptError::Command { command, detail });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    const DEB822: &str = "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\
Components: main\n\nTypes: deb\n# comment\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n\
Components: main\nSigned-By: /usr/share/keyrings/k.gpg\n";

    #[test_case(DEB822, Some(("http://mirror.example/debian", Some("/usr/share/keyrings/k.gpg"))) ; "deb822 skips security")]
    #[test_case("deb http://m.example/debian bookworm main\n", Some(("http://m.example/debian", None)) ; "one line")]
    #[test_case("deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian/ bookworm main\n", Some(("http://m.example/debian", Some("/k.gpg"))) ; "one line options")]
    #[test_case("deb http://s.example/debian-security bookworm-security main\n", None ; "only security")]
    #[test_case("Types: deb-src\nURIs: http://x\nSuites: bookworm\n", None ; "only sources")]
    #[test_case("", None ; "empty")]
    fn mirror(text: &str, want: Option<(&str, Option<&str>)>) {
        let got = find_mirror(text);
        let want = want.map(|(u, k)| Mirror { uri: u.into(), signed_by: k.map(Into::into) });
        assert_eq!(got, want);
    }

    #[test]
    fn sizes_from_show_output() {
        let show = "Package: a\nVersion: 1\nSize: 10\n\nPackage: b\nVersion: 2\nSize: 20\n";
        assert_eq!(stanza_size(show, "b", "2"), Some(20));
        assert_eq!(stanza_size(show, "b", "1"), None);
    }

    #[test]
    fn private_configuration() {
        let apt = PrivateApt {
            dir: PathBuf::from("/c/apt"),
            mirror: Mirror { uri: "http://m.example/debian".into(), signed_by: None },
        };
        assert_eq!(
            apt.sources_list(&["bookworm".into(), "forky".into()]),
            format!("deb [signed-by={DEFAULT_KEYRING}] http://m.example/debian bookworm main\ndeb [signed-by={DEFAULT_KEYRING}] http://m.example/debian forky main\n")
        );
        let opts = apt.options();
        assert!(opts.contains(&"Dir::Etc::SourceList=/c/apt/sources.list".to_string()));
        assert!(opts.contains(&"Dir::Etc::SourceParts=/dev/null".to_string()));
        assert!(opts.iter().all(|o| o == "-o" || !o.starts_with("/etc")), "never points at the host's files");
    }
}
