//! `isolab bench startup|density --vm KERNEL`: the same bench inside a throwaway VM of the
//! matrix.
//!
//! What runs where: the host packs into the guest image, at their host paths with their
//! shared libraries, the `isolab` binary that runs it (a copy stripped of debug info), the
//! floor program beside it, and the host's runc and crun; isorun is the image's runtime under
//! test (`/usr/bin/isorun`). It boots a fresh VM of the cell and sends one `Exec` of
//! `isolab --runtime /usr/bin/isorun bench startup|density ... --emit-json` ([`guest_argv`]): the
//! guest runs the host's code ([`super::startup::run`], interleaved, with warm-up, or
//! [`super::density::run`]) and prints
//! its `bench.json` as one line after [`JSON_PREFIX`] on stdout, which comes back over the
//! protocol as `CommandOutput`. The host parses it ([`parse_output`]), adds the cell
//! ([`VmInfo`]) and writes `bench.json` and the SVG as for a host run. A runtime the guest
//! lacks is a series with an error there, as on the host.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::report::BenchJson;
use super::{io_err, BenchError};
use crate::kernels::CheckedKernel;
use crate::lab::LabOptions;
use crate::launch::{self, Boot, LaunchError};
use crate::protocol::{Action, CgroupMode, Event, Request, Stream, PROTOCOL_VERSION};

/// The prefix of the stdout line carrying the guest's `bench.json` (one line of JSON).
pub const JSON_PREFIX: &str = "isolab-bench-json ";

/// The cell a guest bench ran in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmInfo {
    /// Kernel name in kernels.toml (`debian-6.12`).
    pub kernel: String,
    /// Its release (`uname -r` in the guest).
    pub release: String,
    /// `v1` or `v2`.
    pub cgroup: String,
    /// The accelerator (`tcg` or `kvm`): under TCG absolute times are slow, ratios count.
    pub accel: String,
}

/// Errors of a guest bench, each naming the cell.
#[derive(Debug, thiserror::Error)]
pub enum GuestBenchError {
    /// No VM could be started.
    #[error("{cell}: {source}")]
    Launch {
        /// `kernel/cgroup`.
        cell: String,
        /// Why.
        source: LaunchError,
    },
    /// The VM broke (boot, timeout, crash).
    #[error("{cell}: VM: {message}")]
    Vm {
        /// `kernel/cgroup`.
        cell: String,
        /// The VM error and the last console line.
        message: String,
    },
    /// The guest bench ran but gave no result.
    #[error("{cell}: guest bench exited {code:?} without a result: {detail}")]
    NoResult {
        /// `kernel/cgroup`.
        cell: String,
        /// Its exit code.
        code: Option<i32>,
        /// Its last stderr line or the agent's error.
        detail: String,
    },
    /// Copying the guest's programs.
    #[error(transparent)]
    Bench(#[from] BenchError),
}

/// What the guest runs: the bench and its options as on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestArgs {
    /// `startup` or `density`.
    pub bench: String,
    /// `--runtimes` as given (`isorun`, `floor`, names, paths).
    pub runtimes: Vec<String>,
    /// `--variants`.
    pub variants: Vec<String>,
    /// The bench's own options (`--runs 20 --warmup 3`, `--n 50 --max-n runc=50`).
    pub options: Vec<String>,
    /// `--allow-debug-build`.
    pub allow_debug_build: bool,
}

/// The guest's command line (pure): `isolab` (the packed copy) with the image's isorun,
/// `bench BENCH` with the same options, `--emit-json`.
pub fn guest_argv(isolab: &Path, guest_isorun: &str, a: &GuestArgs) -> Vec<String> {
    let mut v = vec![isolab.display().to_string(), "--runtime".into(), guest_isorun.into()];
    v.extend(["bench".into(), a.bench.clone(), "--emit-json".into()]);
    v.extend(["--runtimes".into(), a.runtimes.join(",")]);
    v.extend(["--variants".into(), a.variants.join(",")]);
    v.extend(a.options.iter().cloned());
    if a.allow_debug_build {
        v.push("--allow-debug-build".into());
    }
    v
}

