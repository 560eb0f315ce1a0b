//! Raw process syscalls that `nix` does not wrap: clone3 (with its clone fallback),
//! setdomainname, close_range, TIOCSCTTY, and the allocation-free capset/execve that run
//! after the seccomp filter.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use nix::errno::Errno;
use nix::unistd::Pid;

/// `struct clone_args` of linux/sched.h (version 2, with `cgroup`).
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

/// Which side of a fork-like clone we are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// In the parent; the child's pid (in the parent's pid namespace).
    Parent(Pid),
    /// In the child.
    Child,
}

/// CLONE_NEWTIME: only clone3 accepts it (it collides with CSIGNAL for clone).
pub const CLONE_NEWTIME: u64 = 0x80;
/// CLONE_INTO_CGROUP: clone3 only.
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Why [`clone_into`] did not clone.
#[derive(Debug, thiserror::Error)]
pub enum CloneError {
    /// The single-thread precondition does not hold (or could not be checked): nothing was
    /// cloned.
    #[error("clone3 refused: {0}")]
    NotSingleThreaded(#[from] super::threads::ThreadsError),
    /// The kernel refused clone3 (or clone).
    #[error("clone3: {0}")]
    Syscall(Errno),
}

/// Fork-like clone into new namespaces (`flags` are CLONE_NEW* bits), delivering SIGCHLD to
/// the parent. With `cgroup_fd`, the child starts in that cgroup (v2, clone3 only).
/// Falls back to `clone` when the kernel has no clone3 (ENOSYS) and no clone3-only flag is
/// needed.
///
/// Precondition, checked: the process is single-threaded (the child continues with a copy
/// of the caller's memory but none of its other threads, so a lock one of them held would
/// stay locked in the child; raw clone3 does not run glibc's fork handlers). A process with
/// another live thread gets [`CloneError::NotSingleThreaded`] and no child; see
/// [`super::threads::ensure_single_threaded`].
pub fn clone_into(flags: u64, cgroup_fd: Option<BorrowedFd<'_>>) -> Result<Forked, CloneError> {
    super::threads::ensure_single_threaded()?;
    let mut args = CloneArgs { flags, exit_signal: libc::SIGCHLD as u64, ..CloneArgs::default() };
    if let Some(fd) = cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: clone3 without CLONE_VM behaves like fork: the child gets a copy of the address
    // space and returns 0 here; `args` is a valid clone_args of the size we pass. The process
    // was just found single-threaded (and a lone thread cannot have started another since), so
    // no lock is held by another thread.
    let ret = unsafe {
        libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>())
    };
    match Errno::result(ret) {
        Ok(0) => Ok(Forked::Child),
        Ok(pid) => Ok(Forked::Parent(Pid::from_raw(pid as i32))),
        Err(Errno::ENOSYS) if args.flags & (CLONE_NEWTIME | CLONE_INTO_CGROUP) == 0 => {
            clone_legacy(flags).map_err(CloneError::Syscall)
        }
        Err(e) => Err(CloneError::Syscall(e)),
    }
}

fn clone_legacy(flags: u64) -> Result<Forked, Errno> {
    // SAFETY: clone with a null stack and no CLONE_VM is fork(): the child runs on a copy of
    // the parent's stack. The x86_64 argument order is (flags, stack, ptid, ctid, tls). Only
    // called by `clone_into`, after its single-thread check.
    let ret = unsafe {
        libc::syscall(libc::SYS_clone, flags | libc::SIGCHLD as u64, 0usize, 0usize, 0usize, 0usize)
    };
    match Errno::result(ret)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(Pid::from_raw(pid as i32))),
    }
}

/// Join (or create) the session keyring `name` (KEYCTL_JOIN_SESSION_KEYRING), so the
/// container does not share the caller's session keyring; its serial. ENOSYS: no keyrings.
pub fn join_session_keyring(name: &str) -> Result<i64, Errno> {
    let c = std::ffi::CString::new(name).map_err(|_| Errno::EINVAL)?;
    // SAFETY: keyctl(KEYCTL_JOIN_SESSION_KEYRING, name) reads the NUL-terminated `c`, which
    // outlives the call; it changes only this process's credentials.
    let ret = unsafe { libc::syscall(libc::SYS_keyctl, libc::KEYCTL_JOIN_SESSION_KEYRING, c.as_ptr()) };
    Errno::result(ret)
}

