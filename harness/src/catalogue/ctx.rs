//! The context of one assertion run: the runtime under test driven through its OCI command
//! line, bundles written on a shared busybox rootfs, and cleanup of every container started.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Facts, Verdict};

/// Setting up the context failed.
#[derive(Debug, thiserror::Error)]
pub enum CtxError {
    /// A file or directory of the work dir.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The `--base-config` is not usable.
    #[error(transparent)]
    Base(#[from] super::base::BaseConfigError),
    /// The rootless user context could not be set up (not the kernel's refusal: that SKIPs).
    #[error("rootless: {0}")]
    Rootless(#[from] super::rootless::RootlessError),
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CtxError + use<'a> {
    move |source| CtxError::Io { op, path: path.to_owned(), source }
}

/// What a runtime command printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    /// Exit code (128 + signal if killed; -1 when it timed out).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl RunOutput {
    /// The stdout lines, trimmed.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().map(str::trim).collect()
    }
}

/// A container started detached; deleted (forcibly) by [`Ctx::cleanup`].
#[derive(Debug, Clone)]
pub struct Container {
    /// Its id.
    pub id: String,
    /// Its init's pid on this side.
    pub pid: i32,
}

/// One run of the catalogue against one runtime.
#[derive(Debug)]
pub struct Ctx {
    /// The runtime binary under test.
    pub runtime: PathBuf,
    /// What this kernel and host offer.
    pub facts: Facts,
    /// The negative control in force: applied to every config written.
    pub weaken: Option<fn(&mut Value)>,
    /// Per-command timeout.
    pub timeout: Duration,
    base: super::base::BaseConfig,
    base_json: Value,
    /// The rootless user context (base `podman-rootless`), or why this kernel cannot do it.
    pub(super) rootless: Option<Result<super::rootless::Rootless, String>>,
    /// What the rootless probe saw (appended to every record's detail).
    pub(super) rootless_note: String,
    dir: PathBuf,
    rootfs: PathBuf,
    state_root: PathBuf,
    n: u32,
    live: Vec<String>,
    kept: Vec<String>,
    /// The checkpoint/restore the `checkpoint.*` assertions of one run share (see
    /// `checkpoint_shared`); dropped, and its container deleted, by [`Ctx::release_kept`].
    pub(super) shared_checkpoint: Option<super::checkpoint_shared::Shared>,
}

impl Ctx {
    /// A context working in `dir` (created; a busybox rootfs is built there from `busybox`).
    pub fn new(runtime: &Path, dir: &Path, busybox: &Path) -> Result<Self, CtxError> {
        let rootfs = dir.join("rootfs");
        let bin = rootfs.join("bin");
        std::fs::create_dir_all(&bin).map_err(io("mkdir", &bin))?;
        let bb = bin.join("busybox");
        if !bb.exists() {
            std::fs::copy(busybox, &bb).map_err(io("copy busybox to", &bb))?;
        }
        let list = Command::new(&bb).arg("--list").output().map_err(io("run", &bb))?;
        for applet in String::from_utf8_lossy(&list.stdout).lines().filter(|a| *a != "busybox") {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
        }
        for d in ["proc", "sys", "dev", "tmp", "etc", "root", "mnt"] {
            let p = rootfs.join(d);
            std::fs::create_dir_all(&p).map_err(io("mkdir", &p))?;
        }
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")
            .map_err(io("write", &rootfs))?;
        std::fs::write(rootfs.join("isolab-rootfs-marker"), "isolab\n").map_err(io("write", &rootfs))?;
        let state_root = dir.join("state");
        std::fs::create_dir_all(&state_root).map_err(io("mkdir", &state_root))?;
        Ok(Ctx {
            runtime: runtime.to_owned(),
            facts: Facts::detect(),
            weaken: None,
            timeout: Duration::from_secs(60),
            base: super::base::BaseConfig::default(),
            base_json: serde_json::from_str(super::base::SPEC_JSON).expect("base_config.json is valid JSON"),
            rootless: None,
            rootless_note: String::new(),
            dir: dir.to_owned(),
            rootfs,
            state_root,
            n: 0,
            live: Vec::new(),
            kept: Vec::new(),
            shared_checkpoint: None,
        })
    }

