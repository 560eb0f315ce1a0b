//! The pieces put together: kernel (cached) → checked → image → VM run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::image::{self, Compression, ImageError, ImageInputs};
use crate::kernels::{self, apt, CheckError, CheckedKernel, FetchError, KernelSpec, Matrix, SpecError};
use crate::protocol::{CgroupMode, Event, Request};
use crate::vm::{self, AccelChoice, CmdlineOptions, Console, QemuConfig, Timeouts, VmReport};

/// Errors preparing a kernel or image, each naming what failed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// kernels.toml.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Fetching.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The kernel does not meet the suite's needs.
    #[error(transparent)]
    Check(#[from] CheckError),
    /// Building the image.
    #[error("kernel {kernel}: image: {source}")]
    Image {
        /// Kernel name.
        kernel: String,
        /// The failure.
        source: ImageError,
    },
    /// A binary could not be found.
    #[error("{what} not found (looked at: {looked}); {hint}")]
    NotFound {
        /// What was looked for.
        what: String,
        /// Where.
        looked: String,
        /// How to get it.
        hint: String,
    },
    /// The archive mirror could not be determined.
    #[error(transparent)]
    Apt(#[from] apt::AptError),
}

/// Options shared by every VM of a run.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Cache root.
    pub cache: PathBuf,
    /// The static agent binary.
    pub agent: PathBuf,
    /// The runtime under test (None: images without one).
    pub runtime: Option<PathBuf>,
    /// Static busybox.
    pub busybox: PathBuf,
    /// QEMU binary.
    pub qemu: String,
    /// Accelerator choice.
    pub accel: AccelChoice,
    /// Guest RAM, MiB.
    pub memory_mb: u32,
    /// vCPUs.
    pub cpus: u32,
    /// `-cpu` model override.
    pub cpu_model: Option<String>,
    /// initramfs compression.
    pub compression: Compression,
    /// Strip module signatures in the image.
    pub strip_module_signatures: bool,
    /// Extra host programs packed into the image with their libraries (e.g. criu).
    pub tools: Vec<PathBuf>,
    /// Boot the unpacked ELF vmlinux through PVH when possible (see `image::vmlinux`).
    pub pvh: bool,
    /// `quiet` kernel.
    pub quiet: bool,
    /// Extra kernel command-line words.
    pub extra_cmdline: Vec<String>,
    /// Keep the guest's user-space address randomization under TCG (see [`tcg_words`]).
    pub guest_aslr: bool,
    /// Spawn → hello.
    pub boot_timeout: Duration,
    /// Silence limit after hello.
    pub step_timeout: Duration,
}

/// The workspace root, when running from a checkout (for locating built binaries).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn first_existing(what: &str, candidates: &[PathBuf], hint: &str) -> Result<PathBuf, LabError> {
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| LabError::NotFound {
        what: what.into(),
        looked: candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        hint: hint.into(),
    })
}

fn exe_dir() -> Option<PathBuf> {
    std::env::current_exe().ok()?.parent().map(Path::to_path_buf)
}

/// The static agent: explicit path, `$ISOLAB_AGENT`, next to this executable (in the static
/// target dir layout), or the workspace's `target*/x86_64-unknown-linux-gnu/{release,debug}`.
pub fn locate_agent(explicit: Option<&Path>) -> Result<PathBuf, LabError> {
    let mut c: Vec<PathBuf> = explicit.map(Path::to_path_buf).into_iter().collect();
    if let Ok(p) = std::env::var("ISOLAB_AGENT") {
        c.push(p.into());
    }
    if let Some(d) = exe_dir() {
        c.push(d.join("isolab-agent.static"));
    }
    let root = workspace_root();
    let mut targets = vec![root.join("target")];
    if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
        targets.insert(0, PathBuf::from(t));
    }
    for t in targets {
        for prof in ["release", "debug"] {
            c.push(t.join("x86_64-unknown-linux-gnu").join(prof).join("isolab-agent"));
        }
    }
    first_existing("static isolab-agent", &c, "build it with `ci/vm-build` (or pass --agent)")
}

/// The runtime: explicit path, `isorun` next to this executable, or the workspace's
/// `target/{release,debug}/isorun`.
pub fn locate_runtime(explicit: Option<&Path>) -> Result<PathBuf, LabError> {
    if let Some(p) = explicit {
        return first_existing("runtime", &[p.to_path_buf()], "check --runtime");
    }
    let mut c: Vec<PathBuf> = exe_dir().map(|d| d.join("isorun")).into_iter().collect();
    for prof in ["release", "debug"] {
        c.push(workspace_root().join("target").join(prof).join("isorun"));
    }
    first_existing(
        "runtime isorun",
        &c,
        "build it with `cargo build --release -p isolab-runtime` or pass --runtime",
    )
}

