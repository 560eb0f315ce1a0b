//! The init dies with the `create` that made it, until `create` has recorded it.
//!
//! `PR_SET_PDEATHSIG(SIGKILL)` fires when the *thread* that cloned the init exits: `create`
//! clones from isorun's main thread, whose exit is the process's. It is cleared by every
//! change of effective or filesystem uid/gid, so [`arm`] runs again after each. The parent
//! may die before the first `prctl`: its end of the sync socket is then closed, which
//! [`arm`] checks after setting the signal (`getppid` cannot tell, it reads 0 in a new pid
//! namespace). `create` that finished normally sends `Commit`; [`commit`] clears the signal
//! and answers, so `create` exits only once the init no longer depends on it. EOF instead of
//! `Commit` means `create` died after `Ready`: the caller exits.

use std::os::fd::{AsFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;

use crate::channel::{self, ChildMsg, ParentMsg};

/// Set SIGKILL as the parent-death signal; false when the parent is already gone.
pub(super) fn arm(sock: &OwnedFd) -> bool {
    if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err() {
        return false;
    }
    parent_alive(sock)
}

/// The parent still holds its end of the sync socket (no hang-up).
fn parent_alive(sock: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(0) => true,
        Ok(_) => !fds[0].revents().is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR)),
        Err(_) => false,
    }
}

/// Wait for `Commit`, clear the parent-death signal, answer `Committed`; false when the
/// parent died (or aborted) instead.
pub(super) fn commit(sock: &OwnedFd) -> bool {
    match channel::recv_parent(sock) {
        Ok(ParentMsg::Commit) => {}
        _ => return false,
    }
    if nix::sys::prctl::set_pdeathsig(None).is_err() {
        return false;
    }
    channel::send_child(sock, &ChildMsg::Committed).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_parent_end_reads_as_dead() {
        let (p, c) = channel::pair().unwrap();
        assert!(parent_alive(&c));
        // A message waiting is no hang-up.
        channel::send_parent(&p, &ParentMsg::Commit).unwrap();
        assert!(parent_alive(&c));
        drop(p);
        assert!(!parent_alive(&c));
    }

    #[test]
    fn commit_needs_commit() {
        let (p, c) = channel::pair().unwrap();
        channel::send_parent(&p, &ParentMsg::Abort).unwrap();
        assert!(!commit(&c));
        drop(p);
        assert!(!commit(&c));
    }
}
