//! The accelerator: `--accel auto` (the default) boots one quick probe VM under KVM and uses
//! KVM if the agent answers, else TCG. Hosted CI runners have working KVM (10–50× faster);
//! nested KVM here is broken (guests hang or die with "emulation failure"), and the probe
//! must fall back cleanly.
//!
//! The verdict is cached in `<cache>/accel/`, under a key of what can change it: the host
//! kernel (release and build), the boot (a reboot may bring another hypervisor setup), the
//! CPU and the QEMU version. A changed host re-probes; an unchanged one pays nothing. Which
//! accelerator was used, and why, is said once per process (see [`set_reporter`]).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::args::{self, Accel, CmdlineOptions, Console, QemuConfig};
use super::run::{run_vm, Timeouts};
use crate::protocol::{Action, Request, PROTOCOL_VERSION};

/// The accelerator the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelChoice {
    /// KVM if a quick probe boot works, else TCG.
    Auto,
    /// Always TCG.
    Tcg,
    /// Always KVM (errors if unusable).
    Kvm,
}

impl std::str::FromStr for AccelChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(AccelChoice::Auto),
            "tcg" => Ok(AccelChoice::Tcg),
            "kvm" => Ok(AccelChoice::Kvm),
            _ => Err(format!("unknown accelerator {s:?} (auto|tcg|kvm)")),
        }
    }
}

/// How long the KVM probe may take to the agent's hello. A working KVM gets there in about a
/// second; a broken nested KVM hangs (the whole timeout) or dies at once.
pub const KVM_PROBE_TIMEOUT: Duration = Duration::from_secs(8);

/// What a probe (or the cache) says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// KVM works.
    pub kvm: bool,
    /// Why: the probe's hello time, or what went wrong.
    pub reason: String,
    /// How long the probe took.
    pub probe_ms: u64,
}

/// Where a decision came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--accel tcg|kvm`.
    Asked,
    /// `/dev/kvm` cannot be opened: no probe.
    NoKvmDevice(String),
    /// A verdict cached for this host.
    Cached,
    /// A probe run now.
    Probed,
}

/// The accelerator chosen, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What the user asked for.
    pub choice: AccelChoice,
    /// What is used.
    pub accel: Accel,
    /// Where that came from.
    pub source: Source,
    /// The verdict (cached or probed), if one was needed.
    pub verdict: Option<Verdict>,
}

impl Decision {
    /// One line for the user, e.g. `accel auto: tcg (KVM probe: no agent hello within 8s of
    /// boot; probed in 8.0 s)`.
    pub fn describe(&self) -> String {
        let asked = match self.choice {
            AccelChoice::Auto => "auto",
            AccelChoice::Tcg => "tcg",
            AccelChoice::Kvm => "kvm",
        };
        let why = match (&self.source, &self.verdict) {
            (Source::Asked, _) => "as asked".to_string(),
            (Source::NoKvmDevice(e), _) => format!("/dev/kvm: {e}"),
            (Source::Cached, Some(v)) => format!("KVM probe, cached for this host: {}", v.reason),
            (Source::Probed, Some(v)) => {
                format!("KVM probe: {}; probed in {:.1} s", v.reason, v.probe_ms as f64 / 1000.0)
            }
            (_, None) => String::new(),
        };
        format!("accel {asked}: {} ({})", self.accel.as_str(), why.replace('\n', " | "))
    }
}

/// The decision (pure apart from the callbacks): `probe` runs only for `Auto` with a usable
/// `/dev/kvm` and no cached verdict; `store` gets a fresh verdict to cache.
pub fn decide(
    choice: AccelChoice,
    kvm_device: Result<(), String>,
    cached: Option<Verdict>,
    probe: &mut dyn FnMut() -> Verdict,
    store: &mut dyn FnMut(&Verdict),
) -> Decision {
    let pick = |kvm: bool| if kvm { Accel::Kvm } else { Accel::Tcg };
    let asked = |accel| Decision { choice, accel, source: Source::Asked, verdict: None };
    match (choice, kvm_device, cached) {
        (AccelChoice::Tcg, _, _) => asked(Accel::Tcg),
        (AccelChoice::Kvm, _, _) => asked(Accel::Kvm),
        (AccelChoice::Auto, Err(e), _) => {
            Decision { choice, accel: Accel::Tcg, source: Source::NoKvmDevice(e), verdict: None }
        }
        (AccelChoice::Auto, Ok(()), Some(v)) => {
            Decision { choice, accel: pick(v.kvm), source: Source::Cached, verdict: Some(v) }
        }
        (AccelChoice::Auto, Ok(()), None) => {
            let v = probe();
            store(&v);
            Decision { choice, accel: pick(v.kvm), source: Source::Probed, verdict: Some(v) }
        }
    }
}

/// What the cached verdict is keyed by: a change in any field re-probes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostKey {
    /// `uname -r` and `uname -v` of the host.
    pub host_kernel: String,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
    /// CPU model name, and whether it shows vmx/svm/hypervisor.
    pub cpu: String,
    /// `<qemu> --version`, first line.
    pub qemu_version: String,
    /// The guest's `-cpu` model (`host` by default under KVM).
    pub guest_cpu: String,
}

