//! Which build of a runtime a bench measures, and refusing a debug `isorun` unless asked:
//! `target/debug/isolab bench startup` finds the debug `isorun` beside it, whose start
//! latency is not isorun's (42.5 ms against the release build's 24.5 ms here).
//! `isorun --version` says `build: debug` or `build: release`; runc and crun say nothing of
//! the kind and are measured as they are.

use std::path::Path;
use std::process::Command;

use super::BenchError;

/// The flag that lets a bench measure a debug build anyway.
pub const ALLOW_FLAG: &str = "--allow-debug-build";

/// The `build:` value of a `--version` output (`debug`, `release`), if it has one.
pub fn parse_build(version: &str) -> Option<&str> {
    version.lines().find_map(|l| l.strip_prefix("build:")).map(str::trim).filter(|b| !b.is_empty())
}

/// The bench's decision for one runtime, from its `--version` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Measure it; its build when it says one.
    Measure(Option<String>),
    /// Do not: why.
    Refuse(String),
}

/// Pure: a runtime that says `build: debug` is refused, and so is an `isorun` or
/// `isolab-floor` (first line `isorun ...`, `isolab-floor ...`) that does not say which
/// build it is (built before it could), unless `allow_debug`; anything else is measured.
pub fn decide(version: &str, allow_debug: bool) -> Verdict {
    let is_ours = version.lines().next().is_some_and(|l| {
        let l = l.trim_start();
        l.starts_with("isorun") || l.starts_with(super::floor::BIN)
    });
    match parse_build(version) {
        Some("debug") if !allow_debug => {
            Verdict::Refuse("is a debug build (`--version` says build: debug)".into())
        }
        None if is_ours && !allow_debug => {
            Verdict::Refuse("does not say which build it is (`--version` has no build: line)".into())
        }
        None if is_ours => Verdict::Measure(Some("unknown".into())),
        build => Verdict::Measure(build.map(str::to_owned)),
    }
}

/// The error for a refused runtime, naming the binary and how to go on.
pub fn refusal(name: &str, bin: &Path, why: &str) -> BenchError {
    let build = if name == super::floor::NAME {
        format!(
            "Build the release floor program (`{}`; it is found beside isolab or via {})",
            super::floor::BUILD_HINT,
            super::floor::ENV
        )
    } else {
        "Build the release isorun (`cargo build --release -p isolab-runtime`) and pass `--runtime \
         target/release/isorun`"
            .to_owned()
    };
    BenchError::DebugBuild {
        runtime: name.to_owned(),
        path: bin.to_owned(),
        reason: format!(
            "{why}: its start latency is not what a release build measures. {build}, or measure \
             this build anyway with {ALLOW_FLAG}"
        ),
    }
}

/// Runs `bin --version` and decides; `Ok(build)` to measure.
pub fn check(name: &str, bin: &Path, allow_debug: bool) -> Result<Option<String>, BenchError> {
    let out = Command::new(bin)
        .arg("--version")
        .output()
        .map_err(|error| BenchError::Spawn { cmd: format!("{} --version", bin.display()), error })?;
    let text = String::from_utf8_lossy(&out.stdout);
    match decide(&text, allow_debug) {
        Verdict::Measure(build) => Ok(build),
        Verdict::Refuse(why) => Err(refusal(name, bin, &why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    const ISORUN_RELEASE: &str = "isorun 0.1.0\nbuild: release\n";
    const ISORUN_DEBUG: &str = "isorun 0.1.0\nbuild: debug\n";
    const ISORUN_OLD: &str = "isorun 0.1.0\n";
    const FLOOR_DEBUG: &str = "isolab-floor 0.1.0\nbuild: debug\n";
    const FLOOR_RELEASE: &str = "isolab-floor 0.1.0\nbuild: release\n";
    const FLOOR_OLD: &str = "isolab-floor 0.1.0\n";
    const RUNC: &str = "runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\ngo: go1.19.8\nlibseccomp: 2.5.4\n";
    const CRUN: &str = "crun version 1.8.1\ncommit: f8a096be060b22ccd3d5f3ebe44108517fbf6c30\nrundir: /run/user/0/crun\nspec: 1.0.0\n+SYSTEMD +SELINUX +APPARMOR +CAP +SECCOMP +EBPF +YAJL\n";

    #[test_case(ISORUN_RELEASE, Some("release") ; "isorun release")]
    #[test_case(ISORUN_DEBUG, Some("debug") ; "isorun debug")]
    #[test_case(ISORUN_OLD, None ; "isorun without the line")]
    #[test_case(RUNC, None ; "runc")]
    #[test_case("x\nbuild:\n", None ; "empty value")]
    #[test_case("x\nbuild:  release \n", Some("release") ; "padded")]
    fn parses_the_build_line(version: &str, expect: Option<&str>) {
        assert_eq!(parse_build(version), expect);
    }

    #[test_case(ISORUN_RELEASE, false, Verdict::Measure(Some("release".into())) ; "release is measured")]
    #[test_case(ISORUN_RELEASE, true, Verdict::Measure(Some("release".into())) ; "release with the flag")]
    #[test_case(ISORUN_DEBUG, true, Verdict::Measure(Some("debug".into())) ; "debug with the flag")]
    #[test_case(ISORUN_OLD, true, Verdict::Measure(Some("unknown".into())) ; "old isorun with the flag")]
    #[test_case(FLOOR_RELEASE, false, Verdict::Measure(Some("release".into())) ; "floor release")]
    #[test_case(FLOOR_DEBUG, true, Verdict::Measure(Some("debug".into())) ; "floor debug with the flag")]
    #[test_case(RUNC, false, Verdict::Measure(None) ; "runc")]
    #[test_case(CRUN, false, Verdict::Measure(None) ; "crun")]
    #[test_case("", false, Verdict::Measure(None) ; "no output")]
    fn measured(version: &str, allow: bool, expect: Verdict) {
        assert_eq!(decide(version, allow), expect);
    }

    #[test_case(ISORUN_DEBUG, "debug build" ; "debug isorun")]
    #[test_case(ISORUN_OLD, "no build: line" ; "old isorun")]
    #[test_case(FLOOR_DEBUG, "debug build" ; "debug floor")]
    #[test_case(FLOOR_OLD, "no build: line" ; "floor without the line")]
    #[test_case("mystery-runtime 2.0\nbuild: debug\n", "debug build" ; "any runtime saying debug")]
    fn refused_without_the_flag(version: &str, reason: &str) {
        match decide(version, false) {
            Verdict::Refuse(why) => assert!(why.contains(reason), "{why}"),
            other => panic!("measured: {other:?}"),
        }
    }

    #[test]
    fn the_refusal_names_the_binary_and_the_way_out() {
        let msg = refusal("isorun", Path::new("/w/target/debug/isorun"), "is a debug build").to_string();
        assert!(msg.contains("/w/target/debug/isorun"), "{msg}");
        assert!(msg.contains("--allow-debug-build"), "{msg}");
        assert!(msg.contains("cargo build --release -p isolab-runtime"), "{msg}");
        let msg = refusal("floor", Path::new("/w/target/debug/isolab-floor"), "is a debug build").to_string();
        assert!(msg.contains("cargo build --release -p isolab-benches"), "{msg}");
        assert!(msg.contains("--allow-debug-build") && !msg.contains("isolab-runtime"), "{msg}");
    }
}
