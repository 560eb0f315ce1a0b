//! The isolation catalogue: assertions that drive any OCI runtime through its command line
//! (`run`, `create`, `start`, `exec`, `kill`, `state`, `delete`) with bundles they write, and
//! check each property from inside the container and, where they can, from the host.
//!
//! Every assertion has a *negative control*: `weaken` edits the config to remove the
//! protection it checks (no pid namespace, no memory limit, CAP_SYS_ADMIN kept, ...). Run
//! against a weakened config, an assertion must FAIL: that is what makes a PASS mean something.
//! The same code runs on the host (`isolab check --host`) and in the guest (the agent).

pub mod base;
mod cgroup;
mod checkpoint;
mod checkpoint_shared;
mod criu;
mod criu_probe;
mod ctx;
pub mod escape;
mod escape_console;
mod escape_dev;
mod escape_fds;
mod escape_kernel;
mod escape_keys;
pub mod escape_probe;
mod escape_procfs;
mod facts;
mod lifecycle;
mod mount;
mod net;
mod net_bridge;
mod net_sysctl;
mod nsmisc;
mod pid;
mod ptree;
mod rootless;
mod rootless_probe;
mod security;
mod user;
pub mod util;
mod uts_ipc;

pub use base::{BaseConfig, BaseConfigError};
pub use criu::criu_unusable;
pub use ctx::{Container, Ctx, CtxError, RunOutput};
pub use facts::{Facts, Layout, Need};

use crate::outcome::Outcome;

/// What an assertion found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// PASS, FAIL, SKIP or ERROR.
    pub outcome: Outcome,
    /// Why: the failure, the skip reason, the error; empty for a plain pass.
    pub detail: String,
}

impl Verdict {
    /// The property holds.
    pub fn pass() -> Self {
        Self { outcome: Outcome::Pass, detail: String::new() }
    }
    /// The property does not hold (or the runtime could not set the container up).
    pub fn fail(detail: impl Into<String>) -> Self {
        Self { outcome: Outcome::Fail, detail: detail.into() }
    }
    /// The kernel or host cannot support the check.
    pub fn skip(reason: impl Into<String>) -> Self {
        Self { outcome: Outcome::Skip, detail: reason.into() }
    }
    /// The check itself broke.
    pub fn error(detail: impl Into<String>) -> Self {
        Self { outcome: Outcome::Error, detail: detail.into() }
    }
    /// PASS when `ok`, else FAIL with `detail`.
    pub fn check(ok: bool, detail: impl FnOnce() -> String) -> Self {
        if ok {
            Self::pass()
        } else {
            Self::fail(detail())
        }
    }
}

/// One assertion of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct Assertion {
    /// Stable dotted id, e.g. `pid.init_is_pid1`.
    pub id: &'static str,
    /// One line: the property.
    pub description: &'static str,
    /// What the kernel/host must offer; missing → SKIP with the reason.
    pub needs: &'static [Need],
    /// The check. Containers it starts are cleaned up by `Ctx` even when it panics.
    pub check: fn(&mut Ctx) -> Verdict,
    /// The negative control: remove the protection from a config.
    pub weaken: fn(&mut serde_json::Value),
}

/// The whole catalogue, in report order.
pub fn catalogue() -> Vec<Assertion> {
    let mut all = Vec::new();
    all.extend(pid::assertions());
    all.extend(mount::assertions());
    all.extend(uts_ipc::assertions());
    all.extend(net::assertions());
    all.extend(net_bridge::assertions());
    all.extend(user::assertions());
    all.extend(nsmisc::assertions());
    all.extend(cgroup::assertions());
    all.extend(security::assertions());
    all.extend(lifecycle::assertions());
    all.extend(checkpoint::assertions());
    all.extend(escape::assertions());
    all
}

/// Whether `id` matches a glob with `*` wildcards (`pid.*`, `*oom*`, `cgroup.*.v1`).
pub fn glob_match(pattern: &str, id: &str) -> bool {
    fn rec(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => rec(&p[1..], s) || (!s.is_empty() && rec(p, &s[1..])),
            (Some(a), Some(b)) if a == b => rec(&p[1..], &s[1..]),
            _ => false,
        }
    }
    rec(pattern.as_bytes(), id.as_bytes())
}

/// The assertions selected by `only`: comma-separated globs, each `!glob` leaving out what it
/// matches (no plain glob = all, so `!escape.*` is everything but the escapes).
pub fn select(only: &str) -> Vec<Assertion> {
    let (skip, pats): (Vec<&str>, Vec<&str>) =
        only.split(',').map(str::trim).filter(|p| !p.is_empty()).partition(|p| p.starts_with('!'));
    catalogue()
        .into_iter()
        .filter(|a| pats.is_empty() || pats.iter().any(|p| glob_match(p, a.id)))
        .filter(|a| !skip.iter().any(|p| glob_match(&p[1..], a.id)))
        .collect()
}

/// Run one assertion: SKIP when a need is missing, otherwise the check (a panic in a check
/// is an ERROR, never a PASS).
pub fn run_one(a: &Assertion, ctx: &mut Ctx) -> Verdict {
    let mut verdict = run_unnoted(a, ctx);
    rootless_probe::note(ctx, a.id, &mut verdict);
    verdict
}

fn run_unnoted(a: &Assertion, ctx: &mut Ctx) -> Verdict {
    if let Some(missing) = a.needs.iter().find_map(|n| ctx.facts.missing(*n)) {
        return Verdict::skip(missing);
    }
    if let Some(why) = rootless_probe::skip_reason(ctx, a.id) {
        return Verdict::skip(why);
    }
    let check = a.check;
    let verdict = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(ctx))).unwrap_or_else(|p| {
        let msg =
            p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
        Verdict::error(format!("check panicked: {}", msg.unwrap_or_default()))
    });
    ctx.cleanup();
    verdict
}