impl HostKey {
    /// This host's key for `qemu` running guests with `-cpu guest_cpu` (None: `host`).
    pub fn detect(qemu: &str, guest_cpu: Option<&str>) -> HostKey {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default().trim().to_string();
        let cpuinfo = read("/proc/cpuinfo");
        let field = |name: &str| {
            cpuinfo
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim())
        };
        let flags: Vec<&str> = field("flags").unwrap_or("").split_whitespace().collect();
        let virt: Vec<&str> =
            ["vmx", "svm", "hypervisor"].into_iter().filter(|f| flags.contains(f)).collect();
        HostKey {
            host_kernel: format!(
                "{} {}",
                read("/proc/sys/kernel/osrelease"),
                read("/proc/sys/kernel/version")
            ),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            cpu: format!("{} [{}]", field("model name").unwrap_or("?"), virt.join(" ")),
            qemu_version: super::qemu_version(qemu),
            guest_cpu: guest_cpu.unwrap_or("host").to_string(),
        }
    }

    /// The cache file of this key under `dir` (pure).
    pub fn file(&self, dir: &Path) -> PathBuf {
        use sha2::{Digest, Sha256};
        let json = serde_json::to_vec(self).unwrap_or_default();
        dir.join(format!("kvm-{}.json", &crate::cache::hex(&Sha256::digest(json))[..16]))
    }
}

#[derive(Serialize, Deserialize)]
struct Cached {
    key: HostKey,
    verdict: Verdict,
}

/// The verdict cached for `key` under `dir`, if any (a file of another key is ignored).
pub fn load(dir: &Path, key: &HostKey) -> Option<Verdict> {
    let c: Cached = serde_json::from_slice(&std::fs::read(key.file(dir)).ok()?).ok()?;
    (c.key == *key).then_some(c.verdict)
}

/// Caches `v` for `key` under `dir` (written aside and renamed; a failure only costs a re-probe).
pub fn store(dir: &Path, key: &HostKey, v: &Verdict) {
    let c = Cached { key: key.clone(), verdict: v.clone() };
    let path = key.file(dir);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let ok = std::fs::create_dir_all(dir).is_ok()
        && std::fs::write(&tmp, serde_json::to_vec_pretty(&c).unwrap_or_default()).is_ok();
    if ok {
        let _ = std::fs::rename(&tmp, &path);
    }
}

fn kvm_device() -> Result<(), String> {
    std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").map(drop).map_err(|e| e.to_string())
}

/// Boots `kernel` + `initrd` once under KVM (with `-cpu guest_cpu`, None: `host`) with an
/// `Idle` request and a short timeout.
pub fn probe_kvm(qemu: &str, guest_cpu: Option<&str>, kernel: &Path, initrd: &Path) -> Verdict {
    let start = Instant::now();
    let cfg = QemuConfig {
        qemu: qemu.to_string(),
        kernel: kernel.to_path_buf(),
        initrd: initrd.to_path_buf(),
        memory_mb: 256,
        cpus: 1,
        accel: Accel::Kvm,
        cpu: guest_cpu.map(str::to_string),
        cmdline: args::kernel_cmdline(&CmdlineOptions {
            cgroup: Default::default(),
            quiet: true,
            extra: vec![],
            cpus: 1,
        }),
        console: Console::Socket(Default::default()),
        channel: Default::default(),
    };
    let req = Request { protocol_version: PROTOCOL_VERSION, action: Action::Idle };
    let t = Timeouts { boot: KVM_PROBE_TIMEOUT, step: Some(Duration::from_secs(3)) };
    let report = run_vm(cfg, &req, t, &mut |_| {});
    let probe_ms = start.elapsed().as_millis() as u64;
    match (&report.error, &report.hello, report.boot_time) {
        (None, Some(_), Some(b)) => {
            Verdict { kvm: true, reason: format!("agent ready in {:.2} s", b.as_secs_f64()), probe_ms }
        }
        (err, _, _) => {
            let err = err.as_ref().map(ToString::to_string).unwrap_or_else(|| "no hello".into());
            let last = report.console_tail.iter().rev().find(|l| !l.trim().is_empty());
            let last = last.map(|l| format!("; console: {}", l.trim())).unwrap_or_default();
            let one_line = format!("{err}{last}").replace('\n', " | ");
            let why: String = one_line.chars().filter(|c| !c.is_control()).take(300).collect();
            Verdict { kvm: false, reason: why, probe_ms }
        }
    }
}

static DECISION: OnceLock<Decision> = OnceLock::new();
static REPORTER: OnceLock<fn(&Decision)> = OnceLock::new();

/// Has `f` called with the decision when it is made (once per process), e.g. to print it.
pub fn set_reporter(f: fn(&Decision)) {
    let _ = REPORTER.set(f);
}

