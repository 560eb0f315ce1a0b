//! Privileged tests of `rootfs::setup_rootfs`, run for real as root: a forked child unshares
//! a mount + pid namespace (and user/cgroup/uts ones where a test asks), its child (pid 1)
//! sets up a busybox rootfs built in a unique temp dir, checks the result from inside and
//! reports `key=value` lines over a pipe; the test asserts on them and checks that the host
//! mount table shows nothing of the bundle.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use isolab_runtime::rootfs::{setup_rootfs, write_sysctls, RootfsOptions};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, pipe2, ForkResult, Uid};
use oci_spec::runtime::{LinuxDeviceBuilder, LinuxDeviceType, Mount, MountBuilder, Spec};

fn is_root() -> bool {
    if Uid::effective().is_root() {
        return true;
    }
    eprintln!("SKIP: rootfs tests need root (they mount and pivot_root for real)");
    false
}

/// A bundle in a unique temp dir: `rootfs/` with a static busybox, plus `payload/` for binds.
struct Bundle {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    rootfs: PathBuf,
    /// Unique per test: names of escape probes.
    tag: String,
}

impl Bundle {
    fn new() -> Self {
        let tmp = tempfile::Builder::new().prefix("isolab-rootfs-").tempdir().unwrap();
        let dir = fs::canonicalize(tmp.path()).unwrap();
        let rootfs = dir.join("rootfs");
        for d in ["bin", "etc", "srv/secret", "srv/ro", "tmp"] {
            fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for applet in ["sh", "ls", "cat", "echo", "touch", "stat", "mount"] {
            symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        fs::write(rootfs.join("etc/hostname"), "container\n").unwrap();
        fs::write(rootfs.join("srv/secret/key"), "s3cret").unwrap();
        fs::create_dir_all(dir.join("payload")).unwrap();
        fs::write(dir.join("payload/marker"), "payload").unwrap();
        let tag = dir.file_name().unwrap().to_string_lossy().into_owned();
        Self { _tmp: tmp, dir, rootfs, tag }
    }

    fn opts(&self) -> RootfsOptions {
        RootfsOptions {
            rootfs: self.rootfs.clone(),
            bundle: self.dir.clone(),
            in_user_ns: false,
            in_cgroup_ns: false,
            host_cgroup_view: None,
            no_pivot: false,
            shared_mount_ns: false,
        }
    }
}

fn bind(dest: &str, source: &str, options: &[&str]) -> Mount {
    MountBuilder::default()
        .destination(dest)
        .typ("bind")
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .unwrap()
}

/// `runc spec`'s config, near enough: default mounts, masked and readonly paths, ro root.
fn runc_spec() -> Spec {
    Spec::default()
}

fn add_mounts(spec: &mut Spec, extra: Vec<Mount>) {
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.extend(extra);
    spec.set_mounts(Some(mounts));
}

/// Host mountinfo lines that mention the bundle.
fn host_mounts_of(b: &Bundle) -> Vec<String> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let needle = b.dir.to_string_lossy().into_owned();
    text.lines().filter(|l| l.contains(&needle)).map(str::to_owned).collect()
}

type Check = fn(&str) -> Vec<String>;

/// Fork, unshare `flags` (always NEWNS|NEWPID), set up the rootfs in pid 1 of the new pid
/// namespace, run `check` there and return what it reported. `setup_error` holds the error
/// if setup_rootfs failed.
fn run(
    b: &Bundle,
    spec: &Spec,
    opts: &RootfsOptions,
    flags: CloneFlags,
    check: Check,
) -> HashMap<String, String> {
    let flags = flags | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID;
    let (rd, wr) = pipe2(OFlag::O_CLOEXEC).unwrap();
    let (ready_rd, ready_wr) = pipe2(OFlag::O_CLOEXEC).unwrap();
    let (go_rd, go_wr) = pipe2(OFlag::O_CLOEXEC).unwrap();
    // SAFETY: the child only runs this test's code (no locks held by other threads are
    // needed: nextest runs one test per process) and leaves with _exit.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            drop((rd, ready_rd, go_wr));
            let code = child(b, spec, opts, flags, check, wr, ready_wr, go_rd);
            // SAFETY: _exit ends the forked child without running the parent's atexit/Drop.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop((wr, ready_wr, go_rd));
            if flags.contains(CloneFlags::CLONE_NEWUSER) {
                let mut byte = [0u8; 1];
                File::from(ready_rd).read_exact(&mut byte).unwrap();
                // Identity map of 0..65536: ids in the runc spec (gid=5) exist; the user
                // namespace still locks the host's mounts and forbids mknod.
                fs::write(format!("/proc/{child}/uid_map"), "0 0 65536").unwrap();
                fs::write(format!("/proc/{child}/gid_map"), "0 0 65536").unwrap();
                File::from(go_wr).write_all(b"g").unwrap();
            }
            let mut out = String::new();
            File::from(rd).read_to_string(&mut out).unwrap();
            let status = waitpid(child, None).unwrap();
            assert_eq!(status, WaitStatus::Exited(child, 0), "child failed; report:\n{out}");
            assert!(host_mounts_of(b).is_empty(), "host sees bundle mounts: {:?}", host_mounts_of(b));
            eprintln!("report:\n{out}");
            out.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn child(
    b: &Bundle,
    spec: &Spec,
    opts: &RootfsOptions,
    flags: CloneFlags,
    check: Check,
    wr: OwnedFd,
    ready_wr: OwnedFd,
    go_rd: OwnedFd,
) -> i32 {
    let mut report = File::from(wr);
    if flags.contains(CloneFlags::CLONE_NEWUSER) {
        if let Err(e) = locked_mount(b) {
            let _ = writeln!(report, "locked_mount_error={e}");
            return 2;
        }
    }
    if let Err(e) = unshare(flags) {
        let _ = writeln!(report, "unshare_error={e}");
        return 2;
    }
    if flags.contains(CloneFlags::CLONE_NEWUSER) {
        let _ = File::from(ready_wr).write_all(b"r");
        let mut byte = [0u8; 1];
        if File::from(go_rd).read_exact(&mut byte).is_err() {
            return 3;
        }
    }
    // SAFETY: as above; this process is single-threaded.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let lines = match setup_rootfs(spec, opts) {
                Ok(()) => check(&b.tag),
                Err(e) => vec![format!("setup_error={e}")],
            };
            let code = if report.write_all(lines.join("\n").as_bytes()).is_ok() { 0 } else { 4 };
            // SAFETY: leave the forked pid 1 without unwinding into the test harness.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => code,
            other => {
                let _ = writeln!(report, "pid1_status={other:?}");
                5
            }
        },
        Err(e) => {
            let _ = writeln!(report, "fork_error={e}");
            6
        }
    }
}

