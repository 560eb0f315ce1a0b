//! Docker 20.10 (private dockerd on a private containerd; `--add-runtime isorun=PATH`, i.e.
//! containerd's runc shim with `BinaryName`) drives runc and isorun through one scenario; each
//! step asserts what runc gives. Results: `ci/engine-table`.

mod engine_support;

use engine_support::cmd::Out;
use engine_support::daemons::Private;
use engine_support::image;
use engine_support::steps::Steps;
use engine_support::{process_alive, Runtime};

const IMG: &str = "isolab/busybox:1";

struct Docker {
    p: Private,
    rt: Runtime,
}

impl Docker {
    fn d(&self, args: &[&str]) -> Out {
        self.p.run(self.p.docker(args), None)
    }

    fn d_in(&self, args: &[&str], stdin: &str) -> Out {
        self.p.run(self.p.docker(args), Some(stdin))
    }

    /// `docker run --runtime RT --network none EXTRA... IMG CMD...`
    fn run(&self, extra: &[&str], cmd: &[&str]) -> Out {
        let mut a = vec!["run", "--runtime", self.rt.name(), "--network", "none"];
        a.extend(extra);
        a.push(IMG);
        a.extend(cmd);
        self.d(&a)
    }

    fn inspect(&self, name: &str, format: &str) -> String {
        self.d(&["inspect", "-f", format, name]).stdout.trim().to_owned()
    }

    /// Through `script`, so that the client has a terminal (`docker run -it`).
    fn with_tty(&self, args: &[&str]) -> Out {
        self.p.run(engine_support::cmd::under_script(&self.p.docker(args)), None)
    }
}

/// A private containerd + dockerd with `isorun` registered, and the busybox image imported.
fn start(isorun: &std::path::Path) -> Private {
    engine_support::require_engines(&["/usr/sbin/dockerd", "/usr/bin/containerd", "/usr/bin/docker"]);
    assert!(isorun.exists(), "{} is missing (ENGINE_ISORUN?)", isorun.display());
    let mut p = Private::new("docker");
    p.start_containerd();
    p.start_dockerd(&[("isorun", isorun)]);
    let tar = image::rootfs_tarball(p.dir.path());
    let env = format!("ENV {}", image::PATH_ENV);
    let imp =
        p.run(p.docker(&["import", "-c", &env, "-c", "CMD [\"sh\"]", &tar.display().to_string(), IMG]), None);
    assert_eq!(imp.code, 0, "docker import of the busybox rootfs failed: {}", imp.brief());
    p
}

fn scenario(rt: Runtime) {
    let k = Docker { p: start(&Runtime::Isorun.binary()), rt };
    let mut s = Steps::new("docker", rt.name());
    basics(&k, &mut s);
    detached(&k, &mut s);
    limits_and_security(&k, &mut s);
    errors_and_signals(&k, &mut s);
    pid_namespaces(&k, &mut s);
    s.finish();
}

fn basics(k: &Docker, s: &mut Steps) {
    s.step("run: PID 1, hostname", || {
        k.run(&["--rm", "--hostname", "isoh"], &["sh", "-c", "echo $$; hostname"]).expect_stdout("1\nisoh")
    });
    s.step("run -t", || k.run(&["--rm", "-t"], &["tty"]).expect(0, &["/dev/pts/0"]));
    s.step("run -i (stdin)", || {
        let out = k.d_in(
            &["run", "--rm", "-i", "--runtime", k.rt.name(), "--network", "none", IMG, "cat"],
            "hello\n",
        );
        out.expect_stdout("hello")
    });
    s.step("run -it (client tty)", || {
        k.with_tty(&[
            "run",
            "--rm",
            "-it",
            "--runtime",
            k.rt.name(),
            "--network",
            "none",
            IMG,
            "sh",
            "-c",
            "tty; exit 3",
        ])
        .expect(3, &["/dev/pts/0"])
    });
    s.step("exit code", || k.run(&["--rm"], &["sh", "-c", "exit 7"]).expect(7, &[]));
    s.step("volume (bind and named)", || {
        let host = k.p.path("vol");
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(host.join("in"), "from-host\n").unwrap();
        let bind = format!("{}:/data", host.display());
        k.run(
            &["--rm", "-v", &bind, "-v", "isovol:/named"],
            &["sh", "-c", "cat /data/in; echo out > /data/out; echo n > /named/f"],
        )
        .expect_stdout("from-host")?;
        match std::fs::read_to_string(host.join("out")) {
            Ok(t) if t == "out\n" => {}
            other => return Err(format!("host side of the bind mount: {other:?}")),
        }
        k.run(&["--rm", "-v", "isovol:/named"], &["cat", "/named/f"]).expect_stdout("n")
    });
    s.step("--init", || {
        k.run(&["--rm", "--init"], &["sh", "-c", "cat /proc/1/comm; echo $$"]).expect(0, &["docker-init"])?;
        let out = k.run(&["--rm", "--init"], &["sh", "-c", "echo $$"]);
        if out.stdout.trim() == "1" {
            return Err(format!("the command is PID 1 under --init: {}", out.brief()));
        }
        Ok(())
    });
}

