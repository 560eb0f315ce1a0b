//! The container's init, on the child side of clone3: everything from namespace entry to
//! `execve`. It never returns: it execs the user process or exits after reporting the
//! failed step to the parent over the sync socket.

mod attrs;
mod console;
pub(crate) mod creds;
mod exec;
pub mod join;
mod parent_death;

pub use attrs::cpu_set;

use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::sched::{setns, unshare, CloneFlags};
use nix::unistd::{sethostname, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::Spec;

use super::plan::NamespacePlan;
use crate::channel::{self, ChildMsg, ParentMsg};
use crate::hooks;
use crate::rootfs::{self, RootfsOptions};
use crate::sys::process::{set_domainname, CLONE_NEWTIME};

/// Failure of one init step, with the path or syscall that failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// Joining a namespace by path failed.
    #[error("join namespace {path}: {errno}")]
    Setns {
        /// The namespace file.
        path: PathBuf,
        /// The errno.
        errno: Errno,
    },
    /// A syscall without a path failed.
    #[error("{call}: {errno}")]
    Syscall {
        /// The syscall and its argument, e.g. `sethostname("box")`.
        call: String,
        /// The errno.
        errno: Errno,
    },
    /// A file read or write failed.
    #[error("{op} {path}: {source}")]
    File {
        /// read/write/open.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Rootfs setup failed.
    #[error(transparent)]
    Rootfs(#[from] rootfs::RootfsError),
    /// The seccomp profile could not be compiled or loaded.
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    /// The process could not be prepared (user, capabilities, executable...).
    #[error("{0}")]
    Process(String),
}

fn sys(call: impl Into<String>) -> impl FnOnce(Errno) -> InitError {
    let call = call.into();
    move |errno| InitError::Syscall { call, errno }
}

/// Everything the child needs; built by the parent before clone.
#[derive(Debug)]
pub struct ChildContext<'a> {
    /// The validated spec.
    pub spec: &'a Spec,
    /// Namespaces to create / join.
    pub plan: &'a NamespacePlan,
    /// Rootfs options.
    pub rootfs: RootfsOptions,
    /// Child end of the sync socket.
    pub sock: OwnedFd,
    /// The exec fifo, opened O_RDWR by the parent: read one byte to proceed (None: exec at once).
    pub exec_fifo: Option<OwnedFd>,
    /// A connected console socket to send the pty master over (terminal: true).
    pub console_socket: Option<OwnedFd>,
    /// fds 3..3+N stay open in the container (`--preserve-fds`).
    pub preserve_fds: i32,
    /// Join this session keyring (`_ses.<id>`; None: `--no-new-keyring`, keep the caller's).
    pub session_keyring: Option<String>,
    /// Join the container's v1 cgroups first thing after `Go`: `0` is written into each of
    /// these `tasks` files (empty: the parent placed the init, or it was cloned into them).
    pub self_cgroup: Vec<PathBuf>,
    /// Create the cgroup namespace now (the init was placed in its cgroup after clone).
    pub unshare_cgroupns: bool,
    /// The seccomp filter, compiled by the parent.
    pub seccomp: Option<&'a crate::seccomp::Filter>,
    /// `SCMP_ACT_NOTIFY`: the socket connected to `linux.seccomp.listenerPath`.
    pub seccomp_listener: Option<OwnedFd>,
    /// The parent's copy of the container's lock (`flock`ed): closed first thing, never
    /// unlocked (that would release the parent's lock), so `start` can take it later.
    pub id_lock_fd: Option<std::os::fd::RawFd>,
}

/// Run the container's init. Never returns.
pub fn child_main(ctx: ChildContext<'_>) -> ! {
    // Until execve, this process is the isorun binary inside the container: keep other
    // processes from opening /proc/<pid>/exe or its fds (CVE-2019-5736). execve resets it.
    // In a new user namespace it stays dumpable until the parent has written its id maps
    // (runc does the same): a non-dumpable process's /proc files belong to root, and an
    // unprivileged parent could not open its uid_map. Nothing of the container runs before.
    if !ctx.plan.new_user_ns {
        let _ = nix::sys::prctl::set_dumpable(false);
    }
    if let Some(fd) = ctx.id_lock_fd {
        let _ = nix::unistd::close(fd);
    }
    // Until `create` has recorded the container and said so (`Commit`), the init dies with it.
    if !parent_death::arm(&ctx.sock) {
        exit(1);
    }
    let state = match channel::recv_parent(&ctx.sock) {
        Ok(ParentMsg::Go(state)) => state,
        _ => exit(1),
    };
    let _ = nix::sys::prctl::set_dumpable(false);
    let mut prepared = match setup(&ctx, &state) {
        Ok(p) => p,
        Err((step, e)) => {
            let msg = ChildMsg::Failed { step: step.to_owned(), message: e.to_string() };
            let _ = channel::send_child(&ctx.sock, &msg);
            exit(1);
        }
    };
    if let Some(sock) = ctx.seccomp_listener {
        let metadata =
            ctx.spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()?.listener_metadata().clone());
        prepared.listener = Some((sock, crate::seccomp::listener_message(&state, None, metadata.as_deref())));
    }
    // Changing credentials cleared the parent-death signal: set it again.
    if !parent_death::arm(&ctx.sock) || channel::send_child(&ctx.sock, &ChildMsg::Ready).is_err() {
        exit(1);
    }
    if !parent_death::commit(&ctx.sock) {
        exit(1);
    }
    drop(ctx.sock);
    if let Some(fifo) = ctx.exec_fifo {
        if !exec::wait_for_start(fifo.as_fd()) {
            exit(1);
        }
    }
    let start_hooks =
        ctx.spec.hooks().as_ref().and_then(|h| h.start_container().as_deref()).unwrap_or_default();
    let env = prepared.prepared.env_strings();
    if let Err(e) = hooks::run_hooks_with_env("startContainer", start_hooks, &state, Some(&env)) {
        eprintln!("isorun: {e}");
        exit(1);
    }
    exec::exec(&prepared)
}

