//! podman 4.3 (`--runtime PATH`, private `--root/--runroot`, cgroupfs, `--network none`) drives
//! runc and isorun through run/exec/stop/start/rm; each step asserts what runc gives.
//! Results: `ci/engine-table`.

mod engine_support;

use std::path::PathBuf;

use engine_support::cmd::Out;
use engine_support::daemons::Private;
use engine_support::image;
use engine_support::steps::Steps;
use engine_support::Runtime;

const IMG: &str = "localhost/isolab/busybox:1";

struct Podman {
    p: std::cell::RefCell<Private>,
    bin: PathBuf,
    cgroup_parent: String,
    /// `--ulimit nofile=1024:1024 --ulimit nproc=4096:4096`: lowered limits, which a runtime
    /// may set without CAP_SYS_RESOURCE (podman's defaults raise them).
    ulimits: Vec<String>,
}

impl Podman {
    fn pm_in(&self, args: &[&str], stdin: Option<&str>) -> Out {
        let argv = self.p.borrow_mut().podman(&self.bin, args);
        self.p.borrow().run(argv, stdin)
    }

    fn pm(&self, args: &[&str]) -> Out {
        self.pm_in(args, None)
    }

    /// `podman run --network none --cgroup-parent P [ULIMITS] EXTRA... IMG CMD...`
    fn run(&self, host_limits: bool, extra: &[&str], cmd: &[&str]) -> Out {
        let mut a = vec!["run", "--network", "none", "--cgroup-parent", &self.cgroup_parent];
        if host_limits {
            a.extend(self.ulimits.iter().map(String::as_str));
        }
        a.extend(extra);
        a.push(IMG);
        a.extend(cmd);
        self.pm(&a)
    }
}

/// Whether this process has CAP_SYS_RESOURCE (bit 24) to raise a hard rlimit (podman's default RLIMIT_NOFILE is 1048576).
fn has_cap_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status.lines().find_map(|l| l.strip_prefix("CapEff:")).map(str::trim).unwrap_or("0");
    u64::from_str_radix(eff, 16).map(|c| c & (1 << 24) != 0).unwrap_or(false)
}

fn scenario(rt: Runtime) {
    engine_support::require_engines(&["/usr/bin/podman", "/usr/bin/conmon"]);
    let bin = rt.binary();
    assert!(bin.exists(), "{} is missing (ENGINE_ISORUN?)", bin.display());
    let p = Private::new("podman");
    let tar = image::rootfs_tarball(p.dir.path());
    let cgroup_parent = p.podman_cgroup_parent();
    let ulimits = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"].map(String::from).to_vec();
    let k = Podman { p: std::cell::RefCell::new(p), bin, cgroup_parent, ulimits };
    let env = format!("ENV {}", image::PATH_ENV);
    let imp = k.pm(&["import", "-c", &env, "-c", "CMD [\"sh\"]", &tar.display().to_string(), IMG]);
    assert_eq!(imp.code, 0, "podman import of the busybox rootfs failed: {}", imp.brief());
    let mut s = Steps::new("podman", rt.name());
    steps(&k, &mut s);
    s.finish();
}

fn steps(k: &Podman, s: &mut Steps) {
    let default_run = || k.run(false, &["--rm"], &["true"]).expect(0, &[]);
    if has_cap_sys_resource() {
        s.step("podman run (default rlimits)", default_run);
    } else {
        let reason = "podman raises RLIMIT_NOFILE and RLIMIT_NPROC and root here lacks CAP_SYS_RESOURCE \
                      (the other podman steps lower them with --ulimit)";
        s.step_host_limited("podman run (default rlimits)", reason, default_run);
    }
    s.step("podman run: PID 1, hostname", || {
        k.run(true, &["--rm", "--hostname", "isoh"], &["sh", "-c", "echo $$; hostname"])
            .expect_stdout("1\nisoh")
    });
    s.step("podman run: exit code", || k.run(true, &["--rm"], &["sh", "-c", "exit 7"]).expect(7, &[]));
    s.step("podman run -t", || k.run(true, &["--rm", "-t"], &["tty"]).expect(0, &["/dev/pts/0"]));
    s.step("podman run -i", || {
        let mut a = vec!["run", "--rm", "-i", "--network", "none", "--cgroup-parent", &k.cgroup_parent];
        a.extend(k.ulimits.iter().map(String::as_str));
        a.extend([IMG, "cat"]);
        k.pm_in(&a, Some("via-podman\n")).expect_stdout("via-podman")
    });
    s.step("podman run: missing command (127)", || {
        k.run(true, &["--rm"], &["/nonexistent"]).expect(127, &["no such file or directory"])
    });
    s.step("podman run -d", || k.run(true, &["-d", "--name", "pd"], &["sleep", "1000"]).expect(0, &[]));
    s.step("podman run -d: runtime state under the test's private root", || {
        let inspect = k.pm(&["inspect", "-f", "{{.Id}}", "pd"]);
        inspect.expect(0, &[])?;
        let name = k.bin.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let dir = k.p.borrow().path(&format!("podman/state-{name}")).join(inspect.stdout.trim());
        match dir.is_dir() {
            true => Ok(()),
            false => Err(format!(
                "no runtime state at {} (did --runtime-flag root reach the runtime?)",
                dir.display()
            )),
        }
    });
    s.step("podman exec", || {
        k.pm(&["exec", "pd", "sh", "-c", "cat /proc/1/comm; exit 4"]).expect(4, &["sleep"])
    });
    s.step("podman exec -t", || k.pm(&["exec", "-t", "pd", "tty"]).expect(0, &["/dev/pts/"]));
    s.step("podman stop / start", || {
        k.pm(&["stop", "-t", "1", "pd"]).expect(0, &[])?;
        let st = k.pm(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "pd"]);
        st.expect_stdout("exited 137")?;
        k.pm(&["start", "pd"]).expect(0, &[])?;
        k.pm(&["exec", "pd", "true"]).expect(0, &[])
    });
    s.step("podman rm -f", || {
        k.pm(&["rm", "-f", "-t", "0", "pd"]).expect(0, &[])?;
        k.pm(&["inspect", "pd"]).expect(125, &["no such object"])
    });
}

#[test]
fn podman_runc() {
    scenario(Runtime::Runc);
}

#[test]
fn podman_isorun() {
    scenario(Runtime::Isorun);
}