/// In a private mount namespace of its own, mount a nosuid,nodev,noexec tmpfs at
/// `<bundle>/locked`: the user namespace unshared next copies it with those flags locked, so
/// a plain `ro` bind remount of it is EPERM unless they are kept.
fn locked_mount(b: &Bundle) -> nix::Result<()> {
    use nix::mount::{mount, MsFlags};
    unshare(CloneFlags::CLONE_NEWNS)?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_SLAVE, None::<&str>)?;
    let dir = b.dir.join("locked");
    fs::create_dir_all(&dir).map_err(|_| Errno::EIO)?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("tmpfs"), &dir, Some("tmpfs"), flags, Some("size=64k"))?;
    fs::write(dir.join("f"), "locked").map_err(|_| Errno::EIO)
}

fn errno_of(r: std::io::Result<impl Sized>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("{:?}", Errno::from_raw(e.raw_os_error().unwrap_or(0))),
    }
}

fn dev_of(path: &str) -> String {
    match fs::metadata(path) {
        Ok(m) if m.file_type().is_char_device() => {
            format!(
                "c {}:{} {:o}",
                nix::sys::stat::major(m.rdev()),
                nix::sys::stat::minor(m.rdev()),
                m.mode() & 0o7777
            )
        }
        Ok(m) if m.file_type().is_fifo() => format!("p {:o}", m.mode() & 0o7777),
        Ok(_) => "other".into(),
        Err(e) => format!("error {e}"),
    }
}

/// (mount point, root, fstype) of every mount this process sees.
fn mountinfo() -> Vec<(String, String, String)> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let dash = f.iter().position(|x| *x == "-")?;
            Some((f.get(4)?.to_string(), f.get(3)?.to_string(), f.get(dash + 1)?.to_string()))
        })
        .collect()
}

