//! The last steps: environment, executable lookup in the container's PATH, cwd, the exec
//! fifo wait (`create` → `start`), and execve.

use std::ffi::CString;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::unistd::{chdir, read};
use oci_spec::runtime::Process;

use super::{sys, InitError};

/// What execve needs, resolved before `Ready` is sent so `create` reports a missing binary.
/// The pointer arrays are built up front: nothing allocates after the seccomp filter.
#[derive(Debug)]
pub struct Prepared {
    path: CString,
    // The strings the pointer arrays point into (heap data: stable when the Vec moves).
    _args: Vec<CString>,
    env: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
}

impl Prepared {
    /// The environment the process gets, as `KEY=VALUE` strings.
    pub fn env_strings(&self) -> Vec<String> {
        self.env.iter().map(|e| e.to_string_lossy().into_owned()).collect()
    }
}

/// The environment with one entry per name, the last value winning at the place of the
/// first (runc sets each entry with setenv in order): `exec --env K=V` overrides the
/// config's K.
pub fn merge_env(env: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(env.len());
    let name = |e: &str| e.split_once('=').map_or(e.len(), |(k, _)| k.len());
    for e in env {
        let key = &e[..name(e)];
        match out.iter_mut().find(|o| &o[..name(o)] == key) {
            Some(slot) => slot.clone_from(e),
            None => out.push(e.clone()),
        }
    }
    out
}

/// NULL-terminated pointers to `strings`, for execve.
fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect()
}

/// What happens between the exec fifo and execve, in this order: the seccomp filter, then
/// (only when the filter needed CAP_SYS_ADMIN that the process must not keep) one capset to
/// the final sets, then execve. Nothing else runs under the filter.
#[derive(Debug)]
pub struct Launch<'a> {
    /// argv, envp, path.
    pub prepared: Prepared,
    /// The filter to install last.
    pub filter: Option<&'a crate::seccomp::Filter>,
    /// The capability sets to drop to after the filter.
    pub final_caps: Option<crate::sys::process::CapMasks>,
    /// `SCMP_ACT_NOTIFY`: the connected listener socket and the state message to send the
    /// notify fd with.
    pub listener: Option<(std::os::fd::OwnedFd, Vec<u8>)>,
}

/// Resolve the executable, build argv/envp and enter cwd.
pub fn prepare(process: &Process) -> Result<Prepared, InitError> {
    let args = process.args().as_deref().unwrap_or_default();
    let first = args.first().ok_or_else(|| InitError::Process("process.args is empty".into()))?;
    let mut env = merge_env(process.env().as_deref().unwrap_or_default());
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", home_of(process.user().uid())));
    }
    let cwd = process.cwd();
    chdir(cwd).map_err(sys(format!("chdir({})", cwd.display())))?;
    // CVE-2024-21626: a cwd like /proc/self/fd/N follows an fd this process still holds (the
    // cgroup directory it was cloned into, say) out of the container. The kernel's getcwd
    // says "(unreachable)" for a cwd outside the root, which getcwd(3) turns into ENOENT.
    if let Err(errno) = nix::unistd::getcwd() {
        return Err(InitError::Process(format!(
            "process.cwd {}: the working directory is outside the container ({errno})",
            cwd.display()
        )));
    }
    let path_var = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let exe = lookup(first, path_var).map_err(|e| InitError::Process(e.to_string()))?;
    let cstr = |s: &str, what: &str| {
        CString::new(s).map_err(|_| InitError::Process(format!("{what} contains a NUL byte: {s:?}")))
    };
    let args: Vec<CString> = args.iter().map(|a| cstr(a, "process.args")).collect::<Result<_, _>>()?;
    let env: Vec<CString> = env.iter().map(|e| cstr(e, "process.env")).collect::<Result<_, _>>()?;
    Ok(Prepared {
        path: cstr(&exe.to_string_lossy(), "process.args[0]")?,
        argv: pointers(&args),
        envp: pointers(&env),
        _args: args,
        env,
    })
}

/// Why the executable could not be found, worded as runc's (Go's `exec.LookPath`): Docker
/// turns "executable file not found" and "no such file or directory" into exit 127 and
/// "permission denied" into 126.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// A name without `/` found nowhere in PATH as an executable file.
    #[error("exec: {0:?}: executable file not found in $PATH")]
    NotInPath(String),
    /// A path that cannot be stat'ed (`exec: "/x": stat /x: no such file or directory`).
    #[error("exec: {name:?}: stat {name}: {reason}")]
    Stat {
        /// The path as given.
        name: String,
        /// strerror, lower case as Go's.
        reason: String,
    },
    /// A path that exists but is not an executable file (a directory, mode without x).
    #[error("exec: {0:?}: permission denied")]
    NotExecutable(String),
}

