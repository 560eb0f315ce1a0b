//! `escape.*`: known container breakouts, each named by its CVE or technique, tried for real
//! from inside a container and checked from the host side too.
//!
//! Harmless on a host: where walking through an open door would change the machine (a write
//! to `core_pattern`, loading a module, kexec), the probe stops at the step that proves the
//! door is open (the open for writing, the syscall getting past its permission check to fail
//! on a deliberately invalid argument) and prints a marker. Inside a guest VM, which is thrown
//! away, the write itself is tried ([`in_guest`]). Syscalls that shell cannot make (splice,
//! open_by_handle_at, kexec_load, keyctl) are made by the static `isolab-agent`, copied into
//! the container's rootfs as [`PROBE`] (see `escape_probe.rs`).
//!
//! The themes: `escape_fds.rs` (leaked fds and the runtime's own processes), `escape_dev.rs`
//! (symlinked device nodes and mount-destination races), `escape_procfs.rs` (host-facing
//! procfs and sysfs files), `escape_kernel.rs` (kernel-side escapes and privileged syscalls),
//! `escape_keys.rs` (keyrings, open_by_handle_at).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{Assertion, Ctx, RunOutput, Verdict};

/// The probe's path inside the container.
pub const PROBE: &str = "/bin/isolab-escape-probe";

/// The `escape.*` assertions.
pub fn assertions() -> Vec<Assertion> {
    let mut all = super::escape_fds::assertions();
    all.extend(super::escape_dev::assertions());
    all.extend(super::escape_procfs::assertions());
    all.extend(super::escape_kernel::assertions());
    all.extend(super::escape_keys::assertions());
    all
}

/// The advisory of assertion `id`, if it is an escape named after one.
pub fn advisory(id: &str) -> Option<crate::outcome::Advisory> {
    macro_rules! ghsa {
        ($cve:literal, $ghsa:literal) => {
            ($cve, concat!("https://github.com/opencontainers/runc/security/advisories/", $ghsa))
        };
    }
    let (id, url) = match id {
        "escape.cve_2024_21626_fds" | "escape.cve_2024_21626_cwd" => {
            ghsa!("CVE-2024-21626", "GHSA-xr7r-f8xq-vfvv")
        }
        "escape.cve_2025_31133_devnull" => ghsa!("CVE-2025-31133", "GHSA-9493-h29p-rfm2"),
        "escape.cve_2025_52565_console" => ghsa!("CVE-2025-52565", "GHSA-qw9x-cqr3-wc7r"),
        "escape.cve_2021_30465_mount_race" => ghsa!("CVE-2021-30465", "GHSA-c3xm-pvg7-gh7r"),
        "escape.cve_2016_9962_exec_ptrace" => ghsa!("CVE-2016-9962", "GHSA-gp4j-w3vj-7299"),
        "escape.cve_2022_0492_release_agent" => {
            ("CVE-2022-0492", "https://nvd.nist.gov/vuln/detail/CVE-2022-0492")
        }
        "escape.cve_2022_0847_dirty_pipe" => ("CVE-2022-0847", "https://dirtypipe.cm4all.com/"),
        "escape.shocker_open_by_handle_at" => {
            ("shocker (open_by_handle_at)", "https://seclists.org/oss-sec/2014/q2/565")
        }
        _ => return None,
    };
    Some(crate::outcome::Advisory { id: id.into(), url: url.into() })
}

/// Whether this runs inside an isolab guest (the agent is PID 1): there the doors are walked
/// through, on a host only detected.
pub fn in_guest() -> bool {
    std::process::id() == 1
}

/// The static `isolab-agent` that carries the probes: this very binary in a guest, else
/// `$ISOLAB_AGENT` or the static build under a target directory near this executable.
pub fn probe_source() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let name = exe.file_name()?.to_string_lossy().into_owned();
    if in_guest() || name.starts_with("isolab-agent") {
        return Some(exe);
    }
    let mut c: Vec<PathBuf> = std::env::var_os("ISOLAB_AGENT").map(PathBuf::from).into_iter().collect();
    let mut targets: Vec<PathBuf> =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).into_iter().collect();
    targets.extend(exe.ancestors().skip(1).take(3).map(Path::to_path_buf));
    for t in targets {
        for prof in ["release", "debug"] {
            c.push(t.join("x86_64-unknown-linux-gnu").join(prof).join("isolab-agent"));
        }
    }
    c.into_iter().find(|p| is_static(p))
}

