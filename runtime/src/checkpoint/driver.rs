//! Driving CRIU: the checks before, the `criu` process, and the container's state after.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::plan::{self, CheckpointMeta, DumpPlan, RestorePlan, META_FILE};
use super::{io, preflight, CheckpointError};
use crate::cgroups::CgroupManager;
use crate::container::record::Recording;
use crate::container::spawn::{self, MadeCgroup, Spawned};
use crate::container::{self, Bundle, ContainerError, Plan};
use crate::rootfs::cgroupfs;
use crate::state::{self, ContainerRecord, StateStore, Status};

/// `isorun checkpoint` options (runc's flags).
#[derive(Debug, Clone)]
pub struct CheckpointOptions {
    /// Where CRIU writes the images.
    pub image_path: PathBuf,
    /// CRIU's work directory (logs); default: the image directory.
    pub work_path: Option<PathBuf>,
    /// Keep the container running.
    pub leave_running: bool,
    /// Checkpoint established TCP connections.
    pub tcp_established: bool,
    /// Checkpoint file locks.
    pub file_locks: bool,
}

/// `isorun restore` options (runc's flags).
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Where the images are.
    pub image_path: PathBuf,
    /// CRIU's work directory (logs); default: the image directory.
    pub work_path: Option<PathBuf>,
    /// The bundle (its config.json must be the one checkpointed).
    pub bundle: PathBuf,
    /// Return once restored instead of waiting for the container's exit.
    pub detach: bool,
    /// Write the restored init's pid here.
    pub pid_file: Option<PathBuf>,
    /// Restore established TCP connections.
    pub tcp_established: bool,
    /// Restore file locks.
    pub file_locks: bool,
}

/// CRIU runs `ip`, `iptables-save`, `tar` by name: a caller without `PATH` (an init, a
/// minimal service) gets the usual directories rather than glibc's `/bin:/usr/bin`.
pub(super) const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Run CRIU and wait for it. With `dies_with_us`, a SIGKILLed isorun takes CRIU with it
/// (`PR_SET_PDEATHSIG`): a restore is recorded before CRIU runs, and a CRIU outliving it
/// could make the restored tree after `delete --force` removed the record. A dump is left to
/// finish: CRIU killed half way could leave its parasite in the container's processes.
fn run_criu(criu: &Path, args: &[String], dies_with_us: bool) -> Result<bool, CheckpointError> {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(criu);
    if std::env::var_os("PATH").is_none() {
        cmd.env("PATH", DEFAULT_PATH);
    }
    if dies_with_us {
        // SAFETY: between fork and execve the child only calls prctl, which is
        // async-signal-safe and touches no memory of the parent's.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(Into::into)
            });
        }
    }
    let status = cmd.args(args).status().map_err(io("run", criu))?;
    Ok(status.success())
}

fn has_iptables_restore() -> bool {
    let path = std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
    std::env::split_paths(&path).any(|d| d.join("iptables-restore").exists())
}

fn failure_reason(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    plan::criu_error_line(&text).unwrap_or_else(|| "no reason in the log".into())
}

/// The CRIU keys of the init's stdio (see [`plan::stdio_key`]).
fn stdio_of(pid: i32) -> Vec<(i32, String)> {
    let mounts = fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
    let ids: Vec<u64> = mounts.lines().filter_map(|l| l.split(' ').next()?.parse().ok()).collect();
    (0..3)
        .filter_map(|fd| {
            let link = fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
            let info = fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap_or_default();
            let mnt = info.lines().find_map(|l| l.strip_prefix("mnt_id:")?.trim().parse().ok());
            let ino =
                std::os::unix::fs::MetadataExt::ino(&fs::metadata(format!("/proc/{pid}/fd/{fd}")).ok()?);
            let inside = mnt.is_some_and(|m| ids.contains(&m));
            plan::stdio_key(&link.to_string_lossy(), mnt, ino, inside).map(|k| (fd, k))
        })
        .collect()
}

