//! `create` (and the first half of `run`): the stages in order. [`Bundle::load`] →
//! [`Plan::new`] → the checks that need the host → the record written (`creating`) → the
//! exec fifo, the cgroup and the rootfs bind → clone3 of the init ([`Spawned`]) → its pid
//! recorded → the init placed, its id maps written, devices moved in → the init's setup and
//! hooks → the record completed, the pid file written → `Commit`. Any failure undoes what
//! was done: the init is killed and reaped, the cgroup and the state directory removed.

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use nix::fcntl::{open, OFlag};
use nix::sched::{setns, CloneFlags};
use nix::sys::stat::Mode;
use nix::unistd::{mkfifo, Pid};

use super::bundle::{bundle_err, Bundle};
use super::init::{child_main, ChildContext};
use super::plan::{NamespacePlan, Plan};
use super::record::Recording;
use super::rootless::IdMapWriting;
use super::spawn::{self, ChildGuard, MadeCgroup, Spawned};
use super::{host, ContainerError};
use crate::cgroups::CgroupManager;
use crate::channel::{self, ChildMsg, ParentMsg};
use crate::hooks;
use crate::rootfs::RootfsOptions;
use crate::rootless::MapWriter;
use crate::state::{self, StateStore, EXEC_FIFO};
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

/// What the init is given besides its config: set up before anything is made.
struct InitInputs {
    console: Option<OwnedFd>,
    seccomp: Option<crate::seccomp::Filter>,
    seccomp_listener: Option<OwnedFd>,
}

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
    let bundle = Bundle::load(&opts.bundle)?;
    let plan = Plan::new(bundle.config());
    // v1 hosts where the parent places the init (a new user namespace): start the cgroup
    // attach wait now, in parallel with the work before clone3. Otherwise the init joins its
    // v1 cgroups itself, which does not wait ([`Placement`]).
    let primed = plan.namespaces.new_user_ns.then(crate::cgroups::prime_attach);
    let id_maps = super::rootless::check(&bundle, &plan)?;
    let inputs = check_and_prepare(store, &bundle, &plan, opts, console)?;
    let cgroup = super::rootless::cgroup_for(id, &bundle, &plan)?;
    // Record what is about to be made before making it: a create killed from here on leaves
    // a record `delete --force` undoes (the cgroup, the rootfs bind, later the init).
    let mut recording = Recording::begin(store, id, &bundle, &plan, cgroup.recorded_path)?;
    let fifo = make_exec_fifo(recording.dir())?;
    if let Some(p) = &plan.namespaces.join_pid {
        let f = fs::File::open(p).map_err(bundle_err("linux.namespaces pid path", p))?;
        setns(f.as_fd(), CloneFlags::CLONE_NEWPID).map_err(host(format!("setns {}", p.display())))?;
    }
    let cgroup = MadeCgroup::make(cgroup.manager, cgroup.resources.as_ref())?;
    // No mount namespace: the rootfs is bound (and undone) here, in the caller's.
    let rootfs_bind =
        plan.shared_mount_ns.then(|| super::shared_mount::RootfsBind::new(bundle.rootfs())).transpose()?;
    let sockets = channel::pair().map_err(host("socketpair"))?;
    if let Some(p) = primed {
        p.wait();
    }
    let launch = Launch { id, bundle: &bundle, plan: &plan, opts, lock_fd: recording.lock_fd() };
    let Cloned { mut spawned, parent_sock, placement } =
        launch.clone_init(cgroup, rootfs_bind, inputs, fifo, sockets)?;
    // The init's pid, before anything else is done with it (it is not in its cgroup yet on
    // v1): a create killed now leaves it to its parent-death signal and the record to delete.
    recording.record_pid(spawned.pid.as_raw(), "gone after clone")?;
    // Declared after `spawned`, so dropped before it: devices go back before the init (and
    // with it the network namespace) dies.
    let mut devices = None;
    let go = place_init(&spawned, placement, (&plan, &id_maps), &mut devices);
    let hook_state = hook_state_json(id, spawned.pid, &bundle);
    let msg = if go.is_ok() { ParentMsg::Go(hook_state.clone()) } else { ParentMsg::Abort };
    channel::send_parent(&parent_sock, &msg).map_err(host("send to init"))?;
    go?;
    await_ready(&parent_sock, &mut spawned, &bundle, &hook_state)?;
    if plan.in_user_ns {
        super::write_rlimits(spawned.pid, bundle.config().spec().process().as_ref())?;
    }
    recording.complete()?;
    if let Some(p) = &opts.pid_file {
        spawn::write_pid_file(p, spawned.pid)?;
    }
    // Recorded: the init may outlive this process now. It answers once its parent-death
    // signal is off; this process must not exit before (a SIGKILL before is fine: the
    // container is recorded, delete finds its init dead or alive).
    channel::send_parent(&parent_sock, &ParentMsg::Commit).map_err(host("send to init"))?;
    match spawn::receive(&parent_sock, "init")? {
        Some(ChildMsg::Committed) => {}
        other => return Err(spawn::unexpected(other, "exited before it was committed")),
    }
    devices.into_iter().for_each(crate::net::MovedDevices::keep);
    let pid = spawned.pid;
    spawned.keep();
    recording.keep();
    Ok(Created { pid, terminal: plan.terminal })
}

