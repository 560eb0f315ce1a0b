//! Density: N detached `sleep` containers per runtime (`run -d`), one after the other; the
//! total and per-container start time; host memory per container — the /proc/meminfo delta
//! (MemTotal − MemAvailable) over N, minus the sleep process's own PSS — beside the mean of
//! the containers' memory cgroup usage; then the time to `delete --force` them all. Every
//! container is registered with the guard before it is created. With `--variants` every
//! runtime runs every variant's bundle ([`super::variant`]), each its own line. With
//! `--parallel P` (P > 1) P threads each start (then delete) the next container as soon as
//! their last one's command returned, and the rows say `(P=…)`; P = 1 is the serial
//! measurement.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::variant::Variant;
use super::{guard, BenchError, Runtime, Workspace};

/// One runtime at one N.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Point {
    /// Display name: the runtime's for the default variant, `RUNTIME+VARIANT` otherwise.
    pub runtime: String,
    /// The bundle variant (`default`, `docker`, `userns`); absent in older bench.json files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Containers asked for.
    pub n: usize,
    /// Containers started before the end (or the error).
    pub started: usize,
    /// Containers in flight (`--parallel`); 0 (older bench.json files) and 1 are serial.
    #[serde(default)]
    pub parallel: usize,
    /// Time to start them all, s.
    pub start_total_s: f64,
    /// … per container, ms.
    pub start_per_ms: f64,
    /// Time to delete them all, s.
    pub delete_total_s: f64,
    /// … per container, ms.
    pub delete_per_ms: f64,
    /// (MemTotal − MemAvailable) after − before, over N, KiB.
    pub meminfo_kib: f64,
    /// Mean PSS of one sleep process, KiB.
    pub process_pss_kib: f64,
    /// meminfo_kib − process_pss_kib: what the runtime costs the host per container.
    pub host_kib: f64,
    /// (Slab + KernelStack + PageTables + Percpu) after − before, over N, KiB: the kernel's
    /// share, less disturbed by other processes' page cache and anonymous memory than the
    /// whole meminfo delta on a shared machine.
    pub kernel_kib: f64,
    /// Mean memory cgroup usage of a container (its process included), KiB.
    pub cgroup_kib: f64,
    /// The first error.
    pub error: Option<String>,
}

/// Runs every N (ascending) for every runtime in every variant (runtime-major); a runtime
/// × variant that fails at one N keeps the error and is not tried at larger ones. `max_n`
/// limits a runtime by its name, in every variant; `parallel` containers are in flight.
pub fn run(
    ws: &Workspace,
    runtimes: &[Runtime],
    variants: &[Variant],
    (ns, max_n): (&[usize], &[(String, usize)]),
    parallel: usize,
) -> Vec<Point> {
    let mut points = Vec::new();
    let mut broken: Vec<bool> = vec![false; runtimes.len() * variants.len()];
    'all: for &n in ns {
        for (ri, r) in runtimes.iter().enumerate() {
            let limit = max_n.iter().find(|(name, _)| *name == r.name).map(|(_, m)| *m);
            if limit.is_some_and(|m| n > m) {
                continue;
            }
            for (vi, &v) in variants.iter().enumerate() {
                let i = ri * variants.len() + vi;
                let mut p = Point {
                    runtime: v.series_name(&r.name),
                    variant: Some(v.name().into()),
                    n,
                    parallel: parallel.max(1),
                    ..Point::default()
                };
                match (&r.path, broken[i]) {
                    (Err(e), _) => p.error = Some(e.clone()),
                    (Ok(_), true) => continue,
                    (Ok(rt), false) => {
                        if let Err(e) = one(ws, rt, &ws.bundle(v), &ws.root(i), i, &mut p) {
                            p.error = Some(e.to_string());
                        }
                    }
                }
                broken[i] = p.error.is_some();
                eprintln!("isolab bench density: {} N={n}: {}", p.runtime, line(&p));
                points.push(p);
                if points.last().and_then(|p| p.error.as_deref()) == Some("interrupted") {
                    break 'all;
                }
            }
        }
    }
    // What a failed create may have left, while the state roots still exist.
    let failed = guard::cleanup_all();
    if !failed.is_empty() {
        eprintln!("isolab bench density: left behind after cleanup: {}", failed.join("; "));
    }
    points
}

fn line(p: &Point) -> String {
    match &p.error {
        Some(e) => format!("ERROR after {} started: {e}", p.started),
        None => format!(
            "{}start {:.2} s ({:.1} ms each), delete {:.2} s ({:.1} ms each), host {:.0} KiB, kernel {:.0} KiB per container",
            if p.parallel > 1 { format!("{} in flight: ", p.parallel) } else { String::new() },
            p.start_total_s, p.start_per_ms, p.delete_total_s, p.delete_per_ms, p.host_kib, p.kernel_kib
        ),
    }
}