fn refuse_joined_namespaces(id: &str, spec: &oci_spec::runtime::Spec) -> Result<(), CheckpointError> {
    let joined = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref()).into_iter().flatten();
    if let Some(ns) = joined.into_iter().find(|ns| ns.path().is_some()) {
        return Err(CheckpointError::Unsupported {
            id: id.into(),
            what: format!("a {:?} namespace joined by path (linux.namespaces)", ns.typ()),
        });
    }
    // Without a mount namespace the container's mounts are the caller's: nothing CRIU can
    // dump as the container's own.
    let ns = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref()).into_iter().flatten();
    if !ns.into_iter().any(|ns| ns.typ() == oci_spec::runtime::LinuxNamespaceType::Mount) {
        return Err(CheckpointError::Unsupported {
            id: id.into(),
            what: "a container without a mount namespace (linux.namespaces)".into(),
        });
    }
    // Host devices moved in cannot be described to CRIU (nor given back after a dump).
    if spec.linux().as_ref().and_then(|l| l.net_devices().as_ref()).is_some_and(|d| !d.is_empty()) {
        return Err(CheckpointError::Unsupported {
            id: id.into(),
            what: "host network devices moved in (linux.netDevices)".into(),
        });
    }
    Ok(())
}

/// `checkpoint`: dump a running container with CRIU into `opts.image_path`. Unless
/// `leave_running`, the container is gone afterwards (its processes, cgroup and state), as
/// with runc. A failure leaves it running as it was.
pub fn checkpoint(store: &StateStore, id: &str, opts: &CheckpointOptions) -> Result<(), CheckpointError> {
    let _lock = store.lock(id)?;
    let rec = store.load(id)?;
    let status = store.status(&rec);
    if status != Status::Running {
        return Err(
            ContainerError::WrongStatus { id: id.into(), status, op: "checkpoint (not running)" }.into()
        );
    }
    let bundle = Bundle::load(&rec.bundle)?;
    let spec = bundle.config().spec();
    refuse_joined_namespaces(id, spec)?;
    let criu = preflight()?;
    let images = &opts.image_path;
    fs::create_dir_all(images).map_err(io("mkdir", images))?;
    let images = fs::canonicalize(images).map_err(io("resolve", images))?;
    let work = match &opts.work_path {
        Some(w) => {
            fs::create_dir_all(w).map_err(io("mkdir", w))?;
            fs::canonicalize(w).map_err(io("resolve", w))?
        }
        None => images.clone(),
    };
    let stdio = stdio_of(rec.pid);
    let dump = DumpPlan {
        pid: rec.pid,
        images: images.clone(),
        work: work.clone(),
        root: rec.rootfs.clone(),
        leave_running: opts.leave_running,
        tcp_established: opts.tcp_established,
        file_locks: opts.file_locks,
        binds: [plan::bind_mounts(spec, &rec.bundle), dump_cgroup_binds(spec, &rec)].concat(),
        external_files: stdio
            .iter()
            .filter(|(_, k)| k.starts_with("file["))
            .map(|(_, k)| k.clone())
            .collect(),
        network_lock: plan::network_lock(has_iptables_restore()),
    };
    if !run_criu(&criu.path, &plan::dump_args(&dump), false)? {
        let log = work.join(plan::DUMP_LOG);
        return Err(CheckpointError::Dump { reason: failure_reason(&log), log });
    }
    let meta = CheckpointMeta {
        id: id.into(),
        config_sha256: bundle.config_sha256().to_owned(),
        cgroup_path: rec.cgroup_path.clone(),
        stdio,
        criu_version: criu.version,
    };
    let meta_path = images.join(META_FILE);
    fs::write(&meta_path, serde_json::to_vec_pretty(&meta).unwrap_or_default())
        .map_err(io("write", &meta_path))?;
    if !opts.leave_running {
        // CRIU killed the tasks; the container is gone like after runc's checkpoint.
        let _ = wait_gone(&rec);
        if let Some(cg) = rec.cgroup() {
            cg.remove().map_err(ContainerError::from)?;
        }
        store.remove(id)?;
    }
    Ok(())
}

