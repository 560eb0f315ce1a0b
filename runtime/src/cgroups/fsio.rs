//! Reading, writing, creating and removing cgroup files and directories, with errors that
//! name the path and the errno.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;

use super::CgroupError;

/// The errno of an io::Error (EIO if it has none).
pub fn errno(e: &std::io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_raw)
}

/// Write `value` to an existing file with one write(2). Raw errno on failure.
pub fn write_raw(path: &Path, value: &str) -> Result<(), Errno> {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).map_err(|e| errno(&e))?;
    f.write_all(value.as_bytes()).map_err(|e| errno(&e))
}

/// Write `value` to `path`.
pub fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    write_raw(path, value).map_err(|errno| CgroupError::Write {
        path: path.to_owned(),
        value: value.to_owned(),
        errno,
    })
}

/// Read `path` as text.
pub fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|e| CgroupError::io("read", path, &e))
}

/// Read `path` and parse its trimmed content as a number (`max` → `u64::MAX`).
pub fn read_u64(path: &Path) -> Result<u64, CgroupError> {
    let s = read(path)?;
    let t = s.trim();
    if t == "max" {
        return Ok(u64::MAX);
    }
    t.parse()
        .map_err(|_| CgroupError::Parse { path: path.to_owned(), reason: format!("not a number: {t:?}") })
}

/// `key value` lines (memory.stat, cpu.stat, memory.events, ...) → the value of `key`.
pub fn flat_key(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.split_once(' ').filter(|(k, _)| *k == key).and_then(|(_, v)| v.trim().parse().ok()))
}

/// `mkdir -p base/rel`; returns the directories it created, top-down.
pub fn mkdir_p(base: &Path, rel: &str) -> Result<Vec<PathBuf>, CgroupError> {
    let leaf = base.join(rel.trim_start_matches('/'));
    // Happy path: the parent exists, one mkdir.
    match std::fs::create_dir(&leaf) {
        Ok(()) => return Ok(vec![leaf]),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(vec![]),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(CgroupError::io("mkdir", &leaf, &e)),
    }
    if !base.is_dir() {
        return Err(CgroupError::Io { op: "open cgroup root", path: base.to_owned(), errno: Errno::ENOENT });
    }
    let mut created = Vec::new();
    let mut dir = base.to_owned();
    for comp in rel.split('/').filter(|c| !c.is_empty()) {
        dir.push(comp);
        match std::fs::create_dir(&dir) {
            Ok(()) => created.push(dir.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(CgroupError::io("mkdir", &dir, &e)),
        }
    }
    Ok(created)
}

/// rmdir `dir` and its child cgroups, retrying briefly on EBUSY (the kernel may still be
/// tearing down exited tasks). A missing directory is fine.
pub fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    // Most cgroups have no children: one rmdir, no directory read.
    match std::fs::remove_dir(dir).map_err(|e| errno(&e)) {
        Ok(()) | Err(Errno::ENOENT) => return Ok(()),
        Err(_) => {}
    }
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    remove_tree(&e.path())?;
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(CgroupError::io("read dir", dir, &e)),
    }
    let mut delay = Duration::from_millis(1);
    for attempt in 0.. {
        match std::fs::remove_dir(dir).map_err(|e| errno(&e)) {
            Ok(()) | Err(Errno::ENOENT) => return Ok(()),
            Err(Errno::EBUSY) if attempt < 8 => {
                std::thread::sleep(delay);
                delay *= 2;
            }
            Err(errno) => return Err(CgroupError::Io { op: "rmdir", path: dir.to_owned(), errno }),
        }
    }
    Ok(())
}

/// The pids in `cgroup.procs` of `dir` and its child cgroups.
pub fn procs_recursive(dir: &Path, out: &mut Vec<i32>) -> Result<(), CgroupError> {
    let procs = dir.join("cgroup.procs");
    for l in read(&procs)?.lines() {
        out.push(
            l.trim().parse().map_err(|_| CgroupError::Parse {
                path: procs.clone(),
                reason: format!("not a pid: {l:?}"),
            })?,
        );
    }
    let entries = std::fs::read_dir(dir).map_err(|e| CgroupError::io("read dir", dir, &e))?;
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            procs_recursive(&e.path(), out)?;
        }
    }
    Ok(())
}

/// A new v1 cpuset cgroup starts with empty cpus/mems (unless its parent has
/// `cgroup.clone_children`): copy the parent's where empty (as runc does).
pub fn inherit_cpuset(dir: &Path) -> Result<(), CgroupError> {
    let parent = dir.parent().unwrap_or(dir);
    for f in ["cpuset.cpus", "cpuset.mems"] {
        if read(&dir.join(f))?.trim().is_empty() {
            write(&dir.join(f), read(&parent.join(f))?.trim())?;
        }
    }
    Ok(())
}

/// v2: enable every available controller in each ancestor's `cgroup.subtree_control`, so
/// the leaf gets them (runc does the same). Controllers that refuse stay off; a resource
/// needing one then fails naming the leaf's `cgroup.controllers`.
pub fn enable_controllers(root: &Path, rel: &str) -> Result<(), CgroupError> {
    let mut dir = root.to_owned();
    for comp in rel.split('/').filter(|c| !c.is_empty()) {
        let available = read(&dir.join("cgroup.controllers"))?;
        let enabled = read(&dir.join("cgroup.subtree_control"))?;
        let missing: Vec<String> = available
            .split_whitespace()
            .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
            .map(|c| format!("+{c}"))
            .collect();
        if !missing.is_empty() {
            let ctl = dir.join("cgroup.subtree_control");
            if write_raw(&ctl, &missing.join(" ")).is_err() {
                for c in &missing {
                    let _ = write_raw(&ctl, c);
                }
            }
        }
        dir.push(comp);
    }
    Ok(())
}

/// Poll `file` until `done(content)`; no sleep when it is already done. `nudge` runs every
/// tenth try (v1 re-writes FROZEN). Gives up after ~2 s.
pub fn wait_for(
    file: &Path,
    done: impl Fn(&str) -> bool,
    nudge: impl Fn() -> Result<(), CgroupError>,
) -> Result<(), CgroupError> {
    for i in 0..2000 {
        if done(&read(file)?) {
            return Ok(());
        }
        if i % 10 == 9 {
            nudge()?;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Err(CgroupError::Freeze {
        path: file.to_owned(),
        reason: "the cgroup did not become frozen within 2s".into(),
    })
}
