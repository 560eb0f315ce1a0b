//! Real cgroups on this host (root required; fails, never skips, when not root), through
//! `isolab_runtime::cgroups` directly. Every test cleans up in a Drop guard.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use std::path::Path;
use std::sync::Arc;

use isolab_runtime::cgroups::{CgroupManager, Hierarchies, Layout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{pipe, Pid};
use oci_spec::runtime::LinuxResources;

static N: AtomicUsize = AtomicUsize::new(0);

/// A test cgroup `/isolab-test-<pid>-<n>` and the children put in it; Drop kills them and
/// removes the cgroup.
struct Cg {
    mgr: CgroupManager,
    children: Vec<Pid>,
}

impl Cg {
    fn new(resources: &str) -> Self {
        Self::on(None, resources)
    }

    /// On the host's layout, or on `hier`.
    fn on(hier: Option<Hierarchies>, resources: &str) -> Self {
        assert!(nix::unistd::geteuid().is_root(), "these tests need root (they create real cgroups)");
        let path = format!("/isolab-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let mgr = match hier {
            None => CgroupManager::new("t", Some(&path)).unwrap(),
            Some(h) => CgroupManager::with_hierarchies(Arc::new(h), "t", Some(&path)).unwrap(),
        };
        let res: LinuxResources = serde_json::from_str(resources).unwrap();
        mgr.create(Some(&res)).unwrap();
        Self { mgr, children: Vec::new() }
    }

    fn read(&self, controller: &str, file: &str) -> String {
        let p = self.mgr.dir(controller).unwrap().join(file);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).trim().to_owned()
    }

    /// Fork a child that waits for a byte on a pipe, then runs `action` and exits with its
    /// result. Returns the child and the pipe's write end.
    fn child(&mut self, action: fn() -> i32) -> (Pid, OwnedFd) {
        let (r, w) = pipe().unwrap();
        // SAFETY: the child only calls async-signal-safe libc functions (read, fork, mmap,
        // write, usleep, _exit) before exiting.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let mut b = 0u8;
            // SAFETY: reads one byte into a live local.
            let n = unsafe { libc::read(r.as_raw_fd(), (&raw mut b).cast(), 1) };
            let code = if n == 1 { action() } else { 100 };
            // SAFETY: ends the forked child without running the parent's destructors.
            unsafe { libc::_exit(code) };
        }
        let pid = Pid::from_raw(pid);
        self.children.push(pid);
        (pid, w)
    }

    /// Put `pid` in the cgroup and let it go.
    fn release(&self, pid: Pid, go: &OwnedFd) {
        self.mgr.add_task(pid).unwrap();
        nix::unistd::write(go, b"x").unwrap();
    }
}

