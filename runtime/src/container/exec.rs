//! `exec`: run another process in a running container, like `lxc-attach`: it joins every
//! namespace of the container's init, its cgroup and root, and gets the capability,
//! no_new_privs and seccomp setup of its process config.

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use oci_spec::runtime::Process;

use super::init::join::{exec_child_main, JoinContext};
use super::run::{foreground_with_signals, receive_master};
use super::spawn::{self, ChildGuard};
use super::{host, ContainerError};
use crate::channel::{self, ChildMsg, ParentMsg};
use crate::state::{ContainerRecord, StateStore, Status};
use crate::sys::process::{clone_into, Forked};

/// Options of `exec`.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// The process to run (from `-p process.json`, or the container's process with overrides).
    pub process: Process,
    /// Return at once instead of waiting for the process.
    pub detach: bool,
    /// Write the process's pid here.
    pub pid_file: Option<PathBuf>,
    /// Send the pty master here (terminal: true).
    pub console_socket: Option<PathBuf>,
    /// Pass fds 3..3+N.
    pub preserve_fds: i32,
    /// `--ignore-paused`: exec in a paused container too (the process starts frozen).
    pub ignore_paused: bool,
    /// `--cgroup`: the sub-cgroups to run the process in.
    pub sub_cgroups: crate::cgroups::SubCgroups,
}

