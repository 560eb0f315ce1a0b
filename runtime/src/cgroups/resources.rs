//! `linux.resources` → the cgroup files to write, for v1 or v2 (runc's conversions).
//! Pure: [`plan`] only decides; the manager checks the controllers and writes.

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxMemory, LinuxResources, LinuxThrottleDevice,
};

use super::CgroupError;

/// One value to write into one file of the container's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The config field it comes from (`linux.resources.memory.limit`).
    pub field: &'static str,
    /// The controller that must be available (`memory`; v2: `io`, v1: `blkio`).
    pub controller: &'static str,
    /// The file name inside the cgroup directory.
    pub file: String,
    /// A file to write instead when `file` does not exist (`blkio.bfq.weight`).
    pub fallback: Option<&'static str>,
    /// Skip it when the kernel has no such file (runc's swap -1 that follows memory -1 only
    /// "if swap accounting is enabled").
    pub optional: bool,
    /// The value.
    pub value: String,
}

fn set(
    field: &'static str,
    controller: &'static str,
    file: impl Into<String>,
    value: impl ToString,
) -> Setting {
    Setting {
        field,
        controller,
        file: file.into(),
        fallback: None,
        optional: false,
        value: value.to_string(),
    }
}

fn unsupported(field: &str, reason: &str) -> CgroupError {
    CgroupError::Unsupported { field: field.to_owned(), reason: reason.to_owned() }
}

/// Whether `s` names a huge page size the way the hugetlb controller's files do (`2MB`,
/// `1GB`, `64KB`): digits, then `KB`, `MB` or `GB`.
pub fn is_page_size(s: &str) -> bool {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && digits <= 10 && matches!(&s[digits..], "KB" | "MB" | "GB")
}

/// runc's default device rules, appended after the config's rules (mknod anything; use
/// null, zero, full, random, urandom, tty, console pts, ptmx, tun).
pub const DEFAULT_DEVICES: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:8 rwm",
    "c 1:7 rwm",
    "c 5:0 rwm",
    "c 1:5 rwm",
    "c 1:9 rwm",
    "c 136:* rwm",
    "c 5:2 rwm",
    "c 10:200 rwm",
];

/// `c 1:3 rwm`, with `*` for absent numbers and `rwm` for absent access.
pub fn device_rule(d: &LinuxDeviceCgroup) -> String {
    let num = |n: Option<i64>| n.filter(|n| *n >= 0).map_or_else(|| "*".to_owned(), |n| n.to_string());
    let access = d.access().as_deref().filter(|a| !a.is_empty()).unwrap_or("rwm");
    format!("{} {}:{} {access}", d.typ().unwrap_or_default().as_str(), num(d.major()), num(d.minor()))
}

/// runc's cpu.shares → cpu.weight conversion.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        0
    } else {
        1 + (shares.saturating_sub(2) * 9999) / 262_142
    }
}

/// runc's blkio weight (10–1000) → io.weight (1–10000) conversion.
pub fn blkio_weight_to_io(w: u16) -> u64 {
    if w == 0 {
        0
    } else {
        1 + (u64::from(w).saturating_sub(10) * 9999) / 990
    }
}

/// The settings for `res` on a v1 (`v2 == false`) or v2 cgroup, in write order. Errors for
/// fields the cgroup version cannot express (kernel memory limits on v2, for one).
///
/// Zero means "unset" wherever runc's libcontainer (cgroups/fs, fs2) treats it so, because
/// engines send zeros for what they do not change (Docker's `update` without `--memory`:
/// `"memory":{"limit":0,"reservation":0}`): memory limit, reservation and swap, pids limit,
/// cpu shares/quota/period/realtime, blkio weights (also per device), net_cls classID.
/// Zero stays a value for hugepage limits and throttles, as in runc.
pub fn plan(res: &LinuxResources, v2: bool) -> Result<Vec<Setting>, CgroupError> {
    let mut out = Vec::new();
    if let Some(m) = res.memory() {
        memory(m, v2, &mut out)?;
    }
    if let Some(p) = res.pids().filter(|p| p.limit() != 0) {
        let v = if p.limit() > 0 { p.limit().to_string() } else { "max".to_owned() };
        out.push(set("linux.resources.pids.limit", "pids", "pids.max", v));
    }
    if let Some(c) = res.cpu() {
        cpu(c, v2, &mut out)?;
    }
    if let Some(b) = res.block_io() {
        block_io(b, v2, &mut out);
    }
    hugepages(res.hugepage_limits().as_deref().unwrap_or_default(), v2, &mut out)?;
    if let Some(devs) = res.devices().as_ref().filter(|d| !d.is_empty()) {
        // v2: compiled to a BPF program by the manager (devices.rs), not a file write.
        if !v2 {
            for d in devs {
                let file = if d.allow() { "devices.allow" } else { "devices.deny" };
                out.push(set("linux.resources.devices", "devices", file, device_rule(d)));
            }
            for r in DEFAULT_DEVICES {
                out.push(set("linux.resources.devices", "devices", "devices.allow", r));
            }
        }
    }
    if let Some(n) = res.network() {
        network(n, v2, &mut out)?;
    }
    if res.rdma().as_ref().is_some_and(|r| !r.is_empty()) {
        return Err(unsupported("linux.resources.rdma", "the rdma controller is not supported by isorun"));
    }
    if let Some(u) = res.unified().as_ref().filter(|u| !u.is_empty()) {
        unified(u, v2, &mut out)?;
    }
    Ok(out)
}