pub(crate) fn exit(code: i32) -> ! {
    // SAFETY: _exit ends the process at once without running atexit handlers or Rust
    // destructors that belong to the parent's copy of the address space.
    unsafe { libc::_exit(code) }
}

pub(crate) type StepResult<T> = Result<T, (&'static str, InitError)>;

fn step<T>(name: &'static str, r: Result<T, InitError>) -> StepResult<T> {
    r.map_err(|e| (name, e))
}

/// The spec mounts a `type: cgroup` filesystem.
fn has_cgroup_mount(spec: &oci_spec::runtime::Spec) -> bool {
    spec.mounts().iter().flatten().any(|m| m.typ().as_deref() == Some("cgroup"))
}

/// Before pivot_root: have the parent run prestart + createRuntime (in the runtime's
/// namespaces), then run createContainer here (in the container's namespaces).
fn before_pivot(ctx: &ChildContext<'_>, state: &[u8]) -> Result<(), String> {
    let hooks = ctx.spec.hooks().as_ref();
    let has = |h: Option<&Vec<oci_spec::runtime::Hook>>| h.is_some_and(|v| !v.is_empty());
    if has(hooks.and_then(|h| h.prestart().as_ref())) || has(hooks.and_then(|h| h.create_runtime().as_ref()))
    {
        channel::send_child(&ctx.sock, &ChildMsg::RunHooks).map_err(|e| format!("ask for hooks: {e}"))?;
        match channel::recv_parent(&ctx.sock) {
            Ok(ParentMsg::Go(_)) => {}
            _ => exit(1),
        }
    }
    let create_hooks = hooks.and_then(|h| h.create_container().as_deref()).unwrap_or_default();
    hooks::run_hooks("createContainer", create_hooks, state).map_err(|e| e.to_string())
}

fn setup<'a>(ctx: &ChildContext<'a>, state: &[u8]) -> StepResult<exec::Launch<'a>> {
    let spec = ctx.spec;
    step("cgroup", join_own_cgroups(&ctx.self_cgroup))?;
    let mut rootfs = ctx.rootfs.clone();
    if ctx.unshare_cgroupns {
        if has_cgroup_mount(spec) {
            rootfs.host_cgroup_view =
                Some(step("cgroup", rootfs::cgroupfs::HostCgroupView::read().map_err(InitError::from))?);
        }
        step(
            "cgroup namespace",
            unshare(CloneFlags::CLONE_NEWCGROUP).map_err(sys("unshare(CLONE_NEWCGROUP)")),
        )?;
    }
    step("namespaces", join_namespaces(ctx.plan))?;
    if ctx.plan.clone_flags & libc::CLONE_NEWNET as u64 != 0 {
        step("network", crate::sys::net::loopback_up().map_err(sys("ioctl(SIOCSIFFLAGS, lo up)")))?;
    }
    if ctx.plan.new_user_ns {
        step("user namespace", become_ns_root())?;
        if !parent_death::arm(&ctx.sock) {
            exit(1);
        }
    }
    if let Some(offsets) = &ctx.plan.time_offsets {
        step("time namespace", enter_time_ns(offsets))?;
    }
    if let Some(h) = spec.hostname() {
        step("hostname", sethostname(h).map_err(sys(format!("sethostname({h:?})"))))?;
    }
    if let Some(d) = spec.domainname() {
        step("domainname", set_domainname(d).map_err(sys(format!("setdomainname({d:?})"))))?;
    }
    step("process attributes", attrs::apply_linux(spec.linux().as_ref()))?;
    let mut hooks_now = || before_pivot(ctx, state);
    step("rootfs", rootfs::setup_rootfs_with(spec, &rootfs, &mut hooks_now).map_err(InitError::from))?;
    let process =
        spec.process().as_ref().ok_or(("process", InitError::Process("no process in config".into())))?;
    let console = ctx.console_socket.as_ref().map(|s| s.as_fd());
    if process.terminal() != Some(true) {
        // The init leads its own session, as runc's does (the console path makes one with
        // its pty): nothing ties it to the caller's session, and CRIU can checkpoint it.
        step("setsid", nix::unistd::setsid().map(drop).map_err(sys("setsid")))?;
    }
    let keyring = ctx.session_keyring.as_deref();
    finish_process(process, ctx.seccomp, ctx.plan.new_user_ns, console, ctx.preserve_fds, keyring)
}

