//! The last steps: environment, executable lookup in the container's PATH, cwd, the exec
//! fifo wait (`create` → `start`), and execve.

use std::ffi::CString;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::unistd::{chdir, execve, read};
use oci_spec::runtime::Process;

use super::{sys, InitError};

/// What execve needs, resolved before `Ready` is sent so `create` reports a missing binary.
#[derive(Debug)]
pub struct Prepared {
    path: CString,
    args: Vec<CString>,
    env: Vec<CString>,
}

/// Resolve the executable, build argv/envp and enter cwd.
pub fn prepare(process: &Process) -> Result<Prepared, InitError> {
    let args = process.args().as_deref().unwrap_or_default();
    let first = args.first().ok_or_else(|| InitError::Process("process.args is empty".into()))?;
    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
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
    let exe = lookup(first, path_var).ok_or_else(|| {
        InitError::Process(format!("exec {first:?}: executable file not found in $PATH ({path_var})"))
    })?;
    let cstr = |s: &str, what: &str| {
        CString::new(s).map_err(|_| InitError::Process(format!("{what} contains a NUL byte: {s:?}")))
    };
    Ok(Prepared {
        path: cstr(&exe.to_string_lossy(), "process.args[0]")?,
        args: args.iter().map(|a| cstr(a, "process.args")).collect::<Result<_, _>>()?,
        env: env.iter().map(|e| cstr(e, "process.env")).collect::<Result<_, _>>()?,
    })
}

/// PATH lookup as execvp would do it, but with the container's PATH.
fn lookup(name: &str, path_var: &str) -> Option<PathBuf> {
    let is_exec = |p: &Path| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if name.contains('/') {
        return is_exec(Path::new(name)).then(|| PathBuf::from(name));
    }
    path_var.split(':').map(|d| Path::new(if d.is_empty() { "." } else { d }).join(name)).find(|p| is_exec(p))
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

/// execve the user process; on failure, say why on stderr and exit 127.
pub fn exec(p: &Prepared) -> ! {
    crate::sys::process::reset_signals();
    let err = match execve(&p.path, &p.args, &p.env) {
        Err(e) => e,
        Ok(never) => match never {},
    };
    eprintln!("isorun: exec {:?}: {err}", p.path);
    // SAFETY: _exit ends this process at once; nothing of the parent's state is shared.
    unsafe { libc::_exit(127) }
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
        assert_eq!(lookup("tool", &path), Some(b.join("tool")));
        assert_eq!(lookup("missing", &path), None);
    }
}