/// An ELF without a program interpreter (PT_INTERP names `ld-linux` near the file's start).
fn is_static(p: &Path) -> bool {
    use std::io::Read;
    let mut head = vec![0u8; 4096];
    let Ok(n) = std::fs::File::open(p).and_then(|mut f| f.read(&mut head)) else { return false };
    head.starts_with(b"\x7fELF") && !head[..n].windows(7).any(|w| w == b"ld-linu")
}

/// Copy the probe into the shared rootfs (once); an ERROR verdict when there is none.
pub fn install_probe(ctx: &Ctx) -> Result<(), Verdict> {
    install_probe_in(ctx.rootfs())
}

/// Copy the probe into `rootfs` (once).
pub fn install_probe_in(rootfs: &Path) -> Result<(), Verdict> {
    let dest = rootfs.join(PROBE.trim_start_matches('/'));
    if dest.exists() {
        return Ok(());
    }
    let src = probe_source().ok_or_else(|| {
        Verdict::error("no static isolab-agent to carry the escape probes (build it with ci/vm-build, or set ISOLAB_AGENT)")
    })?;
    std::fs::copy(&src, &dest)
        .map(drop)
        .map_err(|e| Verdict::error(format!("copy {} to {}: {e}", src.display(), dest.display())))
}

/// Run `sh -c script` in a container of `cfg`; its output (any exit code).
pub fn sh(ctx: &mut Ctx, mut cfg: Value, script: &str) -> Result<RunOutput, Verdict> {
    cfg["process"]["args"] = json!(["sh", "-c", script]);
    ctx.run(cfg)
}

/// Like [`sh`], but the container must run (exit 0); its stdout, trimmed.
pub fn sh_ok(ctx: &mut Ctx, cfg: Value, script: &str) -> Result<String, Verdict> {
    let out = sh(ctx, cfg, script)?;
    if out.code != 0 {
        return Err(Verdict::fail(format!("exit {}: {} {}", out.code, out.stdout.trim(), out.stderr.trim())));
    }
    Ok(out.stdout.trim().to_owned())
}

/// Host files an escape would change, read before and compared after.
#[derive(Debug)]
pub struct HostFiles(Vec<(String, Option<Vec<u8>>)>);

impl HostFiles {
    /// Read `paths` now (absent files are remembered as absent).
    pub fn read<S: AsRef<str>>(paths: &[S]) -> Self {
        HostFiles(paths.iter().map(|p| (p.as_ref().to_owned(), std::fs::read(p.as_ref()).ok())).collect())
    }

    /// Write back the earlier content of every file that changed; what was done.
    pub fn restore(&self) -> &'static str {
        let mut ok = true;
        for (p, before) in &self.0 {
            if let Some(b) = before {
                if std::fs::read(p).ok().as_ref() != Some(b) {
                    ok &= std::fs::write(p, b).is_ok();
                }
            }
        }
        if ok {
            " (restored to the values read before)"
        } else {
            " (COULD NOT RESTORE: check the host)"
        }
    }

    /// The files that differ now, with before and after.
    pub fn changed(&self) -> Vec<String> {
        let show = |b: &Option<Vec<u8>>| b.as_ref().map(|b| String::from_utf8_lossy(b).trim().to_owned());
        self.0
            .iter()
            .filter_map(|(p, before)| {
                let now = std::fs::read(p).ok();
                (now != *before).then(|| format!("{p}: {:?} -> {:?}", show(before), show(&now)))
            })
            .collect()
    }
}

/// The host files every usermode-helper escape aims at.
pub const HELPER_FILES: [&str; 3] =
    ["/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe", "/sys/kernel/uevent_helper"];

/// Fold the host-side comparison into an inside verdict: a changed host file always FAILs.
pub fn with_host(inside: Verdict, host: &HostFiles) -> Verdict {
    let changed = host.changed();
    if changed.is_empty() {
        return inside;
    }
    // A vulnerable runtime can write a host file itself (runc 1.1.5 put a line of the probe's
    // output into core_pattern under CVE-2025-31133 here): on a host the value is put back.
    let restored = if in_guest() { "" } else { host.restore() };
    let mut detail = format!("host files changed: {}{restored}", changed.join("; "));
    if !inside.detail.is_empty() {
        detail = format!("{detail}; inside: {}", inside.detail);
    }
    Verdict::fail(detail)
}

/// A marker file on the host, outside every rootfs: read through an escape it proves the
/// escape without touching anything else. Its path and content.
pub fn host_marker(ctx: &Ctx, name: &str) -> Result<(PathBuf, String), Verdict> {
    let path = ctx.dir().join(format!("host-marker-{name}"));
    let content = format!("isolab-host-marker-{}-{name}", std::process::id());
    std::fs::write(&path, &content).map_err(|e| Verdict::error(format!("write {}: {e}", path.display())))?;
    Ok((path, content))
}
