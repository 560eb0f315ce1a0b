//! Raw scheduling and memory-placement syscalls of the process config: sched_setattr(2),
//! ioprio_set(2), set_mempolicy(2), personality(2) (nix wraps sched_setaffinity).

use nix::errno::Errno;

/// `struct sched_attr` of linux/sched/types.h (SCHED_ATTR_SIZE_VER1, with util clamps).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SchedAttr {
    /// sizeof(struct sched_attr).
    pub size: u32,
    /// SCHED_OTHER, SCHED_FIFO, ...
    pub policy: u32,
    /// SCHED_FLAG_* bits.
    pub flags: u64,
    /// Nice value (SCHED_OTHER, SCHED_BATCH).
    pub nice: i32,
    /// Static priority (SCHED_FIFO, SCHED_RR).
    pub priority: u32,
    /// SCHED_DEADLINE runtime, ns.
    pub runtime: u64,
    /// SCHED_DEADLINE deadline, ns.
    pub deadline: u64,
    /// SCHED_DEADLINE period, ns.
    pub period: u64,
    /// Utilization clamp minimum.
    pub util_min: u32,
    /// Utilization clamp maximum.
    pub util_max: u32,
}

/// sched_setattr(0, attr, 0) on the calling thread.
pub fn sched_setattr(attr: &SchedAttr) -> Result<(), Errno> {
    let mut a = *attr;
    a.size = std::mem::size_of::<SchedAttr>() as u32;
    // SAFETY: `a` is a valid sched_attr of the size it states; the kernel only reads it.
    let ret = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &a as *const SchedAttr, 0) };
    Errno::result(ret).map(drop)
}

/// ioprio_set(IOPRIO_WHO_PROCESS, 0, class << 13 | level) for the calling process.
pub fn ioprio_set(class: u32, level: u32) -> Result<(), Errno> {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    let prio = (class << 13) | (level & 0x1fff);
    // SAFETY: integer arguments only.
    let ret = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, prio as libc::c_int) };
    Errno::result(ret).map(drop)
}

/// set_mempolicy(mode | flags, nodemask, maxnode) for the calling thread.
pub fn set_mempolicy(mode: i32, nodemask: &[libc::c_ulong]) -> Result<(), Errno> {
    let bits = nodemask.len() * libc::c_ulong::BITS as usize;
    let ptr = if nodemask.is_empty() { std::ptr::null() } else { nodemask.as_ptr() };
    // SAFETY: `ptr` is null or points to `nodemask`, `bits` bits long; the kernel only reads.
    let ret = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, bits + 1) };
    Errno::result(ret).map(drop)
}

/// personality(persona).
pub fn personality(persona: libc::c_ulong) -> Result<(), Errno> {
    // SAFETY: an integer argument only.
    let ret = unsafe { libc::personality(persona) };
    Errno::result(ret).map(drop)
}