/// The checks that need the host, before anything is made, and what the init gets besides
/// its config: the console socket, the seccomp filter and its listener.
fn check_and_prepare(
    store: &StateStore,
    bundle: &Bundle,
    plan: &Plan,
    opts: &CreateOptions,
    console: Option<OwnedFd>,
) -> Result<InitInputs, ContainerError> {
    let spec = bundle.config().spec();
    crate::lsm::check(spec, crate::lsm::HostLsms::detect())?;
    if spec.linux().as_ref().is_some_and(|l| l.intel_rdt().is_some()) {
        return Err(ContainerError::Unsupported {
            field: "linux.intelRdt",
            reason: "Intel RDT (resctrl) is not implemented by isorun",
        });
    }
    if plan.shared_mount_ns {
        super::shared_mount::check(spec, opts.no_pivot)?;
    }
    let console = match &opts.console_socket {
        Some(p) => Some(OwnedFd::from(UnixStream::connect(p).map_err(bundle_err("console socket", p))?)),
        None => console,
    };
    crate::net::check_devices_exist(&plan.net_devices)?;
    let profile = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    let (seccomp, seccomp_listener) = spawn::seccomp_for(store, profile)?;
    Ok(InitInputs { console, seccomp, seccomp_listener })
}

/// The exec fifo in the state directory, opened read-write: the init waits on it until
/// `start`.
fn make_exec_fifo(dir: &std::path::Path) -> Result<OwnedFd, ContainerError> {
    let fifo_path = dir.join(EXEC_FIFO);
    mkfifo(&fifo_path, Mode::from_bits_truncate(0o600))
        .map_err(host(format!("mkfifo {}", fifo_path.display())))?;
    open(&fifo_path, OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(host(format!("open {}", fifo_path.display())))
}

/// The init, cloned.
struct Cloned {
    spawned: Spawned,
    /// The parent's end of the socket to the init.
    parent_sock: OwnedFd,
    /// How it gets into its cgroup.
    placement: Placement,
}

/// How the init gets into its cgroup before it runs anything of the container's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// Cloned into it (CLONE_INTO_CGROUP, cgroup2-only hosts): done.
    AtClone,
    /// It joins its v1 cgroups itself after `Go` (`0` into each `tasks`: no wait for an
    /// RCU grace period, unlike a `cgroup.procs` write of another process); a hybrid host's
    /// cgroup2 directory, when made, was joined at clone.
    ByInit,
    /// The parent writes its pid into every hierarchy's `cgroup.procs` (the init is in a new
    /// user namespace and cannot write the host's cgroup files); `true`: except the cgroup2
    /// directory, joined at clone.
    ByParent(bool),
}

impl Placement {
    /// Chosen from what the clone gets: a cgroup2-only fd, a hybrid host's cgroup2 fd, or
    /// none; and whether the init will be in a new user namespace.
    fn choose(unified_only_fd: bool, hybrid_fd: bool, new_user_ns: bool) -> Self {
        match (unified_only_fd, new_user_ns) {
            (true, _) => Placement::AtClone,
            (false, false) => Placement::ByInit,
            (false, true) => Placement::ByParent(hybrid_fd),
        }
    }
}