    /// The shared rootfs (absolute).
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// The work directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Start every bundle from `base` (`--base-config`) instead of isolab's own; the rootless
    /// base also sets up the rootless user context and probes it (see the `rootless` module).
    pub fn set_base(&mut self, base: &super::base::BaseConfig) -> Result<(), CtxError> {
        self.base_json = base.json()?;
        self.base = base.clone();
        if base.is_rootless() {
            self.rootless = Some(super::rootless_probe::set_up(self)?);
            if matches!(self.rootless, Some(Ok(_))) {
                self.rootless_note = super::rootless_probe::probe(self);
            }
        }
        Ok(())
    }

    /// The base config in force (`spec` unless [`Ctx::set_base`] chose another).
    pub fn base(&self) -> &super::base::BaseConfig {
        &self.base
    }

    /// The base config running `args` on the catalogue's rootfs (see
    /// [`super::base::bundle_config`]). isolab's own (`spec`): pid, net, ipc, uts, mount and
    /// cgroup namespaces, readonly root, runc's default capabilities, masked and readonly paths.
    pub fn config(&self, args: &[&str]) -> Value {
        super::base::bundle_config(&self.base_json, &self.rootfs, args)
    }

    /// Whether the runtime runs rootless here with no cgroup delegated to its uid (it then
    /// makes no cgroup for a container that asks for no resources).
    pub fn rootless_without_cgroup(&self) -> bool {
        matches!(&self.rootless, Some(Ok(r)) if !r.cgroup_delegated())
    }

    /// Give `path` (a socket, or a rootfs: recursively) the runtime must use to the rootless
    /// uid, as rootless podman's storage belongs to its user; nothing when the runtime runs as
    /// root.
    pub fn give_to_runtime_user(&self, path: &Path) -> Result<(), String> {
        match &self.rootless {
            Some(Ok(r)) => super::rootless::chown_tree(path, r.uid).map_err(|e| e.to_string()),
            _ => Ok(()),
        }
    }

    /// What a FAIL adds when the property is one the base config does not ask for (`cond`):
    /// ` [base config docker: root.readonly unset]`; empty otherwise. An assertion says so
    /// rather than pass or fail silently under an engine's config.
    pub fn base_note(&self, cond: bool, what: &str) -> String {
        if cond {
            format!(" [base config {}: {what}]", self.base.name)
        } else {
            String::new()
        }
    }

    fn next_id(&mut self) -> String {
        self.n += 1;
        format!("isolab-{}-{}", std::process::id(), self.n)
    }

    /// Write a bundle for `cfg` (with the negative control applied, if any); its id and dir.
    pub fn bundle(&mut self, mut cfg: Value) -> Result<(String, PathBuf), Verdict> {
        if let Some(weaken) = self.weaken {
            weaken(&mut cfg);
        }
        let id = self.next_id();
        let dir = self.dir.join("bundles").join(&id);
        std::fs::create_dir_all(&dir).map_err(|e| Verdict::error(format!("mkdir {}: {e}", dir.display())))?;
        let text = serde_json::to_vec_pretty(&cfg).unwrap_or_default();
        std::fs::write(dir.join("config.json"), text)
            .map_err(|e| Verdict::error(format!("write config: {e}")))?;
        Ok((id, dir))
    }