/// The namespaces `exec` joins, in order: user first (the others are checked against it).
fn join_order() -> [(&'static str, CloneFlags); 7] {
    [
        ("user", CloneFlags::CLONE_NEWUSER),
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("cgroup", CloneFlags::CLONE_NEWCGROUP),
        ("time", CloneFlags::from_bits_retain(crate::sys::process::CLONE_NEWTIME as i32)),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ]
}

fn same_ns(pid: i32, name: &str) -> bool {
    let theirs = fs::read_link(format!("/proc/{pid}/ns/{name}")).ok();
    theirs.is_none() || theirs == fs::read_link(format!("/proc/self/ns/{name}")).ok()
}

/// `exec`'s command-line overrides of the container's process (runc's flags).
#[derive(Debug, Clone, Default)]
pub struct ExecOverrides {
    /// The command and its arguments.
    pub args: Vec<String>,
    /// `-t`: allocate a pty.
    pub tty: bool,
    /// `--cwd`.
    pub cwd: Option<PathBuf>,
    /// `--env`, appended to the container's environment.
    pub env: Vec<String>,
    /// `--user uid[:gid]`.
    pub user: Option<(u32, Option<u32>)>,
    /// `--additional-gids`.
    pub additional_gids: Vec<u32>,
    /// `--cap`: added to the bounding, effective and permitted sets.
    pub caps: Vec<String>,
    /// `--no-new-privs`.
    pub no_new_privs: bool,
}

/// The container's process config with `exec`'s command line applied.
pub fn exec_process(base: Option<&Process>, o: &ExecOverrides) -> Result<Process, ContainerError> {
    let mut p = base.cloned().unwrap_or_default();
    p.set_args(Some(o.args.clone()));
    p.set_terminal(Some(o.tty));
    if let Some(cwd) = &o.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut all_env = p.env().clone().unwrap_or_default();
    all_env.extend(o.env.iter().cloned());
    p.set_env(Some(all_env));
    let mut u = p.user().clone();
    if let Some((uid, gid)) = o.user {
        u.set_uid(uid);
        u.set_gid(gid.unwrap_or(0));
    }
    if !o.additional_gids.is_empty() {
        u.set_additional_gids(Some(o.additional_gids.clone()));
    }
    p.set_user(u);
    if o.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !o.caps.is_empty() {
        let mut c = p.capabilities().clone().unwrap_or_default();
        for name in &o.caps {
            let cap: oci_spec::runtime::Capability =
                serde_json::from_value(serde_json::Value::String(name.clone()))
                    .map_err(|_| ContainerError::BadCapability(name.clone()))?;
            let add = |set: &Option<oci_spec::runtime::Capabilities>| {
                let mut set = set.clone().unwrap_or_default();
                set.insert(cap);
                set
            };
            let (b, e, p2) = (add(c.bounding()), add(c.effective()), add(c.permitted()));
            c.set_bounding(Some(b));
            c.set_effective(Some(e));
            c.set_permitted(Some(p2));
        }
        p.set_capabilities(Some(c));
    }
    Ok(p)
}

/// Run `opts.process` in container `id`; its exit status (0 when detached).
pub fn exec(store: &StateStore, id: &str, opts: &ExecOptions) -> Result<i32, ContainerError> {
    // Held until the process is placed in the cgroup: a delete waits, and then finds it
    // there. Not longer: in a paused container the child stays frozen until `resume`, which
    // takes the lock too. The child closes its copy at once.
    let id_lock = store.lock(id)?;
    let rec = store.load(id)?;
    check_status(store, &rec, opts)?;
    let seccomp = store.seccomp_of(&rec)?;
    let (filter, seccomp_listener) = spawn::seccomp_for(store, seccomp.as_ref())?;
    let listener_state = seccomp_listener.as_ref().map(|_| {
        let state = super::ops::state(store, id).ok().and_then(|s| serde_json::to_vec(&s).ok());
        state.unwrap_or_default()
    });
    let joined = JoinedNamespaces::open(rec.pid)?;
    let terminal = opts.process.terminal() == Some(true);
    let (console, ours) = console_for(opts, terminal)?;
    let (parent_sock, child_sock) = channel::pair().map_err(host("socketpair"))?;
    let child = match clone_into(0, None)? {
        Forked::Child => {
            drop(parent_sock);
            exec_child_main(JoinContext {
                process: &opts.process,
                seccomp: filter.as_ref(),
                namespaces: joined.namespaces,
                root: joined.root,
                in_user_ns: joined.in_user_ns,
                sock: child_sock,
                console_socket: console,
                preserve_fds: opts.preserve_fds,
                seccomp_listener,
                session_keyring: Some(format!("_ses.{id}")),
                id_lock_fd: Some(id_lock.raw_fd()),
            })
        }
        Forked::Parent(child) => ChildGuard::new(child),
    };
    drop(child_sock);
    drop(console);
    drop(seccomp_listener);
    let placed = place(&child, &rec, opts, joined.in_user_ns);
    let message = listener_state.as_deref().map(|state| {
        let metadata = seccomp.as_ref().and_then(|p| p.listener_metadata().clone());
        crate::seccomp::listener_message(state, Some(child.pid().as_raw()), metadata.as_deref())
    });
    let msg = if placed.is_ok() { ParentMsg::Go(message.unwrap_or_default()) } else { ParentMsg::Abort };
    channel::send_parent(&parent_sock, &msg).map_err(host("send to exec child"))?;
    placed?;
    drop(id_lock);
    match spawn::receive(&parent_sock, "exec child")? {
        Some(ChildMsg::Ready) => {}
        other => return Err(spawn::unexpected(other, "exec child exited before it was ready")),
    }
    if let Some(p) = &opts.pid_file {
        spawn::write_pid_file(p, child.pid())?;
    }
    let child = child.disarm();
    if opts.detach {
        return Ok(0);
    }
    let master = match (terminal, ours) {
        (true, Some(sock)) => Some(receive_master(sock.as_fd())?),
        _ => None,
    };
    foreground_with_signals(child, master.as_ref())
}

/// exec runs in a created or running container, in a paused one with `--ignore-paused`.
fn check_status(store: &StateStore, rec: &ContainerRecord, opts: &ExecOptions) -> Result<(), ContainerError> {
    let status = store.status(rec);
    let op = match status {
        Status::Created | Status::Running => return Ok(()),
        Status::Paused if opts.ignore_paused => return Ok(()),
        Status::Paused => "exec in a paused container (use --ignore-paused to override)",
        _ => "exec (not running)",
    };
    Err(ContainerError::WrongStatus { id: rec.id.clone(), status, op })
}

/// What the exec'd process joins of the container's init `pid`: its namespaces (but pid,
/// joined here for the children of this process) and its root.
struct JoinedNamespaces {
    namespaces: Vec<(CloneFlags, OwnedFd, PathBuf)>,
    root: OwnedFd,
    in_user_ns: bool,
}

impl JoinedNamespaces {
    fn open(pid: i32) -> Result<Self, ContainerError> {
        let open = |what: &'static str, path: PathBuf| {
            let f = fs::File::open(&path).map_err(|source| ContainerError::Bundle {
                what,
                path: path.clone(),
                source,
            })?;
            Ok::<_, ContainerError>((OwnedFd::from(f), path))
        };
        let mut namespaces = Vec::new();
        for (name, flag) in join_order() {
            if !same_ns(pid, name) {
                let (fd, path) = open("namespace", PathBuf::from(format!("/proc/{pid}/ns/{name}")))?;
                namespaces.push((flag, fd, path));
            }
        }
        let in_user_ns = namespaces.iter().any(|(f, _, _)| *f == CloneFlags::CLONE_NEWUSER);
        let (root, _) = open("container root", PathBuf::from(format!("/proc/{pid}/root")))?;
        let join_pid = !same_ns(pid, "pid");
        if join_pid && in_user_ns && super::rootless::is_rootless() {
            // Joining a pid namespace needs CAP_SYS_ADMIN in this process's own user namespace
            // too: an unprivileged caller joins the container's first (runc's nsexec does
            // the same), and its child then must not join it again.
            let (_, fd, path) = namespaces.remove(0);
            setns(fd.as_fd(), CloneFlags::CLONE_NEWUSER)
                .map_err(host(format!("setns {}", path.display())))?;
        }
        if join_pid {
            let (fd, path) = open("namespace", PathBuf::from(format!("/proc/{pid}/ns/pid")))?;
            setns(fd.as_fd(), CloneFlags::CLONE_NEWPID).map_err(host(format!("setns {}", path.display())))?;
        }
        Ok(JoinedNamespaces { namespaces, root, in_user_ns })
    }
}

