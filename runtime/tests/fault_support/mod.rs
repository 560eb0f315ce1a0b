//! What the fault tests look for on the host after `delete --force`: cgroup directories,
//! mounts, state directories, processes and fifos of the containers a test made, found by
//! the test's unique id prefix, its temp directory and a marker in its hooks' arguments.
#![allow(dead_code)]

use std::fmt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What one test's containers left on the host; every list must be empty.
#[derive(Debug, Default, Clone)]
pub struct Leftovers {
    /// Cgroup directories named like one of the ids, in any hierarchy (v1 or the cgroup2 one).
    pub cgroups: Vec<PathBuf>,
    /// Lines of /proc/self/mountinfo naming the test's directory or an id.
    pub mounts: Vec<String>,
    /// Entries under `--root` (a non-container directory such as a seccomp cache excepted).
    pub state: Vec<PathBuf>,
    /// Live processes (zombies are dead) in one of the ids' cgroups, or whose command line
    /// names an id, the test's directory (an init before exec, an isorun) or the hook
    /// marker: (pid, what).
    pub processes: Vec<(i32, String)>,
    /// Fifos anywhere under the test's directory.
    pub fifos: Vec<PathBuf>,
}

impl Leftovers {
    /// Nothing left.
    pub fn is_empty(&self) -> bool {
        self.cgroups.is_empty()
            && self.mounts.is_empty()
            && self.state.is_empty()
            && self.processes.is_empty()
            && self.fifos.is_empty()
    }

    /// Counts per kind: cgroups, mounts, state, processes, fifos.
    pub fn counts(&self) -> [usize; 5] {
        [self.cgroups.len(), self.mounts.len(), self.state.len(), self.processes.len(), self.fifos.len()]
    }
}

impl fmt::Display for Leftovers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [c, m, s, p, q] = self.counts();
        write!(f, "cgroups {c}, mounts {m}, state {s}, processes {p}, fifos {q}")?;
        if !self.is_empty() {
            write!(f, ": {self:#?}")?;
        }
        Ok(())
    }
}

/// Directory names under `--root` that are not containers and may stay: the seccomp compile
/// cache, shared by every container, and the staging directory, whose entries are looked at
/// one by one (what is in it belongs to a command on one id).
pub const NON_CONTAINER_DIRS: [&str; 2] =
    [isolab_runtime::seccomp::cache::CACHE_DIR, isolab_runtime::state::STAGING_DIR];

/// Which container ids a scan is about.
#[derive(Debug, Clone)]
pub enum Ids {
    /// Exactly this one.
    Exact(String),
    /// Every id that starts with this.
    Prefix(String),
}

impl Ids {
    fn matches(&self, name: &str) -> bool {
        match self {
            Ids::Exact(id) => name == id,
            Ids::Prefix(p) => name.starts_with(p.as_str()),
        }
    }

    /// A name under `--root` that belongs to a matching id: its directory, or a `<id>~…`
    /// directory of a command on it.
    fn owns_state_entry(&self, name: &str) -> bool {
        self.matches(name.split_once('~').map_or(name, |(id, _)| id))
    }

    /// Some `/`-separated component of `path` is a matching id.
    fn in_path(&self, path: &str) -> bool {
        path.split(['/', ' ', '\n', ':']).any(|c| !c.is_empty() && self.matches(c))
    }
}

/// Where to look, and for what.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The test's temp directory (bundles, `--root`, output files).
    pub tmp: PathBuf,
    /// The `--root` given to isorun.
    pub root: PathBuf,
    /// The containers looked for.
    pub ids: Ids,
    /// Strings that only the test's processes have on their command line, and only the
    /// test's mounts in their line (its temp directory, its hooks' marker). Leave the temp
    /// directory out while other containers of the test still run.
    pub needles: Vec<String>,
    /// Every entry under `--root` and every fifo under `tmp` counts, not only the ids'.
    pub whole: bool,
}

impl Scope {
    /// Look once.
    pub fn scan(&self) -> Leftovers {
        let state = self.state();
        let fifos = if self.whole {
            fifos_under(&self.tmp)
        } else {
            state.iter().flat_map(|d| fifos_under(d)).collect()
        };
        Leftovers {
            cgroups: self.cgroups(),
            mounts: self.mounts(),
            state,
            processes: self.processes(),
            fifos,
        }
    }

