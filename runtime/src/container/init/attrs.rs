//! Process attributes applied in the container's init (and `exec`'s child) while it still
//! holds its privileges, as runc 1.2/1.3 do: `process.scheduler` (sched_setattr),
//! `process.ioPriority` (ioprio_set), `linux.memoryPolicy` (set_mempolicy),
//! `linux.personality` (personality). The conversions are pure and table-tested.

use nix::errno::Errno;
use oci_spec::runtime::{LinuxIOPriority, LinuxMemoryPolicy, LinuxPersonality, Scheduler};

use super::InitError;
use crate::sys::sched::{self, SchedAttr};

/// The serialized (spec) name of an oci-spec enum value, e.g. `SCHED_FIFO`.
fn name_of<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn unsupported(field: &str, what: String) -> InitError {
    InitError::Process(format!("{field}: {what}"))
}

/// `process.scheduler` → sched_attr.
pub fn sched_attr(s: &Scheduler) -> Result<SchedAttr, InitError> {
    let policy = match name_of(&s.policy()).as_str() {
        "SCHED_OTHER" => 0,
        "SCHED_FIFO" => 1,
        "SCHED_RR" => 2,
        "SCHED_BATCH" => 3,
        "SCHED_IDLE" => 5,
        "SCHED_DEADLINE" => 6,
        other => {
            return Err(unsupported("process.scheduler.policy", format!("{other} is not a Linux policy")))
        }
    };
    let mut flags = 0;
    for f in s.flags().iter().flatten() {
        flags |= match name_of(f).as_str() {
            // oci-spec 0.10 spells two of the spec's names its own way; both are taken.
            "SCHED_FLAG_RESET_ON_FORK" | "SCHED_RESET_ON_FORK" => 0x01,
            "SCHED_FLAG_RECLAIM" => 0x02,
            "SCHED_FLAG_DL_OVERRUN" | "SCHED_FLAG_D_L_OVERRUN" => 0x04,
            "SCHED_FLAG_KEEP_POLICY" => 0x08,
            "SCHED_FLAG_KEEP_PARAMS" => 0x10,
            "SCHED_FLAG_UTIL_CLAMP_MIN" => 0x20,
            "SCHED_FLAG_UTIL_CLAMP_MAX" => 0x40,
            other => return Err(unsupported("process.scheduler.flags", format!("unknown flag {other}"))),
        };
    }
    let priority = s.priority().unwrap_or(0);
    Ok(SchedAttr {
        policy,
        flags,
        nice: s.nice().unwrap_or(0),
        priority: u32::try_from(priority)
            .map_err(|_| unsupported("process.scheduler.priority", format!("{priority} is negative")))?,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
        ..SchedAttr::default()
    })
}

/// `process.ioPriority` → (class, level) for ioprio_set.
pub fn ioprio(p: &LinuxIOPriority) -> Result<(u32, u32), InitError> {
    let class = match name_of(&p.class()).as_str() {
        "IOPRIO_CLASS_RT" => 1,
        "IOPRIO_CLASS_BE" => 2,
        "IOPRIO_CLASS_IDLE" => 3,
        other => return Err(unsupported("process.ioPriority.class", format!("unknown class {other}"))),
    };
    let level = u32::try_from(p.priority()).ok().filter(|l| *l <= 7).ok_or_else(|| {
        unsupported("process.ioPriority.priority", format!("{} is outside 0..=7", p.priority()))
    })?;
    Ok((class, level))
}

