//! `process.terminal: true` for any runtime: a console socket the runtime sends the pty
//! master to (`run -d --console-socket`), and the output read from that master.

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::time::Duration;

use serde_json::Value;

use super::{Ctx, Verdict};

/// Run `cfg` (terminal: true) detached with a console socket; what it printed on its
/// terminal. The container is deleted afterwards.
pub fn run_with_console(ctx: &mut Ctx, cfg: Value) -> Result<String, Verdict> {
    let sock = ctx.dir().join("console.sock");
    let _ = std::fs::remove_file(&sock);
    let listener =
        UnixListener::bind(&sock).map_err(|e| Verdict::error(format!("bind {}: {e}", sock.display())))?;
    ctx.give_to_runtime_user(&sock).map_err(|e| Verdict::error(format!("chown {}: {e}", sock.display())))?;
    let reader = std::thread::spawn(move || -> Result<String, String> {
        let (conn, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
        let master = recv_fd(&conn).map_err(|e| format!("recvmsg: {e}"))?;
        let mut f = std::fs::File::from(master);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // EIO once the last slave fd closes (the container exited).
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    });
    let (id, dir) = ctx.bundle(cfg)?;
    let (d, s) = (dir.to_string_lossy().into_owned(), sock.to_string_lossy().into_owned());
    let started = ctx.runtime_cmd(&["run", "-d", "--console-socket", &s, "--bundle", &d, &id]);
    if started.code != 0 {
        ctx.delete(&id);
        // Unblock the accept so the thread ends.
        let _ = std::os::unix::net::UnixStream::connect(&sock);
        let _ = reader.join();
        return Err(Verdict::fail(format!(
            "run -d with a terminal failed ({}): {}",
            started.code,
            started.stderr.trim()
        )));
    }
    let done = Ctx::wait_until(Duration::from_secs(30), || reader.is_finished());
    ctx.delete(&id);
    if !done {
        return Err(Verdict::error("the container's terminal did not close within 30 s"));
    }
    reader.join().map_err(|_| Verdict::error("console reader panicked"))?.map_err(Verdict::error)
}

/// Receive one fd (SCM_RIGHTS) on `conn`.
fn recv_fd(conn: &std::os::unix::net::UnixStream) -> std::io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let mut data = [0u8; 256];
    let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
    let mut control = [0u64; 8];
    // SAFETY: an all-zero msghdr is valid; its buffers are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: `msg` points at `iov`, `data` and `control`, all alive and writable for the call.
    let n = unsafe { libc::recvmsg(conn.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `msg` was filled by recvmsg; CMSG_FIRSTHDR reads only within msg_control.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    if cmsg.is_null() {
        return Err(std::io::Error::other("no control message"));
    }
    // SAFETY: a non-null header from CMSG_FIRSTHDR lies within `control`.
    let hdr = unsafe { std::ptr::read_unaligned(cmsg) };
    if hdr.cmsg_level == libc::SOL_SOCKET && hdr.cmsg_type == libc::SCM_RIGHTS {
        // SAFETY: the data of an SCM_RIGHTS header lies within `control`.
        let data = unsafe { libc::CMSG_DATA(cmsg) };
        // SAFETY: SCM_RIGHTS data holds at least one int, possibly unaligned.
        let fd = unsafe { std::ptr::read_unaligned(data.cast::<i32>()) };
        // SAFETY: the kernel installed this fd for us; nothing else owns it.
        return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    Err(std::io::Error::other("no fd in the message"))
}
