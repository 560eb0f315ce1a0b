//! `create`: validate, clone3 the init into its namespaces, write its id maps, wait for it
//! to report ready (or a failed step), record the state. Any failure undoes what was done:
//! the init is killed and reaped, the state directory removed.

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{mkfifo, Pid};

use super::plan::{plan_namespaces, NamespacePlan};
use super::{host, ContainerError};
use crate::cgroups::CgroupManager;
use crate::channel::{self, ChildMsg, ParentMsg};
use crate::config::parse_config;
use crate::hooks;
use crate::init::{child_main, ChildContext};
use crate::rootfs::RootfsOptions;
use crate::state::{self, ContainerRecord, StateStore, EXEC_FIFO};
use crate::sys::process::{clone_into, Forked};

/// Options of `create` (and `run`).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// The bundle directory (holds config.json).
    pub bundle: PathBuf,
    /// Write init's pid here.
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send the pty master to (terminal: true).
    pub console_socket: Option<PathBuf>,
    /// Pass fds 3..3+N to the container.
    pub preserve_fds: i32,
    /// Use MS_MOVE+chroot instead of pivot_root.
    pub no_pivot: bool,
    /// Keep the caller's session keyring (`--no-new-keyring`) instead of joining `_ses.<id>`.
    pub no_new_keyring: bool,
}

/// A created container: its init waits on the exec fifo.
#[derive(Debug)]
pub struct Created {
    /// Init's pid (a child of this process until it exits).
    pub pid: Pid,
    /// process.terminal: the pty master went to the console socket.
    pub terminal: bool,
}

/// Removes the state directory unless disarmed.
struct DirGuard<'a> {
    store: &'a StateStore,
    id: &'a str,
    armed: bool,
}

impl Drop for DirGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.store.remove(self.id);
        }
    }
}

/// Removes the cgroup unless disarmed (after the init guard has killed the init).
struct CgroupGuard<'a> {
    cgroup: &'a CgroupManager,
    armed: bool,
}

impl Drop for CgroupGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.cgroup.remove();
        }
    }
}

/// Kills and reaps the init unless disarmed.
struct ChildGuard {
    pid: Pid,
    armed: bool,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = kill(self.pid, Signal::SIGKILL);
            let _ = waitpid(self.pid, None);
        }
    }
}

fn bundle_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> ContainerError + use<'a> {
    move |source| ContainerError::Bundle { what, path: path.to_owned(), source }
}

/// How long libseccomp may take to compile a profile (a docker-sized one takes ~13 ms).
pub(crate) const SECCOMP_COMPILE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Create container `id` from the bundle in `opts`.
pub fn create(store: &StateStore, id: &str, opts: &CreateOptions) -> Result<Created, ContainerError> {
    create_with_console(store, id, opts, None)
}

