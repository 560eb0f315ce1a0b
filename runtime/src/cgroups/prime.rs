//! Hiding the v1 attach wait. On a host with v1 hierarchies (legacy or hybrid) the first
//! write to any `cgroup.procs` after a quiet spell waits for an RCU grace period (the
//! rcu_sync of the global cgroup_threadgroup_rwsem: 5–15 ms on the 2-core dev machine, up
//! to 100 ms under load); further writes within the next grace period do not wait. The init
//! cannot be placed before it exists, so `create` starts that wait early instead: a thread
//! writes this process's own pid into the cgroup it is already in (a no-op move that takes
//! the same lock) while `create` parses the config, makes the state directory and the
//! cgroup, and is joined before clone3, so the process is single-threaded again when it
//! clones. The init's placement right after clone3 then does not wait. Only an init in a new
//! user namespace is placed by `create` this way: any other joins its v1 cgroups itself
//! (`0` into each `tasks` file moves the calling thread without the global lock, so it does
//! not wait at all; [`super::CgroupManager::self_tasks`]). Cgroup2-only hosts use
//! CLONE_INTO_CGROUP and skip this.

use std::path::PathBuf;
use std::thread::JoinHandle;

use super::layout::{Hierarchies, Layout};

/// The `cgroup.procs` to prime: this process's own cgroup in the first v1 hierarchy
/// (`None` on a cgroup2-only host, where nothing waits).
pub fn prime_target(h: &Hierarchies) -> Option<PathBuf> {
    if h.layout == Layout::Unified {
        return None;
    }
    let v1 = h.v1.first()?;
    Some(v1.mount.join(v1.own.trim_start_matches('/')).join("cgroup.procs"))
}

/// The priming thread; joined by [`Primed::wait`] or on drop (every exit path of `create`),
/// so no thread is alive when the init is cloned or `create` returns.
#[derive(Debug)]
pub struct Primed(Option<JoinHandle<()>>);

impl Primed {
    /// Waits until the priming write is done.
    pub fn wait(mut self) {
        self.join();
    }

    fn join(&mut self) {
        if let Some(h) = self.0.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Primed {
    fn drop(&mut self) {
        self.join();
    }
}

/// Starts the priming write on a thread (root only; any failure just means no head start).
pub fn prime_attach() -> Primed {
    if !nix::unistd::geteuid().is_root() {
        return Primed(None);
    }
    let Some(target) = Hierarchies::host().ok().and_then(|h| prime_target(&h)) else {
        return Primed(None);
    };
    let pid = std::process::id().to_string();
    let spawned = std::thread::Builder::new().name("cgroup-prime".into()).spawn(move || {
        let _ = std::fs::write(&target, pid);
    });
    Primed(spawned.ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const HYBRID: &str = "35 25 0:30 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
        36 25 0:31 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";

    #[test]
    fn hybrid_primes_own_cgroup_of_first_v1_hierarchy() {
        let h = Hierarchies::detect(HYBRID, "1:cpu:/user/x\n0::/user/x\n", Path::new("/")).unwrap();
        assert_eq!(prime_target(&h), Some(PathBuf::from("/sys/fs/cgroup/cpu/user/x/cgroup.procs")));
    }

    #[test]
    fn unified_primes_nothing() {
        let mi = "35 25 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let h = Hierarchies::detect(mi, "0::/\n", Path::new("/")).unwrap();
        assert_eq!(prime_target(&h), None);
    }
}