fn hugepages(
    limits: &[oci_spec::runtime::LinuxHugepageLimit],
    v2: bool,
    out: &mut Vec<Setting>,
) -> Result<(), CgroupError> {
    for h in limits {
        // The size becomes part of a file name: `isorun update --resources` reaches here
        // without config.json's validation, so it is checked here too.
        if !is_page_size(h.page_size()) {
            return Err(unsupported(
                "linux.resources.hugepageLimits",
                &format!("{:?} is not a page size like \"2MB\" (digits, then KB, MB or GB)", h.page_size()),
            ));
        }
        let (file, v) =
            if v2 { ("max", h.limit().to_string()) } else { ("limit_in_bytes", h.limit().to_string()) };
        out.push(set(
            "linux.resources.hugepageLimits",
            "hugetlb",
            format!("hugetlb.{}.{file}", h.page_size()),
            v,
        ));
    }
    Ok(())
}

fn network(n: &oci_spec::runtime::LinuxNetwork, v2: bool, out: &mut Vec<Setting>) -> Result<(), CgroupError> {
    if v2
        && (n.class_id().is_some_and(|id| id != 0) || n.priorities().as_ref().is_some_and(|p| !p.is_empty()))
    {
        return Err(unsupported("linux.resources.network", "net_cls/net_prio do not exist on cgroup v2"));
    }
    if let Some(id) = n.class_id().filter(|id| *id != 0) {
        out.push(set("linux.resources.network.classID", "net_cls", "net_cls.classid", id));
    }
    for p in n.priorities().iter().flatten() {
        let name = p.name();
        if name.is_empty() || name.len() > 15 || name.bytes().any(|b| b.is_ascii_whitespace() || b == b'/') {
            return Err(unsupported(
                "linux.resources.network.priorities",
                &format!("{name:?} is not an interface name (1 to 15 bytes, no whitespace or /)"),
            ));
        }
        out.push(set(
            "linux.resources.network.priorities",
            "net_prio",
            "net_prio.ifpriomap",
            format!("{} {}", p.name(), p.priority()),
        ));
    }
    Ok(())
}

fn unified(
    u: &std::collections::HashMap<String, String>,
    v2: bool,
    out: &mut Vec<Setting>,
) -> Result<(), CgroupError> {
    let mut keys: Vec<_> = u.iter().collect();
    keys.sort();
    for (k, v) in keys {
        if !v2 {
            return Err(unsupported(
                &format!("linux.resources.unified.{k}"),
                "unified keys need cgroup v2, this host uses v1 controllers",
            ));
        }
        if k.contains('/') || k.starts_with('.') || !k.contains('.') {
            return Err(unsupported(&format!("linux.resources.unified.{k}"), "not a cgroup file name"));
        }
        let controller = match k.split_once('.') {
            Some(("cgroup", _)) => "",
            Some((c, _)) => leak_controller(c),
            None => "",
        };
        out.push(Setting {
            field: "linux.resources.unified",
            controller,
            file: k.clone(),
            fallback: None,
            optional: false,
            value: v.clone(),
        });
    }
    Ok(())
}

/// Known v2 controller names as `'static` (unknown ones are checked as "no controller").
fn leak_controller(c: &str) -> &'static str {
    ["cpu", "cpuset", "io", "memory", "hugetlb", "pids", "rdma", "misc"]
        .into_iter()
        .find(|k| *k == c)
        .unwrap_or("")
}

