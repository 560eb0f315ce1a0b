//! The single-thread precondition of a fork-like clone ([`super::process::clone_into`]).
//!
//! A raw clone3 without `CLONE_VM` copies the address space but only the calling thread. A
//! lock another thread held at that moment (malloc's arena lock while it frees its
//! thread-locals on exit, stdio's, ...) stays locked forever in the child, which then
//! deadlocks on its first allocation. glibc's `fork()` takes malloc's locks around the copy;
//! a raw clone3 does not. So the process must have exactly one thread when it clones, and
//! [`ensure_single_threaded`] checks that it does, from the kernel's own count
//! (`Threads:` of /proc/self/status).

use std::time::{Duration, Instant};

/// Where the kernel reports the thread count of this process.
pub const STATUS_PATH: &str = "/proc/self/status";

/// How long a thread that was just joined may take to leave the kernel's count:
/// `pthread_join` returns when the exiting thread has cleared its tid (in `exit_mm`), a little
/// before the kernel unhashes it (`release_task`). A live thread is still there after this.
pub const EXITING_THREAD_GRACE: Duration = Duration::from_millis(200);

/// Failures of the thread-count check.
#[derive(Debug, thiserror::Error)]
pub enum ThreadsError {
    /// /proc/self/status could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// It has no parsable `Threads:` line.
    #[error("{path}: no \"Threads:\" line with a count")]
    Parse {
        /// The file.
        path: &'static str,
    },
    /// More than one thread is alive.
    #[error(
        "the process has {threads} threads: a fork-like clone3 needs exactly one (the child \
         could deadlock on a lock another thread holds, e.g. malloc's)"
    )]
    MultiThreaded {
        /// The count the kernel reported last.
        threads: usize,
    },
}

/// The `Threads:` count of a /proc/PID/status text.
pub fn parse_threads(status: &str) -> Option<usize> {
    status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|v| v.trim().parse().ok())
}

/// This process's thread count, as the kernel reports it now.
pub fn thread_count() -> Result<usize, ThreadsError> {
    let text = std::fs::read_to_string(STATUS_PATH)
        .map_err(|source| ThreadsError::Read { path: STATUS_PATH, source })?;
    parse_threads(&text).ok_or(ThreadsError::Parse { path: STATUS_PATH })
}

/// Ok when this process has exactly one thread (the caller). A count above one is
/// re-read for up to [`EXITING_THREAD_GRACE`], for a just-joined thread still leaving the
/// kernel; then [`ThreadsError::MultiThreaded`]. With one thread there is nothing that could
/// start another before the caller's next step, so the answer stays true until it acts.
pub fn ensure_single_threaded() -> Result<(), ThreadsError> {
    let start = Instant::now();
    let mut reads = 0u32;
    loop {
        let threads = thread_count()?;
        reads += 1;
        if threads <= 1 {
            if reads > 1 {
                tracing::debug!("single-threaded after waiting {:?} for an exiting thread", start.elapsed());
            }
            return Ok(());
        }
        if start.elapsed() >= EXITING_THREAD_GRACE {
            return Err(ThreadsError::MultiThreaded { threads });
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    const STATUS: &str = "Name:\tisorun\nUmask:\t0022\nState:\tR (running)\nTgid:\t42\n\
        NSpid:\t42\nThreads:\t%\nSigQ:\t0/63431\n";

    #[test_case("1", Some(1) ; "one")]
    #[test_case("2", Some(2) ; "two")]
    #[test_case("137", Some(137) ; "many")]
    #[test_case(" 3 ", Some(3) ; "padded")]
    #[test_case("", None ; "empty value")]
    #[test_case("x", None ; "not a number")]
    #[test_case("-1", None ; "negative")]
    fn parses_the_threads_line(value: &str, expect: Option<usize>) {
        assert_eq!(parse_threads(&STATUS.replace('%', value)), expect);
    }

    #[test]
    fn no_threads_line_is_none() {
        assert_eq!(parse_threads("Name:\tx\nTgid:\t1\n"), None);
        assert_eq!(parse_threads(""), None);
    }

    #[test]
    fn a_similar_key_is_not_the_count() {
        assert_eq!(parse_threads("NotThreads:\t5\nThreads:\t2\n"), Some(2));
    }

    #[test]
    fn counts_a_live_thread_and_refuses() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let parked = std::thread::spawn(move || rx.recv().ok());
        // This test's thread and `parked` (and the harness's main thread, when apart).
        assert!(thread_count().unwrap() >= 2);
        let t = Instant::now();
        match ensure_single_threaded() {
            Err(ThreadsError::MultiThreaded { threads }) => assert!(threads >= 2, "{threads}"),
            other => panic!("expected MultiThreaded, got {other:?}"),
        }
        assert!(t.elapsed() >= EXITING_THREAD_GRACE);
        drop(tx);
        parked.join().unwrap();
    }

    #[test]
    fn a_forked_child_has_one_thread() {
        // SAFETY: glibc's fork() makes malloc usable in the child (it holds malloc's locks
        // across the copy); the child only reads a file and calls _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let code = match ensure_single_threaded() {
                Ok(()) => thread_count().map_or(100, |n| n as i32),
                Err(_) => 101,
            };
            // SAFETY: ends the forked child without running the parent's atexit handlers.
            unsafe { libc::_exit(code) };
        }
        let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
        assert_eq!(status, nix::sys::wait::WaitStatus::Exited(nix::unistd::Pid::from_raw(pid), 1));
    }
}
