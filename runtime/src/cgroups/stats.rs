//! Statistics in the shape of runc's `events --stats` JSON, plus the OOM-kill counter.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::fsio::{flat_key, read, read_u64};
use super::CgroupError;

/// One `events` line: `{"type":"stats","id":..,"data":{..}}`.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Always `stats` here (runc also emits `oom`).
    #[serde(rename = "type")]
    pub typ: String,
    /// The container id.
    pub id: String,
    /// The statistics.
    pub data: Stats,
}

impl Event {
    /// The `stats` event of container `id`.
    pub fn stats(id: &str, data: Stats) -> Self {
        Self { typ: "stats".into(), id: id.into(), data }
    }
}

/// runc's `types.Stats` (the sections isorun fills).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// CPU time and throttling.
    pub cpu: Cpu,
    /// Memory usage, limits and `memory.stat`.
    pub memory: Memory,
    /// Process count and limit.
    pub pids: Pids,
    /// Block I/O counters.
    pub blkio: Blkio,
    /// Per page size (`2MB`) hugetlb usage.
    pub hugetlb: BTreeMap<String, Hugetlb>,
}

/// CPU statistics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cpu {
    /// Usage in nanoseconds.
    pub usage: CpuUsage,
    /// CFS throttling.
    pub throttling: Throttling,
}

/// CPU usage in nanoseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuUsage {
    /// Total.
    pub total: u64,
    /// Per CPU (v1 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    /// In the kernel.
    pub kernel: u64,
    /// In user space.
    pub user: u64,
}

/// CFS throttling counters.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Throttling {
    /// Enforcement periods.
    pub periods: u64,
    /// Periods in which the cgroup was throttled.
    pub throttled_periods: u64,
    /// Total throttled time, ns.
    pub throttled_time: u64,
}

/// Memory statistics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Memory {
    /// Page cache bytes.
    pub cache: u64,
    /// Memory.
    pub usage: MemoryEntry,
    /// Swap (v1: memory+swap).
    pub swap: MemoryEntry,
    /// `memory.stat` as is.
    pub raw: BTreeMap<String, u64>,
    /// Processes killed by the OOM killer in this cgroup (v1 memory.oom_control, v2
    /// memory.events `oom_kill`). An isorun addition to runc's shape.
    pub oom_kill: u64,
}

/// Usage, limit, peak and failure count of one memory counter (`u64::MAX` = no limit).
#[derive(Debug, Clone, Default, Serialize)]
pub struct MemoryEntry {
    /// Limit.
    pub limit: u64,
    /// Current usage.
    pub usage: u64,
    /// Peak usage.
    pub max: u64,
    /// Times the limit was hit.
    pub failcnt: u64,
}

/// Process counter.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Pids {
    /// Processes now.
    pub current: u64,
    /// Limit (0 = none, as runc).
    pub limit: u64,
}

/// Block I/O counters.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Blkio {
    /// Bytes per device and operation.
    #[serde(rename = "ioServiceBytesRecursive")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    /// I/Os per device and operation.
    #[serde(rename = "ioServicedRecursive")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

/// One block I/O counter.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct BlkioEntry {
    /// Device major.
    pub major: u64,
    /// Device minor.
    pub minor: u64,
    /// `Read`, `Write`, `Sync`, `Async`, `Total`, ...
    pub op: String,
    /// The count.
    pub value: u64,
}

/// Hugetlb usage of one page size.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Hugetlb {
    /// Bytes in use.
    pub usage: u64,
    /// Peak (v1).
    pub max: u64,
    /// Allocation failures.
    pub failcnt: u64,
}

fn opt_u64(p: &Path) -> Result<u64, CgroupError> {
    if p.exists() {
        read_u64(p)
    } else {
        Ok(0)
    }
}

fn raw_map(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| l.split_once(' ').and_then(|(k, v)| Some((k.to_owned(), v.trim().parse().ok()?))))
        .collect()
}