fn detached(k: &Docker, s: &mut Steps) {
    let c = "det";
    s.step("run -d", || k.run(&["-d", "--name", c], &["sleep", "1000"]).expect(0, &[]));
    s.step("exec", || k.d(&["exec", c, "cat", "/proc/1/cmdline"]).expect(0, &["sleep"]));
    s.step("exec exit code", || k.d(&["exec", c, "sh", "-c", "exit 5"]).expect(5, &[]));
    s.step("exec -t", || k.d(&["exec", "-t", c, "tty"]).expect(0, &["/dev/pts/"]));
    s.step("exec -i", || k.d_in(&["exec", "-i", c, "cat"], "in-exec\n").expect_stdout("in-exec"));
    s.step("exec --env, --user, --workdir", || {
        k.d(&["exec", "-e", "K=v1", "-u", "65534", "-w", "/tmp", c, "sh", "-c", "echo $K $(id -u) $(pwd)"])
            .expect_stdout("v1 65534 /tmp")
    });
    s.step("top", || k.d(&["top", c]).expect(0, &["sleep 1000"]));
    s.step("stats", || {
        let out = k.d(&["stats", "--no-stream", "--format", "{{.MemUsage}} {{.PIDs}}", c]);
        out.expect(0, &["/"])?;
        if out.stdout.trim().starts_with("0B") || out.stdout.trim().ends_with(" 0") {
            return Err(format!("stats show no memory or no pids: {}", out.brief()));
        }
        Ok(())
    });
    s.step("pause / unpause", || {
        k.d(&["pause", c]).expect(0, &[])?;
        let st = k.inspect(c, "{{.State.Status}}");
        if st != "paused" {
            return Err(format!("after pause, status {st:?}"));
        }
        k.d(&["exec", c, "true"]).expect(1, &["is paused"])?;
        k.d(&["unpause", c]).expect(0, &[])?;
        k.d(&["exec", c, "true"]).expect(0, &[])
    });
    s.step("update without --memory", || {
        k.d(&["update", "--cpu-shares", "512", "--pids-limit", "99", c]).expect(0, &[])?;
        k.d(&["exec", c, "cat", "/sys/fs/cgroup/cpu/cpu.shares", "/sys/fs/cgroup/pids/pids.max"])
            .expect_stdout("512\n99")
    });
    s.step("update --memory", || {
        k.d(&["update", "--memory", "64m", "--memory-swap", "64m", c]).expect(0, &[])?;
        k.d(&["exec", c, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]).expect_stdout("67108864")
    });
    s.step("stop (SIGKILL after -t) / start", || {
        k.d(&["stop", "-t", "1", c]).expect(0, &[])?;
        let st = k.inspect(c, "{{.State.Status}} {{.State.ExitCode}}");
        if st != "exited 137" {
            return Err(format!("after stop, state {st:?}, want \"exited 137\""));
        }
        k.d(&["start", c]).expect(0, &[])?;
        k.d(&["exec", c, "cat", "/proc/1/cmdline"]).expect(0, &["sleep"])
    });
    s.step("rm -f (running)", || {
        k.d(&["rm", "-f", c]).expect(0, &[])?;
        k.d(&["inspect", c]).expect(1, &["No such object"])
    });
}

