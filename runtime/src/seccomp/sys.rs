//! The raw syscalls that load a filter: seccomp(2), with prctl(2) as the fallback of kernels
//! older than 3.17 (no flags possible there).

use nix::errno::Errno;

use super::SeccompError;

/// Loads `program` with `flags` (`SECCOMP_FILTER_FLAG_*`) on the calling thread (all threads
/// with TSYNC). Does not allocate on success, so it may run in a forked child. With
/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`, returns the notify fd.
pub(super) fn load(
    program: &[libc::sock_filter],
    flags: libc::c_ulong,
) -> Result<Option<std::os::fd::OwnedFd>, SeccompError> {
    let len = u16::try_from(program.len()).map_err(|_| SeccompError::TooLarge { len: program.len() })?;
    let prog = libc::sock_fprog { len, filter: program.as_ptr().cast_mut() };
    let prog_ptr: *const libc::sock_fprog = &prog;
    // SAFETY: `prog` describes `len` valid instructions that outlive the call; the kernel only
    // reads (copies) them and does not keep the pointer.
    let r = unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, flags, prog_ptr) };
    if flags & super::context::NEW_LISTENER != 0 && r >= 0 {
        // SAFETY: with NEW_LISTENER the kernel returns a new fd that nothing else owns.
        return Ok(Some(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(r as i32) }));
    }
    if r == 0 {
        return Ok(None);
    }
    if r > 0 {
        // With TSYNC, a positive return is the id of a thread that could not be synchronised.
        return Err(SeccompError::Tsync { tid: r });
    }
    let errno = Errno::last();
    if errno == Errno::ENOSYS && flags == 0 {
        // SAFETY: as above; PR_SET_SECCOMP reads the program through the pointer only.
        let r = unsafe { libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, prog_ptr) };
        if r == 0 {
            return Ok(None);
        }
        return Err(SeccompError::Install { call: "prctl(PR_SET_SECCOMP)", flags, errno: Errno::last() });
    }
    Err(SeccompError::Install { call: "seccomp(SECCOMP_SET_MODE_FILTER)", flags, errno })
}
