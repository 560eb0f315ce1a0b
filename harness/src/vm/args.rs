//! QEMU command line and kernel command line, built by pure functions.

use std::path::PathBuf;

use crate::protocol::CgroupMode;

/// The accelerator actually used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Software emulation (always works; the default here).
    Tcg,
    /// Hardware virtualization.
    Kvm,
}

impl Accel {
    /// Name for QEMU's `accel=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

impl Accel {
    /// The value of QEMU's `-accel`. TCG runs every vCPU on one host thread
    /// (`thread=single`): with one thread per vCPU (MTTCG) a guest kernel's live code patching
    /// (`text_poke_bp`, e.g. the CFS-bandwidth static key that a cpu quota switches on) raced
    /// with the other vCPU's translated code, which then ran the patch's int3 after the patch
    /// was done: "Oops: int3 … RIP: enqueue_entity", "Kernel panic - not syncing: Fatal
    /// exception in interrupt" (debian-6.12/v2 in CI, running `cgroup.cpu.quota`).
    pub fn qemu_accel(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg,thread=single",
            Accel::Kvm => "kvm",
        }
    }
}

/// Where the guest console (ttyS0) goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Console {
    /// A unix socket the harness listens on (captured, watched for panics).
    Socket(PathBuf),
    /// QEMU's own stdin/stdout (interactive use).
    Stdio,
}

/// Everything needed to start one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuConfig {
    /// QEMU binary.
    pub qemu: String,
    /// bzImage.
    pub kernel: PathBuf,
    /// initramfs.
    pub initrd: PathBuf,
    /// Guest memory, MiB.
    pub memory_mb: u32,
    /// vCPUs.
    pub cpus: u32,
    /// Accelerator.
    pub accel: Accel,
    /// `-cpu` model; None = `host` under KVM, QEMU's default model under TCG.
    pub cpu: Option<String>,
    /// Kernel command line.
    pub cmdline: String,
    /// Console destination.
    pub console: Console,
    /// Unix socket (harness listens) for the agent channel (ttyS1).
    pub channel: PathBuf,
}

/// Options for the kernel command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdlineOptions {
    /// cgroup hierarchy to mount.
    pub cgroup: CgroupMode,
    /// Suppress kernel messages below warnings (much faster on an emulated UART).
    pub quiet: bool,
    /// Extra words appended verbatim.
    pub extra: Vec<String>,
    /// vCPUs: with more than one, ACPI stays on (it is how the kernel finds the others).
    pub cpus: u32,
}

/// Loops-per-jiffy preset: skips delay-loop calibration (~0.1–0.2 s under TCG). Only
/// `udelay` precision depends on it, which nothing in a throwaway VM cares about.
pub const LPJ: u64 = 4_000_000;

/// CPU model under TCG: QEMU's baseline model. `max` makes boot ~0.3 s slower (more
/// alternatives to patch, more features to emulate) and the suite needs none of its extras.
pub const DEFAULT_TCG_CPU: &str = "qemu64";

/// Boot-time cuts measured under TCG (see harness/README.md): skip crypto self-tests
/// (~50 ms), the jitter-entropy RNG's start-up health test (~170 ms, pure CPU under emulation),
/// the kdf108 self-test and ftrace's eval-map sync; and no ACPI (~120 ms of table parsing and
/// device scans; the 8250 UARTs, APIC and SMP come from legacy tables and the harness kills
/// QEMU after `Done`, so ACPI power-off is not needed). Unknown initcall names are ignored by
/// older kernels.
pub const FAST_BOOT: &[&str] =
    &["cryptomgr.notests", "initcall_blacklist=jent_mod_init,crypto_kdf108_init,trace_eval_init", "acpi=off"];

/// The kernel command line (pure).
pub fn kernel_cmdline(o: &CmdlineOptions) -> String {
    let mut w: Vec<String> = [
        "console=ttyS0",
        "rdinit=/init",
        "panic=-1",
        "oops=panic",
        "8250.nr_uarts=2",
        "mitigations=off",
        "tsc=reliable",
        "no_timer_check",
        "nokaslr",
        "i8042.noaux",
        "i8042.nokbd",
        "random.trust_cpu=on",
    ]
    .iter()
    .chain(FAST_BOOT.iter().filter(|w| o.cpus <= 1 || **w != "acpi=off"))
    .map(|s| s.to_string())
    .collect();
    w.push(format!("lpj={LPJ}"));
    if o.quiet {
        w.push("quiet".into());
        w.push("loglevel=3".into());
    }
    w.push(format!("isolab.cgroup={}", o.cgroup.as_str()));
    match o.cgroup {
        // Nothing may bind controllers to v1: all of them stay available on the unified tree.
        CgroupMode::V2 => w.extend(["cgroup_no_v1=all".into(), "systemd.unified_cgroup_hierarchy=1".into()]),
        CgroupMode::V1 => w.extend([
            "systemd.unified_cgroup_hierarchy=0".into(),
            "SYSTEMD_CGROUP_ENABLE_LEGACY_FORCE=1".into(),
        ]),
    }
    w.extend(o.extra.iter().cloned());
    w.join(" ")
}

/// `p` as the value of a QEMU `key=value,...` option: a comma is written `,,` (a temp dir may
/// hold one; unescaped, it would end the value and start a bogus key).
fn opt_value(p: &std::path::Path) -> String {
    p.display().to_string().replace(',', ",,")
}