/// PATH lookup as Go's `exec.LookPath` does it (runc), with the container's PATH: a name
/// with a `/` is taken as is; otherwise the first executable regular file in PATH.
fn lookup(name: &str, path_var: &str) -> Result<PathBuf, LookupError> {
    let is_exec = |m: &std::fs::Metadata| !m.is_dir() && m.permissions().mode() & 0o111 != 0;
    if name.contains('/') {
        return match Path::new(name).metadata() {
            Ok(m) if is_exec(&m) => Ok(PathBuf::from(name)),
            Ok(_) => Err(LookupError::NotExecutable(name.to_owned())),
            Err(e) => Err(LookupError::Stat { name: name.to_owned(), reason: go_strerror(&e) }),
        };
    }
    path_var
        .split(':')
        .map(|d| Path::new(if d.is_empty() { "." } else { d }).join(name))
        .find(|p| p.metadata().is_ok_and(|m| is_exec(&m)))
        .ok_or_else(|| LookupError::NotInPath(name.to_owned()))
}

/// An io error's strerror in Go's spelling ("no such file or directory").
fn go_strerror(e: &std::io::Error) -> String {
    let errno = Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
    let mut s = errno.desc().to_owned();
    if let Some(first) = s.get_mut(0..1) {
        first.make_ascii_lowercase();
    }
    s
}

/// HOME from the container's /etc/passwd, else `/` (as runc does).
fn home_of(uid: u32) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 6 && f[2].parse() == Ok(uid)).then(|| f[5].to_owned())
        })
        .next()
        .unwrap_or_else(|| "/".into())
}

/// Block until `start` writes a byte into the exec fifo. False when it never comes.
pub fn wait_for_start(fifo: BorrowedFd<'_>) -> bool {
    let mut byte = [0u8; 1];
    loop {
        match read(fifo, &mut byte) {
            Ok(1) => return true,
            Err(Errno::EINTR) => continue,
            _ => return false,
        }
    }
}

/// Reset signal dispositions, install the seccomp filter, drop to the final capabilities if
/// the filter needed more, and execve the user process. On failure, say why on stderr and
/// exit (127 when execve itself failed).
pub fn exec(launch: &Launch<'_>) -> ! {
    crate::sys::process::reset_signals();
    if let Some(f) = launch.filter {
        match (crate::seccomp::install(f), &launch.listener) {
            (Err(e), _) => die(1, format_args!("seccomp: {e}")),
            (Ok(Some(notify)), Some((sock, msg))) => {
                use std::os::fd::AsFd;
                if let Err(e) = crate::sys::process::send_fd(sock.as_fd(), msg, notify.as_fd()) {
                    die(1, format_args!("seccomp: send the notify fd to linux.seccomp.listenerPath: {e}"));
                }
            }
            (Ok(_), _) => {}
        }
    }
    if let Some(caps) = launch.final_caps {
        if let Err(e) = crate::sys::process::capset(caps) {
            die(
                1,
                format_args!(
                    "capset to the final capabilities after the seccomp filter: {e} (without \
                     process.noNewPrivileges the filter needs CAP_SYS_ADMIN, dropped only after it: \
                     the profile must allow capset)"
                ),
            );
        }
    }
    let p = &launch.prepared;
    let err = crate::sys::process::execve_raw(&p.path, &p.argv, &p.envp);
    die(127, format_args!("exec {:?}: {err}", p.path))
}

fn die(code: i32, msg: std::fmt::Arguments<'_>) -> ! {
    eprintln!("isorun: {msg}");
    // SAFETY: _exit ends this process at once; nothing of the parent's state is shared.
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_in_path_order_and_skips_non_executables() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("tool"), "").unwrap();
        std::fs::write(b.join("tool"), "").unwrap();
        std::fs::set_permissions(b.join("tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:{}", a.display(), b.display());
        assert_eq!(lookup("tool", &path), Ok(b.join("tool")));
        assert_eq!(lookup("missing", &path), Err(LookupError::NotInPath("missing".into())));
    }

    #[test_case::test_case(&["A=1", "B=2", "A=3"], &["A=3", "B=2"] ; "last wins at the first place")]
    #[test_case::test_case(&["PATH=/bin", "X=", "X=y=z"], &["PATH=/bin", "X=y=z"] ; "values with =")]
    #[test_case::test_case(&["AB=1", "A=2"], &["AB=1", "A=2"] ; "prefix is another name")]
    fn env_merges_like_setenv(env: &[&str], want: &[&str]) {
        let env: Vec<String> = env.iter().map(|s| s.to_string()).collect();
        assert_eq!(merge_env(&env), want);
    }

    /// runc's (Go's) wording, which Docker maps to 127 and 126.
    #[test]
    fn lookup_errors_read_like_runcs() {
        let tmp = tempfile::tempdir().unwrap();
        let plain = tmp.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        let (plain, dir) = (plain.to_str().unwrap(), tmp.path().to_str().unwrap());
        let missing = format!("{dir}/missing");
        let cases: [(&str, String); 4] = [
            (plain, format!("exec: {plain:?}: permission denied")),
            (dir, format!("exec: {dir:?}: permission denied")),
            (&missing, format!("exec: {missing:?}: stat {missing}: no such file or directory")),
            ("nope", "exec: \"nope\": executable file not found in $PATH".to_owned()),
        ];
        for (name, want) in cases {
            let got = lookup(name, dir).unwrap_err().to_string();
            assert_eq!(got, want);
            assert_eq!(got.contains("$PATH"), !name.contains('/'), "{got}");
        }
    }
}