fn limits_and_security(k: &Docker, s: &mut Steps) {
    s.step("OOM: exit 137, OOMKilled", || {
        k.run(&["--name", "oom", "-m", "32m", "--memory-swap", "32m"], &["tail", "/dev/zero"])
            .expect(137, &[])?;
        let got = k.inspect("oom", "{{.State.OOMKilled}} {{.State.ExitCode}}");
        k.d(&["rm", "oom"]);
        if got == "true 137" {
            Ok(())
        } else {
            Err(format!("inspect: {got:?}, want \"true 137\""))
        }
    });
    s.step("--pids-limit (fork fails)", || {
        let script =
            "cat /sys/fs/cgroup/pids/pids.max; for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 30 & done 2>&1;";
        k.run(&["--rm", "--pids-limit", "8"], &["sh", "-c", script]).expect(2, &["8\n", "can't fork"])
    });
    s.step("--read-only", || {
        k.run(&["--rm", "--read-only"], &["touch", "/x"]).expect(1, &["Read-only file system"])
    });
    s.step("--cap-drop", || {
        k.run(
            &["--rm", "--cap-drop", "CHOWN", "--cap-drop", "NET_RAW"],
            &["sh", "-c", "grep CapEff /proc/self/status; chown 1 /tmp"],
        )
        .expect(1, &["00000000a80405fa", "Operation not permitted"])
    });
    s.step("--user", || {
        k.run(&["--rm", "--user", "65534:65534"], &["sh", "-c", "echo $(id -u) $(id -g)"])
            .expect_stdout("65534 65534")
    });
    s.step("no-new-privileges", || {
        k.run(&["--rm", "--security-opt", "no-new-privileges"], &["grep", "NoNewPrivs", "/proc/self/status"])
            .expect(0, &["NoNewPrivs:\t1"])
    });
    s.step("default seccomp profile", || {
        k.run(&["--rm"], &["grep", "Seccomp:", "/proc/self/status"]).expect(0, &["Seccomp:\t2"])?;
        k.run(&["--rm", "--security-opt", "seccomp=unconfined"], &["grep", "Seccomp:", "/proc/self/status"])
            .expect(0, &["Seccomp:\t0"])
    });
}

fn errors_and_signals(k: &Docker, s: &mut Steps) {
    s.step("error: missing command (127)", || {
        k.run(&["--rm"], &["/nonexistent"]).expect(127, &["no such file or directory"])
    });
    s.step("error: not in $PATH (127)", || {
        k.run(&["--rm"], &["nosuchcmd"]).expect(127, &["executable file not found in $PATH"])
    });
    s.step("error: not executable (126)", || {
        k.run(&["--rm"], &["/etc/passwd"]).expect(126, &["permission denied"])
    });
    s.step("error: file mounted on a directory", || {
        let f = k.p.path("afile");
        std::fs::write(&f, "x").unwrap();
        let v = format!("{}:/etc", f.display());
        k.run(&["--rm", "-v", &v], &["true"])
            .expect(125, &["Are you trying to mount a directory onto a file"])
    });
    s.step("signal TERM + docker wait", || {
        k.run(&["-d", "--name", "sig"], &["sh", "-c", "trap 'exit 42' TERM; while true; do sleep 0.1; done"])
            .expect(0, &[])?;
        std::thread::sleep(std::time::Duration::from_millis(500));
        k.d(&["kill", "-s", "TERM", "sig"]).expect(0, &[])?;
        let w = k.d(&["wait", "sig"]);
        k.d(&["rm", "-f", "sig"]);
        w.expect_stdout("42")
    });
    s.step("docker kill (KILL) + wait", || {
        k.run(&["-d", "--name", "sigk"], &["sleep", "1000"]).expect(0, &[])?;
        k.d(&["kill", "sigk"]).expect(0, &[])?;
        let w = k.d(&["wait", "sigk"]);
        k.d(&["rm", "-f", "sigk"]);
        w.expect_stdout("137")
    });
}