/// The line `--emit-json` prints.
pub fn emit_line(j: &BenchJson) -> String {
    format!("{JSON_PREFIX}{}", serde_json::to_string(j).unwrap_or_default())
}

/// The guest's `bench.json` from its stdout lines (pure): the last line after
/// [`JSON_PREFIX`] that parses.
pub fn parse_output<'a>(stdout: impl IntoIterator<Item = &'a str>) -> Option<BenchJson> {
    stdout
        .into_iter()
        .filter_map(|l| l.strip_prefix(JSON_PREFIX))
        .filter_map(|j| serde_json::from_str(j).ok())
        .last()
}

/// Copies `bin` into `dir` without debug info (`strip --strip-debug`; a plain copy when
/// strip is missing or fails): the guest image holds it in RAM. Written beside and renamed,
/// so an image being built from the previous copy never reads half a file.
pub fn stripped_copy(bin: &Path, dir: &Path) -> Result<PathBuf, BenchError> {
    std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    let name = bin.file_name().unwrap_or(bin.as_os_str());
    let out = dir.join(name);
    let tmp = dir.join(format!(".{}.{}", name.to_string_lossy(), std::process::id()));
    let stripped = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&tmp)
        .arg(bin)
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(bin, &tmp).map_err(io_err("copy", bin))?;
    }
    std::fs::rename(&tmp, &out).map_err(io_err("rename", &tmp))?;
    Ok(out)
}

/// The guest bench's environment (pure): the directory of the packed isolab first on PATH,
/// so the `unshare` series runs util-linux's `unshare` packed beside it (busybox's lacks
/// `--cgroup`), as on the host.
pub fn env(argv: &[String]) -> Vec<(String, String)> {
    let dir = argv.first().and_then(|a| Path::new(a).parent()).map(|d| d.display().to_string());
    let path =
        dir.into_iter().chain([crate::agent::exec::GUEST_PATH.to_string()]).collect::<Vec<_>>().join(":");
    vec![("PATH".into(), path)]
}

/// One cell's run: the VM's events folded into the guest's result.
#[derive(Debug, Default)]
struct Collected {
    stdout: Vec<String>,
    last_err: String,
    release: String,
}