/// An `only` pattern ending in this runs the assertions it matches against their negative
/// control, reporting them as `<id>:weakened`: how tests check a control inside a guest, where
/// the kernel has what this host may lack (modules, kexec, /proc/kcore, /dev/mem).
pub const WEAKENED: &str = ":weakened";

/// The assertions `only` selects, each with whether it runs weakened (see [`WEAKENED`]).
pub fn select_runs(only: &str) -> Vec<(Assertion, bool)> {
    let (weak, plain): (Vec<&str>, Vec<&str>) =
        only.split(',').map(str::trim).filter(|p| !p.is_empty()).partition(|p| p.ends_with(WEAKENED));
    let mut runs: Vec<(Assertion, bool)> = if plain.is_empty() && !weak.is_empty() {
        Vec::new()
    } else {
        select(&plain.join(",")).into_iter().map(|a| (a, false)).collect()
    };
    for p in weak {
        runs.extend(select(p.trim_end_matches(WEAKENED)).into_iter().map(|a| (a, true)));
    }
    runs
}

/// Run the assertions selected by `only` against `runtime`, every bundle made from `base`,
/// working in `workdir` with a rootfs made from `busybox`; `on_result(id, verdict,
/// duration_ms)` after each. The same code runs for `isolab check` and inside every guest.
pub fn run_selected(
    runtime: &std::path::Path,
    only: &str,
    base: &BaseConfig,
    workdir: &std::path::Path,
    busybox: &std::path::Path,
    on_result: &mut dyn FnMut(&str, &Verdict, u64),
) -> Result<(), CtxError> {
    let mut ctx = Ctx::new(runtime, workdir, busybox)?;
    ctx.set_base(base)?;
    let runs = select_runs(only);
    for (i, (a, weakened)) in runs.iter().enumerate() {
        ctx.weaken = weakened.then_some(a.weaken);
        let t = std::time::Instant::now();
        let v = run_one(a, &mut ctx);
        // What this assertion kept for the next ones goes as soon as the next does not share it.
        if !runs.get(i + 1).is_some_and(|(next, w)| !w && ctx.shares_kept(next.id)) {
            ctx.release_kept();
        }
        let id = if *weakened { format!("{}{WEAKENED}", a.id) } else { a.id.to_owned() };
        on_result(&id, &v, t.elapsed().as_millis() as u64);
    }
    Ok(())
}

/// The first line of `runtime --version` (runc prints `runc version 1.1.5`).
pub fn runtime_version(runtime: &std::path::Path) -> String {
    std::process::Command::new(runtime)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("pid.*", "pid.init_is_pid1", true)]
    #[test_case("*oom*", "cgroup.memory.oom_kill", true)]
    #[test_case("pid.*", "mount.root", false)]
    #[test_case("*", "anything", true)]
    #[test_case("a*b*c", "aXbYc", true)]
    #[test_case("a*b*c", "aXbY", false)]
    #[test_case("exact", "exact", true)]
    fn globs(p: &str, id: &str, want: bool) {
        assert_eq!(glob_match(p, id), want);
    }

    /// Every assertion has a PASS + negative-control test in harness/tests/catalogue_*.rs.
    #[test]
    fn every_assertion_has_a_negative_control_test() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
        let mut tests = String::new();
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            if e.file_name().to_string_lossy().starts_with("catalogue_") {
                tests.push_str(&std::fs::read_to_string(e.path()).unwrap());
            }
        }
        for a in catalogue() {
            assert!(
                tests.contains(&format!("\"{}\"", a.id)),
                "{} has no test in harness/tests/catalogue_*.rs",
                a.id
            );
        }
    }

    #[test]
    fn exclusions_leave_out_what_they_match() {
        let all = catalogue().len();
        let escapes = catalogue().iter().filter(|a| a.id.starts_with("escape.")).count();
        assert!(escapes >= 12);
        for (only, want) in [
            ("", all),
            ("!escape.*", all - escapes),
            ("escape.*", escapes),
            ("escape.*,!escape.cve_2024_21626_*", escapes - 2),
            ("!escape.*,!*", 0),
            ("pid.init_is_pid1,!pid.*", 0),
        ] {
            assert_eq!(select(only).len(), want, "{only:?}");
        }
        assert!(select("!escape.*").iter().all(|a| !a.id.starts_with("escape.")));
    }

    #[test]
    fn weakened_patterns_select_controls() {
        let runs = select_runs("pid.init_is_pid1, escape.kexec_load_refused:weakened");
        let got: Vec<(&str, bool)> = runs.iter().map(|(a, w)| (a.id, *w)).collect();
        assert_eq!(got, [("pid.init_is_pid1", false), ("escape.kexec_load_refused", true)]);
        let only_weak = select_runs("escape.kexec*:weakened");
        assert_eq!(only_weak.len(), 1);
        assert!(only_weak[0].1);
        assert_eq!(select_runs("").len(), catalogue().len());
    }

    #[test]
    fn ids_are_unique_dotted_and_described() {
        let all = catalogue();
        let mut ids: Vec<&str> = all.iter().map(|a| a.id).collect();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n, "duplicate assertion ids");
        for a in &all {
            assert!(a.id.contains('.') && !a.id.contains(' '), "{}", a.id);
            assert!(!a.description.is_empty(), "{}", a.id);
        }
    }
}