    /// Run the runtime with `args` (after `--root`), stdout/stderr through files (a
    /// detached container inherits them), killed after the timeout.
    pub fn runtime_cmd(&self, args: &[&str]) -> RunOutput {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (out, err) = (self.dir.join(format!(".out.{n}")), self.dir.join(format!(".err.{n}")));
        let (Ok(fo), Ok(fe)) = (std::fs::File::create(&out), std::fs::File::create(&err)) else {
            return RunOutput {
                code: -1,
                stdout: String::new(),
                stderr: "cannot create output files".into(),
            };
        };
        let mut cmd = Command::new(&self.runtime);
        cmd.arg("--root").arg(&self.state_root).args(args).stdin(Stdio::null()).stdout(fo).stderr(fe);
        // The guest agent, as PID 1, has no PATH; engines give their runtime one, and runc
        // finds `criu` only through it ("CRIU version check failed: exec: \"criu\":
        // executable file not found in $PATH" in every guest before).
        if std::env::var_os("PATH").is_none() {
            cmd.env("PATH", crate::agent::exec::GUEST_PATH);
        }
        if let Some(Ok(r)) = &self.rootless {
            r.prepare(&mut cmd);
        }
        let child = cmd.spawn();
        let code = match child {
            Err(e) => {
                return RunOutput {
                    code: -1,
                    stdout: String::new(),
                    stderr: format!("spawn {}: {e}", self.runtime.display()),
                }
            }
            Ok(mut c) => wait_with_timeout(&mut c, self.timeout),
        };
        let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
        let mut output = RunOutput { code: code.0, stdout: read(&out), stderr: read(&err) };
        if let Some(tree) = code.1 {
            output
                .stderr
                .push_str(&format!("\n[killed after {:?}; its processes then: {tree}]", self.timeout));
        }
        let _ = std::fs::remove_file(&out);
        let _ = std::fs::remove_file(&err);
        output
    }

    /// `run` the config in the foreground and delete the container; the process's output.
    pub fn run(&mut self, cfg: Value) -> Result<RunOutput, Verdict> {
        let (id, dir) = self.bundle(cfg)?;
        self.live.push(id.clone());
        let out = self.runtime_cmd(&["run", "--bundle", &dir.to_string_lossy(), &id]);
        // A foreground `run` deletes its container when the process exits (runc, crun,
        // isorun); a `delete --force` is one more runtime round trip (~80 ms in a TCG guest)
        // that only finds nothing. It is sent when the run was killed at the timeout or when
        // the runtime still keeps anything under `--root` named after the container.
        if out.code == -1 || self.has_state(&id) {
            self.delete(&id);
        } else {
            self.live.retain(|x| x != &id);
        }
        if out.code == -1 {
            return Err(Verdict::error(format!(
                "runtime run timed out after {:?}: stdout {:?}; stderr: {}",
                self.timeout,
                out.stdout.trim(),
                out.stderr.trim()
            )));
        }
        Ok(out)
    }

    /// Like [`Ctx::run`], but a non-zero exit is a FAIL carrying the runtime's stderr.
    pub fn run_ok(&mut self, cfg: Value) -> Result<RunOutput, Verdict> {
        let out = self.run(cfg)?;
        if out.code != 0 {
            return Err(Verdict::fail(format!("exit {}: {}", out.code, out.stderr.trim())));
        }
        Ok(out)
    }

    /// `run -d`: a detached container, deleted at cleanup.
    pub fn start(&mut self, cfg: Value) -> Result<Container, Verdict> {
        let (id, dir) = self.bundle(cfg)?;
        self.live.push(id.clone());
        // Assertions that look at the init from the host right after `start` need it to have
        // exec'd its process (debian-6.1/v2, then debian-5.10/v1 once isorun got faster:
        // security.seccomp_errno read `Seccomp: 0`, escape.cve_2024_21626_fds saw the init's
        // own fd of its cgroup, before its execve): `run -d` returns once the init is
        // released, as runc's does, and the init loads its seccomp filter and execs after
        // that. So this waits for the exec (`wait_until_execed`), not on timing.
        let out = self.runtime_cmd(&["run", "-d", "--bundle", &dir.to_string_lossy(), &id]);
        if out.code != 0 {
            return Err(Verdict::fail(format!(
                "runtime run -d failed ({}): {}",
                out.code,
                out.stderr.trim()
            )));
        }
        let pid = self.state(&id).and_then(|s| s["pid"].as_i64()).unwrap_or(0) as i32;
        if pid <= 0 {
            return Err(Verdict::fail("runtime state shows no pid for a running container"));
        }
        wait_until_execed(pid, &self.runtime);
        Ok(Container { id, pid })
    }