fn memory(m: &LinuxMemory, v2: bool, out: &mut Vec<Setting>) -> Result<(), CgroupError> {
    let nonzero = |v: Option<i64>| v.filter(|v| *v != 0);
    // Kernel memory limits (deprecated, zero = unset): written where a v1 kernel still has
    // the files (a kernel without them fails the write, naming the field); v2 has none.
    let kmem = [
        ("linux.resources.memory.kernel", "memory.kmem.limit_in_bytes", nonzero(m.kernel())),
        ("linux.resources.memory.kernelTCP", "memory.kmem.tcp.limit_in_bytes", nonzero(m.kernel_tcp())),
    ];
    for (field, file, v) in kmem {
        match v {
            Some(_) if v2 => return Err(unsupported(field, "cgroup v2 has no kernel memory limit")),
            Some(v) => out.push(set(field, "memory", file, v)),
            None => {}
        }
    }
    let (limit, swap, reservation) = (nonzero(m.limit()), nonzero(m.swap()), nonzero(m.reservation()));
    if v2 {
        if m.disable_oom_killer() == Some(true) {
            return Err(unsupported(
                "linux.resources.memory.disableOOMKiller",
                "cgroup v2 has no OOM-killer switch",
            ));
        }
        if m.swappiness().is_some() {
            return Err(unsupported(
                "linux.resources.memory.swappiness",
                "cgroup v2 has no per-cgroup swappiness",
            ));
        }
        let max = |v: i64| if v < 0 { "max".to_owned() } else { v.to_string() };
        if let Some(l) = limit {
            out.push(set("linux.resources.memory.limit", "memory", "memory.max", max(l)));
        }
        if let Some(r) = reservation {
            out.push(set("linux.resources.memory.reservation", "memory", "memory.low", max(r)));
        }
        // runc's ConvertMemorySwapToCgroupV2Value: memory.swap.max is swap - limit.
        let v = match (swap.unwrap_or(0), limit.unwrap_or(0)) {
            (0, -1) | (-1, _) => "max".to_owned(),
            (0, _) => return Ok(()),
            (_, 0 | -1) => {
                return Err(unsupported("linux.resources.memory.swap", "a swap limit needs a memory limit"))
            }
            (s, l) if s < l => {
                return Err(unsupported(
                    "linux.resources.memory.swap",
                    "memory+swap must be >= the memory limit",
                ))
            }
            (s, l) => (s - l).to_string(),
        };
        out.push(set("linux.resources.memory.swap", "memory", "memory.swap.max", v));
        return Ok(());
    }
    if let Some(l) = limit {
        out.push(set("linux.resources.memory.limit", "memory", "memory.limit_in_bytes", l));
    }
    match (limit, swap) {
        (_, Some(s)) => {
            out.push(set("linux.resources.memory.swap", "memory", "memory.memsw.limit_in_bytes", s))
        }
        // runc: unlimited memory without a swap value makes memory+swap unlimited too, where
        // the kernel accounts swap.
        (Some(-1), None) => out.push(Setting {
            optional: true,
            ..set("linux.resources.memory.swap", "memory", "memory.memsw.limit_in_bytes", -1)
        }),
        _ => {}
    }
    if let Some(r) = reservation {
        out.push(set("linux.resources.memory.reservation", "memory", "memory.soft_limit_in_bytes", r));
    }
    if let Some(s) = m.swappiness() {
        if s > 100 {
            return Err(unsupported("linux.resources.memory.swappiness", "must be 0..=100"));
        }
        out.push(set("linux.resources.memory.swappiness", "memory", "memory.swappiness", s));
    }
    if m.disable_oom_killer() == Some(true) {
        out.push(set("linux.resources.memory.disableOOMKiller", "memory", "memory.oom_control", 1));
    }
    if let Some(h) = m.use_hierarchy() {
        out.push(set("linux.resources.memory.useHierarchy", "memory", "memory.use_hierarchy", u8::from(h)));
    }
    Ok(())
}