    /// Look until nothing is left or `patience` has passed (a killed process takes a moment
    /// to be reaped by its new parent); the last look.
    pub fn scan_settled(&self, patience: Duration) -> Leftovers {
        let deadline = Instant::now() + patience;
        loop {
            let l = self.scan();
            if l.is_empty() || Instant::now() >= deadline {
                return l;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn cgroups(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for hierarchy in read_dir_paths(Path::new("/sys/fs/cgroup")) {
            walk_cgroups(&hierarchy, &self.ids, 0, &mut out);
        }
        out
    }

    fn mounts(&self) -> Vec<String> {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter(|l| self.ids.in_path(l) || self.needles.iter().any(|n| l.contains(n.as_str())))
            .map(str::to_owned)
            .collect()
    }

    fn state(&self) -> Vec<PathBuf> {
        let staged = read_dir_paths(&self.root.join(isolab_runtime::state::STAGING_DIR));
        read_dir_paths(&self.root)
            .into_iter()
            .chain(staged)
            .filter(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                if self.whole {
                    !NON_CONTAINER_DIRS.contains(&name.as_ref())
                } else {
                    self.ids.owns_state_entry(&name)
                }
            })
            .collect()
    }

    fn processes(&self) -> Vec<(i32, String)> {
        let me = std::process::id() as i32;
        let mut out = Vec::new();
        for p in read_dir_paths(Path::new("/proc")) {
            let Some(pid) = p.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            // A zombie is dead: it holds nothing, and reaping it is its new parent's job (pid 1
            // here reaps orphans about a second late).
            if pid == me || !alive(pid) {
                continue;
            }
            let raw = std::fs::read(p.join("cmdline")).unwrap_or_default();
            let args: Vec<String> =
                raw.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            let cmdline = args.join(" ");
            let cgroup = std::fs::read_to_string(p.join("cgroup")).unwrap_or_default();
            // `<n>:<controllers>:<path>`: a component of the path is a matching id.
            let in_cgroup =
                cgroup.lines().any(|l| l.splitn(3, ':').nth(2).is_some_and(|path| self.ids.in_path(path)));
            let named = args.iter().any(|a| self.ids.matches(a));
            let marked = self.needles.iter().any(|n| cmdline.contains(n.as_str()));
            if in_cgroup || named || marked {
                out.push((pid, format!("{} [{}]", cmdline.trim(), cgroup.lines().next().unwrap_or(""))));
            }
        }
        out
    }
}

/// Cgroup directories named like one of `ids`, at most a few levels deep (the default
/// `/isorun/<id>` and the relative paths tests use).
fn walk_cgroups(dir: &Path, ids: &Ids, depth: usize, out: &mut Vec<PathBuf>) {
    if depth > 4 {
        return;
    }
    for p in read_dir_paths(dir) {
        if !p.is_dir() {
            continue;
        }
        if p.file_name().is_some_and(|n| ids.matches(&n.to_string_lossy())) {
            out.push(p);
        } else {
            walk_cgroups(&p, ids, depth + 1, out);
        }
    }
}

fn read_dir_paths(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect()).unwrap_or_default()
}

fn fifos_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.filter_map(Result::ok) {
            let Ok(t) = e.file_type() else { continue };
            // The rootfs is big and holds no fifo of ours: skip it.
            if t.is_dir() && e.file_name() != "rootfs" {
                todo.push(e.path());
            } else if t.is_fifo() {
                out.push(e.path());
            }
        }
    }
    out
}

/// A process whose command line contains `needle` (not this one), waited for up to
/// `patience`.
pub fn wait_for_process(needle: &str, patience: Duration) -> Option<i32> {
    let deadline = Instant::now() + patience;
    let me = std::process::id() as i32;
    loop {
        for p in read_dir_paths(Path::new("/proc")) {
            let Some(pid) = p.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            let cmdline = std::fs::read(p.join("cmdline")).unwrap_or_default();
            if pid != me && String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(needle) {
                return Some(pid);
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The process exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z" | "X") | None)
        }
        Err(_) => false,
    }
}

/// Wait until `pid` is gone (or a zombie); false after `patience`.
pub fn wait_gone(pid: i32, patience: Duration) -> bool {
    let deadline = Instant::now() + patience;
    while alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// Start `isorun --root ROOT ARGS` without waiting; its output goes to files under `tmp`.
pub fn spawn_isorun(isorun: &str, root: &Path, tmp: &Path, tag: &str, args: &[&str]) -> Child {
    Command::new(isorun)
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(tmp.join(format!("{tag}.out"))).unwrap())
        .stderr(std::fs::File::create(tmp.join(format!("{tag}.err"))).unwrap())
        .spawn()
        .unwrap()
}

/// SIGKILL a child isorun and reap it.
pub fn kill9(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