/// Host programs packed into every guest image when present: CRIU (`criu`, package `criu`)
/// for checkpoint/restore; iproute2's `ip`, which CRIU runs to save and restore a network
/// namespace's addresses and routes; GNU `tar` and `gzip`, which CRIU runs to save tmpfs
/// contents (busybox's tar lacks the options it passes); iptables' save/restore (package
/// `iptables`; nft and legacy), which CRIU runs to save and restore a network namespace's
/// rules and to lock it (with the `mark` match and standard target iptables loads).
pub const DEFAULT_TOOLS: &[&str] = &[
    "/usr/sbin/criu",
    "/usr/sbin/ip",
    "/usr/bin/tar",
    "/usr/bin/gzip",
    "/usr/sbin/iptables-save",
    "/usr/sbin/iptables-restore",
    "/usr/sbin/ip6tables-save",
    "/usr/sbin/ip6tables-restore",
    "/usr/sbin/iptables-legacy-save",
    "/usr/sbin/iptables-legacy-restore",
    "/usr/sbin/ip6tables-legacy-save",
    "/usr/sbin/ip6tables-legacy-restore",
    "/usr/lib/x86_64-linux-gnu/xtables/libxt_mark.so",
    "/usr/lib/x86_64-linux-gnu/xtables/libxt_standard.so",
];

/// The [`DEFAULT_TOOLS`] present on this host.
pub fn default_tools() -> Vec<PathBuf> {
    DEFAULT_TOOLS.iter().map(PathBuf::from).filter(|p| p.is_file()).collect()
}

/// The private apt setup in the cache for one suite (`<cache>/apt/<suite>`): one suite per
/// list directory, so every apt call parses one suite's index, not the whole matrix's.
pub fn private_apt(cache: &Path, suite: &str) -> Result<apt::PrivateApt, LabError> {
    let a = apt::PrivateApt { dir: cache.join("apt").join(suite), mirror: apt::host_mirror()? };
    a.prepare(&[suite.to_string()])?;
    Ok(a)
}