/// v1 `blkio.throttle.io_service_bytes`: `8:0 Read 4096` lines (+ a `Total` line).
pub fn parse_blkio_v1(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (dev, op, v) = (f.next()?, f.next()?, f.next()?);
            let (maj, min) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: maj.parse().ok()?,
                minor: min.parse().ok()?,
                op: op.to_owned(),
                value: v.parse().ok()?,
            })
        })
        .collect()
}

/// v2 `io.stat`: `8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...` → (bytes, ios) entries.
pub fn parse_io_stat(text: &str) -> (Vec<BlkioEntry>, Vec<BlkioEntry>) {
    let (mut bytes, mut ios) = (Vec::new(), Vec::new());
    for l in text.lines() {
        let mut f = l.split_whitespace();
        let Some((maj, min)) = f.next().and_then(|d| d.split_once(':')) else { continue };
        let (Ok(major), Ok(minor)) = (maj.parse(), min.parse()) else { continue };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else { continue };
            let Ok(value) = v.parse() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut bytes, "Read"),
                "wbytes" => (&mut bytes, "Write"),
                "rios" => (&mut ios, "Read"),
                "wios" => (&mut ios, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry { major, minor, op: op.to_owned(), value });
        }
    }
    (bytes, ios)
}

/// Hugetlb page sizes present in `dir` (from `hugetlb.<size>.<suffix>` file names).
fn hugetlb_sizes(dir: &Path, suffix: &str) -> Result<Vec<String>, CgroupError> {
    let entries = std::fs::read_dir(dir).map_err(|e| CgroupError::io("read dir", dir, &e))?;
    let mut v: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            e.file_name().to_str()?.strip_prefix("hugetlb.")?.strip_suffix(suffix).map(str::to_owned)
        })
        .filter(|s| !s.contains('.'))
        .collect();
    v.sort();
    Ok(v)
}

/// Statistics of a v1/hybrid cgroup; `dir(controller)` is its directory in that controller's
/// hierarchy (None: not mounted, section left empty).
pub fn read_v1(dir: &dyn Fn(&str) -> Option<PathBuf>) -> Result<Stats, CgroupError> {
    let mut s = Stats::default();
    if let Some(d) = dir("cpuacct") {
        s.cpu.usage.total = read_u64(&d.join("cpuacct.usage"))?;
        s.cpu.usage.percpu = read(&d.join("cpuacct.usage_percpu"))?
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        let stat = read(&d.join("cpuacct.stat"))?;
        // USER_HZ ticks → ns, as runc (USER_HZ is 100 on Linux).
        s.cpu.usage.user = flat_key(&stat, "user").unwrap_or(0) * 10_000_000;
        s.cpu.usage.kernel = flat_key(&stat, "system").unwrap_or(0) * 10_000_000;
    }
    if let Some(d) = dir("cpu") {
        let stat = read(&d.join("cpu.stat"))?;
        s.cpu.throttling = Throttling {
            periods: flat_key(&stat, "nr_periods").unwrap_or(0),
            throttled_periods: flat_key(&stat, "nr_throttled").unwrap_or(0),
            throttled_time: flat_key(&stat, "throttled_time").unwrap_or(0),
        };
    }
    if let Some(d) = dir("memory") {
        let entry = |prefix: &str| -> Result<MemoryEntry, CgroupError> {
            Ok(MemoryEntry {
                limit: opt_u64(&d.join(format!("{prefix}.limit_in_bytes")))?,
                usage: opt_u64(&d.join(format!("{prefix}.usage_in_bytes")))?,
                max: opt_u64(&d.join(format!("{prefix}.max_usage_in_bytes")))?,
                failcnt: opt_u64(&d.join(format!("{prefix}.failcnt")))?,
            })
        };
        s.memory.usage = entry("memory")?;
        s.memory.swap = entry("memory.memsw")?;
        s.memory.raw = raw_map(&read(&d.join("memory.stat"))?);
        s.memory.cache = s.memory.raw.get("cache").copied().unwrap_or(0);
        s.memory.oom_kill = flat_key(&read(&d.join("memory.oom_control"))?, "oom_kill").unwrap_or(0);
    }
    if let Some(d) = dir("pids") {
        s.pids.current = read_u64(&d.join("pids.current"))?;
        s.pids.limit = read_u64(&d.join("pids.max")).map(|l| if l == u64::MAX { 0 } else { l })?;
    }
    if let Some(d) = dir("blkio") {
        s.blkio.io_service_bytes_recursive =
            parse_blkio_v1(&read(&d.join("blkio.throttle.io_service_bytes"))?);
        s.blkio.io_serviced_recursive = parse_blkio_v1(&read(&d.join("blkio.throttle.io_serviced"))?);
    }
    if let Some(d) = dir("hugetlb") {
        for size in hugetlb_sizes(&d, ".usage_in_bytes")? {
            let f = |x: &str| read_u64(&d.join(format!("hugetlb.{size}.{x}")));
            let h = Hugetlb {
                usage: f("usage_in_bytes")?,
                max: f("max_usage_in_bytes")?,
                failcnt: f("failcnt")?,
            };
            s.hugetlb.insert(size, h);
        }
    }
    Ok(s)
}

