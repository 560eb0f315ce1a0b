//! The floor program (`isolab-floor ROOTFS CGROUP`): the kernel calls a container start
//! needs and nothing else — mkdir the cgroup(s), clone3 into new mount, pid, uts, ipc, net
//! and cgroup namespaces, place the child in the cgroup(s), pivot_root into the rootfs,
//! execve `/bin/true`, reap, rmdir. `isolab bench startup` measures isorun against it.
//!
//! The cgroup layout comes from one read of /proc/self/mountinfo (isorun's own parser,
//! [`isolab_runtime::cgroups::Hierarchies`]). On v2 clone3's CLONE_INTO_CGROUP places the
//! child and roots its cgroup namespace there; on v1 and hybrid hosts the child waits on a
//! pipe while the parent writes its pid into each `cgroup.procs`, then unshares its cgroup
//! namespace (cloning it earlier would root it in the parent's cgroup).

mod cgroup;
mod child;
mod error;
pub mod plan;

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use isolab_runtime::cgroups::Hierarchies;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
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
    let (rd, wr) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(FloorError::sys("pipe2 for", &first.path))?;
    match clone3(NAMESPACES.bits() as u64, None).map_err(FloorError::sys("clone3 for", rootfs))? {
        Side::Child => {
            drop(wr);
            child_main(rootfs, Some(rd))
        }
        Side::Parent(pid) => {
            drop(rd);
            if let Err(e) = cgroup::place(made, pid) {
                let _ = kill(pid, Signal::SIGKILL);
                let _ = reap(pid);
                return Err(e);
            }
            drop(wr); // the child goes on
            reap(pid)
        }
    }
}

/// The child: wait until placed (v1), unshare the cgroup namespace there, enter the rootfs
/// and exec; on failure say why and exit [`EXIT_FLOOR_ERROR`].
fn child_main(rootfs: &Path, placed: Option<OwnedFd>) -> ! {
    if let Some(rd) = placed {
        let mut byte = [0u8; 1];
        // EOF: the parent has placed this process and closed its end.
        let _ = std::fs::File::from(rd).read(&mut byte);
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