/// Runs the guest bench in a fresh VM of (`k`, `cgroup`) booting `image` (which holds
/// `argv[0]`, the floor program, runc and crun as `o.tools`); the guest's stderr goes to ours
/// with the cell in front. Returns its `bench.json` with [`BenchJson::vm`] set.
pub fn run_cell(
    k: &CheckedKernel,
    cgroup: CgroupMode,
    image: &Path,
    argv: Vec<String>,
    o: &LabOptions,
) -> Result<BenchJson, GuestBenchError> {
    let cell = format!("{}/{}", k.files.name, cgroup.as_str());
    let req = Request {
        protocol_version: PROTOCOL_VERSION,
        action: Action::Exec { env: env(&argv), argv, timeout_secs: 0 },
    };
    let mut c = Collected::default();
    let mut on_event = |ev: &Event| match ev {
        Event::Hello { kernel_release, .. } => c.release = kernel_release.clone(),
        Event::CommandOutput { stream: Stream::Stdout, line } => c.stdout.push(line.clone()),
        Event::CommandOutput { stream: Stream::Stderr, line } => {
            eprintln!("[{cell}] {line}");
            c.last_err = line.clone();
        }
        Event::Error { message } => c.last_err = message.clone(),
        _ => {}
    };
    let r = launch::run_in_cell(k, cgroup, Boot::Fresh(image), &req, o, &mut on_event)
        .map_err(|source| GuestBenchError::Launch { cell: cell.clone(), source })?;
    if let Some(e) = &r.error {
        let tail = r.console_tail.last().cloned().unwrap_or_default();
        return Err(GuestBenchError::Vm { cell, message: format!("{e}: {tail}") });
    }
    let Some(mut j) = parse_output(c.stdout.iter().map(String::as_str)) else {
        return Err(GuestBenchError::NoResult { cell, code: r.exit_code(), detail: c.last_err });
    };
    let kernel = crate::lab::boot_kernel(k, o);
    // The verdict of this VM's boot is cached for the process: no second probe.
    let accel = crate::vm::resolve_accel(o.accel, crate::lab::probe_target(o, &kernel, image));
    j.vm = Some(VmInfo {
        kernel: k.files.name.clone(),
        release: c.release,
        cgroup: cgroup.as_str().into(),
        accel: format!("{accel:?}").to_lowercase(),
    });
    Ok(j)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::startup::Series;
    use test_case::test_case;

    fn args(bench: &str, options: &str, debug: bool) -> GuestArgs {
        GuestArgs {
            bench: bench.into(),
            runtimes: vec!["isorun".into(), "crun".into(), "floor".into()],
            variants: vec!["default".into()],
            options: options.split_whitespace().map(String::from).collect(),
            allow_debug_build: debug,
        }
    }

    #[test_case("startup", "--runs 3 --warmup 1", false => "/c/isolab --runtime /usr/bin/isorun bench startup --emit-json --runtimes isorun,crun,floor --variants default --runs 3 --warmup 1"; "startup")]
    #[test_case("startup", "--runs 3 --warmup 1 --no-floor", true => "/c/isolab --runtime /usr/bin/isorun bench startup --emit-json --runtimes isorun,crun,floor --variants default --runs 3 --warmup 1 --no-floor --allow-debug-build"; "flags passed on")]
    #[test_case("density", "--n 10,50 --max-n runc=10", false => "/c/isolab --runtime /usr/bin/isorun bench density --emit-json --runtimes isorun,crun,floor --variants default --n 10,50 --max-n runc=10"; "density")]
    fn guest_argv_is(bench: &str, options: &str, debug: bool) -> String {
        guest_argv(Path::new("/c/isolab"), "/usr/bin/isorun", &args(bench, options, debug)).join(" ")
    }

    #[test]
    fn stripped_copy_drops_debug_info_and_copies_what_strip_refuses() {
        let d = tempfile::tempdir().unwrap();
        let me = std::env::current_exe().unwrap();
        let copy = stripped_copy(&me, d.path()).unwrap();
        assert_eq!(copy, d.path().join(me.file_name().unwrap()));
        let (was, now) = (std::fs::metadata(&me).unwrap().len(), std::fs::metadata(&copy).unwrap().len());
        assert!(now < was, "a debug test binary loses its debug info: {was} → {now} bytes");
        let text = d.path().join("src").join("not-elf");
        std::fs::create_dir(text.parent().unwrap()).unwrap();
        std::fs::write(&text, "plain text").unwrap();
        let copy = stripped_copy(&text, d.path()).unwrap();
        assert_eq!(std::fs::read_to_string(copy).unwrap(), "plain text");
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 3, "no temp file left beside the copies: {names:?}");
    }

    #[test]
    fn packed_dir_comes_first_on_path() {
        let e = env(&["/c/bench-guest/isolab".into(), "bench".into()]);
        assert_eq!(
            e,
            vec![("PATH".to_string(), format!("/c/bench-guest:{}", crate::agent::exec::GUEST_PATH))]
        );
    }

    #[test]
    fn emitted_json_parses_back_among_other_lines() {
        let j = BenchJson {
            bench: "startup".into(),
            series: vec![Series { runtime: "crun".into(), samples_ms: vec![1.5], ..Series::default() }],
            ..BenchJson::default()
        };
        let line = emit_line(&j);
        let lines = ["runtime  runs", line.as_str(), "wrote nothing"];
        let back = parse_output(lines).expect("parsed");
        assert_eq!(back.series[0].runtime, "crun");
        assert_eq!(back.series[0].samples_ms, vec![1.5]);
    }

    #[test_case(&["table only"]; "no json line")]
    #[test_case(&["isolab-bench-json {broken"]; "a cut line")]
    fn no_result(lines: &[&str]) {
        assert!(parse_output(lines.iter().copied()).is_none());
    }
}