/// The QEMU arguments (pure).
pub fn qemu_args(c: &QemuConfig) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
    // q35 without the devices we never use (microvm hangs with Debian's kernels).
    push(&["-machine", "q35,sata=off,smbus=off,usb=off,vmport=off,smm=off,graphics=off"]);
    push(&["-accel", c.accel.qemu_accel()]);
    let default_cpu = if c.accel == Accel::Kvm { "host" } else { DEFAULT_TCG_CPU };
    push(&["-cpu", c.cpu.as_deref().filter(|m| !m.is_empty()).unwrap_or(default_cpu)]);
    push(&["-m", &c.memory_mb.to_string(), "-smp", &c.cpus.to_string()]);
    push(&["-nodefaults", "-no-user-config", "-no-reboot", "-display", "none"]);
    push(&["-kernel", &c.kernel.to_string_lossy(), "-initrd", &c.initrd.to_string_lossy()]);
    push(&["-append", &c.cmdline]);
    match &c.console {
        Console::Socket(p) => push(&["-chardev", &format!("socket,id=con,path={}", opt_value(p))]),
        Console::Stdio => push(&["-chardev", "stdio,id=con,signal=off"]),
    }
    push(&["-chardev", &format!("socket,id=chan,path={}", opt_value(&c.channel))]);
    push(&["-serial", "chardev:con", "-serial", "chardev:chan"]);
    a
}

#[cfg(test)]
mod smp_tests {
    use super::*;

    #[test]
    fn acpi_stays_on_for_smp_guests() {
        let o = |cpus| CmdlineOptions { cgroup: CgroupMode::V2, quiet: true, extra: vec![], cpus };
        assert!(kernel_cmdline(&o(1)).split_whitespace().any(|w| w == "acpi=off"));
        assert!(!kernel_cmdline(&o(2)).contains("acpi=off"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    fn cfg(accel: Accel, console: Console) -> QemuConfig {
        QemuConfig {
            qemu: "qemu-system-x86_64".into(),
            kernel: "/k/vmlinuz".into(),
            initrd: "/i/initrd.cpio".into(),
            memory_mb: 512,
            cpus: 2,
            accel,
            cpu: None,
            cmdline: "console=ttyS0".into(),
            console,
            channel: "/t/chan.sock".into(),
        }
    }

    fn after<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2).filter(|w| w[0] == flag).map(|w| w[1].as_str()).collect()
    }

    #[test_case(Accel::Tcg, DEFAULT_TCG_CPU, "tcg,thread=single" ; "tcg")]
    #[test_case(Accel::Kvm, "host", "kvm" ; "kvm")]
    fn accel_and_cpu(accel: Accel, cpu: &str, qemu_accel: &str) {
        let a = qemu_args(&cfg(accel, Console::Socket("/t/con.sock".into())));
        assert_eq!(after(&a, "-cpu"), vec![cpu]);
        assert_eq!(after(&a, "-accel"), vec![qemu_accel]);
        assert!(after(&a, "-machine")[0].starts_with("q35,") && !after(&a, "-machine")[0].contains("accel="));
    }

    #[test_case(Console::Socket("/t/con.sock".into()), "socket,id=con,path=/t/con.sock" ; "socket")]
    #[test_case(Console::Stdio, "stdio,id=con,signal=off" ; "stdio")]
    fn console_and_channel(console: Console, con: &str) {
        let a = qemu_args(&cfg(Accel::Tcg, console));
        assert_eq!(after(&a, "-chardev"), vec![con, "socket,id=chan,path=/t/chan.sock"]);
        assert_eq!(after(&a, "-serial"), vec!["chardev:con", "chardev:chan"], "console ttyS0, agent ttyS1");
        for f in ["-nodefaults", "-no-reboot"] {
            assert!(a.iter().any(|x| x == f), "{f} missing");
        }
        assert_eq!(after(&a, "-kernel"), vec!["/k/vmlinuz"]);
        assert_eq!(after(&a, "-initrd"), vec!["/i/initrd.cpio"]);
        assert_eq!(after(&a, "-m"), vec!["512"]);
        assert_eq!(after(&a, "-smp"), vec!["2"]);
    }

    #[test_case(CgroupMode::V2, true, &["isolab.cgroup=v2", "cgroup_no_v1=all", "quiet"], &["isolab.cgroup=v1"] ; "v2 quiet")]
    #[test_case(CgroupMode::V1, false, &["isolab.cgroup=v1", "systemd.unified_cgroup_hierarchy=0"], &["cgroup_no_v1=all", "quiet"] ; "v1 verbose")]
    fn cmdline(cg: CgroupMode, quiet: bool, has: &[&str], lacks: &[&str]) {
        let s = kernel_cmdline(&CmdlineOptions { cgroup: cg, quiet, extra: vec!["x=1".into()], cpus: 1 });
        let words: Vec<&str> = s.split(' ').collect();
        for h in has.iter().chain(&["console=ttyS0", "panic=-1", "rdinit=/init", "x=1"]) {
            assert!(words.contains(h), "{h} missing in {s}");
        }
        for l in lacks {
            assert!(!words.contains(l), "{l} present in {s}");
        }
    }
}
