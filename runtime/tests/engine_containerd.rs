//! containerd 1.6 (private daemon) through `ctr`: `ctr run --runc-binary PATH` and the `ctr
//! task` verbs drive runc and isorun through one scenario; each step asserts what runc gives.
//! Results: `ci/engine-table`.

mod engine_support;

use engine_support::cmd::{under_script, Out};
use engine_support::daemons::Private;
use engine_support::image;
use engine_support::steps::Steps;
use engine_support::Runtime;

const IMG: &str = "docker.io/isolab/busybox:1";

struct Ctr {
    p: Private,
    bin: String,
}

impl Ctr {
    fn c(&self, args: &[&str]) -> Out {
        self.p.run(self.p.ctr(args), None)
    }

    /// `ctr run --snapshotter native --runc-binary BIN EXTRA... IMG ID CMD...`
    fn run_argv(&self, extra: &[&str], id: &str, cmd: &[&str]) -> Vec<String> {
        let mut a = vec!["run", "--snapshotter", "native", "--runc-binary", &self.bin];
        a.extend(extra);
        a.push(IMG);
        a.push(id);
        a.extend(cmd);
        self.p.ctr(&a)
    }

    fn run(&self, extra: &[&str], id: &str, cmd: &[&str]) -> Out {
        self.p.run(self.run_argv(extra, id, cmd), None)
    }

    /// The STATUS column of `ctr task ls` for `id`.
    fn status(&self, id: &str) -> String {
        let ls = self.c(&["task", "ls"]).stdout;
        let line = ls.lines().find(|l| l.split_whitespace().next() == Some(id));
        line.and_then(|l| l.split_whitespace().nth(2)).unwrap_or("<absent>").to_owned()
    }

    fn want_status(&self, id: &str, want: &str) -> Result<(), String> {
        match self.status(id) {
            s if s == want => Ok(()),
            s => Err(format!("ctr task ls: {id} is {s}, want {want}")),
        }
    }
}

fn scenario(rt: Runtime) {
    engine_support::require_engines(&[
        "/usr/bin/containerd",
        "/usr/bin/ctr",
        "/usr/bin/containerd-shim-runc-v2",
    ]);
    let bin = rt.binary();
    assert!(bin.exists(), "{} is missing (ENGINE_ISORUN?)", bin.display());
    let mut p = Private::new("ctr");
    p.start_containerd();
    let tar = image::rootfs_tarball(p.dir.path());
    let archive = image::oci_archive(p.dir.path(), &tar, IMG);
    let imp =
        p.run(p.ctr(&["images", "import", "--snapshotter", "native", &archive.display().to_string()]), None);
    assert_eq!(imp.code, 0, "ctr images import of the busybox archive failed: {}", imp.brief());
    let k = Ctr { p, bin: bin.display().to_string() };
    let mut s = Steps::new("containerd", rt.name());
    run_verbs(&k, &mut s);
    task_verbs(&k, &mut s);
    s.finish();
}

fn run_verbs(k: &Ctr, s: &mut Steps) {
    s.step("ctr run: PID 1", || k.run(&["--rm"], "r1", &["sh", "-c", "echo $$"]).expect_stdout("1"));
    s.step("ctr run: exit code", || k.run(&["--rm"], "r2", &["sh", "-c", "exit 7"]).expect(7, &[]));
    s.step("ctr run -t", || {
        k.p.run(under_script(&k.run_argv(&["--rm", "-t"], "r3", &["sh", "-c", "tty; exit 3"])), None)
            .expect(3, &["/dev/pts/0"])
    });
    s.step("ctr run: stdin", || {
        // ctr does not close the container's stdin at EOF: the payload reads one line.
        let out =
            k.p.run(k.run_argv(&["--rm"], "r4", &["sh", "-c", "read x; echo got $x"]), Some("via-ctr\n"));
        out.expect_stdout("got via-ctr")
    });
    s.step("ctr run --memory-limit: OOM 137", || {
        k.run(&["--rm", "--memory-limit", "33554432"], "r5", &["tail", "/dev/zero"]).expect(137, &[])
    });
    s.step("ctr run: missing command", || {
        let out = k.run(&["--rm"], "r6", &["/nonexistent"]);
        k.c(&["container", "rm", "r6"]);
        out.expect(1, &["no such file or directory"])
    });
}

fn task_verbs(k: &Ctr, s: &mut Steps) {
    s.step("ctr run -d", || {
        k.run(&["-d"], "t1", &["sleep", "1000"]).expect(0, &[])?;
        k.want_status("t1", "RUNNING")
    });
    s.step("ctr task exec", || {
        k.c(&["task", "exec", "--exec-id", "e1", "t1", "sh", "-c", "cat /proc/1/cmdline; echo; exit 4"])
            .expect(4, &["sleep\u{0}1000"])
    });
    s.step("ctr task exec -t", || {
        k.p.run(under_script(&k.p.ctr(&["task", "exec", "-t", "--exec-id", "e2", "t1", "tty"])), None)
            .expect(0, &["/dev/pts/"])
    });
    s.step("ctr task ps", || {
        let pid = k
            .c(&["task", "ls"])
            .stdout
            .lines()
            .find(|l| l.starts_with("t1 "))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("")
            .to_owned();
        k.c(&["task", "ps", "t1"]).expect(0, &[&pid])
    });
    s.step("ctr task metrics", || k.c(&["task", "metrics", "t1"]).expect(0, &["memory.usage_in_bytes"]));
    s.step("ctr task pause / resume", || {
        k.c(&["task", "pause", "t1"]).expect(0, &[])?;
        k.want_status("t1", "PAUSED")?;
        k.c(&["task", "resume", "t1"]).expect(0, &[])?;
        k.want_status("t1", "RUNNING")
    });
    s.step("ctr task kill -s KILL, delete", || {
        k.c(&["task", "kill", "-s", "SIGKILL", "t1"]).expect(0, &[])?;
        std::thread::sleep(std::time::Duration::from_millis(500));
        k.want_status("t1", "STOPPED")?;
        k.c(&["task", "delete", "t1"]).expect(0, &[])?;
        k.c(&["container", "rm", "t1"]).expect(0, &[])
    });
    s.step("ctr task start (after delete), kill (ignored TERM), delete --force", || {
        k.run(&["-d"], "t2", &["sleep", "1001"]).expect(0, &[])?;
        k.c(&["task", "kill", "-s", "SIGKILL", "t2"]).expect(0, &[])?;
        std::thread::sleep(std::time::Duration::from_millis(500));
        k.c(&["task", "delete", "t2"]).expect(0, &[])?;
        k.c(&["task", "start", "-d", "t2"]).expect(0, &[])?;
        k.want_status("t2", "RUNNING")?;
        k.c(&["task", "kill", "t2"]).expect(0, &[])?;
        std::thread::sleep(std::time::Duration::from_millis(500));
        // sleep as PID 1 has no handler: SIGTERM does nothing, the task runs on.
        k.want_status("t2", "RUNNING")?;
        k.c(&["task", "delete", "--force", "t2"]).expect(0, &[])?;
        k.c(&["container", "rm", "t2"]).expect(0, &[])
    });
}

#[test]
fn containerd_runc() {
    scenario(Runtime::Runc);
}

#[test]
fn containerd_isorun() {
    scenario(Runtime::Isorun);
}