/// Fetches a kernel through its suite's private apt (a local kernel needs no fetch).
pub fn fetch_kernel(
    spec: &KernelSpec,
    cache: &Path,
    progress: &(dyn Fn(kernels::fetch::FetchProgress<'_>) + Sync),
) -> Result<kernels::KernelFiles, LabError> {
    match spec.suite.as_deref() {
        Some(suite) if !spec.is_local() => {
            let apt = private_apt(cache, suite)?;
            Ok(kernels::fetch::fetch(spec, &apt, cache, progress)?)
        }
        _ => Ok(kernels::fetch::cached(spec, cache)?),
    }
}

/// A cached (or local) kernel, checked against the suite; errors tell how to fetch it.
pub fn checked_kernel(spec: &KernelSpec, matrix: &Matrix, cache: &Path) -> Result<CheckedKernel, LabError> {
    let files = kernels::fetch::cached(spec, cache)?;
    Ok(kernels::check(&files, &matrix.suite)?)
}

/// Builds (or reuses) the initramfs for a kernel; `init_override` replaces the agent.
pub fn image_for(
    k: &CheckedKernel,
    o: &LabOptions,
    init_override: Option<&Path>,
    progress: &dyn Fn(usize, usize),
) -> Result<PathBuf, LabError> {
    let inputs = ImageInputs {
        agent: o.agent.clone(),
        runtime: o.runtime.clone(),
        busybox: o.busybox.clone(),
        release: k.files.release.clone(),
        modules: k.modules.clone(),
        init_override: init_override.map(Path::to_path_buf),
        compression: o.compression,
        strip_module_signatures: o.strip_module_signatures,
        tools: o.tools.clone(),
    };
    image::build(&inputs, &o.cache.join("images"), progress)
        .map_err(|source| LabError::Image { kernel: k.files.name.clone(), source })
}

/// The file QEMU gets as `-kernel`: the PVH vmlinux when enabled and extractable, else the
/// bzImage.
pub fn boot_kernel(k: &CheckedKernel, o: &LabOptions) -> PathBuf {
    if o.pvh {
        if let Ok(p) = image::vmlinux::pvh_vmlinux(&k.files.vmlinuz, &o.cache.join("pvh")) {
            return p;
        }
    }
    k.files.vmlinuz.clone()
}

/// Makes the accelerator decision now for VMs of `k` booting `image` (`--accel auto` may
/// probe; the verdict is kept for the process).
pub fn decide_accel(o: &LabOptions, k: &CheckedKernel, image: &Path) {
    let kernel = boot_kernel(k, o);
    vm::resolve_accel(o.accel, probe_target(o, &kernel, image));
}

/// Boots one VM and runs `request`.
pub fn boot(
    k: &CheckedKernel,
    image: &Path,
    cgroup: CgroupMode,
    request: &Request,
    o: &LabOptions,
    interactive: bool,
    on_event: &mut dyn FnMut(&Event),
) -> VmReport {
    let cfg = vm_config(k, image, cgroup, o, interactive);
    let step = (!interactive).then_some(o.step_timeout);
    vm::run_vm(cfg, request, Timeouts { boot: o.boot_timeout, step }, on_event)
}

/// Kernel command-line words for a TCG guest: its TSC frequency (see [`vm::host_tsc_khz`]),
/// and `norandmaps` unless `guest_aslr`.
///
/// QEMU's TCG (7.2, Debian 12's) keys the code it has translated by virtual address, so a
/// position-independent binary mapped at a new random address on every start is translated
/// afresh each time: in a debian-6.12 guest `isorun --version` took 60–100 ms with user-space
/// ASLR and 10 ms without, `isorun run` of `/bin/true` 200–390 ms and 50–140 ms. Every
/// assertion makes several runtime calls, so without it the matrix spends most of its time
/// translating isorun. The kernel's own randomization (KASLR) is not touched, nor is any
/// namespace, cgroup or security property the catalogue checks; `--guest-aslr` keeps it.
pub fn tcg_words(accel: vm::Accel, guest_aslr: bool) -> Vec<String> {
    if accel != vm::Accel::Tcg {
        return vec![];
    }
    let tsc = vm::host_tsc_khz().map(|khz| format!("tsc_early_khz={khz}"));
    let aslr = (!guest_aslr).then(|| "norandmaps".to_owned());
    tsc.into_iter().chain(aslr).collect()
}

/// What `--accel auto` probes: this run's QEMU and `-cpu`, booting `kernel` + `image`.
pub fn probe_target<'a>(o: &'a LabOptions, kernel: &'a Path, image: &'a Path) -> vm::accel::ProbeTarget<'a> {
    vm::accel::ProbeTarget {
        qemu: &o.qemu,
        guest_cpu: o.cpu_model.as_deref().filter(|m| !m.is_empty()),
        kernel,
        initrd: image,
        cache: &o.cache,
    }
}

/// The QEMU configuration of a VM of `k` booting `image` (socket paths left empty).
pub fn vm_config(
    k: &CheckedKernel,
    image: &Path,
    cgroup: CgroupMode,
    o: &LabOptions,
    interactive: bool,
) -> QemuConfig {
    let kernel = boot_kernel(k, o);
    let accel = vm::resolve_accel(o.accel, probe_target(o, &kernel, image));
    QemuConfig {
        qemu: o.qemu.clone(),
        kernel,
        initrd: image.to_path_buf(),
        memory_mb: o.memory_mb,
        cpus: o.cpus,
        accel,
        cpu: o.cpu_model.clone(),
        cmdline: vm::args::kernel_cmdline(&CmdlineOptions {
            cgroup,
            quiet: o.quiet,
            extra: tcg_words(accel, o.guest_aslr)
                .into_iter()
                .chain(o.extra_cmdline.iter().cloned())
                .collect(),
            cpus: o.cpus,
        }),
        console: if interactive { Console::Stdio } else { Console::Socket(PathBuf::new()) },
        channel: PathBuf::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case(vm::Accel::Tcg, false, true ; "tcg randomizes nothing in user space")]
    #[test_case(vm::Accel::Tcg, true, false ; "tcg keeps aslr when asked")]
    #[test_case(vm::Accel::Kvm, false, false ; "kvm never")]
    #[test_case(vm::Accel::Kvm, true, false ; "kvm asked")]
    fn norandmaps_only_under_tcg(accel: vm::Accel, guest_aslr: bool, want: bool) {
        let words = tcg_words(accel, guest_aslr);
        assert_eq!(words.iter().any(|w| w == "norandmaps"), want, "{words:?}");
        if accel == vm::Accel::Kvm {
            assert!(words.is_empty(), "{words:?}");
        }
    }
}
