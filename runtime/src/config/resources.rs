//! Validation of `linux.resources`: the values the cgroup code will write, checked against
//! the kernel's ranges. Plain type errors (a negative number where the spec says unsigned)
//! are also caught by the typed deserialisation, with their path.

use serde_json::{Map, Value};

use super::report::{field, get, index, map_key, quote, Report};

const BASE: &str = "linux.resources";

/// The kernel's CFS bandwidth bounds, in microseconds (1 ms ..= 1 s for the period).
const MIN_CFS_US: i64 = 1_000;
const MAX_CFS_PERIOD_US: u64 = 1_000_000;

/// Validates `linux.resources`.
pub(crate) fn validate(res: &Map<String, Value>, r: &mut Report) {
    memory(res, r);
    cpu(res, r);
    if let Some(pids) = r.object_at(res, BASE, "pids") {
        at_least_minus_one(pids, "linux.resources.pids", "limit", r);
    }
    block_io(res, r);
    hugepages(res, r);
    devices(res, r);
    unified(res, r);
}

/// A limit where -1 means "unlimited" and other negative numbers mean nothing.
fn at_least_minus_one(obj: &Map<String, Value>, parent: &str, key: &str, r: &mut Report) {
    if let Some(v) = r.i64_at(obj, parent, key) {
        if v < -1 {
            r.error(
                field(parent, key),
                format!("{v} is invalid: use -1 for unlimited or a non-negative value"),
            );
        }
    }
}

fn memory(res: &Map<String, Value>, r: &mut Report) {
    let path = field(BASE, "memory");
    let Some(mem) = r.object_at(res, BASE, "memory") else { return };
    for key in ["limit", "reservation", "swap", "kernel", "kernelTCP"] {
        at_least_minus_one(mem, &path, key, r);
    }
    if let Some(swappiness) = r.u64_at(mem, &path, "swappiness") {
        if swappiness > 100 {
            r.error(field(&path, "swappiness"), format!("{swappiness} is above 100"));
        }
    }
    if let (Some(limit), Some(swap)) = (
        get(mem, "limit").and_then(Value::as_i64).filter(|l| *l > 0),
        get(mem, "swap").and_then(Value::as_i64).filter(|s| *s > 0),
    ) {
        if swap < limit {
            r.error(
                field(&path, "swap"),
                format!("memory+swap limit {swap} is below the memory limit {limit}"),
            );
        }
    }
    for key in ["disableOOMKiller", "useHierarchy", "checkBeforeUpdate"] {
        r.bool_at(mem, &path, key);
    }
}

fn cpu(res: &Map<String, Value>, r: &mut Report) {
    let path = field(BASE, "cpu");
    let Some(cpu) = r.object_at(res, BASE, "cpu") else { return };
    if let Some(quota) = r.i64_at(cpu, &path, "quota") {
        // -1: unlimited; 0: unset (runc); otherwise the kernel wants at least 1 ms.
        if quota < -1 || (1..MIN_CFS_US).contains(&quota) {
            r.error(
                field(&path, "quota"),
                format!("{quota} is invalid: use -1 for unlimited or at least {MIN_CFS_US} µs"),
            );
        }
    }
    if let Some(period) = r.u64_at(cpu, &path, "period") {
        if period != 0 && !(MIN_CFS_US.unsigned_abs()..=MAX_CFS_PERIOD_US).contains(&period) {
            r.error(
                field(&path, "period"),
                format!("{period} µs is outside the kernel's range {MIN_CFS_US}..={MAX_CFS_PERIOD_US}"),
            );
        }
    }
    if let Some(idle) = r.i64_at(cpu, &path, "idle") {
        if !(0..=1).contains(&idle) {
            r.error(field(&path, "idle"), format!("{idle} is invalid: 0 (normal) or 1 (SCHED_IDLE)"));
        }
    }
    for key in ["cpus", "mems"] {
        if let Some(list) = r.str_at(cpu, &path, key) {
            if !is_cpu_list(list) {
                r.error(field(&path, key), format!("{} is not a list like \"0-3,7\"", quote(list)));
            }
        }
    }
}

/// Whether `s` is a kernel cpu/mem list (`0-3,7`); empty means "inherit".
pub(crate) fn is_cpu_list(s: &str) -> bool {
    let number = |n: &str| !n.is_empty() && n.len() <= 10 && n.bytes().all(|b| b.is_ascii_digit());
    s.is_empty()
        || s.split(',').all(|item| match item.split_once('-') {
            Some((a, b)) => number(a) && number(b) && a.parse::<u64>().ok() <= b.parse::<u64>().ok(),
            None => number(item),
        })
}