/// What every runc-like container must look like from inside.
fn standard_checks(_tag: &str) -> Vec<String> {
    let mi = mountinfo();
    let mut out = vec![];
    if let Some((_, root, _)) = mi.iter().find(|(mp, _, _)| mp == "/") {
        out.push(format!("root_mount_root={root}"));
    }
    let mps: Vec<&str> = mi.iter().map(|(mp, _, _)| mp.as_str()).collect();
    out.push(format!("mountpoints={}", mps.join(" ")));
    for (mp, root, fstype) in &mi {
        if mp == "/sys/fs/cgroup/memory" {
            out.push(format!("memory_cgroup={fstype} {root}"));
        }
    }
    out.push(format!("cwd={}", std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default()));
    out.push(format!("work_visible={}", Path::new("/work").exists()));
    out.push(format!("create_in_root={}", errno_of(File::create("/probe"))));
    // /proc/kcore is absent without CONFIG_PROC_KCORE; /proc/keys is always there.
    for f in ["kcore", "keys"] {
        let len = fs::read(format!("/proc/{f}")).map(|v| v.len().to_string());
        out.push(format!("{f}_len={}", len.unwrap_or_else(|e| errno_of(Err::<(), _>(e)))));
    }
    out.push(format!(
        "proc_sys_write={}",
        errno_of(fs::OpenOptions::new().write(true).open("/proc/sys/kernel/domainname"))
    ));
    out.push(format!("firmware_entries={}", fs::read_dir("/sys/firmware").map(|d| d.count()).unwrap_or(999)));
    out.push(format!("dev_null={}", dev_of("/dev/null")));
    out.push(format!("dev_tty={}", dev_of("/dev/tty")));
    out.push(format!(
        "dev_ptmx={}",
        fs::read_link("/dev/ptmx").map(|p| p.display().to_string()).unwrap_or_default()
    ));
    out.push(format!(
        "dev_fd={}",
        fs::read_link("/dev/fd").map(|p| p.display().to_string()).unwrap_or_default()
    ));
    out.push(format!(
        "dev_stderr={}",
        fs::read_link("/dev/stderr").map(|p| p.display().to_string()).unwrap_or_default()
    ));
    out.push(format!("pts_ptmx={}", Path::new("/dev/pts/ptmx").exists()));
    let mut cg: Vec<String> = fs::read_dir("/sys/fs/cgroup")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    cg.sort();
    out.push(format!("cgroup_dirs={}", cg.join(",")));
    out.push(format!("cgroup_create={}", errno_of(File::create("/sys/fs/cgroup/probe"))));
    out.push(format!("memory_files={}", Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()));
    out.push(format!("sys_kernel={}", Path::new("/sys/kernel").is_dir()));
    out.push(format!("sys_create={}", errno_of(File::create("/sys/probe"))));
    match Command::new("/bin/sh").args(["-c", "echo hi from $(cat /etc/hostname)"]).output() {
        Ok(o) => out.push(format!("sh={}", String::from_utf8_lossy(&o.stdout).trim())),
        Err(e) => out.push(format!("sh=error {e}")),
    }
    out
}

fn assert_standard(r: &HashMap<String, String>, b: &Bundle) {
    assert_eq!(r.get("setup_error"), None);
    let mps = &r["mountpoints"];
    for host_only in ["/work", "/mnt/sandboxing", "/sys/fs/cgroup/unified/"] {
        assert!(!mps.split(' ').any(|m| m.starts_with(host_only)), "{host_only} visible: {mps}");
    }
    assert!(!mps.contains(&b.dir.to_string_lossy().into_owned()), "bundle path visible: {mps}");
    assert_eq!(r["cwd"], "/");
    assert_eq!(r["work_visible"], "false");
    assert_eq!(r["create_in_root"], "EROFS");
    assert!(["0", "ENOENT"].contains(&r["kcore_len"].as_str()), "kcore: {}", r["kcore_len"]);
    assert_eq!(r["keys_len"], "0");
    assert_eq!(r["proc_sys_write"], "EROFS");
    assert_eq!(r["firmware_entries"], "0");
    assert_eq!(r["dev_null"], "c 1:3 666");
    assert_eq!(r["dev_tty"], "c 5:0 666");
    assert_eq!(r["dev_ptmx"], "pts/ptmx");
    assert_eq!(r["dev_fd"], "/proc/self/fd");
    assert_eq!(r["dev_stderr"], "/proc/self/fd/2");
    assert_eq!(r["pts_ptmx"], "true");
    assert_eq!(r["cgroup_create"], "EROFS");
    assert_eq!(r["memory_files"], "true");
    assert_eq!(r["sys_kernel"], "true");
    assert_eq!(r["sys_create"], "EROFS");
    assert_eq!(r["sh"], "hi from container");
}