/// setdomainname(2).
pub fn set_domainname(name: &str) -> Result<(), Errno> {
    // SAFETY: the pointer and length describe `name`'s bytes, valid for the call.
    let ret = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    Errno::result(ret).map(drop)
}

/// Mark every fd >= `first` close-on-exec, so the container process inherits only what it
/// should: close_range(CLOSE_RANGE_CLOEXEC) on Linux 5.11+, else each fd listed in
/// /proc/self/fd (5.10 and older answer EINVAL or ENOSYS to the flag).
pub fn cloexec_from(first: RawFd) -> Result<(), Errno> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes fd flags of this process; no memory is passed.
    let ret = unsafe {
        libc::syscall(libc::SYS_close_range, first as libc::c_uint, libc::c_uint::MAX, CLOSE_RANGE_CLOEXEC)
    };
    match Errno::result(ret) {
        Ok(_) => Ok(()),
        Err(Errno::EINVAL | Errno::ENOSYS) => cloexec_each(first),
        Err(e) => Err(e),
    }
}

fn cloexec_each(first: RawFd) -> Result<(), Errno> {
    let dir = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    let fds: Vec<RawFd> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .filter(|fd| *fd >= first)
        .collect();
    for fd in fds {
        // SAFETY: F_SETFD with FD_CLOEXEC only changes a flag of an fd of this process; an
        // fd that was the directory stream's own (now closed) just answers EBADF.
        let ret = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        if ret < 0 && Errno::last() != Errno::EBADF {
            return Err(Errno::last());
        }
    }
    Ok(())
}

/// The three capability sets as 64-bit masks (bit n = capability n).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CapMasks {
    /// Effective set.
    pub effective: u64,
    /// Permitted set.
    pub permitted: u64,
    /// Inheritable set.
    pub inheritable: u64,
}

/// capset(2) with `_LINUX_CAPABILITY_VERSION_3`. Allocation-free: it runs after the seccomp
/// filter, where the profile may deny brk/mmap.
pub fn capset(m: CapMasks) -> Result<(), Errno> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let header = Header { version: VERSION_3, pid: 0 };
    let split = |v: u64| (v as u32, (v >> 32) as u32);
    let (e, p, i) = (split(m.effective), split(m.permitted), split(m.inheritable));
    let data = [
        Data { effective: e.0, permitted: p.0, inheritable: i.0 },
        Data { effective: e.1, permitted: p.1, inheritable: i.1 },
    ];
    // SAFETY: the header and the two data structs (version 3 takes two) are valid for the
    // call; the kernel only reads them.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) };
    Errno::result(ret).map(drop)
}

/// sendmsg(2) of `data` with one fd as SCM_RIGHTS, the control message on the stack (no
/// allocation: it runs under the seccomp filter, to hand the notify fd to the listener).
pub fn send_fd(sock: BorrowedFd<'_>, data: &[u8], fd: BorrowedFd<'_>) -> Result<(), Errno> {
    #[repr(C)]
    struct Control {
        hdr: libc::cmsghdr,
        fd: libc::c_int,
        _pad: libc::c_int,
    }
    // SAFETY: all-zero is a valid cmsghdr and msghdr (plain integers and null pointers).
    let mut control: Control = unsafe { std::mem::zeroed() };
    control.hdr.cmsg_level = libc::SOL_SOCKET;
    control.hdr.cmsg_type = libc::SCM_RIGHTS;
    // SAFETY: CMSG_LEN only computes a length.
    control.hdr.cmsg_len = unsafe { libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) } as _;
    control.fd = fd.as_raw_fd();
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() };
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = (&mut control as *mut Control).cast();
    msg.msg_controllen = std::mem::size_of::<Control>() as _;
    // SAFETY: `msg` points to one iovec over `data` and one SCM_RIGHTS control message
    // (CMSG_SPACE(4) bytes on 64-bit), all alive for the call; the kernel only reads them.
    let ret = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    Errno::result(ret).map(drop)
}

