//! OCI hooks (runtime-spec config.md "POSIX-platform Hooks", runtime.md "Lifecycle"): each
//! hook runs with the container state on stdin, its `timeout` honoured. The callers run them
//! at their moments: prestart and createRuntime in the parent before pivot_root,
//! createContainer in the container before pivot_root, startContainer in the container just
//! before exec, poststart after `start`, poststop after `delete` (the last two only warn).

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::Pid;
use oci_spec::runtime::Hook;

use crate::sys::process::pidfd_open;

/// A hook that failed, with its kind, index and path.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The hook could not be started.
    #[error("{kind} hook [{index}] {path}: start: {source}")]
    Spawn {
        /// prestart, createRuntime, ...
        kind: &'static str,
        /// Index in the hook list.
        index: usize,
        /// The hook's path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The hook exited non-zero or was killed.
    #[error("{kind} hook [{index}] {path}: {status}{}", if stderr.is_empty() { String::new() } else { format!(": {stderr}") })]
    Failed {
        /// prestart, createRuntime, ...
        kind: &'static str,
        /// Index in the hook list.
        index: usize,
        /// The hook's path.
        path: PathBuf,
        /// How it ended.
        status: String,
        /// The tail of what it wrote to stderr.
        stderr: String,
    },
    /// The hook ran past its timeout and was killed.
    #[error("{kind} hook [{index}] {path}: timed out after {secs} s")]
    Timeout {
        /// prestart, createRuntime, ...
        kind: &'static str,
        /// Index in the hook list.
        index: usize,
        /// The hook's path.
        path: PathBuf,
        /// The timeout.
        secs: i64,
    },
}

/// Run `hooks` of `kind` in order, each with `state` (the OCI state JSON) on stdin. Stops at
/// the first failure. A hook without `env` inherits isorun's environment (runc: Go's
/// `exec.Cmd` with a nil `Env`); `"env": []` means an empty one.
pub fn run_hooks(kind: &'static str, hooks: &[Hook], state: &[u8]) -> Result<(), HookError> {
    run_hooks_with_env(kind, hooks, state, None)
}

/// As [`run_hooks`], but a hook without `env` gets `default_env` when it is given: the
/// container process's environment for startContainer hooks, which runc runs in its init
/// after it has replaced its own environment with the process's.
pub fn run_hooks_with_env(
    kind: &'static str,
    hooks: &[Hook],
    state: &[u8],
    default_env: Option<&[String]>,
) -> Result<(), HookError> {
    for (index, hook) in hooks.iter().enumerate() {
        run_one(kind, index, hook, state, default_env)?;
    }
    Ok(())
}

fn run_one(
    kind: &'static str,
    index: usize,
    hook: &Hook,
    state: &[u8],
    default_env: Option<&[String]>,
) -> Result<(), HookError> {
    let path = hook.path().clone();
    let args = hook.args().as_deref().unwrap_or_default();
    let mut cmd = Command::new(&path);
    if let Some(arg0) = args.first() {
        cmd.arg0(arg0);
    }
    cmd.args(args.iter().skip(1));
    if let Some(env) = hook.env().as_deref().or(default_env) {
        cmd.env_clear().envs(env.iter().filter_map(|kv| kv.split_once('=')));
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
    // A hook dies with the isorun that waits for it: a killed create or delete leaves no
    // hook running (its own children it may keep, as a hook that daemonises means to).
    // SAFETY: between fork and execve the child only calls prctl, which is async-signal-safe
    // and touches no memory of the parent's.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(Into::into)
        });
    }
    let spawn_err = |source| HookError::Spawn { kind, index, path: path.clone(), source };
    let mut child = cmd.spawn().map_err(spawn_err)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine: ignore EPIPE.
        let _ = stdin.write_all(state);
    }
    if let Some(secs) = hook.timeout().filter(|s| *s > 0) {
        let pidfd = pidfd_open(Pid::from_raw(child.id() as i32)).map_err(|e| spawn_err(e.into()))?;
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        let ms = Duration::from_secs(secs as u64).as_millis().min(i32::MAX as u128) as i32;
        if matches!(poll(&mut fds, PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)), Ok(0)) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HookError::Timeout { kind, index, path, secs });
        }
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: String = stderr.trim().lines().last().unwrap_or_default().chars().take(200).collect();
    Err(HookError::Failed { kind, index, path, status: out.status.to_string(), stderr: tail })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: serde_json::Value) -> Hook {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn state_arrives_on_stdin_and_args_and_env_apply() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let h = hook(serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("cat > {0}; echo \"$0 $GREETING\" >> {0}", out.display())],
            "env": ["GREETING=hello"]
        }));
        run_hooks("prestart", &[h], br#"{"id":"x"}"#).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "{\"id\":\"x\"}sh hello\n");
    }

    #[test]
    fn without_env_a_hook_inherits_or_gets_the_default() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let h = hook(serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("echo \"${{CARGO_MANIFEST_DIR:+inherited}} $FROM_PROCESS\" > {}", out.display())]
        }));
        run_hooks("prestart", std::slice::from_ref(&h), b"{}").unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "inherited \n", "inherits isorun's env");
        let env = ["FROM_PROCESS=yes".to_owned()];
        run_hooks_with_env("startContainer", &[h], b"{}", Some(&env)).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), " yes\n", "the process's env only");
    }

    #[test]
    fn failure_names_kind_index_path_and_stderr() {
        let ok = hook(serde_json::json!({"path": "/bin/true"}));
        let bad = hook(serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", "echo boom >&2; exit 3"]}));
        let err = run_hooks("createRuntime", &[ok, bad], b"{}").unwrap_err().to_string();
        assert!(err.starts_with("createRuntime hook [1] /bin/sh: exit status: 3: boom"), "{err}");
    }

    #[test]
    fn timeout_kills_the_hook() {
        let h = hook(serde_json::json!({"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}));
        let t = std::time::Instant::now();
        let err = run_hooks("poststart", &[h], b"{}").unwrap_err();
        assert!(matches!(err, HookError::Timeout { secs: 1, .. }), "{err}");
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn missing_binary_is_a_spawn_error() {
        let h = hook(serde_json::json!({"path": "/no/such/hook"}));
        let err = run_hooks("poststop", &[h], b"{}").unwrap_err().to_string();
        assert!(err.contains("/no/such/hook") && err.contains("start"), "{err}");
    }
}
