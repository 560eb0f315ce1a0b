//! Nothing a bench creates outlives it: every container is registered before its runtime
//! is asked to create it and force-deleted by [`cleanup_all`] — when a bench is done with
//! it, when the driver returns early, and from the SIGINT/SIGTERM handler, which first waits
//! for the runtime command in flight (a half-made container cannot be deleted) and then
//! deletes everything that is still registered.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use super::BenchError;

/// One container: runtime binary, its private `--root`, the container id.
type Entry = (PathBuf, PathBuf, String);

static LIVE: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
/// Held (shared) while a runtime command runs, so the signal handler (exclusive) does not
/// race one; `bench density --parallel` runs several at once.
static IN_FLIGHT: RwLock<()> = RwLock::new(());
static STOP: AtomicBool = AtomicBool::new(false);
/// Held for a whole cleanup: the main thread's and the signal handler's never interleave.
static CLEANUP: Mutex<()> = Mutex::new(());
/// Temp dirs (bundle, state roots) to remove after the containers on an interrupt.
static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn lock<T>(m: &'static Mutex<T>) -> MutexGuard<'static, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Registers a container before it is created.
pub fn register(runtime: &Path, root: &Path, id: &str) {
    lock(&LIVE).push((runtime.to_path_buf(), root.to_path_buf(), id.to_owned()));
}

/// Registers a temp dir for removal by the signal handler (its owner removes it otherwise).
pub fn register_dir(dir: &Path) {
    lock(&DIRS).push(dir.to_path_buf());
}

/// Forgets a container its runtime has deleted.
pub fn unregister(id: &str) {
    lock(&LIVE).retain(|(_, _, i)| i != id);
}

/// How many containers are registered (for tests and the summary).
pub fn live_count() -> usize {
    lock(&LIVE).len()
}

/// Runs a runtime command unless an interrupt is being handled: stdin and stdout null,
/// stderr into an unlinked temp file (not a pipe: a detached container inherits it and would
/// hold a pipe open until it exits), returned in `Output::stderr`.
pub fn run(cmd: &mut Command) -> Result<Output, BenchError> {
    let _g = IN_FLIGHT.read().unwrap_or_else(|p| p.into_inner());
    if STOP.load(Ordering::SeqCst) {
        return Err(BenchError::Interrupted);
    }
    let spawn_err = |error| BenchError::Spawn { cmd: describe(cmd), error };
    // On tmpfs where there is one: a temp file on a journal-less ext4 (this project's own
    // machines) costs an inode allocation per command, which the bench would count against
    // the runtime.
    let mut err = tempfile::tempfile_in("/dev/shm").or_else(|_| tempfile::tempfile()).map_err(spawn_err)?;
    let for_child = err.try_clone().map_err(|error| BenchError::Spawn { cmd: describe(cmd), error })?;
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(for_child);
    let status = cmd.status().map_err(|error| BenchError::Spawn { cmd: describe(cmd), error })?;
    let mut stderr = Vec::new();
    let _ = err.seek(SeekFrom::Start(0)).and_then(|_| err.read_to_end(&mut stderr));
    Ok(Output { status, stdout: Vec::new(), stderr })
}

/// The command line, for messages.
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Force-deletes every registered container; returns the ids that could not be deleted
/// with their errors.
pub fn cleanup_all() -> Vec<String> {
    let _c = lock(&CLEANUP);
    delete_registered()
}

fn delete_registered() -> Vec<String> {
    let all = std::mem::take(&mut *lock(&LIVE));
    let mut failed = Vec::new();
    for (rt, root, id) in all {
        let out = Command::new(&rt)
            .arg("--root")
            .arg(&root)
            .args(["delete", "--force", &id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output();
        let gone = |o: &Output| {
            let e = String::from_utf8_lossy(&o.stderr);
            o.status.success() || e.contains("does not exist") || e.contains("not found")
        };
        match out {
            Ok(o) if gone(&o) => {}
            Ok(o) => failed.push(format!("{id}: {}", String::from_utf8_lossy(&o.stderr).trim())),
            Err(e) => failed.push(format!("{id}: {e}")),
        }
    }
    failed
}

/// SIGINT/SIGTERM: wait for the runtime command in flight, delete every registered
/// container, kill every VM, exit 130. Replaces `vm::guard::install_signal_handler` for
/// `isolab bench`.
pub fn install_signal_handler() -> Result<(), ctrlc::Error> {
    ctrlc::set_handler(|| {
        STOP.store(true, Ordering::SeqCst);
        // Let the command in flight finish (a runtime's create takes milliseconds), but
        // never wait forever for it.
        let t = Instant::now();
        let _g = loop {
            match IN_FLIGHT.try_write() {
                Ok(g) => break Some(g),
                Err(std::sync::TryLockError::Poisoned(p)) => break Some(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) if t.elapsed() > Duration::from_secs(10) => {
                    break None
                }
                Err(std::sync::TryLockError::WouldBlock) => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        crate::vm::guard::kill_all();
        // Wait for a cleanup the main thread may be doing, then finish it; held until exit.
        let _c = lock(&CLEANUP);
        let n = live_count();
        let failed = delete_registered();
        for d in std::mem::take(&mut *lock(&DIRS)) {
            let _ = std::fs::remove_dir_all(d);
        }
        eprintln!("isolab bench: interrupted; deleted {} container(s)", n - failed.len());
        for f in failed {
            eprintln!("isolab bench: could not delete {f}");
        }
        std::process::exit(130);
    })
}
