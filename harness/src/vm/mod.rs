//! Throwaway QEMU VMs: argument building, running under a watchdog, acceleration choice,
//! parallel runs. The watchdog of a run is a pure state machine ([`watchdog`]); [`run`] is its
//! I/O.

pub mod accel;
pub mod args;
mod error;
pub mod guard;
pub mod ksyms;
pub mod qmp;
pub mod run;
pub mod snapvm;
pub mod watchdog;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

pub use accel::{resolve_accel, AccelChoice};
pub use args::{Accel, CmdlineOptions, Console, QemuConfig};
pub use run::{run_vm, run_vm_snap, Timeouts, VmError, VmReport};
pub use snapvm::SnapMode;

/// The host's TSC frequency in kHz, for the guest's `tsc_early_khz=` under TCG (whose guest
/// TSC is the host's). Without it the guest calibrates its TSC against the emulated PIT, and on
/// a loaded host that goes wrong now and then — seen here: "PIT calibration deviates from HPET:
/// 190018 2592394", a guest clock 13× too fast; a snapshot would freeze such a boot for every
/// VM restored from it. From /proc/cpuinfo when the host kernel knows the frequency
/// (`tsc_known_freq`), else measured against the monotonic clock and rounded to 1 MHz (so the
/// kernel command line, part of a snapshot's key, stays the same from run to run).
pub fn host_tsc_khz() -> Option<u64> {
    static KHZ: OnceLock<Option<u64>> = OnceLock::new();
    *KHZ.get_or_init(|| {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        cpuinfo_tsc_khz(&info).or_else(measure_tsc_khz)
    })
}

/// `cpu MHz` of the first CPU, in kHz, if its flags say the TSC frequency is known (pure).
pub fn cpuinfo_tsc_khz(cpuinfo: &str) -> Option<u64> {
    let field = |name: &str| {
        cpuinfo.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim())
    };
    let flags = field("flags")?;
    let known = flags.split_whitespace().any(|f| f == "tsc_known_freq")
        && flags.split_whitespace().any(|f| f == "constant_tsc");
    let mhz: f64 = field("cpu MHz")?.parse().ok()?;
    (known && mhz > 0.0).then_some((mhz * 1000.0).round() as u64)
}

#[cfg(target_arch = "x86_64")]
fn measure_tsc_khz() -> Option<u64> {
    let sample = || {
        let t0 = std::time::Instant::now();
        // SAFETY: RDTSC has no preconditions on x86_64 (it reads a counter).
        let c0 = unsafe { std::arch::x86_64::_rdtsc() };
        std::thread::sleep(Duration::from_millis(50));
        let t1 = t0.elapsed();
        // SAFETY: as above.
        let c1 = unsafe { std::arch::x86_64::_rdtsc() };
        (c1.wrapping_sub(c0) as f64 / t1.as_secs_f64() / 1000.0) as u64
    };
    let mut v: Vec<u64> = (0..3).map(|_| sample()).collect();
    v.sort_unstable();
    let khz = v[1];
    (khz > 0).then_some((khz + 500) / 1000 * 1000)
}

#[cfg(not(target_arch = "x86_64"))]
fn measure_tsc_khz() -> Option<u64> {
    None
}

/// First line of `<qemu> --version` (remembered per binary for the process).
pub fn qemu_version(qemu: &str) -> String {
    static SEEN: OnceLock<Mutex<Vec<(String, String)>>> = OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    if let Some((_, v)) = seen.lock().unwrap_or_else(|p| p.into_inner()).iter().find(|(q, _)| q == qemu) {
        return v.clone();
    }
    let out = std::process::Command::new(qemu).arg("--version").output();
    let v = match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or_default().to_string(),
        Err(e) => format!("unknown ({e})"),
    };
    seen.lock().unwrap_or_else(|p| p.into_inner()).push((qemu.to_string(), v.clone()));
    v
}

/// A default for `--jobs`: bounded by cores and by available memory for `vm_mb`-sized VMs.
pub fn default_jobs(vm_mb: u32) -> usize {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let avail_mb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(1024);
    jobs_for(cores, avail_mb, vm_mb)
}

/// Pure part of [`default_jobs`]: QEMU needs ~200 MiB beyond guest RAM; keep 1 GiB spare.
pub fn jobs_for(cores: usize, avail_mb: u64, vm_mb: u32) -> usize {
    let by_mem = (avail_mb.saturating_sub(1024) / (u64::from(vm_mb) + 200)) as usize;
    cores.min(by_mem).max(1)
}

/// Runs `f` over `items` on up to `jobs` threads; results in input order.
pub fn run_parallel<T: Sync, R: Send>(items: &[T], jobs: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1).min(items.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
            });
        }
    });
    results.into_inner().unwrap_or_else(|p| p.into_inner()).into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case(2, 24_000, 512, 2 ; "cores bound")]
    #[test_case(16, 3_000, 512, 2 ; "memory bound")]
    #[test_case(4, 500, 512, 1 ; "at least one")]
    fn jobs(cores: usize, avail: u64, vm: u32, want: usize) {
        assert_eq!(jobs_for(cores, avail, vm), want);
    }

    #[test]
    fn tsc_from_cpuinfo_only_when_known() {
        let known = "processor\t: 0\ncpu MHz\t\t: 2596.130\nflags\t\t: fpu tsc constant_tsc tsc_known_freq\n";
        assert_eq!(cpuinfo_tsc_khz(known), Some(2_596_130));
        assert_eq!(
            cpuinfo_tsc_khz(&known.replace(" tsc_known_freq", "")),
            None,
            "cpu MHz may be a scaled clock"
        );
        assert_eq!(cpuinfo_tsc_khz("flags : tsc_known_freq constant_tsc\n"), None);
    }

    #[test]
    fn parallel_keeps_order() {
        let items: Vec<u32> = (0..20).collect();
        assert_eq!(run_parallel(&items, 3, |x| x * 2), items.iter().map(|x| x * 2).collect::<Vec<_>>());
    }

    #[test_case("auto", Some(AccelChoice::Auto) ; "auto")]
    #[test_case("tcg", Some(AccelChoice::Tcg) ; "tcg")]
    #[test_case("hvf", None ; "bad")]
    fn accel_parse(s: &str, want: Option<AccelChoice>) {
        assert_eq!(s.parse::<AccelChoice>().ok(), want);
    }
}
