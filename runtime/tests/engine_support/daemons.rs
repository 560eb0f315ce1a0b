//! Private engine daemons for one test: containerd and dockerd with their own root, state,
//! sockets and cgroup parent under a temp dir (never the host's services, never a host
//! sysctl: no bridge, no iptables, no ip forwarding), podman with its own root, runroot and
//! cgroup parent. [`Private`]'s drop tears everything down even when the test failed:
//! containers, daemons, shims and monitors, mounts, cgroups, the temp dir.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::cmd::{self, Out};

const CMD_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Private {
    pub dir: tempfile::TempDir,
    /// Prefix of every cgroup, ctr namespace and name this test makes.
    pub tag: String,
    daemons: Vec<(&'static str, Child)>,
    podman_used: bool,
    started: std::time::SystemTime,
}

impl Private {
    pub fn new(engine: &str) -> Self {
        // Short: unix socket paths must stay under 108 bytes.
        let dir = tempfile::Builder::new().prefix("ie-").tempdir_in("/tmp").unwrap();
        let tag = format!("isolab-eng-{}-{engine}", std::process::id());
        // TMPDIR of the daemons and clients (runc's exec process files, console sockets).
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        // A private, empty docker client config (podman reads DOCKER_CONFIG's for auth too).
        std::fs::create_dir_all(dir.path().join("docker-client")).unwrap();
        std::fs::write(dir.path().join("docker-client/config.json"), "{}").unwrap();
        Private { dir, tag, daemons: Vec::new(), podman_used: false, started: std::time::SystemTime::now() }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn p(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }

    pub fn containerd_sock(&self) -> String {
        self.p("ctd.sock")
    }

    /// Environment of every engine client: a private docker client config and podman config.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("DOCKER_CONFIG".into(), self.p("docker-client")),
            ("CONTAINERS_CONF".into(), self.p("containers.conf")),
            ("TMPDIR".into(), self.p("tmp")),
        ]
    }

    /// Run an engine client command with the private environment, bounded.
    pub fn run(&self, argv: Vec<String>, stdin: Option<&str>) -> Out {
        cmd::run(&argv, &self.env(), stdin, CMD_LIMIT)
    }

    fn spawn(&mut self, name: &'static str, argv: &[String]) {
        let log = std::fs::File::create(self.path(&format!("{name}.log"))).unwrap();
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .envs(self.env())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({}): {e}", argv[0]));
        self.daemons.push((name, child));
    }

    /// Wait until `ready` answers 0, or fail loudly with the daemon's log tail.
    fn wait_ready(&mut self, name: &str, ready: Vec<String>) {
        let end = Instant::now() + Duration::from_secs(60);
        let mut last = None;
        while Instant::now() < end {
            if let Some((_, child)) = self.daemons.iter_mut().find(|(n, _)| *n == name) {
                if let Ok(Some(st)) = child.try_wait() {
                    panic!("{name} exited at start ({st}): {}", self.log_tail(name));
                }
            }
            let out = cmd::run(&ready, &self.env(), None, Duration::from_secs(10));
            if out.code == 0 {
                return;
            }
            last = Some(out);
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "{name} did not become ready in 60 s ({:?}): {}",
            last.map(|o| o.brief()),
            self.log_tail(name)
        );
    }

    pub fn log_tail(&self, name: &str) -> String {
        let log = std::fs::read_to_string(self.path(&format!("{name}.log"))).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// containerd with root, state, opt, grpc and ttrpc sockets under the temp dir and the
    /// CRI plugin off (it would want CNI and host networking).
    pub fn start_containerd(&mut self) {
        let d = self.dir.path().display().to_string();
        let config = format!(
            "version = 2\nroot = \"{d}/ctd/root\"\nstate = \"{d}/ctd/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.snapshotter.v1.btrfs\", \
             \"io.containerd.snapshotter.v1.zfs\", \"io.containerd.snapshotter.v1.devmapper\", \
             \"io.containerd.snapshotter.v1.aufs\"]\n\
             [grpc]\n  address = \"{d}/ctd.sock\"\n[ttrpc]\n  address = \"{d}/ctd.sock.ttrpc\"\n\
             [debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{d}/ctd/opt\"\n"
        );
        std::fs::write(self.path("containerd.toml"), config).unwrap();
        let argv = cmd::argv(&["/usr/bin/containerd", "--config", &self.p("containerd.toml")]);
        self.spawn("containerd", &argv);
        let sock = self.containerd_sock();
        self.wait_ready("containerd", cmd::argv(&["/usr/bin/ctr", "-a", &sock, "version"]));
    }

    /// dockerd on the private containerd, with `runtimes` registered (`--add-runtime`:
    /// containerd's runc shim with `BinaryName`).
    pub fn start_dockerd(&mut self, runtimes: &[(&str, &Path)]) {
        std::fs::write(self.path("daemon.json"), "{}").unwrap();
        let cgroup_parent = format!("/{}", self.tag);
        let mut argv = cmd::argv(&[
            "/usr/sbin/dockerd",
            "--config-file",
            &self.p("daemon.json"),
            "--data-root",
            &self.p("docker"),
            "--exec-root",
            &self.p("dx"),
            "--pidfile",
            &self.p("docker.pid"),
            "--host",
            &format!("unix://{}", self.p("docker.sock")),
            "--containerd",
            &self.containerd_sock(),
            "--cgroup-parent",
            &cgroup_parent,
            "--exec-opt",
            "native.cgroupdriver=cgroupfs",
            "--storage-driver",
            "vfs",
            "--ip-forward=false",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
            "--bridge=none",
            "--userland-proxy=false",
        ]);
        for (name, path) in runtimes {
            argv.push("--add-runtime".into());
            argv.push(format!("{name}={}", path.display()));
        }
        self.spawn("dockerd", &argv);
        self.wait_ready("dockerd", self.docker(&["version"]));
    }

    /// argv of Debian's docker client on the private daemon (not /usr/local/bin's, if any).
    pub fn docker(&self, args: &[&str]) -> Vec<String> {
        let mut v = cmd::argv(&["/usr/bin/docker", "--host", &format!("unix://{}", self.p("docker.sock"))]);
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    /// argv of ctr on the private containerd, in this test's namespace.
    pub fn ctr(&self, args: &[&str]) -> Vec<String> {
        let mut v =
            cmd::argv(&["/usr/bin/ctr", "--address", &self.containerd_sock(), "--namespace", &self.tag]);
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    /// argv of podman with private root/runroot/tmpdir, cgroupfs, and `runtime`.
    pub fn podman(&mut self, runtime: &Path, args: &[&str]) -> Vec<String> {
        if !self.podman_used {
            self.podman_used = true;
            let conf = format!(
                "[engine]\nevents_logger = \"file\"\ncgroup_manager = \"cgroupfs\"\n\
                 image_copy_tmp_dir = \"{}\"\n[network]\nnetwork_config_dir = \"{}\"\n",
                self.p("tmp"),
                self.p("podman/net")
            );
            std::fs::write(self.path("containers.conf"), conf).unwrap();
        }
        let mut v = cmd::argv(&[
            "/usr/bin/podman",
            "--root",
            &self.p("podman/root"),
            "--runroot",
            &self.p("podman/run"),
            "--tmpdir",
            &self.p("podman/tmp"),
            "--cgroup-manager",
            "cgroupfs",
            "--storage-driver",
            "vfs",
            "--events-backend",
            "file",
        ]);
        v.push("--runtime".into());
        v.push(self.podman_runtime(runtime).display().to_string());
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    /// `runtime` behind a wrapper that adds `--root <private dir>`: podman passes no `--root` of
    /// its own (and `--runtime-flag` does not reach the cleanup process conmon starts), so the
    /// runtime's state and isorun's seccomp cache would land in its default root on the host
    /// (/run/isorun, /run/runc). The wrapper is named as the runtime, so podman's messages are.
    pub fn podman_runtime(&self, runtime: &Path) -> PathBuf {
        let name = runtime.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let wrapper = self.path(&format!("podman/bin-{name}/{name}"));
        if !wrapper.exists() {
            let state = self.p(&format!("podman/state-{name}"));
            let script = format!("#!/bin/sh\nexec '{}' --root '{state}' \"$@\"\n", runtime.display());
            std::fs::create_dir_all(wrapper.parent().unwrap()).unwrap();
            std::fs::write(&wrapper, script).unwrap();
            std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
        wrapper
    }

    /// podman's `--cgroup-parent` for this test.
    pub fn podman_cgroup_parent(&self) -> String {
        format!("/{}-podman", self.tag)
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        let quick = Duration::from_secs(30);
        let env = self.env();
        let run = |argv: Vec<String>| cmd::run(&argv, &env, None, quick);
        let has = |n: &str| self.daemons.iter().any(|(d, _)| *d == n);
        if has("dockerd") {
            let ids = run(self.docker(&["ps", "-aq"])).stdout;
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut a = vec!["rm", "-f", "-v"];
                a.extend(&ids);
                run(self.docker(&a));
            }
        }
        if has("containerd") {
            for id in run(self.ctr(&["task", "ls", "-q"])).stdout.split_whitespace() {
                run(self.ctr(&["task", "kill", "-s", "SIGKILL", id]));
                run(self.ctr(&["task", "delete", "--force", id]));
            }
            for id in run(self.ctr(&["container", "ls", "-q"])).stdout.split_whitespace() {
                run(self.ctr(&["container", "rm", id]));
            }
        }
        if self.podman_used {
            let rm = self.podman(Path::new("/usr/sbin/runc"), &["rm", "-a", "-f", "-t", "0"]);
            run(rm);
        }
        // Daemons last-started first: dockerd, then containerd.
        while let Some((name, mut child)) = self.daemons.pop() {
            let pid = Pid::from_raw(child.id() as i32);
            let _ = kill(pid, Signal::SIGTERM);
            let end = Instant::now() + Duration::from_secs(15);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(50));
            }
            if child.try_wait().ok().flatten().is_none() {
                eprintln!("teardown: {name} ignored SIGTERM for 15 s: SIGKILL");
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        sweep(self.dir.path(), &self.tag);
        remove_stale_shim_sockets(self.started);
    }
}

/// Kill what is left of this test (processes whose command line names its dir or tag, and
/// every process in its cgroups), unmount what is mounted under its dir, remove its cgroups.
fn sweep(dir: &Path, tag: &str) {
    let d = dir.display().to_string();
    let me = std::process::id();
    for _ in 0..3 {
        let mut killed = 0;
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            if pid != me && (cmdline.contains(&d) || cmdline.contains(tag)) {
                eprintln!("teardown: killing leftover {pid}: {}", cmdline.replace('\0', " "));
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                killed += 1;
            }
        }
        killed += kill_cgroups(tag, false);
        if killed == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<&str> =
        mountinfo.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&d)).collect();
    points.reverse();
    for m in points {
        if let Err(e) = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH) {
            eprintln!("teardown: umount {m}: {e}");
        }
    }
    kill_cgroups(tag, true);
    let _ = std::fs::remove_dir_all(Path::new("/run/containerd/runc").join(tag));
}

/// Every cgroup dir (any hierarchy) whose top-level name starts with `tag`: thaw it, SIGKILL
/// its processes, and with `remove` rmdir it depth-first. Returns how many were signalled.
fn kill_cgroups(tag: &str, remove: bool) -> usize {
    let mut n = 0;
    for h in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        for top in std::fs::read_dir(h.path()).into_iter().flatten().flatten() {
            if top.file_name().to_string_lossy().starts_with(tag) && top.path().is_dir() {
                n += walk_cgroup(&top.path(), remove);
            }
        }
    }
    n
}