/// What the init is cloned from.
struct Launch<'a> {
    id: &'a str,
    bundle: &'a Bundle,
    plan: &'a Plan,
    opts: &'a CreateOptions,
    lock_fd: Option<std::os::fd::RawFd>,
}

impl Launch<'_> {
    /// clone3 the init into its namespaces (and, where the kernel can, its cgroup); the
    /// child runs `child_main` and never returns here.
    fn clone_init(
        &self,
        cgroup: MadeCgroup,
        rootfs_bind: Option<super::shared_mount::RootfsBind>,
        inputs: InitInputs,
        fifo: OwnedFd,
        (parent_sock, child_sock): (OwnedFd, OwnedFd),
    ) -> Result<Cloned, ContainerError> {
        let plan = &self.plan.namespaces;
        let unified_fd = cgroup.cgroup().clone_into_fd();
        let hybrid_fd = cgroup.cgroup().hybrid_clone_into_fd();
        let placement = Placement::choose(unified_fd.is_some(), hybrid_fd.is_some(), plan.new_user_ns);
        let cgroup_fd = unified_fd.or(hybrid_fd);
        // Unless it is cloned into all of its cgroup, the init is moved into it after clone; a
        // cgroup namespace made at clone time would have the parent's cgroup as its root. The
        // child unshares it once it has been placed.
        let late_cgroupns = plan.new_cgroup_ns && placement != Placement::AtClone;
        let self_cgroup =
            if placement == Placement::ByInit { cgroup.cgroup().self_tasks() } else { Vec::new() };
        let flags =
            if late_cgroupns { plan.clone_flags & !(libc::CLONE_NEWCGROUP as u64) } else { plan.clone_flags };
        let pid = match clone_into(flags, cgroup_fd.as_ref().map(|f| f.as_fd()))? {
            Forked::Child => {
                drop(parent_sock);
                child_main(ChildContext {
                    spec: self.bundle.config().spec(),
                    plan,
                    rootfs: self.rootfs_options(),
                    sock: child_sock,
                    exec_fifo: Some(fifo),
                    console_socket: inputs.console,
                    preserve_fds: self.opts.preserve_fds,
                    session_keyring: (!self.opts.no_new_keyring).then(|| format!("_ses.{}", self.id)),
                    self_cgroup,
                    unshare_cgroupns: late_cgroupns,
                    seccomp: inputs.seccomp.as_ref(),
                    seccomp_listener: inputs.seccomp_listener,
                    id_lock_fd: self.lock_fd,
                })
            }
            Forked::Parent(pid) => pid,
        };
        let spawned = Spawned::child(ChildGuard::new(pid), rootfs_bind, cgroup);
        Ok(Cloned { spawned, parent_sock, placement })
    }

    fn rootfs_options(&self) -> RootfsOptions {
        RootfsOptions {
            rootfs: self.bundle.rootfs().to_owned(),
            bundle: self.bundle.dir().to_owned(),
            // Root of a user namespace (rootless podman's runtime) cannot mknod nor mount
            // what needs the initial one either.
            in_user_ns: self.plan.in_user_ns || crate::rootless::running_in_user_namespace(),
            in_cgroup_ns: self.plan.namespaces.new_cgroup_ns,
            host_cgroup_view: None,
            no_pivot: self.opts.no_pivot,
            shared_mount_ns: self.plan.shared_mount_ns,
        }
    }
}