/// The process part shared by a container's init and `exec`: terminal, executable and cwd,
/// fds, LSM labels and credentials. The seccomp filter is not installed here: it goes on in
/// [`exec::exec`], after the exec fifo and the startContainer hooks, as the last step before
/// execve (runc does so with noNewPrivileges). Without noNewPrivileges loading it needs
/// CAP_SYS_ADMIN, so that capability is kept until then and one capset follows the filter.
pub(crate) fn finish_process<'a>(
    process: &oci_spec::runtime::Process,
    filter: Option<&'a crate::seccomp::Filter>,
    in_user_ns: bool,
    console_socket: Option<std::os::fd::BorrowedFd<'_>>,
    preserve_fds: i32,
    session_keyring: Option<&str>,
) -> StepResult<exec::Launch<'a>> {
    if let Some(name) = session_keyring {
        // Like runc: a kernel without keyrings (ENOSYS) is no error.
        match crate::sys::process::join_session_keyring(name) {
            Ok(_) | Err(Errno::ENOSYS) => {}
            Err(e) => {
                return Err(("session keyring", sys(format!("keyctl(JOIN_SESSION_KEYRING, {name:?})"))(e)))
            }
        }
    }
    if process.terminal() == Some(true) {
        step("console", console::setup_console(console_socket, process.console_size()))?;
    }
    let prepared = step("process", exec::prepare(process))?;
    step("fds", crate::sys::process::cloexec_from(3 + preserve_fds).map_err(sys("close_range")))?;
    step("process attributes", attrs::apply_process(process))?;
    step("lsm", crate::lsm::apply_on_exec(process).map_err(|e| InitError::Process(e.to_string())))?;
    let keep_admin = filter.is_some() && process.no_new_privileges() != Some(true);
    let final_caps = step("credentials", creds::apply(process, in_user_ns, keep_admin))?;
    Ok(exec::Launch { prepared, filter, final_caps, listener: None })
}

/// Move this (single-threaded) process into its cgroup in each v1 hierarchy by writing `0`
/// (the calling thread) into the cgroup's `tasks` file there. Nothing of the container has
/// run yet: this is the first step after the parent's `Go`.
fn join_own_cgroups(tasks: &[PathBuf]) -> Result<(), InitError> {
    for path in tasks {
        let written = fs::OpenOptions::new().write(true).open(path).and_then(|mut f| f.write_all(b"0"));
        written.map_err(|source| InitError::File { op: "write", path: path.clone(), source })?;
    }
    Ok(())
}

fn join_namespaces(plan: &NamespacePlan) -> Result<(), InitError> {
    for (flag, path) in &plan.join {
        let f = fs::File::open(path).map_err(|source| InitError::File {
            op: "open",
            path: path.clone(),
            source,
        })?;
        setns(f.as_fd(), *flag).map_err(|errno| InitError::Setns { path: path.clone(), errno })?;
    }
    Ok(())
}

fn become_ns_root() -> Result<(), InitError> {
    setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0)).map_err(sys("setresgid(0)"))?;
    setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).map_err(sys("setresuid(0)"))
}

fn enter_time_ns(offsets: &str) -> Result<(), InitError> {
    let time = CloneFlags::from_bits_retain(CLONE_NEWTIME as i32);
    unshare(time).map_err(sys("unshare(CLONE_NEWTIME)"))?;
    if !offsets.is_empty() {
        let path = PathBuf::from("/proc/self/timens_offsets");
        fs::write(&path, offsets).map_err(|source| InitError::File { op: "write", path, source })?;
    }
    let path = PathBuf::from("/proc/self/ns/time_for_children");
    let f =
        fs::File::open(&path).map_err(|source| InitError::File { op: "open", path: path.clone(), source })?;
    setns(f.as_fd(), time).map_err(|errno| InitError::Setns { path, errno })
}
