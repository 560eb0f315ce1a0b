//! Every raw syscall of the guest side (the agent, and the catalogue where it needs one the
//! standard library lacks), each behind a small safe wrapper.
//!
//! Wrappers return `io::Error` (errno); callers add the path or step to their own error type.

use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn path_cstr(p: &Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `mount(2)`. `source`/`fstype`/`data` may be empty (passed as NULL for fstype/data).
pub fn mount(source: &str, target: &Path, fstype: &str, flags: libc::c_ulong, data: &str) -> io::Result<()> {
    let src = cstr(source)?;
    let tgt = path_cstr(target)?;
    let fs = cstr(fstype)?;
    let dat = cstr(data)?;
    let fs_ptr = if fstype.is_empty() { std::ptr::null() } else { fs.as_ptr() };
    let data_ptr = if data.is_empty() { std::ptr::null() } else { dat.as_ptr().cast() };
    // SAFETY: all pointers are valid NUL-terminated strings (or NULL where the kernel accepts
    // NULL) that outlive the call; mount does not retain them.
    let rc = unsafe { libc::mount(src.as_ptr(), tgt.as_ptr(), fs_ptr, flags, data_ptr) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `umount2(2)` with no flags.
pub fn umount(target: &Path) -> io::Result<()> {
    let tgt = path_cstr(target)?;
    // SAFETY: `tgt` is a valid NUL-terminated path that outlives the call.
    if unsafe { libc::umount2(tgt.as_ptr(), 0) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `unshare(CLONE_NEWNET)`: the calling *thread* moves to a new network namespace (and every
/// process it spawns from then on starts there).
pub fn unshare_net() -> io::Result<()> {
    // SAFETY: unshare takes no pointers; CLONE_NEWNET only changes this thread's namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `finit_module(2)` on an open module file, no parameters.
pub fn finit_module(file: &std::fs::File) -> io::Result<()> {
    let params = c"";
    // SAFETY: the fd is open for the duration of the call and `params` is a valid empty C
    // string; flags 0 asks for a plain load of an uncompressed module.
    let rc = unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), params.as_ptr(), 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `reboot(RB_POWER_OFF)`; returns only on failure.
pub fn power_off() -> io::Error {
    // SAFETY: sync(2) has no preconditions.
    unsafe { libc::sync() };
    // SAFETY: reboot with a valid command constant; we are PID 1 with CAP_SYS_BOOT.
    unsafe { libc::reboot(libc::RB_POWER_OFF) };
    io::Error::last_os_error()
}

/// Puts a terminal into raw mode (no echo, no CR/LF translation, byte-at-a-time reads).
pub fn make_raw(file: &std::fs::File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    let mut t = std::mem::MaybeUninit::<libc::termios>::uninit();
    // SAFETY: `t` points to writable storage of the right size; fd is open.
    if unsafe { libc::tcgetattr(fd, t.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: tcgetattr succeeded, so the struct is fully initialized.
    let mut t = unsafe { t.assume_init() };
    // SAFETY: `t` is a valid, initialized termios.
    unsafe { libc::cfmakeraw(&mut t) };
    // SAFETY: `t` is a valid termios and fd is open.
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `tcdrain(3)`: waits until everything written to the terminal has been transmitted.
pub fn drain(file: &std::fs::File) -> io::Result<()> {
    // SAFETY: tcdrain on a file descriptor that is open for the duration of the call.
    if unsafe { libc::tcdrain(file.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reaps any exited children without blocking (PID 1 inherits orphans). Returns how many.
pub fn reap_zombies() -> usize {
    let mut n = 0;
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out pointer; WNOHANG never blocks.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return n;
        }
        n += 1;
    }
}

/// CLOCK_BOOTTIME in milliseconds (guest uptime, usable before /proc is mounted).
pub fn boottime_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out pointer for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64) * 1000 + (ts.tv_nsec as u64) / 1_000_000
}

/// `RNDADDENTROPY` (`_IOW('R', 0x03, int[2])`) and `RNDRESEEDCRNG` (`_IO('R', 0x07)`).
const RNDADDENTROPY: libc::c_ulong = 0x4008_5203;
const RNDRESEEDCRNG: libc::c_ulong = 0x5207;

/// Mixes `seed` into the kernel's input pool crediting its full size as entropy
/// (`RNDADDENTROPY` on `random`, an open `/dev/urandom`), then forces the CRNG to reseed from
/// it (`RNDRESEEDCRNG`; kernels before 4.17 lack it and reseed on their own schedule, so its
/// error is returned separately).
pub fn add_entropy(random: &std::fs::File, seed: &[u8]) -> io::Result<io::Result<()>> {
    let len = libc::c_int::try_from(seed.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
    let mut info = Vec::with_capacity(8 + seed.len());
    info.extend_from_slice(&len.saturating_mul(8).to_ne_bytes());
    info.extend_from_slice(&len.to_ne_bytes());
    info.extend_from_slice(seed);
    // SAFETY: `info` is a valid rand_pool_info (two ints followed by buf_size bytes) that
    // outlives the call; the kernel only reads it.
    if unsafe { libc::ioctl(random.as_raw_fd(), RNDADDENTROPY, info.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: RNDRESEEDCRNG takes no argument.
    let rc = unsafe { libc::ioctl(random.as_raw_fd(), RNDRESEEDCRNG, 0) };
    Ok(if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) })
}

/// `clock_settime(CLOCK_REALTIME)` to `unix_ns` nanoseconds since the epoch.
pub fn set_realtime(unix_ns: u64) -> io::Result<()> {
    let ts = libc::timespec {
        tv_sec: (unix_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (unix_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: `ts` is a valid timespec for the duration of the call.
    if unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &ts) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A read-only shared mapping of a file (e.g. a PCI BAR's sysfs `resourceN`), unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    /// Maps the first `len` bytes of `file` read-only and shared.
    pub fn new(file: &std::fs::File, len: usize) -> io::Result<Mapping> {
        // SAFETY: a fresh mapping chosen by the kernel (addr NULL) of an open fd; the result is
        // checked against MAP_FAILED before use.
        let ptr = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0)
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr, len })
    }

    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` is a live PROT_READ mapping of `len` bytes owned by self; nothing in
        // this process writes to it (the host does not change it while the guest runs).
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping created in `new`, once.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}