fn block_io(res: &Map<String, Value>, r: &mut Report) {
    let path = field(BASE, "blockIO");
    let Some(bio) = r.object_at(res, BASE, "blockIO") else { return };
    weight(bio, &path, r);
    if let Some(list) = r.array_at(bio, &path, "weightDevice") {
        for (i, item) in list.iter().enumerate() {
            let at = index(&field(&path, "weightDevice"), i);
            if let Some(dev) = r.object(item, &at) {
                major_minor(dev, &at, r);
                weight(dev, &at, r);
            }
        }
    }
    for key in [
        "throttleReadBpsDevice",
        "throttleWriteBpsDevice",
        "throttleReadIOPSDevice",
        "throttleWriteIOPSDevice",
    ] {
        let Some(list) = r.array_at(bio, &path, key) else { continue };
        for (i, item) in list.iter().enumerate() {
            let at = index(&field(&path, key), i);
            if let Some(dev) = r.object(item, &at) {
                major_minor(dev, &at, r);
                if r.require(dev, &at, "rate") {
                    r.u64_at(dev, &at, "rate");
                }
            }
        }
    }
}

/// `weight` and `leafWeight`: 10..=1000 (cgroup v1 blkio; v2 converts), 0 meaning unset.
fn weight(obj: &Map<String, Value>, parent: &str, r: &mut Report) {
    for key in ["weight", "leafWeight"] {
        if let Some(w) = r.u64_at(obj, parent, key) {
            if w != 0 && !(10..=1000).contains(&w) {
                r.error(field(parent, key), format!("{w} is outside 10..=1000"));
            }
        }
    }
}

fn major_minor(dev: &Map<String, Value>, parent: &str, r: &mut Report) {
    for key in ["major", "minor"] {
        if r.require(dev, parent, key) {
            if let Some(n) = r.i64_at(dev, parent, key) {
                if n < 0 {
                    r.error(field(parent, key), format!("{n} is negative"));
                }
            }
        }
    }
}

fn hugepages(res: &Map<String, Value>, r: &mut Report) {
    let Some(list) = r.array_at(res, BASE, "hugepageLimits") else { return };
    for (i, item) in list.iter().enumerate() {
        let at = index("linux.resources.hugepageLimits", i);
        let Some(limit) = r.object(item, &at) else { continue };
        if r.require(limit, &at, "pageSize") {
            if let Some(size) = r.str_at(limit, &at, "pageSize") {
                if !crate::cgroups::resources::is_page_size(size) {
                    r.error(
                        field(&at, "pageSize"),
                        format!(
                            "{} is not a page size like \"2MB\" (digits, then KB, MB or GB)",
                            quote(size)
                        ),
                    );
                }
            }
        }
        if r.require(limit, &at, "limit") {
            r.u64_at(limit, &at, "limit");
        }
    }
}

fn devices(res: &Map<String, Value>, r: &mut Report) {
    let Some(list) = r.array_at(res, BASE, "devices") else { return };
    for (i, item) in list.iter().enumerate() {
        let at = index("linux.resources.devices", i);
        let Some(rule) = r.object(item, &at) else { continue };
        if r.require(rule, &at, "allow") {
            r.bool_at(rule, &at, "allow");
        }
        if let Some(ty) = r.str_at(rule, &at, "type") {
            if !matches!(ty, "a" | "b" | "c") {
                r.error(field(&at, "type"), format!("unknown device type {}, expected a, b or c", quote(ty)));
            }
        }
        if let Some(access) = r.str_at(rule, &at, "access") {
            if !access.bytes().all(|b| matches!(b, b'r' | b'w' | b'm')) {
                r.error(field(&at, "access"), format!("{} may only contain r, w and m", quote(access)));
            }
        }
        for key in ["major", "minor"] {
            if let Some(n) = r.i64_at(rule, &at, key) {
                if n < -1 {
                    r.error(field(&at, key), format!("{n} is invalid: use -1 (or omit it) for all"));
                }
            }
        }
    }
}

/// `unified` keys name files in the container's cgroup directory: no path tricks.
fn unified(res: &Map<String, Value>, r: &mut Report) {
    let Some(unified) = r.object_at(res, BASE, "unified") else { return };
    for (key, value) in unified {
        let at = map_key("linux.resources.unified", key);
        r.string(value, &at);
        if key.is_empty() || key == "." || key == ".." || key.contains(['/', '\0']) {
            r.error(at, "not a cgroup file name");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("" => true)]
    #[test_case("0" => true)]
    #[test_case("0-3,7" => true)]
    #[test_case("1,2,3" => true)]
    #[test_case("3-1" => false)]
    #[test_case("0-" => false)]
    #[test_case("a" => false)]
    #[test_case("0,,1" => false)]
    #[test_case("99999999999999999999" => false)]
    fn cpu_lists(s: &str) -> bool {
        is_cpu_list(s)
    }
}
