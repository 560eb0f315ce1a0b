//! The soak: create/start/exec/kill/delete cycles with `SIGKILL` sent to the isorun process at
//! random points (a random delay into a random step) and at deterministic ones (while a
//! createRuntime, prestart or createContainer hook sleeps), concurrent commands on the same
//! id, several workers on different ids at once. After every cycle `delete --force` of the
//! id must leave nothing of it on the host (cgroup directory in any hierarchy, mount, state
//! directory, process, fifo); at the end `list` is empty and nothing of the run is left.
//!
//! Bounded here (`ISORUN_SOAK_CYCLES`, default 500, under 2 minutes on 2 cores); the long
//! run is the same test with more cycles:
//! `ISORUN_SOAK_CYCLES=10000 cargo test -p isolab-runtime --test soak -- --nocapture`.
//! Also `ISORUN_SOAK_WORKERS` (default 3), `ISORUN_SOAK_SEED`, `ISORUN_SOAK_REPORT` (a file
//! the report is also written to) and `ISORUN_SOAK_BIN` (another runtime with runc's command
//! line, e.g. `/usr/sbin/runc`, to compare: the same cycles, the same checks).

mod common;
mod fault_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{busybox_rootfs, require_root, ISORUN};
use fault_support::{spawn_isorun, wait_for_process, Ids, Leftovers, Scope};
use serde_json::{json, Value};

/// xorshift64*: reproducible from the seed in the report.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The runtime under test: isorun, or `ISORUN_SOAK_BIN`.
fn runtime_bin() -> String {
    std::env::var("ISORUN_SOAK_BIN").unwrap_or_else(|_| ISORUN.to_owned())
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The run's shared setup: a rootfs, one bundle per config, a private `--root`.
struct Soak {
    tmp: tempfile::TempDir,
    prefix: String,
    marker: String,
}

/// Bundles every worker uses; the hook bundles are per worker (their hook's argument tells
/// the worker's hook from the others').
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Hook {
    CreateRuntime,
    Prestart,
    CreateContainer,
}

impl Hook {
    const ALL: [Hook; 3] = [Hook::CreateRuntime, Hook::Prestart, Hook::CreateContainer];

    fn key(self) -> &'static str {
        match self {
            Hook::CreateRuntime => "createRuntime",
            Hook::Prestart => "prestart",
            Hook::CreateContainer => "createContainer",
        }
    }
}

impl Soak {
    fn new() -> Self {
        require_root();
        let tmp = tempfile::Builder::new().prefix("isorun-soak-").tempdir_in("/tmp").unwrap();
        busybox_rootfs(&tmp.path().join("rootfs"));
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let run = format!("{}{}", std::process::id(), nanos % 1000);
        Soak { tmp, prefix: format!("soak{run}-"), marker: format!("9{run}") }
    }

    fn root(&self) -> PathBuf {
        self.tmp.path().join("state")
    }

    fn write_bundle(&self, name: &str, hook: Option<(Hook, String)>) -> PathBuf {
        let dir = self.tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut spec: Value = serde_json::from_str(include_str!("../src/spec/default.json")).unwrap();
        spec["process"]["terminal"] = json!(false);
        spec["process"]["args"] = json!(["sleep", "1000"]);
        spec["root"]["path"] = json!(self.tmp.path().join("rootfs"));
        if let Some((kind, arg)) = hook {
            spec["hooks"] = json!({ kind.key(): [{"path": "/bin/sleep", "args": ["sleep", arg]}] });
        }
        std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
        dir
    }

    /// The hook argument of worker `w` for `kind`: a sleep long enough to be killed in,
    /// holding the run's marker.
    fn hook_arg(&self, w: usize, kind: Hook) -> String {
        format!("30.{}{}{w}", self.marker, kind as u8)
    }

    /// After one cycle of worker `w`: that id, that worker's hooks (others still run).
    fn cycle_scope(&self, id: &str, w: usize) -> Scope {
        Scope {
            tmp: self.tmp.path().to_owned(),
            root: self.root(),
            ids: Ids::Exact(id.to_owned()),
            needles: Hook::ALL.iter().map(|k| self.hook_arg(w, *k)).collect(),
            whole: false,
        }
    }