    /// `exec` a command in a running container.
    pub fn exec(&self, c: &Container, args: &[&str]) -> RunOutput {
        let mut all = vec!["exec", c.id.as_str()];
        all.extend_from_slice(args);
        self.runtime_cmd(&all)
    }

    /// The runtime's `state` JSON of a container.
    pub fn state(&self, id: &str) -> Option<Value> {
        let out = self.runtime_cmd(&["state", id]);
        (out.code == 0).then(|| serde_json::from_str(&out.stdout).ok()).flatten()
    }

    /// Whether the runtime keeps anything under `--root` whose name contains `id` (runc,
    /// crun and isorun keep `<root>/<id>/`); true when the root cannot be read.
    fn has_state(&self, id: &str) -> bool {
        match std::fs::read_dir(&self.state_root) {
            Ok(entries) => entries.flatten().any(|e| e.file_name().to_string_lossy().contains(id)),
            Err(_) => true,
        }
    }

    /// Force-delete a container.
    pub fn delete(&mut self, id: &str) {
        let _ = self.runtime_cmd(&["delete", "--force", id]);
        self.live.retain(|x| x != id);
    }

    /// Delete every container still alive (called after each assertion), except the kept ones.
    pub fn cleanup(&mut self) {
        for id in std::mem::take(&mut self.live) {
            let _ = self.runtime_cmd(&["delete", "--force", &id]);
        }
        let bundles = self.dir.join("bundles");
        if self.kept.is_empty() {
            let _ = std::fs::remove_dir_all(&bundles);
            return;
        }
        for e in std::fs::read_dir(&bundles).into_iter().flatten().flatten() {
            if !self.kept.iter().any(|k| e.file_name() == k.as_str()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// Keep container `id` (and its bundle) past [`Ctx::cleanup`], for the next assertions
    /// that share it, until [`Ctx::release_kept`].
    pub fn keep(&mut self, id: &str) {
        if let Some(i) = self.live.iter().position(|x| x == id) {
            self.kept.push(self.live.remove(i));
        }
    }

    /// Whether assertion `id` shares what an earlier assertion kept (the `checkpoint.*`
    /// assertions share one checkpoint/restore).
    pub fn shares_kept(&self, id: &str) -> bool {
        self.shared_checkpoint.is_some() && super::checkpoint_shared::shares(id)
    }

    /// Delete the kept containers and drop what the assertions shared (called when the
    /// next assertion does not share it, and when the context is dropped).
    pub fn release_kept(&mut self) {
        self.shared_checkpoint = None;
        for id in std::mem::take(&mut self.kept) {
            let _ = self.runtime_cmd(&["delete", "--force", &id]);
            let _ = std::fs::remove_dir_all(self.dir.join("bundles").join(&id));
        }
    }

    /// Wait until `cond` holds (polling every 10 ms), at most `limit`.
    pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + limit;
        loop {
            if cond() {
                return true;
            }
            if Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        self.release_kept();
        self.cleanup();
    }
}

/// The child's exit code (128 + signal if killed), or -1 and what its process tree was doing
/// when it was killed at the timeout.
///
/// A helper thread blocks in `waitid(WEXITED | WNOWAIT)`, which returns when the child exits
/// without reaping it; this thread waits for that (or the timeout) on a channel. No polling:
/// a 2 ms `try_wait` loop woke up ~40-120 times per runtime command, guest CPU a TCG vCPU
/// spends on nothing. Only this thread reaps, so the pid killed at the timeout is the child.
fn wait_with_timeout(child: &mut std::process::Child, timeout: Duration) -> (i32, Option<String>) {
    use std::os::unix::process::ExitStatusExt;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = tx.send(exited_unreaped(pid));
    });
    let tree = match rx.recv_timeout(timeout) {
        Ok(true) => None,
        // The helper could not wait (it said so, or died): wait here, bounded by the timeout.
        Ok(false) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => poll_exit(child, timeout),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Some(super::ptree::describe(pid as i32)),
    };
    if tree.is_some() {
        let _ = child.kill();
    }
    let status = child.wait();
    let _ = waiter.join();
    match (status, tree) {
        (Ok(st), None) => (st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)), None),
        (_, tree) => (-1, Some(tree.unwrap_or_else(|| "(wait failed)".into()))),
    }
}