/// `create`, with an already connected console socket used when `opts` names none.
pub(super) fn create_with_console(
    store: &StateStore,
    id: &str,
    opts: &CreateOptions,
    console: Option<OwnedFd>,
) -> Result<Created, ContainerError> {
    state::validate_id(id)?;
    // v1 hosts: start the cgroup attach wait now, in parallel with the work before clone3.
    let primed = crate::cgroups::prime_attach();
    let bundle = fs::canonicalize(&opts.bundle).map_err(bundle_err("bundle", &opts.bundle))?;
    let config_path = bundle.join("config.json");
    let bytes = fs::read(&config_path).map_err(bundle_err("config", &config_path))?;
    let config = parse_config(&bytes)
        .map_err(|errors| ContainerError::Config { path: config_path.clone(), errors })?;
    let spec = config.spec();
    let root = spec.root().as_ref().map(|r| r.path().clone()).unwrap_or_default();
    let root = bundle.join(root);
    let rootfs = fs::canonicalize(&root).map_err(bundle_err("root.path", &root))?;
    if !rootfs.is_dir() {
        return Err(ContainerError::Bundle {
            what: "root.path",
            path: rootfs,
            source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    if rootfs == Path::new("/") {
        // A rootfs that is (or links to) the host's root would have the container's mounts
        // and masks set up over the host's own tree.
        return Err(ContainerError::Bundle {
            what: "root.path",
            path: root,
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "resolves to the host's root directory",
            ),
        });
    }
    crate::lsm::check(spec, crate::lsm::HostLsms::detect())?;
    if spec.linux().as_ref().is_some_and(|l| l.intel_rdt().is_some()) {
        return Err(ContainerError::Unsupported {
            field: "linux.intelRdt",
            reason: "Intel RDT (resctrl) is not implemented by isorun",
        });
    }
    let plan = plan_namespaces(spec);
    let shared_mount_ns = !plan.new_mount_ns && !plan.join.iter().any(|(f, _)| *f == CloneFlags::CLONE_NEWNS);
    if shared_mount_ns {
        super::shared_mount::check(spec, opts.no_pivot)?;
    }
    let console = match &opts.console_socket {
        Some(p) => Some(OwnedFd::from(UnixStream::connect(p).map_err(bundle_err("console socket", p))?)),
        None => console,
    };
    let terminal = spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
    let net_devices = spec.linux().as_ref().and_then(|l| l.net_devices().clone()).unwrap_or_default();
    crate::net::check_devices_exist(&net_devices)?;
    let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    let filter = seccomp
        .map(|p| crate::seccomp::cache::compile_cached(store.root(), p, SECCOMP_COMPILE_LIMIT))
        .transpose()?;
    let seccomp_listener = connect_listener(filter.as_ref(), seccomp)?;

    let cgroups_path = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned());
    let cgroup = CgroupManager::new(id, cgroups_path.as_deref())?;
    // Record what is about to be made before making it: a create killed from here on leaves
    // a record `delete --force` undoes (the cgroup, the rootfs bind, later the init).
    let mut record = ContainerRecord {
        id: id.to_owned(),
        pid: 0,
        pid_start_time: 0,
        bundle: bundle.clone(),
        rootfs: rootfs.clone(),
        created: humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
        owner: owner_name(),
        annotations: spec.annotations().clone().unwrap_or_default().into_iter().collect(),
        oci_version: spec.version().clone(),
        own_pid_ns: plan.own_pid_ns,
        cgroup_path: Some(cgroup.path().to_owned()),
        hooks: spec.hooks().clone(),
        process: spec.process().clone(),
        seccomp: spec.linux().as_ref().and_then(|l| l.seccomp().clone()),
        net_devices: net_devices.clone(),
        rootfs_bound: shared_mount_ns,
        creator: Some(state::self_identity()),
    };
    let (dir, id_lock) = store.create_locked(&record)?;
    let mut dir_guard = DirGuard { store, id, armed: true };
    let fifo_path = dir.join(EXEC_FIFO);
    mkfifo(&fifo_path, Mode::from_bits_truncate(0o600))
        .map_err(host(format!("mkfifo {}", fifo_path.display())))?;
    let fifo = open(&fifo_path, OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(host(format!("open {}", fifo_path.display())))?;
    if let Some(p) = &plan.join_pid {
        let f = fs::File::open(p).map_err(bundle_err("linux.namespaces pid path", p))?;
        setns(f.as_fd(), CloneFlags::CLONE_NEWPID).map_err(host(format!("setns {}", p.display())))?;
    }
    cgroup.create(spec.linux().as_ref().and_then(|l| l.resources().as_ref()))?;
    let mut cgroup_guard = CgroupGuard { cgroup: &cgroup, armed: true };
    let cgroup_fd = cgroup.clone_into_fd();
    // No mount namespace: the rootfs bind is made (and undone) here, in the caller's.
    let rootfs_bind = shared_mount_ns.then(|| super::shared_mount::RootfsBind::new(&rootfs)).transpose()?;
    let (parent_sock, child_sock) = channel::pair().map_err(host("socketpair"))?;
    let rootfs_opts = RootfsOptions {
        rootfs: rootfs.clone(),
        bundle: bundle.clone(),
        in_user_ns: plan.new_user_ns || plan.join.iter().any(|(f, _)| *f == CloneFlags::CLONE_NEWUSER),
        in_cgroup_ns: plan.new_cgroup_ns,
        no_pivot: opts.no_pivot,
        shared_mount_ns,
    };

    // Without CLONE_INTO_CGROUP the init is moved into its cgroup after clone; a cgroup
    // namespace made at clone time would have the parent's cgroup as its root. The child
    // unshares it once it has been placed.
    let late_cgroupns = plan.new_cgroup_ns && cgroup_fd.is_none();
    let flags =
        if late_cgroupns { plan.clone_flags & !(libc::CLONE_NEWCGROUP as u64) } else { plan.clone_flags };
    primed.wait();
    let pid = match clone_into(flags, cgroup_fd.as_ref().map(|f| f.as_fd()))? {
        Forked::Child => {
            drop(parent_sock);
            child_main(ChildContext {
                spec,
                plan: &plan,
                rootfs: rootfs_opts,
                sock: child_sock,
                exec_fifo: Some(fifo),
                console_socket: console,
                preserve_fds: opts.preserve_fds,
                session_keyring: (!opts.no_new_keyring).then(|| format!("_ses.{id}")),
                unshare_cgroupns: late_cgroupns,
                seccomp: filter.as_ref(),
                seccomp_listener,
                id_lock_fd: Some(id_lock.raw_fd()),
            })
        }
        Forked::Parent(pid) => pid,
    };
    drop(child_sock);
    drop(fifo);
    drop(console);
    drop(seccomp_listener);
    let mut child_guard = ChildGuard { pid, armed: true };
    // The init's pid, before anything else is done with it (it is not in its cgroup yet on
    // v1): a create killed now leaves it to its parent-death signal and the record to delete.
    let (_, start_time) =
        state::proc_stat(pid.as_raw()).ok_or_else(|| ContainerError::InitDied("gone after clone".into()))?;
    record.pid = pid.as_raw();
    record.pid_start_time = start_time;
    store.save(&record)?;
    // Declared after the child guard, so dropped before it: devices go back before the
    // init (and with it the network namespace) dies.
    let mut devices_guard = None;

    // The init is placed in its cgroup before it runs anything of the container's.
    let wants_cpus = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.cpu().as_ref())
        .is_some_and(|c| c.cpus().is_some());
    let go = match cgroup_fd {
        Some(_) if wants_cpus => apply_cpuset_affinity(&cgroup, pid),
        Some(_) => Ok(()),
        None => cgroup.add_task(pid).map_err(ContainerError::from),
    }
    .and_then(|()| write_id_maps(pid, &plan))
    .and_then(|()| {
        let in_user_ns = plan.new_user_ns || plan.join.iter().any(|(f, _)| *f == CloneFlags::CLONE_NEWUSER);
        let adj = spec.process().as_ref().and_then(|p| p.oom_score_adj());
        if in_user_ns {
            super::write_oom_score_adj(pid, adj)?;
        }
        Ok(())
    })
    .and_then(|()| {
        let join = plan.join.iter().find(|(f, _)| *f == CloneFlags::CLONE_NEWNET).map(|(_, p)| p.as_path());
        devices_guard = crate::net::move_in_for(pid.as_raw(), join, &net_devices)?;
        Ok(())
    });
    let hook_state = hook_state_json(id, pid, &bundle, spec);
    let msg = if go.is_ok() { ParentMsg::Go(hook_state.clone()) } else { ParentMsg::Abort };
    channel::send_parent(&parent_sock, &msg).map_err(host("send to init"))?;
    go?;
    loop {
        match channel::recv_child(&parent_sock).map_err(host("receive from init"))? {
            Some(ChildMsg::Ready) => break,
            Some(ChildMsg::RunHooks) => {
                let hooks = spec.hooks().as_ref();
                let ran = hooks::run_hooks(
                    "prestart",
                    hooks.and_then(|h| h.prestart().as_deref()).unwrap_or_default(),
                    &hook_state,
                )
                .and_then(|()| {
                    let list = hooks.and_then(|h| h.create_runtime().as_deref()).unwrap_or_default();
                    hooks::run_hooks("createRuntime", list, &hook_state)
                });
                let answer = if ran.is_ok() { ParentMsg::Go(Vec::new()) } else { ParentMsg::Abort };
                channel::send_parent(&parent_sock, &answer).map_err(host("send to init"))?;
                ran?;
            }
            Some(ChildMsg::Failed { step, message }) => return Err(ContainerError::Init { step, message }),
            Some(ChildMsg::Committed) => {
                return Err(ContainerError::InitDied("answered Committed before it was asked".into()))
            }
            None => {
                child_guard.armed = false;
                let status = waitpid(pid, None).map(|s| format!("{s:?}")).unwrap_or_else(|e| e.to_string());
                return Err(ContainerError::InitDied(status));
            }
        }
    }
    record.creator = None;
    store.save(&record)?;
    if let Some(p) = &opts.pid_file {
        write_pid_file(p, pid).map_err(bundle_err("pid file", p))?;
    }
    // Recorded: the init may outlive this process now. It answers once its parent-death
    // signal is off; this process must not exit before (a SIGKILL before is fine: the
    // container is recorded, delete finds its init dead or alive).
    channel::send_parent(&parent_sock, &ParentMsg::Commit).map_err(host("send to init"))?;
    match channel::recv_child(&parent_sock).map_err(host("receive from init"))? {
        Some(ChildMsg::Committed) => {}
        Some(ChildMsg::Failed { step, message }) => return Err(ContainerError::Init { step, message }),
        _ => return Err(ContainerError::InitDied("exited before it was committed".into())),
    }
    if let Some(moved) = devices_guard {
        moved.keep();
    }
    rootfs_bind.into_iter().for_each(super::shared_mount::RootfsBind::keep);
    child_guard.armed = false;
    cgroup_guard.armed = false;
    dir_guard.armed = false;
    drop(id_lock);
    Ok(Created { pid, terminal })
}

/// `SCMP_ACT_NOTIFY`: connect to `linux.seccomp.listenerPath` now, from the host; the init
/// sends the notify fd over it once the filter is on.
pub(super) fn connect_listener(
    filter: Option<&crate::seccomp::Filter>,
    profile: Option<&oci_spec::runtime::LinuxSeccomp>,
) -> Result<Option<OwnedFd>, ContainerError> {
    let path = match (filter, profile.and_then(|p| p.listener_path().as_ref())) {
        (Some(f), Some(p)) if f.needs_listener() => p,
        _ => return Ok(None),
    };
    let sock = UnixStream::connect(path).map_err(bundle_err("linux.seccomp.listenerPath", path))?;
    Ok(Some(OwnedFd::from(sock)))
}

/// Kernels before 6.3 (and their stable branches without the fix) do not apply the cpuset of
/// the target cgroup to a child cloned with CLONE_INTO_CGROUP: its affinity stays the
/// parent's. Set it from `cpuset.cpus.effective` (found by the 5.10 cells of the matrix).
fn apply_cpuset_affinity(cgroup: &CgroupManager, pid: Pid) -> Result<(), ContainerError> {
    let Some(dir) = cgroup.dir("cpuset") else { return Ok(()) };
    let file = dir.join("cpuset.cpus.effective");
    let Ok(text) = fs::read_to_string(&file) else { return Ok(()) };
    let Some(cpus) = super::plan::parse_cpu_list(&text) else { return Ok(()) };
    let mut set = nix::sched::CpuSet::new();
    for cpu in cpus {
        set.set(cpu).map_err(host(format!("cpu {cpu} from {}", file.display())))?;
    }
    nix::sched::sched_setaffinity(pid, &set)
        .map_err(host(format!("sched_setaffinity({pid}) to {}", text.trim())))
}

/// The OCI state the hooks get on stdin while the container is being created.
fn hook_state_json(id: &str, pid: Pid, bundle: &Path, spec: &oci_spec::runtime::Spec) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "ociVersion": spec.version(),
        "id": id,
        "status": "creating",
        "pid": pid.as_raw(),
        "bundle": bundle,
        "annotations": spec.annotations().clone().unwrap_or_default(),
    }))
    .unwrap_or_default()
}

/// uid_map/gid_map for a new user namespace, from the parent (which holds the privilege).
fn write_id_maps(pid: Pid, plan: &NamespacePlan) -> Result<(), ContainerError> {
    let write = |file: &str, content: &str| {
        let path = format!("/proc/{pid}/{file}");
        fs::write(&path, content).map_err(|e| ContainerError::Host {
            step: format!("write {path} ({content:?})"),
            errno: super::errno_of(&e),
        })
    };
    if let Some(uid_map) = &plan.uid_map {
        write("uid_map", uid_map)?;
    }
    if let Some(gid_map) = &plan.gid_map {
        if !nix::unistd::geteuid().is_root() {
            write("setgroups", "deny")?;
        }
        write("gid_map", gid_map)?;
    }
    Ok(())
}

/// Write the pid file atomically, as runc does (temp file + rename).
pub(crate) fn write_pid_file(path: &Path, pid: Pid) -> std::io::Result<()> {
    state::write_atomic(path, pid.to_string().as_bytes())
}

fn owner_name() -> String {
    let uid = nix::unistd::geteuid();
    nix::unistd::User::from_uid(uid).ok().flatten().map(|u| u.name).unwrap_or_else(|| uid.to_string())
}