/// The host's v1 cgroup names, as the container should see them under /sys/fs/cgroup.
fn host_cgroup_dirs() -> String {
    let mut v: Vec<String> = fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v.join(",")
}

fn host_memory_cgroup() -> String {
    let text = fs::read_to_string("/proc/self/cgroup").unwrap();
    text.lines().find_map(memory_path).unwrap_or("/").to_owned()
}

/// The path of a `/proc/self/cgroup` line if it is the memory hierarchy's.
fn memory_path(line: &str) -> Option<&str> {
    let mut f = line.splitn(3, ':');
    let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
    ctrl.split(',').any(|c| c == "memory").then_some(path)
}

#[test]
fn pivot_root_into_runc_spec_rootfs() {
    if !is_root() {
        return;
    }
    let b = Bundle::new();
    let r = run(&b, &runc_spec(), &b.opts(), CloneFlags::empty(), standard_checks);
    assert_standard(&r, &b);
    assert_eq!(r["root_mount_root"], b.rootfs.display().to_string());
    assert_eq!(r["cgroup_dirs"], host_cgroup_dirs());
    // Without a cgroup namespace each hierarchy is the container's own cgroup, bound.
    assert_eq!(r["memory_cgroup"], format!("cgroup {}", host_memory_cgroup()));
}

#[test]
fn no_pivot_moves_root_and_hides_host_mounts() {
    if !is_root() {
        return;
    }
    let b = Bundle::new();
    let opts = RootfsOptions { no_pivot: true, ..b.opts() };
    let r = run(&b, &runc_spec(), &opts, CloneFlags::empty(), standard_checks);
    assert_standard(&r, &b);
    assert_eq!(r["root_mount_root"], b.rootfs.display().to_string());
}

fn escape_checks(tag: &str) -> Vec<String> {
    vec![
        format!("abs={}", fs::read_to_string(format!("/etc/{tag}/marker")).unwrap_or_default()),
        format!("rel={}", fs::read_to_string(format!("/{tag}-rel/marker")).unwrap_or_default()),
        format!("file={}", fs::read_to_string(format!("/etc/{tag}-file")).unwrap_or_default()),
        format!("deep={}", fs::read_to_string(format!("/{tag}-deep/marker")).unwrap_or_default()),
    ]
}

#[test]
fn symlinked_destinations_land_inside_the_rootfs() {
    if !is_root() {
        return;
    }
    let b = Bundle::new();
    symlink("/etc", b.rootfs.join("evil_abs")).unwrap();
    symlink("../../../../../../../..", b.rootfs.join("evil_rel")).unwrap();
    fs::create_dir_all(b.rootfs.join("a/b")).unwrap();
    symlink("../../evil_rel/../..", b.rootfs.join("a/b/up")).unwrap();
    let tag = &b.tag;
    let mut spec = runc_spec();
    add_mounts(
        &mut spec,
        vec![
            bind(&format!("/evil_abs/{tag}"), "payload", &["rbind", "ro"]),
            bind(&format!("/evil_rel/{tag}-rel"), "payload", &["bind"]),
            bind(&format!("/evil_abs/{tag}-file"), "payload/marker", &["bind"]),
            bind(&format!("/a/b/up/{tag}-deep"), &b.dir.join("payload").display().to_string(), &["bind"]),
        ],
    );
    let r = run(&b, &spec, &b.opts(), CloneFlags::empty(), escape_checks);
    assert_eq!(r.get("setup_error"), None);
    assert_eq!(r["abs"], "payload");
    assert_eq!(r["rel"], "payload");
    assert_eq!(r["file"], "payload");
    assert_eq!(r["deep"], "payload");
    // Created inside the rootfs, and nothing on the host.
    assert!(b.rootfs.join("etc").join(tag).is_dir());
    assert!(b.rootfs.join(format!("{tag}-rel")).is_dir());
    for host in
        [format!("/etc/{tag}"), format!("/etc/{tag}-file"), format!("/{tag}-rel"), format!("/{tag}-deep")]
    {
        assert!(!Path::new(&host).exists(), "{host} was created on the host");
    }
}