fn wait_gone(rec: &ContainerRecord) -> bool {
    for _ in 0..500 {
        if !state::process_alive(rec.pid, rec.pid_start_time) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// The container's rootfs bound on `criu-root` in its state directory, where CRIU restores
/// the container's root from; detached on drop (CRIU has made its own mount of it by then).
struct RestoreRoot(PathBuf);

impl RestoreRoot {
    fn bind(dir: &Path, bundle: &Bundle) -> Result<Self, CheckpointError> {
        let root = dir.join(state::RESTORE_ROOT);
        fs::create_dir_all(&root).map_err(io("mkdir", &root))?;
        mount(Some(bundle.rootfs()), &root, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
            .map_err(|e| io("bind-mount rootfs on", &root)(e.into()))?;
        let bound = RestoreRoot(root);
        if bundle.config().spec().root().as_ref().and_then(|r| r.readonly()) == Some(true) {
            // CRIU bind-mounts this as the container's root and does not restore the root
            // mount's flags; a bind inherits the read-only flag of its source.
            let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
            mount(None::<&str>, &bound.0, None::<&str>, flags, None::<&str>)
                .map_err(|e| io("remount read-only", &bound.0)(e.into()))?;
        }
        Ok(bound)
    }
}

impl Drop for RestoreRoot {
    fn drop(&mut self) {
        let _ = umount2(&self.0, MntFlags::MNT_DETACH);
    }
}

fn load_meta(images: &Path) -> Result<CheckpointMeta, CheckpointError> {
    let p = images.join(META_FILE);
    let bytes = fs::read(&p).map_err(|e| CheckpointError::Image {
        path: images.to_path_buf(),
        reason: format!("no readable {META_FILE} ({e}): not a checkpoint made by isorun"),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| CheckpointError::Image {
        path: images.to_path_buf(),
        reason: format!("{META_FILE}: {e}"),
    })
}

/// `restore`: recreate container `id` from the images of `opts.image_path` with the bundle's
/// rootfs. Returns `None` when detached, else the container's exit status once it ended.
/// The stages of `create`: the bundle loaded, the container planned and recorded
/// (`creating`) before its cgroup, its root's bind and CRIU's process are made, so a restore
/// killed at any instant leaves a record `delete --force` undoes.
pub fn restore(store: &StateStore, id: &str, opts: &RestoreOptions) -> Result<Option<i32>, CheckpointError> {
    state::validate_id(id)?;
    let (images, meta, bundle) = load_checked(id, opts)?;
    let plan = Plan::new(bundle.config());
    let criu = preflight()?;
    let work = opts.work_path.clone().unwrap_or_else(|| images.clone());
    let cgroup = CgroupManager::new(id, plan.cgroups_path.as_deref()).map_err(ContainerError::from)?;
    let cgroup_root = Some(cgroup.path().to_owned()).filter(|_| meta.cgroup_path.is_some());
    let mut recording = Recording::begin(store, id, &bundle, &plan, Some(cgroup.path().to_owned()))?;
    let resources = bundle.config().spec().linux().as_ref().and_then(|l| l.resources().as_ref());
    let cgroup_path = cgroup.path().to_owned();
    let cgroup = MadeCgroup::make(cgroup, resources)?;
    let root = RestoreRoot::bind(recording.dir(), &bundle)?;
    if !opts.detach {
        // The restored init is re-parented to us when CRIU exits: we can wait for it.
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|e| io("prctl PR_SET_CHILD_SUBREAPER", &root.0)(e.into()))?;
    }
    let pid_file = recording.dir().join("criu.pid");
    let rp = RestorePlan {
        images,
        work: work.clone(),
        root: root.0.clone(),
        pid_file: pid_file.clone(),
        tcp_established: opts.tcp_established,
        file_locks: opts.file_locks,
        binds: [
            plan::bind_mounts(bundle.config().spec(), bundle.dir()),
            restore_cgroup_binds(bundle.config().spec(), &cgroup_path, root.0.as_path()),
        ]
        .concat(),
        stdio: meta.stdio,
        cgroup_root,
        network_lock: plan::network_lock(has_iptables_restore()),
    };
    if !run_criu(&criu.path, &plan::restore_args(&rp), true)? {
        let log = work.join(plan::RESTORE_LOG);
        return Err(CheckpointError::Restore { reason: failure_reason(&log), log });
    }
    let spawned = Spawned::adopted(Pid::from_raw(read_criu_pid(&pid_file)?), cgroup);
    recording.record_pid(spawned.pid.as_raw(), "gone right after restore")?;
    recording.complete()?;
    if let Some(p) = &opts.pid_file {
        spawn::write_pid_file(p, spawned.pid)?;
    }
    let pid = spawned.pid;
    drop(root);
    spawned.keep();
    recording.keep();
    if opts.detach {
        return Ok(None);
    }
    let code = wait_exit(pid);
    container::delete(store, id, true)?;
    Ok(Some(code))
}

/// The images, their isorun metadata and the bundle, checked to belong together and to be
/// something isorun can restore; nothing is made.
fn load_checked(
    id: &str,
    opts: &RestoreOptions,
) -> Result<(PathBuf, CheckpointMeta, Bundle), CheckpointError> {
    let images = fs::canonicalize(&opts.image_path).map_err(io("resolve", &opts.image_path))?;
    let meta = load_meta(&images)?;
    let bundle = Bundle::load(&opts.bundle)?;
    if bundle.config_sha256() != meta.config_sha256 {
        return Err(CheckpointError::Image {
            path: images,
            reason: format!(
                "made from a config.json with sha256 {}, but {}/config.json has sha256 {}",
                meta.config_sha256,
                bundle.dir().display(),
                bundle.config_sha256()
            ),
        });
    }
    refuse_joined_namespaces(id, bundle.config().spec())?;
    Ok((images, meta, bundle))
}

/// `(name, host directory)` of each hierarchy bound under a `type: cgroup` mount, for a
/// process whose /proc/PID/cgroup reads `proc_cgroup` (empty on a pure cgroup v2 host).
fn cgroup_hierarchy_dirs(proc_cgroup: &str, exclude: &Path) -> Vec<(String, PathBuf)> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    match cgroupfs::plan(&mountinfo, proc_cgroup, exclude) {
        Ok(cgroupfs::Plan::Legacy { hierarchies, .. }) => {
            hierarchies.into_iter().map(|h| (h.name, h.own_dir)).collect()
        }
        _ => Vec::new(),
    }
}

/// The cgroup binds of the running container (its init's own cgroup directories).
fn dump_cgroup_binds(spec: &oci_spec::runtime::Spec, rec: &ContainerRecord) -> Vec<plan::BindMount> {
    let proc_cgroup = fs::read_to_string(format!("/proc/{}/cgroup", rec.pid)).unwrap_or_default();
    plan::cgroup_binds(spec, &cgroup_hierarchy_dirs(&proc_cgroup, &rec.rootfs))
}

/// The cgroup binds of the restored container: its new cgroup's directories.
fn restore_cgroup_binds(
    spec: &oci_spec::runtime::Spec,
    cgroup: &str,
    exclude: &Path,
) -> Vec<plan::BindMount> {
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    plan::cgroup_binds(spec, &cgroup_hierarchy_dirs(&plan::cgroup_text_at(&own, cgroup), exclude))
}

/// The restored init's pid, from CRIU's pid file.
fn read_criu_pid(pid_file: &Path) -> Result<i32, CheckpointError> {
    let text = fs::read_to_string(pid_file).map_err(io("read", pid_file))?;
    text.trim().parse().map_err(|_| CheckpointError::Image {
        path: pid_file.to_owned(),
        reason: format!("CRIU wrote no pid ({text:?})"),
    })
}

/// Wait for `pid` (re-parented to this subreaper) to end; its exit status.
fn wait_exit(pid: Pid) -> i32 {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, c)) => return c,
            Ok(WaitStatus::Signaled(_, s, _)) => return 128 + s as i32,
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return 255,
        }
    }
}
