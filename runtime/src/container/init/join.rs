//! `exec`'s child: join the namespaces of a running container (already in its pid
//! namespace and cgroup by the parent), then set up the process like the init does and exec.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use nix::sched::{setns, CloneFlags};
use oci_spec::runtime::Process;

use super::{exec, exit, finish_process, InitError, StepResult};
use crate::channel::{self, ChildMsg, ParentMsg};

/// What `exec`'s child needs; built by the parent before clone.
#[derive(Debug)]
pub struct JoinContext<'a> {
    /// The process to run.
    pub process: &'a Process,
    /// The container's seccomp filter, compiled by the parent.
    pub seccomp: Option<&'a crate::seccomp::Filter>,
    /// Namespaces to join, user first, each (flag, open ns file, path for errors).
    pub namespaces: Vec<(CloneFlags, OwnedFd, PathBuf)>,
    /// The init's root directory (`/proc/<pid>/root`), entered after the namespaces so a
    /// container set up without pivot_root is not escaped through its mount namespace's root.
    pub root: OwnedFd,
    /// The container has its own user namespace.
    pub in_user_ns: bool,
    /// Child end of the sync socket.
    pub sock: OwnedFd,
    /// Console socket for `-t`.
    pub console_socket: Option<OwnedFd>,
    /// fds 3..3+N stay open.
    pub preserve_fds: i32,
    /// `SCMP_ACT_NOTIFY`: the socket connected to `linux.seccomp.listenerPath`.
    pub seccomp_listener: Option<OwnedFd>,
    /// The container's session keyring to join (`_ses.<id>`, as runc's exec does).
    pub session_keyring: Option<String>,
    /// The parent's copy of the container's lock: closed first thing, never unlocked (a
    /// child frozen in a paused cgroup must not hold the lock `resume` needs).
    pub id_lock_fd: Option<std::os::fd::RawFd>,
}

/// Run `exec`'s child. Never returns.
pub fn exec_child_main(ctx: JoinContext<'_>) -> ! {
    let _ = nix::sys::prctl::set_dumpable(false);
    if let Some(fd) = ctx.id_lock_fd {
        let _ = nix::unistd::close(fd);
    }
    // Go carries the message for the seccomp listener (empty without one).
    let message = match channel::recv_parent(&ctx.sock) {
        Ok(ParentMsg::Go(m)) => m,
        _ => exit(1),
    };
    let console = ctx.console_socket.as_ref().map(|s| s.as_fd());
    let mut prepared = match join_and_prepare(&ctx, console) {
        Ok(p) => p,
        Err((step, e)) => {
            let _ = channel::send_child(
                &ctx.sock,
                &ChildMsg::Failed { step: step.to_owned(), message: e.to_string() },
            );
            exit(1);
        }
    };
    prepared.listener = ctx.seccomp_listener.map(|s| (s, message));
    if channel::send_child(&ctx.sock, &ChildMsg::Ready).is_err() {
        exit(1);
    }
    drop(ctx.sock);
    exec::exec(&prepared)
}

fn join_and_prepare<'a>(
    ctx: &JoinContext<'a>,
    console: Option<BorrowedFd<'_>>,
) -> StepResult<exec::Launch<'a>> {
    for (flag, fd, path) in &ctx.namespaces {
        setns(fd.as_fd(), *flag)
            .map_err(|errno| ("namespaces", InitError::Setns { path: path.clone(), errno }))?;
    }
    super::attrs::apply_exec_affinity(ctx.process).map_err(|e| ("process attributes", e))?;
    nix::unistd::fchdir(ctx.root.as_fd())
        .map_err(|e| ("root", super::sys("fchdir(/proc/<init>/root)")(e)))?;
    nix::unistd::chroot(".").map_err(|e| ("root", super::sys("chroot(/proc/<init>/root)")(e)))?;
    let keyring = ctx.session_keyring.as_deref();
    finish_process(ctx.process, ctx.seccomp, ctx.in_user_ns, console, ctx.preserve_fds, keyring)
}