#[test]
fn symlink_loop_destination_is_an_error() {
    if !is_root() {
        return;
    }
    let b = Bundle::new();
    symlink("loop_b", b.rootfs.join("loop_a")).unwrap();
    symlink("loop_a", b.rootfs.join("loop_b")).unwrap();
    let mut spec = runc_spec();
    add_mounts(&mut spec, vec![bind("/loop_a/x", "payload", &["bind"])]);
    let r = run(&b, &spec, &b.opts(), CloneFlags::empty(), |_| vec![]);
    let err = &r["setup_error"];
    assert!(err.starts_with("resolve /loop_a/x in ") && err.contains("ELOOP"), "{err}");
}

#[test]
fn failing_mount_names_type_target_and_errno() {
    if !is_root() {
        return;
    }
    let b = Bundle::new();
    let mut spec = runc_spec();
    let bogus =
        MountBuilder::default().destination("/bogus").typ("isolabnofs").source("none").build().unwrap();
    add_mounts(&mut spec, vec![bogus]);
    let r = run(&b, &spec, &b.opts(), CloneFlags::empty(), |_| vec![]);
    let want = format!("mount isolabnofs on {}/bogus: ENODEV", b.rootfs.display());
    assert!(r["setup_error"].starts_with(&want), "{}", r["setup_error"]);
}

#[test]
fn user_namespace_binds_devices_sysfs_and_cgroups() {
    if !is_root() {
        return;
    }
    let b = Bundle::new();
    let opts = RootfsOptions { in_user_ns: true, ..b.opts() };
    // A new IPC namespace too, as runc's rootless spec has: mqueue needs one it owns.
    let ns = CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWIPC;
    let mut spec = runc_spec();
    add_mounts(&mut spec, vec![bind("/locked", "locked", &["bind", "ro"])]);
    let r = run(&b, &spec, &opts, ns, userns_checks);
    assert_standard(&r, &b);
    assert_eq!(r["root_mount_root"], b.rootfs.display().to_string());
    assert_eq!(r["cgroup_dirs"], host_cgroup_dirs());
    assert_eq!(r["locked_read"], "locked");
    assert_eq!(r["locked_create"], "EROFS");
}

fn userns_checks(_tag: &str) -> Vec<String> {
    let mut out = standard_checks("");
    out.push(format!("locked_read={}", fs::read_to_string("/locked/f").unwrap_or_default()));
    out.push(format!("locked_create={}", errno_of(File::create("/locked/probe"))));
    out
}

fn cgroupns_checks(_tag: &str) -> Vec<String> {
    let mut out = standard_checks("");
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let memory = own.lines().find_map(memory_path).unwrap_or("?").to_owned();
    out.push(format!("own_memory={memory}"));
    out
}

#[test]
fn cgroup_namespace_mounts_fresh_hierarchies() {
    if !is_root() {
        return;
    }
    let b = Bundle::new();
    let opts = RootfsOptions { in_cgroup_ns: true, ..b.opts() };
    let r = run(&b, &runc_spec(), &opts, CloneFlags::CLONE_NEWCGROUP, cgroupns_checks);
    assert_standard(&r, &b);
    assert_eq!(r["own_memory"], "/");
    assert_eq!(r["memory_cgroup"], "cgroup /");
    assert_eq!(r["cgroup_dirs"], host_cgroup_dirs());
}

fn writable_checks(_tag: &str) -> Vec<String> {
    let mut out = vec![];
    out.push(format!("create_in_root={}", errno_of(File::create("/probe"))));
    let data = fs::metadata("/data").map(|m| format!("{:o}", m.mode() & 0o7777)).unwrap_or_default();
    out.push(format!("data_mode={data}"));
    let tmpfs = mountinfo().iter().any(|(mp, _, fs)| mp == "/data" && fs == "tmpfs");
    out.push(format!("data_tmpfs={tmpfs}"));
    out.push(format!("ro_bind_create={}", errno_of(File::create("/ro/probe"))));
    out.push(format!("ro_bind_read={}", fs::read_to_string("/ro/marker").unwrap_or_default()));
    out.push(format!("rro_create={}", errno_of(File::create("/rro/probe"))));
    out.push(format!("copyup={}", fs::read_to_string("/opt/sub/keep").unwrap_or_default()));
    let opt_tmpfs = mountinfo().iter().any(|(mp, _, fs)| mp == "/opt" && fs == "tmpfs");
    out.push(format!("opt_tmpfs={opt_tmpfs}"));
    out.push(format!("fifo={}", dev_of("/dev/myfifo")));
    out.push(format!("zero2={}", dev_of("/dev/zero2")));
    out.push(format!("zero2_uid={}", fs::metadata("/dev/zero2").map(|m| m.uid()).unwrap_or(9999)));
    out.push(format!("secret_entries={}", fs::read_dir("/srv/secret").map(|d| d.count()).unwrap_or(999)));
    out.push(format!("srv_ro_create={}", errno_of(File::create("/srv/ro/probe"))));
    out.push(format!(
        "domainname={}",
        fs::read_to_string("/proc/sys/kernel/domainname").unwrap_or_default().trim()
    ));
    let again = HashMap::from([("kernel.domainname".to_owned(), "isolab.test".to_owned())]);
    out.push(format!(
        "sysctl_again={}",
        write_sysctls(&again).map(|_| "ok".to_owned()).unwrap_or_else(|e| e.to_string())
    ));
    out
}