/// execve(2) on prebuilt NUL-terminated pointer arrays (no allocation, unlike nix's).
/// Returns only on failure.
pub fn execve_raw(
    path: &std::ffi::CStr,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> Errno {
    debug_assert!(argv.last().is_some_and(|p| p.is_null()) && envp.last().is_some_and(|p| p.is_null()));
    // SAFETY: `path` is NUL-terminated; `argv` and `envp` are NULL-terminated arrays of
    // pointers to NUL-terminated strings owned by the caller, alive for the call.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    Errno::last()
}

/// Make `fd` (a terminal) the controlling terminal of this session (ioctl TIOCSCTTY).
pub fn set_controlling_terminal(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: TIOCSCTTY takes an int argument, no pointer; the fd is borrowed and open.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) };
    Errno::result(ret).map(drop)
}

/// Rust's runtime ignores SIGPIPE, and ignored signals survive execve: give the container
/// process default dispositions and an empty signal mask.
pub fn reset_signals() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in [Signal::SIGPIPE, Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT] {
        // SAFETY: installing SIG_DFL runs no handler code, so there is no async-signal-safety
        // concern and no previous handler state to preserve.
        let _ = unsafe { sigaction(sig, &dfl) };
    }
    let _ = SigSet::empty().thread_set_mask();
}

/// prlimit(2) on another process: set `resource`'s soft and hard limits of `pid`.
pub fn prlimit(pid: Pid, resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> Result<(), Errno> {
    let limit = libc::rlimit64 { rlim_cur: soft, rlim_max: hard };
    // SAFETY: `limit` is a valid rlimit64 that lives across the call; the old-limit pointer is
    // NULL (not asked for).
    let ret = unsafe { libc::prlimit64(pid.as_raw(), resource, &limit, std::ptr::null_mut()) };
    Errno::result(ret).map(drop)
}

/// pidfd_open(2): a handle on `pid` that stays valid (and turns readable on exit) even if the
/// pid is reused.
pub fn pidfd_open(pid: Pid) -> Result<std::os::fd::OwnedFd, Errno> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags, no memory.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    let fd = Errno::result(ret)? as RawFd;
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// pidfd_send_signal(2): signal the process behind a pidfd (no pid-reuse race).
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> Result<(), Errno> {
    // SAFETY: no siginfo pointer is passed (NULL), flags 0; the fd is borrowed and open.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), sig, 0usize, 0u32) };
    Errno::result(ret).map(drop)
}

/// The window size of a terminal (TIOCGWINSZ), if it is one.
pub fn get_winsize(fd: BorrowedFd<'_>) -> Option<libc::winsize> {
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we own and point to.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws as *mut libc::winsize) };
    (ret == 0).then_some(ws)
}

/// Set a terminal's window size (TIOCSWINSZ).
pub fn set_winsize(fd: BorrowedFd<'_>, ws: &libc::winsize) -> Result<(), Errno> {
    // SAFETY: TIOCSWINSZ reads one winsize from the struct we point to.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, ws as *const libc::winsize) };
    Errno::result(ret).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_into_refuses_a_multi_threaded_caller() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let parked = std::thread::spawn(move || rx.recv().ok());
        match clone_into(0, None) {
            Err(CloneError::NotSingleThreaded(super::super::threads::ThreadsError::MultiThreaded {
                threads,
            })) => assert!(threads >= 2, "{threads}"),
            Err(e) => panic!("expected the multi-threaded refusal, got {e}"),
            // Reached only if it cloned: the child must not run the rest of the test.
            Ok(Forked::Child) => {
                // SAFETY: ends the wrongly cloned child at once, running nothing of the parent's.
                unsafe { libc::_exit(99) }
            }
            Ok(Forked::Parent(pid)) => panic!("cloned child {pid} from a multi-threaded process"),
        }
        drop(tx);
        parked.join().unwrap();
    }

    #[test]
    fn cloexec_each_marks_fds_above_the_limit() {
        let f = std::fs::File::open("/proc/self/status").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
        // SAFETY: clearing FD_CLOEXEC on our own open fd.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        cloexec_each(fd).unwrap();
        // SAFETY: F_GETFD reads the flags of our own open fd.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    }
}