/// The exec'd child placed: its initial cpu affinity, its (sub-)cgroup, its oomScoreAdj in
/// a user namespace.
fn place(
    child: &ChildGuard,
    rec: &ContainerRecord,
    opts: &ExecOptions,
    in_user_ns: bool,
) -> Result<(), ContainerError> {
    let child = child.pid();
    // process.execCPUAffinity.initial: the affinity before the move into the cgroup.
    let initial = opts.process.exec_cpu_affinity().as_ref().and_then(|a| a.initial().clone());
    if let Some(list) = initial {
        let set = super::init::cpu_set(&list, "process.execCPUAffinity.initial")
            .map_err(|message| ContainerError::Init { step: "process attributes".into(), message })?;
        nix::sched::sched_setaffinity(child, &set)
            .map_err(host(format!("sched_setaffinity({child}) (process.execCPUAffinity.initial)")))?;
    }
    if let Some(cg) = rec.cgroup() {
        cg.add_task_sub(child, &opts.sub_cgroups)?;
    }
    match in_user_ns {
        true => super::write_oom_score_adj(child, opts.process.oom_score_adj())
            .and_then(|()| super::write_rlimits(child, Some(&opts.process))),
        false => Ok(()),
    }
}

/// Our own console socket pair for a foreground `exec -t` without `--console-socket`.
fn console_for(
    opts: &ExecOptions,
    terminal: bool,
) -> Result<(Option<OwnedFd>, Option<OwnedFd>), ContainerError> {
    if let Some(p) = &opts.console_socket {
        let s = UnixStream::connect(p).map_err(|e| ContainerError::Bundle {
            what: "console socket",
            path: p.clone(),
            source: e,
        })?;
        return Ok((Some(OwnedFd::from(s)), None));
    }
    if terminal && !opts.detach {
        let (a, b) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)
            .map_err(host("socketpair"))?;
        return Ok((Some(b), Some(a)));
    }
    Ok((None, None))
}