/// `sleep N` with N unique to this test process: a command line to look for on the host after
/// the container's init exited (the runc and isorun tests run at the same time).
fn unique_sleep(n: u32) -> String {
    format!("sleep {}", 4_000_000 + std::process::id() * 4 + n)
}

fn pid_namespaces(k: &Docker, s: &mut Steps) {
    s.step("--pid host", || {
        let host_comm = std::fs::read_to_string("/proc/1/comm").unwrap();
        k.run(&["--rm", "--pid", "host"], &["cat", "/proc/1/comm"]).expect_stdout(host_comm.trim())
    });
    s.step("--pid host: background process killed at exit", || {
        let marker = unique_sleep(1);
        let out = k.run(&["--name", "ph", "--pid", "host"], &["sh", "-c", &format!("{marker} & echo bg")]);
        std::thread::sleep(std::time::Duration::from_millis(500));
        let left = process_alive(&marker);
        let rm = k.d(&["rm", "ph"]);
        out.expect_stdout("bg")?;
        rm.expect(0, &[])?;
        if !left.is_empty() {
            return Err(format!("after the init exited, {marker:?} is still alive: pids {left:?}"));
        }
        Ok(())
    });
    s.step("--pid container:X", || {
        k.run(&["-d", "--name", "pidx"], &["sleep", "1001"]).expect(0, &[])?;
        let out = k.run(&["--rm", "--pid", "container:pidx"], &["cat", "/proc/1/cmdline"]);
        out.expect(0, &["sleep"])?;
        let marker = unique_sleep(2);
        let bg = k.run(
            &["--name", "pidy", "--pid", "container:pidx"],
            &["sh", "-c", &format!("{marker} & echo bg")],
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
        let left = process_alive(&marker);
        let rm = k.d(&["rm", "pidy"]);
        k.d(&["rm", "-f", "pidx"]).expect(0, &[])?;
        bg.expect_stdout("bg")?;
        rm.expect(0, &[])?;
        if !left.is_empty() {
            return Err(format!("after the init exited, {marker:?} is still alive: pids {left:?}"));
        }
        Ok(())
    });
}

#[test]
fn docker_runc() {
    scenario(Runtime::Runc);
}

#[test]
fn docker_isorun() {
    scenario(Runtime::Isorun);
}

/// `docker run --rm IMAGE true` with runc and with isorun, 20 each, alternating; medians with
/// the load average. A benchmark (about a minute): `ci/engine-bench` runs it with the release
/// isorun.
#[test]
#[ignore = "benchmark, run by ci/engine-bench"]
fn docker_run_true_latency() {
    let p = start(&Runtime::Isorun.binary());
    let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let load = |when: &str| {
        format!("{when}: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim())
    };
    let load_before = load("before");
    for _ in 0..20 {
        for (i, rt) in [Runtime::Runc, Runtime::Isorun].into_iter().enumerate() {
            let t = std::time::Instant::now();
            let out = p.run(
                p.docker(&["run", "--rm", "--network", "none", "--runtime", rt.name(), IMG, "true"]),
                None,
            );
            times[i].push(t.elapsed().as_secs_f64());
            assert_eq!(out.code, 0, "docker run --rm --runtime {} {IMG} true: {}", rt.name(), out.brief());
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[9] + v[10]) / 2.0
    };
    let (runc, isorun) = (median(&mut times[0]), median(&mut times[1]));
    let report = format!(
        "docker run --rm IMAGE true, median of 20 each (alternating): runc {runc:.3} s, isorun {isorun:.3} s \
         (isorun {}); min runc {:.3} s, isorun {:.3} s; load average {load_before}, {}\n",
        Runtime::Isorun.binary().display(),
        times[0][0],
        times[1][0],
        load("after")
    );
    eprint!("{report}");
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("engine-steps");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("docker-run-true.txt"), report).unwrap();
}
