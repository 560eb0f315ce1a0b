//! `run`: create + start, then (unless detached) wait for the init in the foreground,
//! forwarding signals to it and, for `terminal: true` without a console socket, proxying
//! the pty as runc does; the container is deleted after it exits and its status returned.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{
    recvmsg, socketpair, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{isatty, read, write, Pid};

use super::create::create_with_console;
use super::{delete, host, start, ContainerError, CreateOptions};
use crate::state::StateStore;

const FORWARDED: [Signal; 8] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCHLD,
];

/// Run container `id`; returns its exit status (0 when detached).
pub fn run(store: &StateStore, id: &str, opts: &CreateOptions, detach: bool) -> Result<i32, ContainerError> {
    let own_console = if opts.console_socket.is_none() && !detach {
        Some(
            socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)
                .map_err(host("socketpair"))?,
        )
    } else {
        None
    };
    let (ours, theirs) = match own_console {
        Some((a, b)) => (Some(a), Some(b)),
        None => (None, None),
    };
    let created = create_with_console(store, id, opts, theirs)?;
    // linux.netDevices must go back before the namespace dies: hold it open, from before
    // the process can exit until after it has.
    let devices =
        if detach { Default::default() } else { store.load(id).map(|r| r.net_devices).unwrap_or_default() };
    let held = (!devices.is_empty()).then(|| crate::net::netns_of(created.pid.as_raw()).ok()).flatten();
    // Blocked before start so no forwarded signal or SIGCHLD is lost before the foreground
    // loop's signalfd exists.
    forwarded_mask().thread_block().map_err(host("sigprocmask"))?;
    if let Err(e) = start(store, id) {
        let _ = delete(store, id, true);
        return Err(e);
    }
    if detach {
        return Ok(0);
    }
    let master = match (created.terminal, ours) {
        (true, Some(sock)) => Some(receive_master(sock.as_fd())?),
        _ => None,
    };
    let code = foreground_with_signals(created.pid, master.as_ref());
    if let Some(ns) = held {
        if let Err(e) = crate::net::move_out(&ns, &devices) {
            tracing::warn!("{e}");
            eprintln!("isorun: warning: linux.netDevices of {id}: {e}");
        }
    }
    delete(store, id, true)?;
    code
}

fn forwarded_mask() -> SigSet {
    let mut mask = SigSet::empty();
    for s in FORWARDED {
        mask.add(s);
    }
    mask
}

/// Wait for `pid` (our child) in the foreground: forward signals, proxy the pty if any;
/// its exit status.
pub(super) fn foreground_with_signals(pid: Pid, master: Option<&OwnedFd>) -> Result<i32, ContainerError> {
    let mask = forwarded_mask();
    mask.thread_block().map_err(host("sigprocmask"))?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC).map_err(host("signalfd"))?;
    let code = foreground(pid, &sfd, master);
    let _ = mask.thread_unblock();
    code
}

/// Receive the pty master the init sent over the console socket.
pub(super) fn receive_master(sock: BorrowedFd<'_>) -> Result<OwnedFd, ContainerError> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(host("recvmsg(console)"))?;
    for c in msg.cmsgs().map_err(host("recvmsg(console) control data"))? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel installed this fd in our table for us; we take ownership.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(ContainerError::Host { step: "recvmsg(console): no fd received".into(), errno: Errno::EBADMSG })
}

/// Restores the terminal mode on drop.
struct RawMode(Option<Termios>);

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, t);
        }
    }
}

fn foreground(pid: Pid, sfd: &SignalFd, master: Option<&OwnedFd>) -> Result<i32, ContainerError> {
    let stdin = std::io::stdin();
    let _raw = RawMode(match master {
        Some(_) if isatty(&stdin).unwrap_or(false) => tcgetattr(&stdin).ok().inspect(|t| {
            let mut raw = t.clone();
            cfmakeraw(&mut raw);
            let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
        }),
        _ => None,
    });
    if let Some(m) = master {
        copy_winsize(m.as_fd());
    }
    let mut stdin_open = master.is_some();
    // The child may have exited before SIGCHLD was blocked: its signal is gone, so look once
    // before waiting for the next one.
    let mut check_exit = true;
    loop {
        if std::mem::take(&mut check_exit) {
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(drain(master, code)),
                Ok(WaitStatus::Signaled(_, s, _)) => return Ok(drain(master, 128 + s as i32)),
                _ => {}
            }
        }
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(m) = master {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(host("poll")(e)),
            Ok(_) => {}
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(false)).collect();
        drop(fds);
        if let (Some(m), Some(true)) = (master, ready.get(1)) {
            if !pump(m.as_fd(), std::io::stdout().as_fd()) {
                // The pty closed: every process holding it is gone; reap below.
            }
        }
        if let (Some(m), Some(true)) = (master, ready.get(2)) {
            stdin_open = pump(stdin.as_fd(), m.as_fd());
        }
        if ready[0] {
            if let Ok(Some(info)) = sfd.read_signal() {
                let sig = Signal::try_from(info.ssi_signo as i32).ok();
                match sig {
                    Some(Signal::SIGCHLD) => {}
                    Some(Signal::SIGWINCH) => {
                        if let Some(m) = master {
                            copy_winsize(m.as_fd());
                        }
                    }
                    Some(s) => {
                        let _ = kill(pid, s);
                    }
                    None => {}
                }
            }
            check_exit = true;
        }
    }
}

/// Copy what is left on the pty after the init exited.
fn drain(master: Option<&OwnedFd>, code: i32) -> i32 {
    if let Some(m) = master {
        let _ = nix::fcntl::fcntl(m, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK));
        while pump(m.as_fd(), std::io::stdout().as_fd()) {}
    }
    code
}

/// Copy one read's worth from `from` to `to`; false on EOF or error.
fn pump(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 8192];
    match read(from, &mut buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            let mut off = 0;
            while off < n {
                match write(to, &buf[off..n]) {
                    Ok(w) => off += w,
                    Err(Errno::EINTR) => {}
                    Err(_) => return false,
                }
            }
            true
        }
    }
}

fn copy_winsize(master: BorrowedFd<'_>) {
    if let Some(ws) = crate::sys::process::get_winsize(std::io::stdin().as_fd()) {
        let _ = crate::sys::process::set_winsize(master, &ws);
    }
}
