//! The one socketpair between `isorun` (parent) and the container's init (child).
//!
//! SOCK_SEQPACKET keeps message boundaries, so each message is one datagram: the parent
//! sends [`ParentMsg`] bytes, the child answers with a JSON [`ChildMsg`]. An error in the
//! child travels back with its step and context, so the caller sees
//! `mount proc on /…/rootfs/proc: EPERM`, never a bare "init failed".

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};

/// What the child reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChildMsg {
    /// Setup done; waiting on the exec fifo (or about to exec).
    Ready,
    /// The parent-death signal is off (answer to `Commit`): the init now outlives `create`.
    Committed,
    /// Mounts are done, pivot_root is next: run prestart and createRuntime hooks now, then
    /// answer `Go` (or `Abort`).
    RunHooks,
    /// A step failed; the message carries the step, path and errno.
    Failed {
        /// The step (`rootfs`, `capabilities`, ...).
        step: String,
        /// The error with its context.
        message: String,
    },
}

/// What the parent tells the child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParentMsg {
    /// uid_map/gid_map are written (or none were needed), hooks ran: go on. Carries the
    /// container's OCI state JSON (for the hooks the child runs) on the first `Go`.
    Go(Vec<u8>),
    /// Setup in the parent failed: exit now.
    Abort,
    /// The container is recorded: turn the parent-death signal off and answer `Committed`;
    /// then wait on the exec fifo. EOF instead means `create` died: exit.
    Commit,
}

/// Both ends: `.0` stays in the parent, `.1` goes to the child.
pub fn pair() -> Result<(OwnedFd, OwnedFd), Errno> {
    socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
}

/// Send a child message (child side).
pub fn send_child(fd: impl AsFd, msg: &ChildMsg) -> Result<(), Errno> {
    let bytes = serde_json::to_vec(msg).map_err(|_| Errno::EINVAL)?;
    send(fd.as_fd().as_raw_fd(), &bytes, MsgFlags::MSG_NOSIGNAL).map(drop)
}

/// Receive the child's message; `Ok(None)` when the child closed its end without one.
pub fn recv_child(fd: impl AsFd) -> Result<Option<ChildMsg>, Errno> {
    let mut buf = vec![0u8; 64 * 1024];
    let n = recv_retry(&fd, &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    serde_json::from_slice(&buf[..n]).map(Some).map_err(|_| Errno::EBADMSG)
}

/// Send a parent message (parent side): `g` + payload, or `a`.
pub fn send_parent(fd: impl AsFd, msg: &ParentMsg) -> Result<(), Errno> {
    let bytes = match msg {
        ParentMsg::Go(state) => [b"g".as_slice(), state].concat(),
        ParentMsg::Abort => b"a".to_vec(),
        ParentMsg::Commit => b"c".to_vec(),
    };
    send(fd.as_fd().as_raw_fd(), &bytes, MsgFlags::MSG_NOSIGNAL).map(drop)
}

/// Receive the parent's message (child side); EOF counts as `Abort`.
pub fn recv_parent(fd: impl AsFd) -> Result<ParentMsg, Errno> {
    let mut buf = vec![0u8; 64 * 1024];
    let n = recv_retry(&fd, &mut buf)?;
    match buf.first() {
        Some(b'g') if n > 0 => Ok(ParentMsg::Go(buf[1..n].to_vec())),
        Some(b'c') if n == 1 => Ok(ParentMsg::Commit),
        _ => Ok(ParentMsg::Abort),
    }
}

fn recv_retry(fd: &impl AsFd, buf: &mut [u8]) -> Result<usize, Errno> {
    loop {
        match recv(fd.as_fd().as_raw_fd(), buf, MsgFlags::empty()) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_over_a_real_socketpair() {
        let (p, c) = pair().unwrap();
        send_parent(&p, &ParentMsg::Go(b"{}".to_vec())).unwrap();
        assert_eq!(recv_parent(&c).unwrap(), ParentMsg::Go(b"{}".to_vec()));
        send_parent(&p, &ParentMsg::Abort).unwrap();
        assert_eq!(recv_parent(&c).unwrap(), ParentMsg::Abort);
        send_parent(&p, &ParentMsg::Commit).unwrap();
        assert_eq!(recv_parent(&c).unwrap(), ParentMsg::Commit);
        send_child(&c, &ChildMsg::Committed).unwrap();
        assert_eq!(recv_child(&p).unwrap(), Some(ChildMsg::Committed));
        let msg = ChildMsg::Failed { step: "rootfs".into(), message: "mount proc on /x: EPERM".into() };
        send_child(&c, &msg).unwrap();
        assert_eq!(recv_child(&p).unwrap(), Some(msg));
        drop(c);
        assert_eq!(recv_child(&p).unwrap(), None);
        // The parent gone: EOF reads as Abort.
        let (p, c) = pair().unwrap();
        drop(p);
        assert_eq!(recv_parent(&c).unwrap(), ParentMsg::Abort);
    }
}
