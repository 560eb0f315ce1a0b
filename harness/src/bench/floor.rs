//! The floor program as a runtime of `isolab bench startup` (`--runtimes ...,floor`):
//! `isolab-floor ROOTFS CGROUP` (benches/src/bin/isolab-floor.rs) makes exactly the kernel
//! calls a container start needs and nothing else, so the ratio column shows isorun against
//! it. It takes the bundle's rootfs and a fresh cgroup name per run, cleans up after itself
//! (no `delete`), and says its build in `--version` like isorun: a debug one is refused
//! unless `--allow-debug-build` (the bench does not build it: the binary it measures is the
//! one found, as for every runtime, and a bench host or guest need not have cargo and the
//! sources; a debug floor would lower every ratio).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The runtime name that selects the floor program.
pub const NAME: &str = "floor";

/// Its binary's file name.
pub const BIN: &str = "isolab-floor";

/// The variable naming its binary explicitly.
pub const ENV: &str = "ISOLAB_FLOOR";

/// How to build it, for error messages.
pub const BUILD_HINT: &str = "cargo build --release -p isolab-benches";

/// Finds the binary: `$ISOLAB_FLOOR`, else beside this executable (the target dir), else on
/// PATH; the error says where it looked.
pub fn locate() -> Result<PathBuf, String> {
    let exe_dir = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf));
    locate_in(
        std::env::var_os(ENV).map(PathBuf::from),
        exe_dir.as_deref(),
        &std::env::var("PATH").unwrap_or_default(),
    )
}

/// Pure [`locate`]: an explicit path must exist; else `exe_dir/isolab-floor`, else PATH.
pub fn locate_in(
    explicit: Option<PathBuf>,
    exe_dir: Option<&Path>,
    path_var: &str,
) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() { Ok(p) } else { Err(format!("{ENV}={}: no such file", p.display())) };
    }
    let beside = exe_dir.map(|d| d.join(BIN));
    let on_path = path_var.split(':').filter(|d| !d.is_empty()).map(|d| Path::new(d).join(BIN));
    beside.into_iter().chain(on_path).find(|p| p.is_file()).ok_or_else(|| {
        let dir = exe_dir.map(|d| d.display().to_string()).unwrap_or_else(|| "?".into());
        format!("{BIN} not found beside isolab ({dir}), via {ENV} or on PATH: build it with `{BUILD_HINT}`")
    })
}

/// `isolab-floor ROOTFS` (the cgroup name is appended per run).
pub fn command(bin: &Path, rootfs: &Path) -> Command {
    let mut c = Command::new(bin);
    c.arg(rootfs);
    own_process_group(&mut c);
    c
}

/// Runs `cmd` in its own process group: a terminal's Ctrl-C then reaches only isolab, whose
/// handler waits for the run in flight (see [`super::guard`]), so the floor is not killed
/// between its mkdir and its rmdir.
pub fn own_process_group(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with_floor() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(BIN), "").unwrap();
        d
    }

    #[test]
    fn explicit_wins_and_must_exist() {
        let d = dir_with_floor();
        let p = d.path().join(BIN);
        assert_eq!(locate_in(Some(p.clone()), None, ""), Ok(p));
        let e = locate_in(Some(d.path().join("nope")), Some(d.path()), "").unwrap_err();
        assert!(e.starts_with("ISOLAB_FLOOR=") && e.ends_with("nope: no such file"), "{e}");
    }

    #[test]
    fn beside_isolab_before_path() {
        let (exe, on_path) = (dir_with_floor(), dir_with_floor());
        let path_var = format!("/nonexistent:{}", on_path.path().display());
        assert_eq!(locate_in(None, Some(exe.path()), &path_var), Ok(exe.path().join(BIN)));
        assert_eq!(locate_in(None, Some(Path::new("/nonexistent")), &path_var), Ok(on_path.path().join(BIN)));
    }

    #[test]
    fn missing_says_where_it_looked_and_how_to_build() {
        let e = locate_in(None, Some(Path::new("/w/target/release")), "/usr/bin").unwrap_err();
        assert!(e.contains("beside isolab (/w/target/release)"), "{e}");
        assert!(e.contains(ENV) && e.contains(BUILD_HINT), "{e}");
    }
}
