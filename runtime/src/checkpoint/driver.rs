//! Driving CRIU: the checks before, the `criu` process, and the container's state after.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use sha2::{Digest, Sha256};

use super::plan::{self, CheckpointMeta, DumpPlan, RestorePlan, META_FILE};
use super::{io, preflight, CheckpointError};
use crate::cgroups::CgroupManager;
use crate::config::parse_config;
use crate::container::{self, ContainerError};
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

fn read_spec(bundle: &Path) -> Result<(oci_spec::runtime::Spec, String), CheckpointError> {
    let path = bundle.join("config.json");
    let bytes = fs::read(&path).map_err(io("read", &path))?;
    let digest = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    let config = parse_config(&bytes).map_err(|errors| ContainerError::Config { path, errors })?;
    Ok((config.spec().clone(), digest))
}

/// CRIU runs `ip`, `iptables-save`, `tar` by name: a caller without `PATH` (an init, a
/// minimal service) gets the usual directories rather than glibc's `/bin:/usr/bin`.
pub(super) const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn run_criu(criu: &Path, args: &[String]) -> Result<bool, CheckpointError> {
    let mut cmd = std::process::Command::new(criu);
    if std::env::var_os("PATH").is_none() {
        cmd.env("PATH", DEFAULT_PATH);
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
    let (spec, digest) = read_spec(&rec.bundle)?;
    refuse_joined_namespaces(id, &spec)?;
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
        binds: plan::bind_mounts(&spec, &rec.bundle),
        external_files: stdio
            .iter()
            .filter(|(_, k)| k.starts_with("file["))
            .map(|(_, k)| k.clone())
            .collect(),
        network_lock: plan::network_lock(has_iptables_restore()),
    };
    if !run_criu(&criu.path, &plan::dump_args(&dump))? {
        let log = work.join(plan::DUMP_LOG);
        return Err(CheckpointError::Dump { reason: failure_reason(&log), log });
    }
    let meta = CheckpointMeta {
        id: id.into(),
        config_sha256: digest,
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

/// Undoes a restore that did not finish: criu-root mount, cgroup, state directory.
struct Undo<'a> {
    store: &'a StateStore,
    id: &'a str,
    root_mount: Option<PathBuf>,
    cgroup: Option<CgroupManager>,
    armed: bool,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if let Some(m) = self.root_mount.take() {
            let _ = umount2(&m, MntFlags::MNT_DETACH);
        }
        if !self.armed {
            return;
        }
        if let Some(cg) = &self.cgroup {
            let _ = cg.remove();
        }
        let _ = self.store.remove(self.id);
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
pub fn restore(store: &StateStore, id: &str, opts: &RestoreOptions) -> Result<Option<i32>, CheckpointError> {
    state::validate_id(id)?;
    let images = fs::canonicalize(&opts.image_path).map_err(io("resolve", &opts.image_path))?;
    let bundle = fs::canonicalize(&opts.bundle).map_err(io("resolve", &opts.bundle))?;
    let meta = load_meta(&images)?;
    let (spec, digest) = read_spec(&bundle)?;
    if digest != meta.config_sha256 {
        return Err(CheckpointError::Image {
            path: images,
            reason: format!(
                "made from a config.json with sha256 {}, but {}/config.json has sha256 {digest}",
                meta.config_sha256,
                bundle.display()
            ),
        });
    }
    refuse_joined_namespaces(id, &spec)?;
    let rootfs = bundle.join(spec.root().as_ref().map(|r| r.path().clone()).unwrap_or_default());
    let rootfs = fs::canonicalize(&rootfs).map_err(io("resolve root.path", &rootfs))?;
    let criu = preflight()?;
    let work = opts.work_path.clone().unwrap_or_else(|| images.clone());

    let dir = store.create_dir(id)?;
    let mut undo = Undo { store, id, root_mount: None, cgroup: None, armed: true };
    let linux = spec.linux().as_ref();
    let cg_path = linux.and_then(|l| l.cgroups_path().as_ref()).map(|p| p.to_string_lossy().into_owned());
    let cgroup = CgroupManager::new(id, cg_path.as_deref()).map_err(ContainerError::from)?;
    cgroup.create(linux.and_then(|l| l.resources().as_ref())).map_err(ContainerError::from)?;
    let cgroup_root = Some(cgroup.path().to_owned()).filter(|_| meta.cgroup_path.is_some());
    undo.cgroup = Some(cgroup);
    // CRIU restores the container's root from a mount point: bind the rootfs on one.
    let root = dir.join("criu-root");
    fs::create_dir_all(&root).map_err(io("mkdir", &root))?;
    mount(Some(&rootfs), &root, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .map_err(|e| io("bind-mount rootfs on", &root)(e.into()))?;
    undo.root_mount = Some(root.clone());
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        // CRIU bind-mounts this as the container's root and does not restore the root
        // mount's flags; a bind inherits the read-only flag of its source.
        let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
        mount(None::<&str>, &root, None::<&str>, flags, None::<&str>)
            .map_err(|e| io("remount read-only", &root)(e.into()))?;
    }
    if !opts.detach {
        // The restored init is re-parented to us when CRIU exits: we can wait for it.
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|e| io("prctl PR_SET_CHILD_SUBREAPER", &root)(e.into()))?;
    }
    let pid_file = dir.join("criu.pid");
    let rp = RestorePlan {
        images: images.clone(),
        work: work.clone(),
        root,
        pid_file: pid_file.clone(),
        tcp_established: opts.tcp_established,
        file_locks: opts.file_locks,
        binds: plan::bind_mounts(&spec, &bundle),
        stdio: meta.stdio.clone(),
        cgroup_root,
        network_lock: plan::network_lock(has_iptables_restore()),
    };
    if !run_criu(&criu.path, &plan::restore_args(&rp))? {
        let log = work.join(plan::RESTORE_LOG);
        return Err(CheckpointError::Restore { reason: failure_reason(&log), log });
    }
    let text = fs::read_to_string(&pid_file).map_err(io("read", &pid_file))?;
    let pid: i32 = text.trim().parse().map_err(|_| CheckpointError::Image {
        path: pid_file.clone(),
        reason: format!("CRIU wrote no pid ({text:?})"),
    })?;
    let (_, start) =
        state::proc_stat(pid).ok_or(ContainerError::InitDied("gone right after restore".into()))?;
    let record = ContainerRecord {
        id: id.into(),
        pid,
        pid_start_time: start,
        bundle,
        rootfs,
        created: humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
        owner: nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| nix::unistd::geteuid().to_string()),
        annotations: spec.annotations().clone().unwrap_or_default().into_iter().collect(),
        oci_version: spec.version().clone(),
        own_pid_ns: container::plan::plan_namespaces(&spec).own_pid_ns,
        cgroup_path: undo.cgroup.as_ref().map(|c| c.path().to_owned()),
        hooks: spec.hooks().clone(),
        process: spec.process().clone(),
        seccomp: linux.and_then(|l| l.seccomp().clone()),
        net_devices: Default::default(),
        rootfs_bound: false,
        creator: None,
    };
    store.save(&record)?;
    if let Some(p) = &opts.pid_file {
        crate::state::write_atomic(p, pid.to_string().as_bytes()).map_err(io("write", p))?;
    }
    undo.armed = false;
    drop(undo);
    if opts.detach {
        return Ok(None);
    }
    let code = loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, c)) => break c,
            Ok(WaitStatus::Signaled(_, s, _)) => break 128 + s as i32,
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break 255,
        }
    };
    container::delete(store, id, true)?;
    Ok(Some(code))
}