/// Statistics of the v2 cgroup at `d` (sections of controllers not enabled stay empty).
pub fn read_v2(d: &Path) -> Result<Stats, CgroupError> {
    let mut s = Stats::default();
    let ctrls = read(&d.join("cgroup.controllers"))?;
    let has = |c: &str| ctrls.split_whitespace().any(|x| x == c);
    let stat = read(&d.join("cpu.stat"))?; // always present
    s.cpu.usage.total = flat_key(&stat, "usage_usec").unwrap_or(0) * 1000;
    s.cpu.usage.user = flat_key(&stat, "user_usec").unwrap_or(0) * 1000;
    s.cpu.usage.kernel = flat_key(&stat, "system_usec").unwrap_or(0) * 1000;
    s.cpu.throttling = Throttling {
        periods: flat_key(&stat, "nr_periods").unwrap_or(0),
        throttled_periods: flat_key(&stat, "nr_throttled").unwrap_or(0),
        throttled_time: flat_key(&stat, "throttled_usec").unwrap_or(0) * 1000,
    };
    if has("memory") {
        let events = read(&d.join("memory.events"))?;
        s.memory.usage = MemoryEntry {
            limit: read_u64(&d.join("memory.max"))?,
            usage: read_u64(&d.join("memory.current"))?,
            max: opt_u64(&d.join("memory.peak"))?,
            failcnt: flat_key(&events, "max").unwrap_or(0),
        };
        s.memory.swap = MemoryEntry {
            limit: opt_u64(&d.join("memory.swap.max"))?,
            usage: opt_u64(&d.join("memory.swap.current"))?,
            max: opt_u64(&d.join("memory.swap.peak"))?,
            failcnt: 0,
        };
        s.memory.raw = raw_map(&read(&d.join("memory.stat"))?);
        s.memory.cache = s.memory.raw.get("file").copied().unwrap_or(0);
        s.memory.oom_kill = flat_key(&events, "oom_kill").unwrap_or(0);
    }
    if has("pids") {
        s.pids.current = read_u64(&d.join("pids.current"))?;
        s.pids.limit = read_u64(&d.join("pids.max")).map(|l| if l == u64::MAX { 0 } else { l })?;
    }
    if has("io") {
        (s.blkio.io_service_bytes_recursive, s.blkio.io_serviced_recursive) =
            parse_io_stat(&read(&d.join("io.stat"))?);
    }
    if has("hugetlb") {
        for size in hugetlb_sizes(d, ".current")? {
            let f = |x: &str| read_u64(&d.join(format!("hugetlb.{size}.{x}")));
            let failcnt = flat_key(&read(&d.join(format!("hugetlb.{size}.events")))?, "max").unwrap_or(0);
            let h = Hugetlb { usage: f("current")?, max: 0, failcnt };
            s.hugetlb.insert(size, h);
        }
    }
    Ok(s)
}
