//! The floor's cgroup syscalls: mkdir (plus the cpuset copy v1 needs) and rmdir (the child
//! places itself, see the module above). Whatever [`make`] made is removed on its own error path.

use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;

use super::plan::{CgroupDir, CgroupPlan};
use super::FloorError;

/// Makes the directories of `plan` in order; returns those made (an optional one the
/// kernel refuses is skipped). On error the ones already made are removed.
pub fn make(plan: &CgroupPlan) -> Result<Vec<&CgroupDir>, FloorError> {
    let mut made = Vec::with_capacity(plan.dirs.len());
    for d in &plan.dirs {
        match make_one(d) {
            Ok(true) => made.push(d),
            Ok(false) => {}
            Err(e) => {
                let _ = remove(&made);
                return Err(e);
            }
        }
    }
    Ok(made)
}

/// mkdir, and for cpuset the copy from the parent; false: optional and not writable.
fn make_one(d: &CgroupDir) -> Result<bool, FloorError> {
    match std::fs::create_dir(&d.path) {
        Ok(()) => {}
        Err(e)
            if d.optional && matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM | libc::EROFS)) =>
        {
            return Ok(false);
        }
        Err(e) => return Err(FloorError::io("mkdir", &d.path)(e)),
    }
    if d.cpuset {
        if let Err(e) = inherit_cpuset(&d.path) {
            let _ = rmdir(&d.path);
            return Err(e);
        }
    }
    Ok(true)
}

/// A new v1 cpuset cgroup has empty `cpuset.cpus` and `cpuset.mems`: copy the parent's.
fn inherit_cpuset(dir: &Path) -> Result<(), FloorError> {
    let parent = dir.parent().unwrap_or(dir);
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let from = parent.join(file);
        let value = std::fs::read(&from).map_err(FloorError::io("read", &from))?;
        let to = dir.join(file);
        std::fs::write(&to, value).map_err(FloorError::io("write", &to))?;
    }
    Ok(())
}

/// Removes the directories in `made`, last first; tries them all, returns the first error.
/// EBUSY (a just-reaped task still leaving) is retried for up to 100 ms.
pub fn remove(made: &[&CgroupDir]) -> Result<(), FloorError> {
    let mut first = Ok(());
    for d in made.iter().rev() {
        if let Err(e) = rmdir(&d.path) {
            first = first.and(Err(e));
        }
    }
    first
}

fn rmdir(path: &Path) -> Result<(), FloorError> {
    for _ in 0..100 {
        let r = std::fs::remove_dir(path).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)));
        match r {
            Err(Errno::EBUSY) => std::thread::sleep(Duration::from_millis(1)),
            Err(Errno::ENOENT) => return Ok(()),
            r => return r.map_err(FloorError::sys("rmdir", path)),
        }
    }
    Err(FloorError::Sys { step: "rmdir (busy for 100 ms)", path: path.to_owned(), errno: Errno::EBUSY })
}