/// `linux.memoryPolicy` → (mode | flags, node mask words) for set_mempolicy.
pub fn mempolicy(m: &LinuxMemoryPolicy) -> Result<(i32, Vec<libc::c_ulong>), InitError> {
    let mut mode = match name_of(&m.mode()).as_str() {
        "MPOL_DEFAULT" => 0,
        "MPOL_PREFERRED" => 1,
        "MPOL_BIND" => 2,
        "MPOL_INTERLEAVE" => 3,
        "MPOL_LOCAL" => 4,
        "MPOL_PREFERRED_MANY" => 5,
        "MPOL_WEIGHTED_INTERLEAVE" => 6,
        other => return Err(unsupported("linux.memoryPolicy.mode", format!("unknown mode {other}"))),
    };
    for f in m.flags().iter().flatten() {
        mode |= match name_of(f).as_str() {
            "MPOL_F_STATIC_NODES" => 1 << 15,
            "MPOL_F_RELATIVE_NODES" => 1 << 14,
            "MPOL_F_NUMA_BALANCING" => 1 << 13,
            other => return Err(unsupported("linux.memoryPolicy.flags", format!("unknown flag {other}"))),
        };
    }
    let nodes = m.nodes().as_deref().unwrap_or("");
    let list = crate::container::plan::parse_cpu_list(nodes).ok_or_else(|| {
        unsupported("linux.memoryPolicy.nodes", format!("{nodes:?} is not a node list like 0-1,3"))
    })?;
    let bits = libc::c_ulong::BITS as usize;
    let mut mask = vec![0; list.iter().max().map_or(0, |n| n / bits + 1)];
    for n in list {
        mask[n / bits] |= 1 << (n % bits);
    }
    Ok((mode, mask))
}

/// `linux.personality` → the persona for personality(2). Flags are refused (runc too).
pub fn persona(p: &LinuxPersonality) -> Result<libc::c_ulong, InitError> {
    if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(unsupported("linux.personality.flags", "personality flags are not supported".into()));
    }
    match name_of(&p.domain()).as_str() {
        "LINUX" => Ok(0),
        "LINUX32" => Ok(8),
        other => Err(unsupported("linux.personality.domain", format!("unknown domain {other}"))),
    }
}

fn applied(call: &str) -> impl FnOnce(Errno) -> InitError + '_ {
    move |errno| InitError::Syscall { call: call.to_owned(), errno }
}

/// Apply the process's scheduler and I/O priority (the init and `exec`).
pub fn apply_process(process: &oci_spec::runtime::Process) -> Result<(), InitError> {
    if let Some(s) = process.scheduler() {
        sched::sched_setattr(&sched_attr(s)?).map_err(applied("sched_setattr (process.scheduler)"))?;
    }
    if let Some(p) = process.io_priority() {
        let (class, level) = ioprio(p)?;
        sched::ioprio_set(class, level).map_err(applied("ioprio_set (process.ioPriority)"))?;
    }
    Ok(())
}

/// Apply the container-wide ones: memory policy and personality (the init; `exec`'s
/// processes inherit neither from it, runc applies them to exec too).
pub fn apply_linux(linux: Option<&oci_spec::runtime::Linux>) -> Result<(), InitError> {
    let Some(linux) = linux else { return Ok(()) };
    if let Some(m) = linux.memory_policy() {
        let (mode, mask) = mempolicy(m)?;
        sched::set_mempolicy(mode, &mask).map_err(applied("set_mempolicy (linux.memoryPolicy)"))?;
    }
    if let Some(p) = linux.personality() {
        sched::personality(persona(p)?).map_err(applied("personality (linux.personality)"))?;
    }
    Ok(())
}

/// A cpu list (`0-1,3`) of `process.execCPUAffinity` as a CpuSet.
pub fn cpu_set(list: &str, field: &str) -> Result<nix::sched::CpuSet, String> {
    let bad = || format!("{field}: {list:?} is not a cpu list like 0-1,3");
    let mut set = nix::sched::CpuSet::new();
    for cpu in crate::container::plan::parse_cpu_list(list).ok_or_else(bad)? {
        set.set(cpu).map_err(|_| bad())?;
    }
    Ok(set)
}