    /// After the run: every id, anything of the run's directory or marker.
    fn run_scope(&self) -> Scope {
        Scope {
            tmp: self.tmp.path().to_owned(),
            root: self.root(),
            ids: Ids::Prefix(self.prefix.clone()),
            needles: vec![self.tmp.path().to_string_lossy().into_owned(), self.marker.clone()],
            whole: true,
        }
    }
}

/// What the run counted.
#[derive(Default)]
struct Tally {
    cycles: u64,
    per_scenario: BTreeMap<&'static str, u64>,
    /// Kills sent per step, and how many landed (the process was still running).
    kills_sent: BTreeMap<String, u64>,
    kills_landed: BTreeMap<String, u64>,
    /// Leftovers after the per-cycle `delete --force`, per kind, summed over cycles.
    leftovers: [usize; 5],
    /// Leftovers by the step whose kill preceded them.
    leftovers_after_kill: BTreeMap<String, usize>,
    /// Commands that failed where nothing explains it (no kill in the cycle, not a lost race).
    unexpected: Vec<String>,
    /// `delete --force` that failed (retried).
    delete_failures: Vec<String>,
    first_leftover: Option<String>,
    /// Inits of a killed create alive 3 s after it died.
    orphan_inits: Vec<String>,
    /// Time per scenario: in its commands and the recovering delete, in the host scan.
    time_per_scenario: BTreeMap<&'static str, (Duration, Duration)>,
}

struct Worker<'a> {
    soak: &'a Soak,
    w: usize,
    rng: Rng,
    plain: PathBuf,
    hooked: Vec<(Hook, PathBuf)>,
    tally: &'a Mutex<Tally>,
    seq: &'a AtomicU64,
}

/// How a command ended.
struct Ended {
    ok: bool,
    killed: bool,
    stderr: String,
}