impl Drop for Cg {
    fn drop(&mut self) {
        let _ = self.mgr.thaw();
        for p in self.mgr.pids().unwrap_or_default() {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        for &c in &self.children {
            let _ = kill(c, Signal::SIGKILL);
            let _ = waitpid(c, None);
        }
        let dirs = self.mgr.dirs();
        let r = self.mgr.remove();
        if !std::thread::panicking() {
            r.unwrap();
            for d in dirs {
                assert!(!d.exists(), "{} left behind", d.display());
            }
        }
    }
}

#[test]
fn host_is_hybrid() {
    assert_eq!(CgroupManager::new("t", None).unwrap().layout(), Layout::Hybrid);
}

#[test]
fn limits_are_written_and_updated() {
    let cg = Cg::new(
        r#"{"memory":{"limit":67108864,"reservation":33554432},"pids":{"limit":20},"cpu":{"shares":512,"quota":50000,"period":100000,"cpus":"0"}}"#,
    );
    assert_eq!(cg.read("memory", "memory.limit_in_bytes"), "67108864");
    assert_eq!(cg.read("memory", "memory.soft_limit_in_bytes"), "33554432");
    assert_eq!(cg.read("pids", "pids.max"), "20");
    assert_eq!(cg.read("cpu", "cpu.shares"), "512");
    assert_eq!(cg.read("cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(cg.read("cpu", "cpu.cfs_period_us"), "100000");
    assert_eq!(cg.read("cpuset", "cpuset.cpus"), "0");
    assert!(!cg.read("cpuset", "cpuset.mems").is_empty(), "cpuset.mems inherited from the parent");
    // update: only the fields given change; raising memory above memsw works.
    let up: LinuxResources =
        serde_json::from_str(r#"{"pids":{"limit":30},"memory":{"limit":134217728}}"#).unwrap();
    cg.mgr.update(&up).unwrap();
    assert_eq!(cg.read("pids", "pids.max"), "30");
    assert_eq!(cg.read("memory", "memory.limit_in_bytes"), "134217728");
    assert_eq!(cg.read("cpu", "cpu.shares"), "512");
    let s = cg.mgr.stats().unwrap();
    assert_eq!((s.pids.limit, s.memory.usage.limit), (30, 134_217_728));
}

#[test]
fn write_errors_name_file_value_and_errno() {
    let cg = Cg::new("{}");
    let bad: LinuxResources = serde_json::from_str(r#"{"cpu":{"cpus":"7"}}"#).unwrap();
    let e = cg.mgr.update(&bad).unwrap_err().to_string();
    assert!(
        e.starts_with("write 7 to /sys/fs/cgroup/cpuset/isolab-test-") && e.contains("/cpuset.cpus: E"),
        "{e}"
    );
}

#[test]
fn missing_controller_fails_create_and_leaves_nothing() {
    let path = format!("/isolab-test-{}-hugetlb", std::process::id());
    let mgr = CgroupManager::new("t", Some(&path)).unwrap();
    let res: LinuxResources =
        serde_json::from_str(r#"{"hugepageLimits":[{"pageSize":"2MB","limit":0}]}"#).unwrap();
    let e = mgr.create(Some(&res)).unwrap_err().to_string();
    assert!(e.contains("the hugetlb controller is not available"), "{e}");
    assert!(mgr.dirs().iter().all(|d| !d.exists()));
}

#[test]
fn add_task_moves_the_process_in_every_hierarchy() {
    let mut cg = Cg::new("{}");
    let (pid, go) = cg.child(|| {
        // SAFETY: sleeps; async-signal-safe.
        unsafe { libc::usleep(2_000_000) };
        0
    });
    cg.release(pid, &go);
    let me = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = cg.mgr.path().to_owned();
    for h in ["memory", "pids", "cpu", "freezer", "name=systemd", ""] {
        assert!(me.lines().any(|l| l.ends_with(&format!(":{h}:{path}"))), "{h} not {path} in:\n{me}");
    }
    assert_eq!(cg.mgr.pids().unwrap(), vec![pid.as_raw()]);
}

#[test]
fn pids_limit_makes_fork_fail_with_eagain() {
    let mut cg = Cg::new(r#"{"pids":{"limit":1}}"#);
    let (pid, go) = cg.child(|| {
        // SAFETY: fork in the single-threaded forked child; its child exits at once.
        let r = unsafe { libc::fork() };
        match r {
            // SAFETY: ends the grandchild.
            0 => unsafe { libc::_exit(0) },
            r if r < 0 => std::io::Error::last_os_error().raw_os_error().unwrap_or(99),
            _ => 0,
        }
    });
    cg.release(pid, &go);
    assert_eq!(waitpid(pid, None).unwrap(), WaitStatus::Exited(pid, libc::EAGAIN));
    cg.children.clear();
}

#[test]
fn memory_limit_oom_kills_and_counts() {
    let mut cg = Cg::new(r#"{"memory":{"limit":16777216}}"#);
    assert_eq!(cg.mgr.stats().unwrap().memory.oom_kill, 0);
    let (pid, go) = cg.child(|| {
        let len = 256usize << 20;
        // SAFETY: a fresh anonymous private mapping; no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return 1;
        }
        for off in (0..len).step_by(4096) {
            // SAFETY: `off` < `len`, inside the mapping.
            unsafe { p.cast::<u8>().wrapping_add(off).write_volatile(1) };
        }
        0
    });
    cg.release(pid, &go);
    assert_eq!(waitpid(pid, None).unwrap(), WaitStatus::Signaled(pid, Signal::SIGKILL, false));
    cg.children.clear();
    let s = cg.mgr.stats().unwrap();
    assert!(s.memory.oom_kill >= 1, "oom_kill {}", s.memory.oom_kill);
    assert!(s.memory.usage.failcnt >= 1);
    // Drop removes the OOM-killed container's cgroup.
}

#[test]
fn freeze_stops_and_thaw_resumes_a_child() {
    let mut cg = Cg::new("{}");
    let (r, w) = pipe().unwrap();
    nix::fcntl::fcntl(&r, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK)).unwrap();
    let wfd = w.as_raw_fd();
    WFD.store(wfd, Ordering::Relaxed);
    let (pid, go) = cg.child(|| loop {
        // SAFETY: writes one byte from a static to the inherited pipe.
        unsafe { libc::write(WFD.load(Ordering::Relaxed), b"t".as_ptr().cast(), 1) };
        // SAFETY: sleeps; async-signal-safe.
        unsafe { libc::usleep(1000) };
    });
    drop(w);
    cg.release(pid, &go);
    let drain = || {
        let mut buf = [0u8; 65536];
        let mut n = 0;
        while let Ok(k) = nix::unistd::read(&r, &mut buf) {
            if k == 0 {
                break;
            }
            n += k;
        }
        n
    };
    // Polled, not slept for: a loaded machine may not schedule the child for a while.
    let runs_within = |limit: Duration| {
        let t = std::time::Instant::now();
        while t.elapsed() < limit {
            if drain() > 0 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    };
    assert!(runs_within(Duration::from_secs(10)), "child runs");
    assert!(!cg.mgr.is_frozen());
    cg.mgr.freeze().unwrap();
    assert!(cg.mgr.is_frozen());
    assert_eq!(cg.read("freezer", "freezer.state"), "FROZEN");
    drain();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(drain(), 0, "a frozen child does not run");
    cg.mgr.thaw().unwrap();
    assert!(!cg.mgr.is_frozen());
    assert!(runs_within(Duration::from_secs(10)), "a thawed child runs again");
}

static WFD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

#[test]
fn remove_leaves_no_directory_and_tolerates_absence() {
    let cg = Cg::new(r#"{"pids":{"limit":5}}"#);
    let dirs = cg.mgr.dirs();
    assert!(dirs.iter().all(|d| d.is_dir()), "{dirs:?}");
    assert!(
        dirs.iter().any(|d| d.starts_with("/sys/fs/cgroup/unified")),
        "hybrid: a matching cgroup2 directory"
    );
    cg.mgr.remove().unwrap();
    assert!(dirs.iter().all(|d| !d.exists()));
    cg.mgr.remove().unwrap();
}

/// This host's cgroup2 mount used as if it were a pure v2 host: the BPF device program is
/// attached to a cgroup2 directory and enforced on the child (device programs work on the
/// cgroup2 hierarchy even when v1 controllers are mounted).
#[test]
fn v2_bpf_device_program_is_enforced() {
    let root = Path::new("/sys/fs/cgroup/unified");
    let mi = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
    let h = Hierarchies::detect(mi, "0::/\n", Path::new("/")).unwrap();
    assert_eq!(h.layout, Layout::Unified);
    let before = std::fs::read_to_string(root.join("cgroup.subtree_control")).unwrap();
    let _restore = Restore(before);
    let mut cg = Cg::on(
        Some(h),
        r#"{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":11,"access":"r"}]}"#,
    );
    let (pid, go) = cg.child(|| {
        let open = |p: &std::ffi::CStr, flags| {
            // SAFETY: a NUL-terminated path; the fd is leaked until _exit.
            let fd = unsafe { libc::open(p.as_ptr(), flags) };
            if fd >= 0 {
                0
            } else {
                std::io::Error::last_os_error().raw_os_error().unwrap_or(99)
            }
        };
        // Bit set = the outcome differs from the expectation.
        let checks = [
            (open(c"/dev/null", libc::O_RDWR), 0),
            (open(c"/dev/kmsg", libc::O_RDONLY), 0),
            (open(c"/dev/kmsg", libc::O_WRONLY), libc::EPERM),
            (open(c"/dev/loop0", libc::O_RDONLY), libc::EPERM),
        ];
        checks.iter().enumerate().map(|(i, (got, want))| i32::from(got != want) << i).sum()
    });
    cg.release(pid, &go);
    assert_eq!(
        waitpid(pid, None).unwrap(),
        WaitStatus::Exited(pid, 0),
        "null rw and kmsg r allowed; kmsg w and loop0 denied (bit set = wrong)"
    );
    cg.children.clear();
}

/// Puts back the hybrid cgroup2 root's subtree_control (create enables its controllers).
struct Restore(String);

impl Drop for Restore {
    fn drop(&mut self) {
        let p = Path::new("/sys/fs/cgroup/unified/cgroup.subtree_control");
        let now = std::fs::read_to_string(p).unwrap_or_default();
        for c in now.split_whitespace().filter(|c| !self.0.split_whitespace().any(|b| b == *c)) {
            let _ = std::fs::write(p, format!("-{c}"));
        }
    }
}

#[test]
fn default_and_relative_paths_resolve_on_this_host() {
    assert_eq!(CgroupManager::new("c1", None).unwrap().path(), "/isorun/c1");
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let mem = own
        .lines()
        .find_map(|l| {
            l.strip_prefix(|c: char| c.is_ascii_digit())
                .and_then(|l| l.trim_start_matches(char::is_numeric).strip_prefix(":memory:"))
        })
        .unwrap();
    let want = format!("{}/sub", mem.trim_end_matches('/'));
    assert_eq!(CgroupManager::new("c1", Some("sub")).unwrap().path(), want);
    let e = CgroupManager::new("c1", Some("system.slice:isorun:c1")).unwrap_err().to_string();
    assert!(e.contains("systemd cgroup paths are not supported (cgroupfs driver)"), "{e}");
}

/// Creating (every hierarchy), joining and removing a cgroup: the process is in it while
/// joined, and every directory is gone after remove. (Its cost is measured by the benches.)
#[test]
fn create_add_remove_leaves_nothing() {
    let mut cg = Cg::new("{}");
    let (pid, go) = cg.child(|| 0);
    let mgr = CgroupManager::new("t", Some(&format!("{}-2", cg.mgr.path()))).unwrap();
    mgr.create(Some(
        &serde_json::from_str(r#"{"pids":{"limit":100},"memory":{"limit":104857600}}"#).unwrap(),
    ))
    .unwrap();
    let dirs = mgr.dirs();
    assert!(!dirs.is_empty() && dirs.iter().all(|d| d.is_dir()), "{dirs:?}");
    mgr.add_task(pid).unwrap();
    assert_eq!(mgr.pids().unwrap(), vec![pid.as_raw()]);
    cg.mgr.add_task(pid).unwrap();
    mgr.remove().unwrap();
    nix::unistd::write(&go, b"x").unwrap();
    let left: Vec<_> = dirs.iter().filter(|d| d.exists()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
