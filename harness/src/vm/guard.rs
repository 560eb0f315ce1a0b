//! Nothing outlives the harness: every QEMU process is killed by its guard's `Drop`, and a
//! SIGINT/SIGTERM handler kills all registered processes and removes their temp dirs.

use std::path::PathBuf;
use std::process::Child;
use std::sync::Mutex;

static LIVE: Mutex<Vec<(u32, Option<PathBuf>)>> = Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<(u32, Option<PathBuf>)>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Owns a QEMU process and its temp dir; kills and removes both when dropped.
#[derive(Debug)]
pub struct VmGuard {
    child: Option<Child>,
    dir: Option<tempfile::TempDir>,
}

impl VmGuard {
    /// Takes ownership of a spawned QEMU and its temp dir and registers them.
    pub fn new(child: Child, dir: tempfile::TempDir) -> Self {
        live().push((child.id(), Some(dir.path().to_path_buf())));
        VmGuard { child: Some(child), dir: Some(dir) }
    }

    /// The child process.
    pub fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("child present until drop")
    }

    /// Kills QEMU now (idempotent) and reaps it.
    pub fn kill(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let pid = c.id();
            live().retain(|(p, _)| *p != pid);
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for VmGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = c.id();
            // Unregister first, so the signal handler never signals a reaped (recyclable) pid.
            live().retain(|(p, _)| *p != pid);
            let _ = c.kill();
            let _ = c.wait();
        }
        drop(self.dir.take());
    }
}

/// Kills every live QEMU and removes its temp dir (from a signal handler thread).
pub fn kill_all() {
    let all = std::mem::take(&mut *live());
    for (pid, dir) in all {
        if let Ok(pid) = i32::try_from(pid) {
            // SAFETY: kill(2) with a pid we spawned and have not reaped (the guard removes it
            // from the list before reaping), so it cannot name a recycled process.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let mut status = 0;
            // SAFETY: waitpid on our own child with a valid out pointer; reaps it so nothing,
            // not even a zombie, outlives the harness.
            unsafe { libc::waitpid(pid, &mut status, 0) };
        }
        if let Some(dir) = dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Registers any other child (e.g. `apt-get`) to be killed by the signal handler; it is
/// unregistered when the returned value is dropped — drop it before reaping the child.
#[derive(Debug)]
pub struct Registration(u32);

/// See [`Registration`].
pub fn register(pid: u32) -> Registration {
    live().push((pid, None));
    Registration(pid)
}

impl Drop for Registration {
    fn drop(&mut self) {
        live().retain(|(p, _)| *p != self.0);
    }
}

/// Installs the SIGINT/SIGTERM handler: kill all VMs, clean up, exit 130.
pub fn install_signal_handler() -> Result<(), ctrlc::Error> {
    ctrlc::set_handler(|| {
        kill_all();
        eprintln!("isolab: interrupted; all VMs killed");
        std::process::exit(130);
    })
}

/// How many live VMs there are (for tests).
pub fn live_count() -> usize {
    live().len()
}