fn one(
    ws: &Workspace,
    rt: &Path,
    bundle: &Path,
    root: &Path,
    idx: usize,
    p: &mut Point,
) -> Result<(), BenchError> {
    let ids: Vec<String> =
        (0..p.n).map(|k| format!("isolab-dens-{}-{idx}-{}-{k}", std::process::id(), p.n)).collect();
    std::thread::sleep(Duration::from_millis(500));
    let before = meminfo_kib();
    let t = Instant::now();
    let (started, made) = start_all(ws, (rt, bundle, root), &ids, p.parallel);
    p.start_total_s = t.elapsed().as_secs_f64();
    p.started = made.len();
    if started.is_ok() {
        p.start_per_ms = p.start_total_s * 1000.0 / p.n as f64;
        std::thread::sleep(Duration::from_millis(500));
        let after = meminfo_kib();
        let (pss, cg) = per_process(ws, &ids);
        p.meminfo_kib = (after.0 - before.0) / p.n as f64;
        p.kernel_kib = (after.1 - before.1) / p.n as f64;
        p.process_pss_kib = pss;
        p.cgroup_kib = cg;
        p.host_kib = p.meminfo_kib - pss;
    }
    let t = Instant::now();
    let deleted = delete_all(rt, root, &made, p.parallel);
    p.delete_total_s = t.elapsed().as_secs_f64();
    p.delete_per_ms = p.delete_total_s * 1000.0 / p.started.max(1) as f64;
    started.and(deleted)
}

/// `run -d` of every id (at most `parallel` at once), stopping at the first failure; the
/// first error and the ids started.
fn start_all<'a>(
    ws: &Workspace,
    (rt, bundle, root): (&Path, &Path, &Path),
    ids: &'a [String],
    parallel: usize,
) -> (Result<(), BenchError>, Vec<&'a String>) {
    let results = each(ids, parallel, true, |id| {
        guard::register(rt, root, id);
        let mut c = Command::new(rt);
        c.arg("--root").arg(root).args(["run", "-d", "--pid-file"]).arg(ws.file(&format!("{id}.pid")));
        c.arg("-b").arg(bundle).arg(id);
        let out = guard::run(&mut c)?;
        if !out.status.success() {
            return Err(failed(&c, &out));
        }
        Ok(())
    });
    let made =
        ids.iter().zip(&results).filter(|(_, r)| matches!(r, Some(Ok(())))).map(|(id, _)| id).collect();
    (first_error(results), made)
}

/// `delete --force` of every id (at most `parallel` at once), all of them even after a
/// failure; the first error.
fn delete_all(rt: &Path, root: &Path, ids: &[&String], parallel: usize) -> Result<(), BenchError> {
    let results = each(ids, parallel, false, |id| {
        let mut c = Command::new(rt);
        c.arg("--root").arg(root).args(["delete", "--force", id]);
        let out = guard::run(&mut c)?;
        if !out.status.success() {
            return Err(failed(&c, &out));
        }
        guard::unregister(id);
        Ok(())
    });
    first_error(results)
}

fn first_error(results: Vec<Option<Result<(), BenchError>>>) -> Result<(), BenchError> {
    results.into_iter().flatten().find(Result::is_err).unwrap_or(Ok(()))
}

/// `job` on every item, in order of index, by `parallel` threads (the caller's alone for 1:
/// one after the other), each taking the next item as soon as it is done with its last;
/// with `stop_on_error` no item is begun after a failure. Each item's result, `None` where
/// it was not begun.
fn each<T: Sync, E: Send>(
    items: &[T],
    parallel: usize,
    stop_on_error: bool,
    job: impl Fn(&T) -> Result<(), E> + Sync,
) -> Vec<Option<Result<(), E>>> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let slots: Vec<Mutex<Option<Result<(), E>>>> = items.iter().map(|_| Mutex::new(None)).collect();
    let worker = || {
        while !stop.load(Ordering::SeqCst) {
            let i = next.fetch_add(1, Ordering::SeqCst);
            let Some(item) = items.get(i) else { break };
            let r = job(item);
            if r.is_err() && stop_on_error {
                stop.store(true, Ordering::SeqCst);
            }
            *slots[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
        }
    };
    std::thread::scope(|s| {
        for _ in 1..parallel.max(1) {
            s.spawn(worker);
        }
        worker();
    });
    slots.into_iter().map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner())).collect()
}

fn failed(c: &Command, out: &std::process::Output) -> BenchError {
    BenchError::Failed {
        cmd: guard::describe(c),
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().lines().last().unwrap_or("").to_owned(),
    }
}

/// Mean PSS of the containers' processes and mean memory-cgroup usage, KiB.
fn per_process(ws: &Workspace, ids: &[String]) -> (f64, f64) {
    let (mut pss, mut cg, mut n) = (0.0, 0.0, 0usize);
    for id in ids {
        let Some(pid) = std::fs::read_to_string(ws.file(&format!("{id}.pid"))).ok() else { continue };
        let pid = pid.trim();
        let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        let usage = memory_cgroup_file(&cgroups)
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|s| s.trim().parse::<f64>().ok());
        pss += field_kib(&rollup, "Pss:").unwrap_or(0.0);
        cg += usage.unwrap_or(0.0) / 1024.0;
        n += 1;
    }
    let n = n.max(1) as f64;
    (pss / n, cg / n)
}

