//! `isolab-floor` on this host (root): `/bin/true` in a busybox rootfs exits 0 and leaves
//! no cgroup directory, mount or process; a missing rootfs exits 125 naming the path and
//! leaves no cgroup either; a bad cgroup name is refused before anything is made.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use isolab_benches::floor::plan::CgroupDir;
use isolab_benches::floor::{host_plan, run_plan, CgroupPlan, EXIT_FLOOR_ERROR};

/// A unique cgroup name; its directories are removed on drop if the floor left any.
struct CgroupName {
    name: String,
    dirs: Vec<PathBuf>,
}

impl CgroupName {
    fn new(tag: &str) -> Self {
        let name = format!("isolab-floor-test-{tag}-{}", std::process::id());
        let dirs = host_plan(&name).expect("cgroup plan").dirs.into_iter().map(|d| d.path).collect();
        CgroupName { name, dirs }
    }

    fn left(&self) -> Vec<&PathBuf> {
        self.dirs.iter().filter(|d| d.exists()).collect()
    }
}

impl Drop for CgroupName {
    fn drop(&mut self) {
        for d in self.dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

fn busybox_rootfs() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("isolab-floor-test-").tempdir_in("/tmp").unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", bin.join("true")).unwrap();
    dir
}

fn floor(rootfs: &Path, cgroup: &str) -> Output {
    assert!(nix::unistd::geteuid().is_root(), "the floor makes namespaces and cgroups: run as root");
    Command::new(env!("CARGO_BIN_EXE_isolab-floor")).arg(rootfs).arg(cgroup).output().unwrap()
}

/// Processes whose command line mentions `s` (other than this test).
fn processes_mentioning(s: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()))
        .filter(|e| e.file_name().to_string_lossy() != me)
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(s))
        .collect()
}

#[test]
fn runs_true_and_leaves_nothing_behind() {
    let rootfs = busybox_rootfs();
    let cg = CgroupName::new("ok");
    assert!(!cg.dirs.is_empty());
    let out = floor(rootfs.path(), &cg.name);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(cg.left(), Vec::<&PathBuf>::new(), "cgroup directories left");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = rootfs.path().to_string_lossy().into_owned();
    assert!(!mounts.contains(&root), "a mount of {root} is left:\n{mounts}");
    assert_eq!(processes_mentioning(&cg.name), Vec::<String>::new(), "processes left");
}

#[test]
fn the_container_exit_status_is_the_floor_s() {
    let rootfs = busybox_rootfs();
    let cg = CgroupName::new("status");
    std::fs::remove_file(rootfs.path().join("bin/true")).unwrap();
    std::fs::write(rootfs.path().join("bin/true"), "#!/bin/busybox sh\nexit 7\n").unwrap();
    std::fs::set_permissions(
        rootfs.path().join("bin/true"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = floor(rootfs.path(), &cg.name);
    assert_eq!(out.status.code(), Some(7), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(cg.left(), Vec::<&PathBuf>::new(), "cgroup directories left");
}

/// The child places itself (v1 `tasks`, a hybrid's cgroup2 directory at clone): while the
/// container runs, every cgroup directory the floor made holds it.
#[test]
fn the_container_runs_in_every_cgroup_the_floor_made() {
    let rootfs = busybox_rootfs();
    let cg = CgroupName::new("placed");
    let payload = rootfs.path().join("bin/true");
    std::fs::remove_file(&payload).unwrap();
    std::fs::write(&payload, "#!/bin/busybox sh\n/bin/busybox sleep 3\n").unwrap();
    std::fs::set_permissions(&payload, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_isolab-floor"))
        .arg(rootfs.path())
        .arg(&cg.name)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let holds =
        |d: &PathBuf| std::fs::read_to_string(d.join("cgroup.procs")).is_ok_and(|p| !p.trim().is_empty());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut seen: Vec<(PathBuf, bool)> = Vec::new();
    while std::time::Instant::now() < deadline {
        seen = cg.left().into_iter().map(|d| (d.clone(), holds(d))).collect();
        if !seen.is_empty() && seen.iter().all(|(_, held)| *held) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        !seen.is_empty() && seen.iter().all(|(_, held)| *held),
        "cgroups and whether they held it: {seen:?}"
    );
    assert_eq!(cg.left(), Vec::<&PathBuf>::new(), "cgroup directories left");
}

/// The v2 path (CLONE_INTO_CGROUP, cgroup namespace made by clone3) on whatever cgroup2
/// mount this host has: on a hybrid host its controller-less `unified` mount. clone3 must
/// come from a single-threaded process, so this test runs [`v2_path_in_a_fresh_process`]
/// in a new process of this test binary, alone.
#[test]
fn the_v2_path_enters_the_cgroup2_directory_by_clone3() {
    if cgroup2_mount().is_none() {
        eprintln!("SKIP: no cgroup2 mount");
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "v2_path_in_a_fresh_process", "--test-threads=1", "--nocapture"])
        .env(V2_CHILD, "1")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("1 passed"), "{text}");
}

const V2_CHILD: &str = "ISOLAB_FLOOR_TEST_V2_CHILD";

#[test]
fn v2_path_in_a_fresh_process() {
    if std::env::var_os(V2_CHILD).is_none() {
        return; // only as the child of the test above
    }
    let unified = cgroup2_mount().unwrap();
    assert!(nix::unistd::geteuid().is_root(), "the floor makes namespaces and cgroups: run as root");
    let rootfs = busybox_rootfs();
    let name = format!("isolab-floor-test-v2-{}", std::process::id());
    let dir = unified.join(&name);
    let _guard = CgroupName { name: name.clone(), dirs: vec![dir.clone()] };
    let plan = CgroupPlan {
        dirs: vec![CgroupDir { path: dir.clone(), cpuset: false, optional: false }],
        clone_into: true,
    };
    assert_eq!(run_plan(rootfs.path(), &plan).unwrap(), 0);
    assert!(!dir.exists(), "{} left", dir.display());
}

fn cgroup2_mount() -> Option<PathBuf> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mi.lines().find(|l| l.contains(" - cgroup2 ")).and_then(|l| l.split(' ').nth(4)).map(PathBuf::from)
}

#[test]
fn a_missing_rootfs_fails_naming_it_and_leaves_no_cgroup() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-rootfs");
    let cg = CgroupName::new("missing");
    let out = floor(&missing, &cg.name);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(EXIT_FLOOR_ERROR), "{err}");
    assert!(err.contains(&*missing.to_string_lossy()), "{err}");
    assert!(err.contains("bind-mount the rootfs"), "{err}");
    assert_eq!(cg.left(), Vec::<&PathBuf>::new(), "cgroup directories left");
}

#[test]
fn a_bad_cgroup_name_is_refused_before_anything_is_made() {
    let rootfs = busybox_rootfs();
    let out = floor(rootfs.path(), "../escape");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(EXIT_FLOOR_ERROR), "{err}");
    assert!(err.contains("cgroup name \"../escape\""), "{err}");
}

#[test]
fn version_says_the_build() {
    let out = Command::new(env!("CARGO_BIN_EXE_isolab-floor")).arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let want = if cfg!(debug_assertions) { "build: debug" } else { "build: release" };
    assert!(text.starts_with("isolab-floor ") && text.contains(want), "{text}");
}