fn cpu(c: &LinuxCpu, v2: bool, out: &mut Vec<Setting>) -> Result<(), CgroupError> {
    if v2 {
        if let Some(s) = c.shares().filter(|s| *s != 0) {
            out.push(set("linux.resources.cpu.shares", "cpu", "cpu.weight", shares_to_weight(s)));
        }
        if c.quota().is_some_and(|q| q != 0) || c.period().is_some_and(|p| p != 0) {
            let mut v = match c.quota() {
                Some(q) if q > 0 => q.to_string(),
                _ => "max".to_owned(),
            };
            if let Some(p) = c.period().filter(|p| *p != 0) {
                v = format!("{v} {p}");
            }
            out.push(set("linux.resources.cpu.quota", "cpu", "cpu.max", v));
        }
        if let Some(b) = c.burst() {
            out.push(set("linux.resources.cpu.burst", "cpu", "cpu.max.burst", b));
        }
        if c.realtime_runtime().is_some_and(|r| r != 0) || c.realtime_period().is_some_and(|p| p != 0) {
            return Err(unsupported(
                "linux.resources.cpu.realtimeRuntime",
                "cgroup v2 has no realtime CPU controller",
            ));
        }
    } else {
        if let Some(s) = c.shares().filter(|s| *s != 0) {
            out.push(set("linux.resources.cpu.shares", "cpu", "cpu.shares", s));
        }
        if let Some(p) = c.period().filter(|p| *p != 0) {
            out.push(set("linux.resources.cpu.period", "cpu", "cpu.cfs_period_us", p));
        }
        if let Some(q) = c.quota().filter(|q| *q != 0) {
            out.push(set("linux.resources.cpu.quota", "cpu", "cpu.cfs_quota_us", q));
        }
        if let Some(b) = c.burst() {
            out.push(set("linux.resources.cpu.burst", "cpu", "cpu.cfs_burst_us", b));
        }
        if let Some(p) = c.realtime_period().filter(|p| *p != 0) {
            out.push(set("linux.resources.cpu.realtimePeriod", "cpu", "cpu.rt_period_us", p));
        }
        if let Some(r) = c.realtime_runtime().filter(|r| *r != 0) {
            out.push(set("linux.resources.cpu.realtimeRuntime", "cpu", "cpu.rt_runtime_us", r));
        }
    }
    if let Some(i) = c.idle() {
        out.push(set("linux.resources.cpu.idle", "cpu", "cpu.idle", i));
    }
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        out.push(set("linux.resources.cpu.cpus", "cpuset", "cpuset.cpus", cpus));
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        out.push(set("linux.resources.cpu.mems", "cpuset", "cpuset.mems", mems));
    }
    Ok(())
}

fn block_io(b: &LinuxBlockIo, v2: bool, out: &mut Vec<Setting>) {
    let ctl = if v2 { "io" } else { "blkio" };
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        out.push(if v2 {
            set(
                "linux.resources.blockIO.weight",
                ctl,
                "io.weight",
                format!("default {}", blkio_weight_to_io(w)),
            )
        } else {
            Setting {
                fallback: Some("blkio.bfq.weight"),
                ..set("linux.resources.blockIO.weight", ctl, "blkio.weight", w)
            }
        });
    }
    if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
        out.push(set(
            "linux.resources.blockIO.leafWeight",
            ctl,
            if v2 { "io.weight" } else { "blkio.leaf_weight" },
            w,
        ));
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight().filter(|w| *w != 0) {
            let (file, v) =
                if v2 { ("io.weight", blkio_weight_to_io(w)) } else { ("blkio.weight_device", u64::from(w)) };
            out.push(set(
                "linux.resources.blockIO.weightDevice",
                ctl,
                file,
                format!("{}:{} {v}", d.major(), d.minor()),
            ));
        }
        if let Some(w) = d.leaf_weight().filter(|w| !v2 && *w != 0) {
            out.push(set(
                "linux.resources.blockIO.weightDevice",
                ctl,
                "blkio.leaf_weight_device",
                format!("{}:{} {w}", d.major(), d.minor()),
            ));
        }
    }
    let throttles: [(&'static str, &Option<Vec<LinuxThrottleDevice>>, &str, &str); 4] = [
        (
            "linux.resources.blockIO.throttleReadBpsDevice",
            b.throttle_read_bps_device(),
            "blkio.throttle.read_bps_device",
            "rbps",
        ),
        (
            "linux.resources.blockIO.throttleWriteBpsDevice",
            b.throttle_write_bps_device(),
            "blkio.throttle.write_bps_device",
            "wbps",
        ),
        (
            "linux.resources.blockIO.throttleReadIOPSDevice",
            b.throttle_read_iops_device(),
            "blkio.throttle.read_iops_device",
            "riops",
        ),
        (
            "linux.resources.blockIO.throttleWriteIOPSDevice",
            b.throttle_write_iops_device(),
            "blkio.throttle.write_iops_device",
            "wiops",
        ),
    ];
    for (field, devs, v1_file, key) in throttles {
        for d in devs.iter().flatten() {
            out.push(if v2 {
                set(field, ctl, "io.max", format!("{}:{} {key}={}", d.major(), d.minor(), d.rate()))
            } else {
                set(field, ctl, v1_file, format!("{}:{} {}", d.major(), d.minor(), d.rate()))
            });
        }
    }
}

#[cfg(test)]
#[path = "resources_tests.rs"]
mod tests;