/// Block until child `pid` has exited, leaving it unreaped (`waitid` with `WNOWAIT`); false
/// when that cannot be waited for.
fn exited_unreaped(pid: u32) -> bool {
    loop {
        // SAFETY: siginfo_t is plain data for which all-zero bytes are a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, writable siginfo_t that outlives the call; waitid writes
        // only into it, and with WNOWAIT it leaves the child for `Child::wait` to reap.
        let r = unsafe { libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if r == 0 {
            return true;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return false;
        }
    }
}

/// The fallback: `try_wait` every 2 ms until the child exits (None) or the timeout (the
/// process tree then).
fn poll_exit(child: &mut std::process::Child, timeout: Duration) -> Option<String> {
    let end = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return None,
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(2)),
            _ => return Some(super::ptree::describe(child.id() as i32)),
        }
    }
}

/// Waits (at most 2 s) until `pid` no longer runs the runtime's own code. `run -d` returns
/// once `start` has released the init; then the init loads its seccomp filter and execs
/// (runc, crun and isorun alike). A process that is gone counts as exec'd.
fn wait_until_execed(pid: i32, runtime: &Path) {
    use std::os::unix::fs::MetadataExt;
    let runtime_id = std::fs::metadata(runtime).ok().map(|m| (m.dev(), m.ino()));
    let exe = format!("/proc/{pid}/exe");
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let exe_id = std::fs::metadata(&exe).ok().map(|m| (m.dev(), m.ino()));
        let link = std::fs::read_link(&exe).ok().map(|l| l.to_string_lossy().into_owned());
        if !still_the_runtime(exe_id, link.as_deref(), runtime_id) || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether a process whose `/proc/<pid>/exe` is the file `exe_id` (linked as `link`) still
/// runs the runtime (the file `runtime_id`), or a copy of it in a memfd (runc re-executes
/// itself from one). Pure.
fn still_the_runtime(exe_id: Option<(u64, u64)>, link: Option<&str>, runtime_id: Option<(u64, u64)>) -> bool {
    (exe_id.is_some() && exe_id == runtime_id) || link.is_some_and(|l| l.contains("memfd:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test_case::test_case(Some((1, 2)), Some("/usr/bin/isorun"), Some((1, 2)) => true; "the runtime's file")]
    #[test_case::test_case(Some((1, 9)), Some("/bin/busybox"), Some((1, 2)) => false; "exec'd")]
    #[test_case::test_case(Some((7, 3)), Some("/memfd:runc_cloned:/proc/self/exe (deleted)"), Some((1, 2)) => true; "runc's memfd copy")]
    #[test_case::test_case(None, None, Some((1, 2)) => false; "gone")]
    #[test_case::test_case(None, None, None => false; "gone, runtime unknown")]
    fn still_the_runtime_cases(exe: Option<(u64, u64)>, link: Option<&str>, rt: Option<(u64, u64)>) -> bool {
        still_the_runtime(exe, link, rt)
    }
}