/// `exec`: the final CPU affinity of `process.execCPUAffinity`, once in the cgroup
/// (runtime-spec: it does not apply to the container's init).
pub fn apply_exec_affinity(process: &oci_spec::runtime::Process) -> Result<(), InitError> {
    let Some(list) = process.exec_cpu_affinity().as_ref().and_then(|a| a.cpu_affinity_final().clone()) else {
        return Ok(());
    };
    let set = cpu_set(&list, "process.execCPUAffinity.final").map_err(InitError::Process)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .map_err(applied("sched_setaffinity (process.execCPUAffinity.final)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    fn from<T: serde::de::DeserializeOwned>(json: &str) -> T {
        serde_json::from_str(json).unwrap()
    }

    #[test_case(r#"{"policy":"SCHED_BATCH","nice":5}"#, Some((3, 0, 5, 0)) ; "batch nice")]
    #[test_case(r#"{"policy":"SCHED_FIFO","priority":10,"flags":["SCHED_RESET_ON_FORK"]}"#, Some((1, 1, 0, 10)) ; "fifo")]
    #[test_case(r#"{"policy":"SCHED_ISO"}"#, None ; "iso is not linux")]
    fn schedulers(json: &str, want: Option<(u32, u64, i32, u32)>) {
        let got = sched_attr(&from(json)).ok().map(|a| (a.policy, a.flags, a.nice, a.priority));
        assert_eq!(got, want);
    }

    #[test_case(r#"{"class":"IOPRIO_CLASS_IDLE","priority":0}"#, Some((3, 0)) ; "idle")]
    #[test_case(r#"{"class":"IOPRIO_CLASS_BE","priority":7}"#, Some((2, 7)) ; "best effort")]
    #[test_case(r#"{"class":"IOPRIO_CLASS_BE","priority":8}"#, None ; "out of range")]
    fn io_priorities(json: &str, want: Option<(u32, u32)>) {
        assert_eq!(ioprio(&from(json)).ok(), want);
    }

    #[test_case(r#"{"mode":"MPOL_BIND","nodes":"0"}"#, Some((2, vec![1])) ; "bind node 0")]
    #[test_case(r#"{"mode":"MPOL_INTERLEAVE","nodes":"0-1,65","flags":["MPOL_F_STATIC_NODES"]}"#, Some((3 | 1 << 15, vec![3, 2])) ; "interleave")]
    #[test_case(r#"{"mode":"MPOL_DEFAULT"}"#, Some((0, vec![])) ; "default")]
    #[test_case(r#"{"mode":"MPOL_BIND","nodes":"x"}"#, None ; "bad nodes")]
    fn memory_policies(json: &str, want: Option<(i32, Vec<libc::c_ulong>)>) {
        assert_eq!(mempolicy(&from(json)).ok(), want);
    }

    #[test_case(r#"{"domain":"LINUX32"}"#, Some(8) ; "linux32")]
    #[test_case(r#"{"domain":"LINUX"}"#, Some(0) ; "linux")]
    #[test_case(r#"{"domain":"LINUX","flags":["ADDR_NO_RANDOMIZE"]}"#, None ; "flags refused")]
    fn personalities(json: &str, want: Option<libc::c_ulong>) {
        assert_eq!(persona(&from(json)).ok(), want);
    }

    /// What `isorun features` advertises is what the init applies.
    #[test]
    fn advertised_memory_policies_apply() {
        let f = crate::features::features();
        let mp = &f["linux"]["memoryPolicy"];
        for mode in mp["modes"].as_array().unwrap() {
            let json = format!(r#"{{"mode":{mode},"nodes":"0"}}"#);
            assert!(mempolicy(&from(&json)).is_ok(), "{mode}");
        }
        for flag in mp["flags"].as_array().unwrap() {
            let json = format!(r#"{{"mode":"MPOL_BIND","nodes":"0","flags":[{flag}]}}"#);
            assert!(mempolicy(&from(&json)).is_ok(), "{flag}");
        }
    }
}
