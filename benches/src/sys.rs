//! The raw syscalls of the benches and of the floor program (`isolab-floor`): everything
//! nix does not wrap.

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;
use nix::unistd::Pid;

/// Ends a cloned child at once, without running the parent's destructors or atexit handlers.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) takes no pointers and never returns; it only ends this process.
    unsafe { libc::_exit(code) }
}

/// `CLONE_INTO_CGROUP` (Linux 5.7), not in every libc version.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` of clone3(2), version 2 (with `cgroup`).
#[repr(C)]
#[derive(Debug, Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Which side of a fork-like clone3 this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The new process.
    Child,
    /// The caller, with the child's pid.
    Parent(Pid),
}

/// clone3(2) without CLONE_VM (a fork) with `flags` (CLONE_NEW* bits), SIGCHLD on exit and,
/// given `cgroup`, CLONE_INTO_CGROUP into that cgroup2 directory. The caller must be
/// single-threaded (the floor program is: it starts no thread). Not isorun's `clone_into`:
/// that one reads /proc/self/status to check the thread count first, a system call the
/// floor, which makes only what a container start needs, must not count.
pub fn clone3(flags: u64, cgroup: Option<BorrowedFd<'_>>) -> Result<Side, Errno> {
    let mut args = CloneArgs { flags, exit_signal: libc::SIGCHLD as u64, ..CloneArgs::default() };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: clone3 without CLONE_VM behaves like fork: the child gets a copy of the address
    // space and returns 0 here. `args` is a valid, initialised clone_args of the size passed
    // and outlives the call. The caller is single-threaded, so no other thread holds a lock
    // the child could need.
    let ret = unsafe {
        libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>())
    };
    match Errno::result(ret)? {
        0 => Ok(Side::Child),
        pid => Ok(Side::Parent(Pid::from_raw(pid as i32))),
    }
}