impl Worker<'_> {
    /// The init of a half-made container (its record names a creator, which has ended)
    /// still alive after 3 s; None when there is none.
    fn orphan_init(&self, id: &str) -> Option<String> {
        let bytes = std::fs::read(self.soak.root().join(id).join("state.json")).ok()?;
        let rec: Value = serde_json::from_slice(&bytes).ok()?;
        rec.get("creator")?;
        let pid = rec["pid"].as_i64().filter(|p| *p > 0)? as i32;
        (!fault_support::wait_gone(pid, Duration::from_secs(3))).then(|| format!("init {pid} alive"))
    }

    fn tag(&self) -> String {
        format!("w{}-{}", self.w, self.seq.fetch_add(1, Ordering::Relaxed))
    }

    fn spawn(&self, args: &[&str]) -> (Child, String) {
        let tag = self.tag();
        (spawn_isorun(&runtime_bin(), &self.soak.root(), self.soak.tmp.path(), &tag, args), tag)
    }

    fn finish(&self, mut child: Child, tag: &str, killed: bool) -> Ended {
        let status = child.wait().unwrap();
        let dir = self.soak.tmp.path();
        let stderr = std::fs::read_to_string(dir.join(format!("{tag}.err"))).unwrap_or_default();
        let _ = std::fs::remove_file(dir.join(format!("{tag}.err")));
        let _ = std::fs::remove_file(dir.join(format!("{tag}.out")));
        Ended { ok: status.success(), killed, stderr }
    }

    /// Run a command to its end.
    fn run(&self, args: &[&str]) -> Ended {
        let (child, tag) = self.spawn(args);
        self.finish(child, &tag, false)
    }

    /// Run a command and SIGKILL it after `delay`, if it is still running then.
    fn run_killed_after(&self, step: &str, args: &[&str], delay: Duration) -> Ended {
        let (mut child, tag) = self.spawn(args);
        std::thread::sleep(delay);
        let landed = matches!(child.try_wait(), Ok(None));
        let _ = child.kill();
        self.count_kill(step, landed);
        self.finish(child, &tag, landed)
    }

    fn count_kill(&self, step: &str, landed: bool) {
        let mut t = self.tally.lock().unwrap();
        *t.kills_sent.entry(step.to_owned()).or_default() += 1;
        if landed {
            *t.kills_landed.entry(step.to_owned()).or_default() += 1;
        }
    }

    fn unexpected(&self, what: String) {
        self.tally.lock().unwrap().unexpected.push(what);
    }

    /// create → start → exec → kill → delete, with a SIGKILL at a random delay into one of
    /// the steps (or none).
    fn lifecycle(&mut self, id: &str) -> Option<String> {
        let bundle = self.plain.to_str().unwrap().to_owned();
        let steps: [(&str, Vec<&str>); 5] = [
            ("create", vec!["create", "--bundle", &bundle, id]),
            ("start", vec!["start", id]),
            ("exec", vec!["exec", id, "/bin/true"]),
            ("kill", vec!["kill", id, "KILL"]),
            ("delete", vec!["delete", "--force", id]),
        ];
        let victim = self.rng.below(6) as usize;
        let delay = Duration::from_micros(self.rng.below(40_000));
        let mut killed = None;
        for (i, (step, args)) in steps.iter().enumerate() {
            let ended = if i == victim { self.run_killed_after(step, args, delay) } else { self.run(args) };
            if ended.killed {
                killed = Some(format!("{step} (random)"));
            } else if !ended.ok && killed.is_none() {
                self.unexpected(format!("{id} {step}: {}", ended.stderr.trim()));
            }
        }
        killed
    }

    /// `run -d`, killed at a random delay.
    fn run_detached(&mut self, id: &str) -> Option<String> {
        let bundle = self.plain.to_str().unwrap().to_owned();
        let delay = Duration::from_micros(self.rng.below(60_000));
        let ended = self.run_killed_after("run -d", &["run", "-d", "--bundle", &bundle, id], delay);
        if !ended.killed && !ended.ok {
            self.unexpected(format!("{id} run -d: {}", ended.stderr.trim()));
        }
        ended.killed.then(|| "run -d (random)".to_owned())
    }

    /// create killed while one of its hooks sleeps.
    fn at_hook(&mut self, id: &str) -> Option<String> {
        let (kind, bundle) = self.hooked[self.rng.below(self.hooked.len() as u64) as usize].clone();
        let step = format!("create at {}", kind.key());
        let (mut child, tag) = self.spawn(&["create", "--bundle", bundle.to_str().unwrap(), id]);
        let hook = wait_for_process(&self.soak.hook_arg(self.w, kind), Duration::from_secs(20));
        let landed = hook.is_some() && matches!(child.try_wait(), Ok(None));
        let _ = child.kill();
        self.count_kill(&step, landed);
        let ended = self.finish(child, &tag, landed);
        if hook.is_none() {
            self.unexpected(format!("{id} {step}: the hook never ran: {}", ended.stderr.trim()));
        }
        Some(step)
    }

    /// Three creates, a start and a delete --force of one id at once, one of them killed at
    /// a random delay. Losers must say why (exists, does not exist, wrong status).
    fn same_id(&mut self, id: &str) -> Option<String> {
        let bundle = self.plain.to_str().unwrap().to_owned();
        let cmds: [(&str, Vec<&str>); 5] = [
            ("create", vec!["create", "--bundle", &bundle, id]),
            ("create", vec!["create", "--bundle", &bundle, id]),
            ("start", vec!["start", id]),
            ("create", vec!["create", "--bundle", &bundle, id]),
            ("delete", vec!["delete", "--force", id]),
        ];
        let children: Vec<_> = cmds.iter().map(|(_, a)| self.spawn(a)).collect();
        let victim = self.rng.below(cmds.len() as u64) as usize;
        std::thread::sleep(Duration::from_micros(self.rng.below(30_000)));
        let mut killed = None;
        for (i, (mut child, tag)) in children.into_iter().enumerate() {
            let step = format!("{} (same id)", cmds[i].0);
            let landed = if i == victim {
                let landed = matches!(child.try_wait(), Ok(None));
                let _ = child.kill();
                self.count_kill(&step, landed);
                landed
            } else {
                false
            };
            let ended = self.finish(child, &tag, landed);
            if landed {
                killed = Some(step);
            } else if !ended.ok {
                let e = &ended.stderr;
                let explained = e.contains("already exists")
                    || e.contains("does not exist")
                    || e.contains("cannot start")
                    || e.contains("is creating");
                if !explained {
                    self.unexpected(format!("{id} {step}: {}", e.trim()));
                }
            }
        }
        killed
    }

    fn cycle(&mut self, id: &str) {
        let t0 = Instant::now();
        let pick = self.rng.below(10);
        let (scenario, killed) = match pick {
            0..=3 => ("lifecycle", self.lifecycle(id)),
            4..=5 => ("run -d", self.run_detached(id)),
            6..=7 => ("kill at hook", self.at_hook(id)),
            _ => ("same id", self.same_id(id)),
        };
        // Every command has ended: a record still naming its creator is a killed create's,
        // and its init must die by itself (parent-death signal), before any delete.
        let orphan = self.orphan_init(id);
        // Recover: delete --force must work whatever was killed where.
        let mut deleted = false;
        for attempt in 0..3 {
            let ended = self.run(&["delete", "--force", id]);
            if ended.ok {
                deleted = true;
                break;
            }
            self.tally
                .lock()
                .unwrap()
                .delete_failures
                .push(format!("{id} attempt {attempt}: {}", ended.stderr.trim()));
        }
        if !deleted {
            self.unexpected(format!("{id}: delete --force failed 3 times"));
        }
        let t2 = Instant::now();
        let left = self.soak.cycle_scope(id, self.w).scan_settled(Duration::from_secs(3));
        let mut t = self.tally.lock().unwrap();
        if let Some(o) = orphan {
            t.orphan_inits
                .push(format!("{id} ({scenario}, kill: {}): {o}", killed.as_deref().unwrap_or("none")));
        }
        let times = t.time_per_scenario.entry(scenario).or_default();
        times.0 += t2 - t0;
        times.1 += t2.elapsed();
        t.cycles += 1;
        *t.per_scenario.entry(scenario).or_default() += 1;
        for (sum, n) in t.leftovers.iter_mut().zip(left.counts()) {
            *sum += n;
        }
        if !left.is_empty() {
            let after = killed.clone().unwrap_or_else(|| "no kill".into());
            *t.leftovers_after_kill.entry(after.clone()).or_default() += left.counts().iter().sum::<usize>();
            if t.first_leftover.is_none() {
                t.first_leftover = Some(format!("{id} ({scenario}, kill: {after}): {left}"));
            }
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_owned()
}

#[test]
fn soak_with_kill_9_leaves_nothing() {
    let cycles = env_num("ISORUN_SOAK_CYCLES", 500);
    let workers = env_num("ISORUN_SOAK_WORKERS", 3).max(1) as usize;
    let seed = env_num(
        "ISORUN_SOAK_SEED",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1,
    );
    let soak = Arc::new(Soak::new());
    let tally = Mutex::new(Tally::default());
    let seq = AtomicU64::new(0);
    let next_cycle = AtomicU64::new(0);
    let load_before = loadavg();
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..workers {
            let (soak, tally, seq, next_cycle) = (&soak, &tally, &seq, &next_cycle);
            s.spawn(move || {
                let plain = soak.write_bundle(&format!("plain{w}"), None);
                let hooked = Hook::ALL
                    .iter()
                    .map(|k| {
                        (
                            *k,
                            soak.write_bundle(
                                &format!("hook{w}{}", *k as u8),
                                Some((*k, soak.hook_arg(w, *k))),
                            ),
                        )
                    })
                    .collect();
                let mut worker = Worker {
                    soak,
                    w,
                    rng: Rng(seed.wrapping_add((w as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1),
                    plain,
                    hooked,
                    tally,
                    seq,
                };
                loop {
                    let n = next_cycle.fetch_add(1, Ordering::Relaxed);
                    if n >= cycles {
                        break;
                    }
                    worker.cycle(&format!("{}{n}", soak.prefix));
                }
            });
        }
    });
    let elapsed = started.elapsed();

    // Every id once more, then the whole run's traces.
    let all_ids: Vec<String> = (0..cycles).map(|n| format!("{}{n}", soak.prefix)).collect();
    let root = soak.root();
    let mut final_deletes_failed = 0;
    for id in &all_ids {
        let out = std::process::Command::new(runtime_bin())
            .arg("--root")
            .arg(&root)
            .args(["delete", "--force", id])
            .output()
            .unwrap();
        final_deletes_failed += usize::from(!out.status.success());
    }
    let list = std::process::Command::new(runtime_bin())
        .arg("--root")
        .arg(&root)
        .args(["list", "-q"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout).trim().to_owned();
    let end: Leftovers = soak.run_scope().scan_settled(Duration::from_secs(5));

    let t = tally.into_inner().unwrap();
    let report = render_report(
        &t,
        &Summary {
            seed,
            workers,
            elapsed,
            load_before: &load_before,
            load_after: &loadavg(),
            final_deletes_failed,
            listed: &listed,
            end: &end,
        },
    );
    eprintln!("{report}");
    if let Ok(path) = std::env::var("ISORUN_SOAK_REPORT") {
        std::fs::write(Path::new(&path), &report).unwrap();
    }

    assert_eq!(t.cycles, cycles, "not every cycle ran");
    assert!(t.unexpected.is_empty(), "unexpected failures: {:#?}", t.unexpected);
    assert!(t.orphan_inits.is_empty(), "inits outlived their create: {:#?}", t.orphan_inits);
    assert_eq!(t.leftovers, [0; 5], "left after a cycle's delete --force: {:?}", t.first_leftover);
    assert_eq!(final_deletes_failed, 0);
    assert!(list.status.success() && listed.is_empty(), "list after the run: {listed:?}");
    assert!(end.is_empty(), "left at the end: {end}");
    let landed: u64 = t.kills_landed.values().sum();
    assert!(landed * 4 >= cycles, "too few kills landed ({landed} in {cycles} cycles) to mean anything");
    if cycles <= 500 {
        assert!(elapsed < Duration::from_secs(120), "the bounded soak took {elapsed:?}");
    }
}

struct Summary<'a> {
    seed: u64,
    workers: usize,
    elapsed: Duration,
    load_before: &'a str,
    load_after: &'a str,
    final_deletes_failed: usize,
    listed: &'a str,
    end: &'a Leftovers,
}

fn render_report(t: &Tally, s: &Summary<'_>) -> String {
    use std::fmt::Write;
    let mut r = String::new();
    let _ = writeln!(
        r,
        "isorun soak: {} cycles, {} workers, seed {}, {:.1} s",
        t.cycles,
        s.workers,
        s.seed,
        s.elapsed.as_secs_f64()
    );
    let _ = writeln!(r, "  load average before: {}; after: {}", s.load_before, s.load_after);
    let _ = writeln!(r, "  scenarios: {:?}", t.per_scenario);
    for (scenario, (cmds, scan)) in &t.time_per_scenario {
        let n = t.per_scenario.get(scenario).copied().unwrap_or(1).max(1) as u32;
        let _ = writeln!(
            r,
            "    {scenario:<14} mean {:>4} ms in commands, {:>4} ms in the host scan",
            (*cmds / n).as_millis(),
            (*scan / n).as_millis()
        );
    }
    let _ = writeln!(r, "  kills (sent / landed while running) per step:");
    for (step, sent) in &t.kills_sent {
        let _ =
            writeln!(r, "    {step:<26} {sent:>6} / {:>6}", t.kills_landed.get(step).copied().unwrap_or(0));
    }
    let [c, m, st, p, f] = t.leftovers;
    let _ = writeln!(r, "  left after each cycle's delete --force (summed): cgroups {c}, mounts {m}, state {st}, processes {p}, fifos {f}");
    let _ = writeln!(r, "  leftovers by the kill before them: {:?}", t.leftovers_after_kill);
    if let Some(first) = &t.first_leftover {
        let _ = writeln!(r, "  first leftover: {first}");
    }
    let _ = writeln!(r, "  inits that outlived their killed create: {}", t.orphan_inits.len());
    for o in t.orphan_inits.iter().take(5) {
        let _ = writeln!(r, "    {o}");
    }
    let _ = writeln!(r, "  delete --force failures (retried): {}", t.delete_failures.len());
    for d in t.delete_failures.iter().take(5) {
        let _ = writeln!(r, "    {d}");
    }
    let _ = writeln!(r, "  unexpected command failures: {}", t.unexpected.len());
    for u in t.unexpected.iter().take(10) {
        let _ = writeln!(r, "    {u}");
    }
    let _ = writeln!(
        r,
        "  end: final delete --force failures {}, list {:?}, host: {}",
        s.final_deletes_failed, s.listed, s.end
    );
    r
}