/// Where and how VMs run, for [`resolve_accel`].
#[derive(Debug, Clone, Copy)]
pub struct ProbeTarget<'a> {
    /// QEMU binary.
    pub qemu: &'a str,
    /// `-cpu` model (None: `host` under KVM).
    pub guest_cpu: Option<&'a str>,
    /// The kernel the probe boots.
    pub kernel: &'a Path,
    /// Its initramfs (with the agent).
    pub initrd: &'a Path,
    /// The cache root (verdicts go to `accel/` in it).
    pub cache: &'a Path,
}

/// Resolves `choice` once per process: for `Auto`, the verdict cached under `cache/accel`
/// for this host, else a probe boot of the target's kernel (cached afterwards).
pub fn resolve_accel(choice: AccelChoice, t: ProbeTarget<'_>) -> Accel {
    if choice != AccelChoice::Auto {
        return match choice {
            AccelChoice::Kvm => Accel::Kvm,
            _ => Accel::Tcg,
        };
    }
    DECISION
        .get_or_init(|| {
            let dir = t.cache.join("accel");
            let key = HostKey::detect(t.qemu, t.guest_cpu);
            let d = decide(
                choice,
                kvm_device(),
                load(&dir, &key),
                &mut || probe_kvm(t.qemu, t.guest_cpu, t.kernel, t.initrd),
                &mut |v| store(&dir, &key, v),
            );
            if let Some(report) = REPORTER.get() {
                report(&d);
            }
            d
        })
        .accel
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    fn v(kvm: bool) -> Verdict {
        Verdict { kvm, reason: if kvm { "ready".into() } else { "emulation failure".into() }, probe_ms: 5 }
    }

    #[test_case(AccelChoice::Tcg, Ok(()), None, Some(true), Accel::Tcg, Source::Asked, 0 ; "tcg asked")]
    #[test_case(AccelChoice::Kvm, Err("ENOENT".into()), None, None, Accel::Kvm, Source::Asked, 0 ; "kvm asked")]
    #[test_case(AccelChoice::Auto, Err("ENOENT".into()), None, Some(true), Accel::Tcg, Source::NoKvmDevice("ENOENT".into()), 0 ; "no device no probe")]
    #[test_case(AccelChoice::Auto, Ok(()), None, Some(true), Accel::Kvm, Source::Probed, 1 ; "probe passes")]
    #[test_case(AccelChoice::Auto, Ok(()), None, Some(false), Accel::Tcg, Source::Probed, 1 ; "probe fails")]
    #[test_case(AccelChoice::Auto, Ok(()), Some(v(true)), Some(false), Accel::Kvm, Source::Cached, 0 ; "cached kvm")]
    #[test_case(AccelChoice::Auto, Ok(()), Some(v(false)), Some(true), Accel::Tcg, Source::Cached, 0 ; "cached tcg")]
    fn decisions(
        choice: AccelChoice,
        dev: Result<(), String>,
        cached: Option<Verdict>,
        probe_says: Option<bool>,
        want: Accel,
        source: Source,
        probes: u32,
    ) {
        let (mut ran, mut stored) = (0, Vec::new());
        let mut probe = || {
            ran += 1;
            v(probe_says.expect("no probe expected"))
        };
        let d = decide(choice, dev, cached, &mut probe, &mut |v| stored.push(v.clone()));
        assert_eq!((d.accel, &d.source, ran), (want, &source, probes));
        assert_eq!(stored.len() as u32, probes, "a probe's verdict is cached, a cached one is not re-stored");
        if probes == 1 {
            assert_eq!(d.verdict, Some(stored[0].clone()));
        }
        assert!(d.describe().starts_with(&format!(
            "accel {}: {}",
            ["auto", "tcg", "kvm"][choice as usize],
            want.as_str()
        )));
    }

    #[test]
    fn the_cache_is_keyed_by_the_host() {
        let t = tempfile::tempdir().unwrap();
        let key = HostKey {
            host_kernel: "6.18 #1".into(),
            boot_id: "b1".into(),
            cpu: "AMD EPYC [svm hypervisor]".into(),
            qemu_version: "QEMU 7.2".into(),
            guest_cpu: "host".into(),
        };
        assert_eq!(load(t.path(), &key), None);
        store(t.path(), &key, &v(false));
        assert_eq!(load(t.path(), &key), Some(v(false)));
        for change in [
            HostKey { host_kernel: "6.19 #1".into(), ..key.clone() },
            HostKey { boot_id: "b2".into(), ..key.clone() },
            HostKey { cpu: "Intel".into(), ..key.clone() },
            HostKey { qemu_version: "QEMU 8.0".into(), ..key.clone() },
            HostKey { guest_cpu: "qemu64".into(), ..key.clone() },
        ] {
            assert_eq!(load(t.path(), &change), None, "{change:?} must re-probe");
        }
        // A file under the right name but of another key (a hash collision, a hand copy) is ignored.
        let other = HostKey { boot_id: "b9".into(), ..key.clone() };
        std::fs::copy(key.file(t.path()), other.file(t.path())).unwrap();
        assert_eq!(load(t.path(), &other), None);
    }
}
