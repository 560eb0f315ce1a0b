//! The floor program (`isolab-floor ROOTFS CGROUP`): the kernel calls a container start
//! needs and nothing else — mkdir the cgroup(s), clone3 into new mount, pid, uts, ipc, net
//! and cgroup namespaces, place the child in the cgroup(s), pivot_root into the rootfs,
//! execve `/bin/true`, reap, rmdir. `isolab bench startup` measures isorun against it.
//!
//! The cgroup layout comes from one read of /proc/self/mountinfo (isorun's own parser,
//! [`isolab_runtime::cgroups::Hierarchies`]). On v2 clone3's CLONE_INTO_CGROUP places the
//! child and roots its cgroup namespace there. On v1 and hybrid hosts the child places
//! itself, as isorun's init does: `0` into each v1 hierarchy's `tasks` (a thread moving
//! itself skips the global lock whose first write-lock waits for an RCU grace period, which
//! a `cgroup.procs` write of another process takes), the hybrid's cgroup2 directory by
//! CLONE_INTO_CGROUP; then it unshares its cgroup namespace (cloning it earlier would root
//! it in the parent's cgroup).

mod cgroup;
mod child;
mod error;
pub mod plan;

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use isolab_runtime::cgroups::Hierarchies;
use nix::sched::CloneFlags;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

pub use error::FloorError;
pub use plan::{plan, CgroupPlan};

use crate::sys::{clone3, exit_now, Side};

/// The exit status of the floor when it fails itself (not the container's): the message on
/// stderr names the step and the path.
pub const EXIT_FLOOR_ERROR: i32 = 125;

/// The namespaces of the bench's bundle: all but user (the cgroup one is added separately).
const NAMESPACES: CloneFlags = CloneFlags::CLONE_NEWNS
    .union(CloneFlags::CLONE_NEWPID)
    .union(CloneFlags::CLONE_NEWUTS)
    .union(CloneFlags::CLONE_NEWIPC)
    .union(CloneFlags::CLONE_NEWNET);

/// This host's cgroup plan for `name` (reads /proc/self/mountinfo).
pub fn host_plan(name: &str) -> Result<CgroupPlan, FloorError> {
    plan::check_name(name)?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(FloorError::io("read", "/proc/self/mountinfo"))?;
    let hier =
        Hierarchies::detect(&mountinfo, "", Path::new("/")).map_err(|e| FloorError::Layout(e.to_string()))?;
    plan(&hier, name)
}

/// Runs `/bin/true` in `rootfs` in cgroup `name`; the container's exit status (128 + the
/// signal if it was killed). Nothing is left behind, on success or error.
pub fn run(rootfs: &Path, name: &str) -> Result<i32, FloorError> {
    run_plan(rootfs, &host_plan(name)?)
}

/// As [`run`], on a given plan (tests take the v2 path on a hybrid host's cgroup2 mount).
pub fn run_plan(rootfs: &Path, plan: &CgroupPlan) -> Result<i32, FloorError> {
    let made = cgroup::make(plan)?;
    let status = start_and_reap(rootfs, plan, &made);
    let removed = cgroup::remove(&made);
    let status = status?;
    removed?;
    Ok(status)
}

fn start_and_reap(rootfs: &Path, plan: &CgroupPlan, made: &[&plan::CgroupDir]) -> Result<i32, FloorError> {
    let Some(first) = made.first() else {
        return Err(FloorError::Layout("no cgroup directory could be made".into()));
    };
    if plan.clone_into {
        let dir: OwnedFd =
            std::fs::File::open(&first.path).map_err(FloorError::io("open", &first.path))?.into();
        let flags = NAMESPACES | CloneFlags::CLONE_NEWCGROUP;
        return match clone3(flags.bits() as u64, Some(dir.as_fd()))
            .map_err(FloorError::sys("clone3 into", &first.path))?
        {
            Side::Child => child_main(rootfs, None),
            Side::Parent(pid) => reap(pid),
        };
    }
    // Hybrid: the cgroup2 directory (made last, when writable) by CLONE_INTO_CGROUP.
    let (v1, unified): (Vec<&plan::CgroupDir>, Vec<&plan::CgroupDir>) =
        made.iter().partition(|d| !d.optional);
    let into: Option<OwnedFd> = match unified.first() {
        Some(u) => Some(std::fs::File::open(&u.path).map_err(FloorError::io("open", &u.path))?.into()),
        None => None,
    };
    let tasks: Vec<std::path::PathBuf> = v1.iter().map(|d| d.path.join("tasks")).collect();
    match clone3(NAMESPACES.bits() as u64, into.as_ref().map(|f| f.as_fd()))
        .map_err(FloorError::sys("clone3 for", rootfs))?
    {
        Side::Child => child_main(rootfs, Some(&tasks)),
        Side::Parent(pid) => reap(pid),
    }
}

/// The child: join its v1 cgroups (`tasks`) and unshare the cgroup namespace there, enter
/// the rootfs and exec; on failure say why and exit [`EXIT_FLOOR_ERROR`].
fn child_main(rootfs: &Path, tasks: Option<&[std::path::PathBuf]>) -> ! {
    if let Some(tasks) = tasks {
        for t in tasks {
            if let Err(e) = std::fs::write(t, "0") {
                eprintln!("isolab-floor: write 0 into {}: {e}", t.display());
                exit_now(EXIT_FLOOR_ERROR);
            }
        }
        if let Err(errno) = nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP) {
            eprintln!("isolab-floor: unshare(CLONE_NEWCGROUP) in the child: {errno}");
            exit_now(EXIT_FLOOR_ERROR);
        }
    }
    let e = child::enter_and_exec(rootfs);
    eprintln!("isolab-floor: {e}");
    exit_now(EXIT_FLOOR_ERROR)
}

/// Waits for `pid`; its exit code, or 128 + the signal that killed it.
fn reap(pid: Pid) -> Result<i32, FloorError> {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(errno) => {
                return Err(FloorError::Sys { step: "waitpid", path: format!("pid {pid}").into(), errno });
            }
        }
    }
}