/// The init is placed in its cgroup (and cpuset) before it runs anything of the
/// container's, its id maps and oomScoreAdj written, its devices moved in.
fn place_init<'a>(
    spawned: &Spawned,
    placement: Placement,
    (plan, id_maps): (&'a Plan, &IdMapWriting),
    devices: &mut Option<crate::net::MovedDevices<'a>>,
) -> Result<(), ContainerError> {
    let (pid, cgroup) = (spawned.pid, spawned.cgroup());
    match placement {
        Placement::AtClone if plan.wants_cpus => apply_cpuset_affinity(cgroup, pid)?,
        Placement::AtClone | Placement::ByInit => {}
        Placement::ByParent(true) => cgroup.add_task_v1(pid)?,
        Placement::ByParent(false) => cgroup.add_task(pid)?,
    }
    write_id_maps(pid, &plan.namespaces, id_maps)?;
    super::write_oom_score_adj(pid, plan.parent_oom_score_adj)?;
    let ns = &plan.namespaces;
    let join = ns.join.iter().find(|(f, _)| *f == CloneFlags::CLONE_NEWNET).map(|(_, p)| p.as_path());
    *devices = crate::net::move_in_for(pid.as_raw(), join, &plan.net_devices)?;
    Ok(())
}

/// Answer the init until it is ready: it asks for the prestart and createRuntime hooks once
/// its mounts are done.
fn await_ready(
    sock: &OwnedFd,
    spawned: &mut Spawned,
    bundle: &Bundle,
    hook_state: &[u8],
) -> Result<(), ContainerError> {
    loop {
        match spawn::receive(sock, "init")? {
            Some(ChildMsg::Ready) => return Ok(()),
            Some(ChildMsg::RunHooks) => {
                let hooks = bundle.config().spec().hooks().as_ref();
                let ran = hooks::run_hooks(
                    "prestart",
                    hooks.and_then(|h| h.prestart().as_deref()).unwrap_or_default(),
                    hook_state,
                )
                .and_then(|()| {
                    let list = hooks.and_then(|h| h.create_runtime().as_deref()).unwrap_or_default();
                    hooks::run_hooks("createRuntime", list, hook_state)
                });
                let answer = if ran.is_ok() { ParentMsg::Go(Vec::new()) } else { ParentMsg::Abort };
                channel::send_parent(sock, &answer).map_err(host("send to init"))?;
                ran?;
            }
            Some(ChildMsg::Committed) => {
                return Err(ContainerError::InitDied("answered Committed before it was asked".into()))
            }
            failed @ Some(ChildMsg::Failed { .. }) => return Err(spawn::unexpected(failed, "")),
            None => return Err(ContainerError::InitDied(spawned.init_died())),
        }
    }
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
fn hook_state_json(id: &str, pid: Pid, bundle: &Bundle) -> Vec<u8> {
    let spec = bundle.config().spec();
    serde_json::to_vec(&serde_json::json!({
        "ociVersion": spec.version(),
        "id": id,
        "status": "creating",
        "pid": pid.as_raw(),
        "bundle": bundle.dir(),
        "annotations": spec.annotations().clone().unwrap_or_default(),
    }))
    .unwrap_or_default()
}

/// uid_map/gid_map for a new user namespace, from the parent (which holds the privilege),
/// or by newuidmap/newgidmap for an unprivileged one mapping more than its own ids.
fn write_id_maps(pid: Pid, plan: &NamespacePlan, id_maps: &IdMapWriting) -> Result<(), ContainerError> {
    let write = |file: &str, content: &str| {
        let path = format!("/proc/{pid}/{file}");
        fs::write(&path, content).map_err(|e| ContainerError::Host {
            step: format!("write {path} ({content:?})"),
            errno: super::errno_of(&e),
        })
    };
    let helper = super::rootless::run_map_helper;
    if let Some(uid_map) = &plan.uid_map {
        match &id_maps.writers.uid {
            MapWriter::Direct => write("uid_map", uid_map)?,
            MapWriter::Helper(h) => helper("linux.uidMappings", h, pid.as_raw(), &id_maps.uids)?,
        }
    }
    if let Some(gid_map) = &plan.gid_map {
        match &id_maps.writers.gid {
            // newgidmap sets setgroups itself (allow where /etc/subgid grants a range).
            MapWriter::Helper(h) => helper("linux.gidMappings", h, pid.as_raw(), &id_maps.gids)?,
            MapWriter::Direct => {
                if !nix::unistd::geteuid().is_root() {
                    write("setgroups", "deny")?;
                }
                write("gid_map", gid_map)?;
            }
        }
    }
    Ok(())
}