fn walk_cgroup(dir: &Path, remove: bool) -> usize {
    let mut n = 0;
    for sub in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if sub.path().is_dir() {
            n += walk_cgroup(&sub.path(), remove);
        }
    }
    let _ = std::fs::write(dir.join("freezer.state"), "THAWED");
    let _ = std::fs::write(dir.join("cgroup.freeze"), "0");
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    for pid in procs.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        n += 1;
    }
    if remove {
        for _ in 0..20 {
            match std::fs::remove_dir(dir) {
                Ok(()) => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => break,
                Err(e) => {
                    if e.raw_os_error() != Some(libc::EBUSY) {
                        eprintln!("teardown: rmdir {}: {e}", dir.display());
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
    n
}

/// containerd 1.6's shims bind their socket under /run/containerd/s whatever containerd's
/// state dir; a shim that was killed leaves it. Remove those this test's time made that no
/// socket is bound to any more (/proc/net/unix).
fn remove_stale_shim_sockets(since: std::time::SystemTime) {
    let bound = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    for e in std::fs::read_dir("/run/containerd/s").into_iter().flatten().flatten() {
        let path = e.path();
        let fresh = e.metadata().and_then(|m| m.modified()).map(|t| t >= since).unwrap_or(false);
        if fresh && !bound.contains(&*path.to_string_lossy()) {
            let _ = std::fs::remove_file(&path);
        }
    }
}
