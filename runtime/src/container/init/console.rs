//! `terminal: true`: open a pty inside the container (its own devpts), send the master over
//! the console socket as runc does (SCM_RIGHTS, with the pty name as data), and make the
//! slave this process's controlling terminal and stdio.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use nix::pty::{openpty, Winsize};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout, setsid};
use oci_spec::runtime::Box as ConsoleSize;

use super::{sys, InitError};
use crate::sys::process::set_controlling_terminal;

/// Open the pty, hand the master to the console socket, take the slave as stdio.
pub fn setup_console(socket: Option<BorrowedFd<'_>>, size: Option<ConsoleSize>) -> Result<(), InitError> {
    let socket = socket.ok_or_else(|| {
        InitError::Process("process.terminal is true but no --console-socket was given".into())
    })?;
    let winsize = size.map(|s| Winsize {
        ws_row: s.height() as u16,
        ws_col: s.width() as u16,
        ws_xpixel: 0,
        ws_ypixel: 0,
    });
    let pty = openpty(winsize.as_ref(), None).map_err(sys("openpty(/dev/ptmx)"))?;
    let name = nix::unistd::ttyname(pty.slave.as_fd())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "/dev/pts/0".into());
    let fds = [pty.master.as_raw_fd()];
    let iov = [IoSlice::new(name.as_bytes())];
    sendmsg::<()>(socket.as_raw_fd(), &iov, &[ControlMessage::ScmRights(&fds)], MsgFlags::empty(), None)
        .map_err(sys("sendmsg(console socket)"))?;
    drop(pty.master);
    setsid().map_err(sys("setsid"))?;
    set_controlling_terminal(pty.slave.as_fd()).map_err(sys("ioctl(TIOCSCTTY)"))?;
    dup2_stdin(&pty.slave).map_err(sys("dup2(pty, 0)"))?;
    dup2_stdout(&pty.slave).map_err(sys("dup2(pty, 1)"))?;
    dup2_stderr(&pty.slave).map_err(sys("dup2(pty, 2)"))?;
    Ok(())
}