/// (MemTotal − MemAvailable, Slab + KernelStack + PageTables + Percpu), KiB.
fn meminfo_kib() -> (f64, f64) {
    let m = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let f = |k| field_kib(&m, k).unwrap_or(0.0);
    (f("MemTotal:") - f("MemAvailable:"), f("Slab:") + f("KernelStack:") + f("PageTables:") + f("Percpu:"))
}

/// The KiB value of `key` in a /proc key-value file (meminfo, smaps_rollup).
pub fn field_kib(text: &str, key: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The usage file of a process's memory cgroup from its /proc/PID/cgroup: the v1 `memory`
/// hierarchy when there is one, else the unified hierarchy's `memory.current`.
pub fn memory_cgroup_file(proc_cgroup: &str) -> Option<String> {
    let mut v2 = None;
    for l in proc_cgroup.lines() {
        let mut parts = l.splitn(3, ':');
        let (_, ctrl, path) = (parts.next()?, parts.next()?, parts.next()?);
        if ctrl.split(',').any(|c| c == "memory") {
            return Some(format!("/sys/fs/cgroup/memory{path}/memory.usage_in_bytes"));
        }
        if ctrl.is_empty() {
            let base = if Path::new("/sys/fs/cgroup/unified").is_dir() {
                "/sys/fs/cgroup/unified"
            } else {
                "/sys/fs/cgroup"
            };
            v2 = Some(format!("{base}{path}/memory.current"));
        }
    }
    v2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_each_runs_in_order_and_stops_at_the_first_failure() {
        let seen = Mutex::new(Vec::new());
        let r = each(&[1, 2, 3, 4], 1, true, |&i| {
            seen.lock().unwrap().push(i);
            if i == 2 {
                Err(i)
            } else {
                Ok(())
            }
        });
        assert_eq!(*seen.lock().unwrap(), vec![1, 2]);
        assert_eq!(r, vec![Some(Ok(())), Some(Err(2)), None, None]);
    }

    #[test]
    fn parallel_each_runs_every_item_once_and_keeps_going_unless_told() {
        let items: Vec<usize> = (0..200).collect();
        let count = AtomicUsize::new(0);
        let r = each(&items, 8, false, |&i| {
            count.fetch_add(1, Ordering::SeqCst);
            if i % 50 == 7 {
                Err(i)
            } else {
                Ok(())
            }
        });
        assert_eq!(count.load(Ordering::SeqCst), 200);
        assert_eq!(r.iter().filter(|x| matches!(x, Some(Err(_)))).count(), 4);
        assert!(r.iter().all(Option::is_some));
        assert_eq!(r[57], Some(Err(57)));
    }

    #[test]
    fn parallel_each_begins_nothing_after_a_failure_when_told() {
        let items: Vec<usize> = (0..1000).collect();
        let r = each(&items, 4, true, |&i| {
            if i == 10 {
                return Err(i);
            }
            std::thread::sleep(Duration::from_micros(200));
            Ok(())
        });
        assert_eq!(r[10], Some(Err(10)));
        assert!(r[..10].iter().all(|x| x == &Some(Ok(()))), "{:?}", &r[..10]);
        // Unstopped, the 4 threads would take ~50 ms for all 1000; stopped, only the items
        // already claimed when item 10 failed (a few) are begun after it.
        let begun = r.iter().filter(|x| x.is_some()).count();
        assert!(begun < 500, "{begun} begun");
        assert!(first_error(vec![Some(Ok(())), None]).is_ok());
    }

    #[test]
    fn meminfo_and_rollup_fields() {
        let m = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(field_kib(m, "MemTotal:"), Some(24000000.0));
        assert_eq!(field_kib(m, "MemAvailable:"), Some(20000000.0));
        assert_eq!(field_kib(m, "Pss:"), None);
        assert_eq!(field_kib("Rss: 12 kB\nPss:  7 kB\n", "Pss:"), Some(7.0));
    }

    #[test]
    fn v1_memory_hierarchy_wins() {
        let c = "9:name=systemd:/\n4:memory:/isorun/x\n0::/isorun/x\n";
        assert_eq!(
            memory_cgroup_file(c).as_deref(),
            Some("/sys/fs/cgroup/memory/isorun/x/memory.usage_in_bytes")
        );
    }

    #[test]
    fn unified_only_uses_memory_current() {
        let f = memory_cgroup_file("0::/a/b\n").unwrap();
        assert!(f.ends_with("/a/b/memory.current"), "{f}");
        assert_eq!(memory_cgroup_file("garbage"), None);
    }
}