#[test]
fn writable_root_options_devices_sysctl_masks() {
    if !is_root() {
        return;
    }
    let b = Bundle::new();
    let mut spec = runc_spec();
    spec.root_mut().as_mut().unwrap().set_readonly(Some(false));
    let tmpfs = MountBuilder::default()
        .destination("/data")
        .typ("tmpfs")
        .source("tmpfs")
        .options(vec!["nosuid".to_owned(), "mode=1777".to_owned(), "size=1m".to_owned()])
        .build()
        .unwrap();
    let copyup = MountBuilder::default()
        .destination("/opt")
        .typ("tmpfs")
        .source("tmpfs")
        .options(vec!["tmpcopyup".to_owned(), "nodev".to_owned()])
        .build()
        .unwrap();
    fs::create_dir_all(b.rootfs.join("opt/sub")).unwrap();
    fs::write(b.rootfs.join("opt/sub/keep"), "kept").unwrap();
    add_mounts(
        &mut spec,
        vec![
            tmpfs,
            bind("/ro", "payload", &["rbind", "ro", "nosuid", "rprivate"]),
            bind("/rro", "payload", &["rbind", "rro"]),
            copyup,
        ],
    );
    let linux = spec.linux_mut().as_mut().unwrap();
    linux.set_rootfs_propagation(Some("private".into()));
    let fifo = LinuxDeviceBuilder::default()
        .path("/dev/myfifo")
        .typ(LinuxDeviceType::P)
        .file_mode(0o640u32)
        .build()
        .unwrap();
    let zero2 = LinuxDeviceBuilder::default()
        .path("/dev/zero2")
        .typ(LinuxDeviceType::C)
        .major(1)
        .minor(5)
        .file_mode(0o600u32)
        .uid(1000u32)
        .build()
        .unwrap();
    linux.set_devices(Some(vec![fifo, zero2]));
    let mut masked = linux.masked_paths().clone().unwrap_or_default();
    masked.push("/srv/secret".into());
    masked.push("/does/not/exist".into());
    linux.set_masked_paths(Some(masked));
    let mut ro = linux.readonly_paths().clone().unwrap_or_default();
    ro.push("/srv/ro".into());
    linux.set_readonly_paths(Some(ro));
    linux.set_sysctl(Some(HashMap::from([("kernel.domainname".into(), "isolab.test".into())])));

    let r = run(&b, &spec, &b.opts(), CloneFlags::CLONE_NEWUTS, writable_checks);
    assert_eq!(r.get("setup_error"), None);
    assert_eq!(r["create_in_root"], "ok");
    assert_eq!(r["data_mode"], "1777");
    assert_eq!(r["data_tmpfs"], "true");
    assert_eq!(r["ro_bind_create"], "EROFS");
    assert_eq!(r["ro_bind_read"], "payload");
    assert_eq!(r["rro_create"], "EROFS");
    assert_eq!(r["copyup"], "kept");
    assert_eq!(r["opt_tmpfs"], "true");
    assert_eq!(r["fifo"], "p 640");
    assert_eq!(r["zero2"], "c 1:5 600");
    assert_eq!(r["zero2_uid"], "1000");
    assert_eq!(r["secret_entries"], "0");
    assert_eq!(r["srv_ro_create"], "EROFS");
    assert_eq!(r["domainname"], "isolab.test");
    assert_eq!(r["sysctl_again"], "ok");
    // The probe went into the bundle's rootfs, the secret is still there.
    assert!(b.rootfs.join("probe").exists());
    assert_eq!(fs::read_to_string(b.rootfs.join("srv/secret/key")).unwrap(), "s3cret");
}
