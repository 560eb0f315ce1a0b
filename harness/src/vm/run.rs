//! Running one VM under a watchdog: spawn QEMU, accept its console and channel sockets, wait
//! for the agent's hello, send the request, collect events until `Done`. When to give up is
//! the [`Watchdog`]'s decision (pure, in `vm::watchdog`); this is its I/O loop.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::args::{qemu_args, Console, QemuConfig};
pub use super::error::VmError;
use super::guard::VmGuard;
use super::snapvm::{self, SnapMode};
use super::watchdog::{Decision, Input, Watchdog};
use crate::kernel_log::KernelLog;
use crate::protocol::{decode_line, encode_line, Event, Request, PROTOCOL_VERSION};

/// Lines of console kept for error reports.
pub const CONSOLE_TAIL: usize = 50;

/// Timeouts of one run.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Spawn → hello.
    pub boot: Duration,
    /// Max silence between events after the hello (None: unlimited, e.g. interactive shell).
    pub step: Option<Duration>,
}

/// What happened in one VM.
#[derive(Debug)]
pub struct VmReport {
    /// The hello, if one came.
    pub hello: Option<Event>,
    /// All events after the hello.
    pub events: Vec<Event>,
    /// Lines the channel carried that were not valid events.
    pub bad_lines: Vec<String>,
    /// The last console lines.
    pub console_tail: Vec<String>,
    /// Panics, oopses, warnings and hung tasks the console showed, with their traces.
    pub kernel_log: KernelLog,
    /// Set when the run is an ERROR.
    pub error: Option<VmError>,
    /// Wall time from spawning QEMU to the hello.
    pub boot_time: Option<Duration>,
    /// Wall time of the whole run.
    pub total_time: Duration,
}

impl VmReport {
    /// The command's exit code, if an `Exec` ran to completion.
    pub fn exit_code(&self) -> Option<i32> {
        self.events.iter().find_map(|e| match e {
            Event::CommandExit { code, .. } => Some(*code),
            _ => None,
        })
    }
}

enum Msg {
    Console(String),
    Event(Event),
    Bad(String),
    ChannelClosed,
}

fn accept(l: &UnixListener, deadline: Instant, guard: &mut VmGuard) -> Result<UnixStream, VmError> {
    let setup = |source| VmError::Setup { what: "accept QEMU socket".into(), source };
    l.set_nonblocking(true).map_err(setup)?;
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).map_err(setup)?;
                return Ok(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(setup(e)),
        }
        if let Ok(Some(st)) = guard.child().try_wait() {
            return Err(died(st, guard));
        }
        if Instant::now() > deadline {
            return Err(VmError::BootTimeout { secs: 0 });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn died(status: std::process::ExitStatus, guard: &mut VmGuard) -> VmError {
    let mut stderr = String::new();
    if let Some(mut e) = guard.child().stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    let stderr = if stderr.trim().is_empty() { String::new() } else { format!(": {}", stderr.trim()) };
    VmError::QemuDied { status: status.to_string(), stderr }
}

/// A QMP command that failed because a signal ended QEMU (a SIGKILL from outside, a SIGBUS
/// from its RAM file) is QEMU's death, with its status, not the socket's error ("Connection
/// reset by peer"), and not a snapshot QEMU refused (which it answers by exiting with a
/// status, and which the caller rebuilds). QEMU gets half a second to be reaped before the
/// QMP error is taken as it is.
fn qmp_failed(e: super::qmp::QmpError, guard: &mut VmGuard) -> VmError {
    use std::os::unix::process::ExitStatusExt;
    let until = Instant::now() + Duration::from_millis(500);
    loop {
        match guard.child().try_wait() {
            Ok(Some(st)) if st.signal().is_some() => return died(st, guard),
            Ok(Some(_)) => return VmError::Snapshot(e),
            _ => {}
        }
        if Instant::now() > until {
            return VmError::Snapshot(e);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn read_lines(s: UnixStream, tx: mpsc::Sender<Msg>, console: bool) {
    std::thread::spawn(move || {
        let mut r = BufReader::new(s);
        let mut buf = Vec::new();
        while let Ok(n) = r.read_until(b'\n', &mut buf) {
            if n == 0 {
                break;
            }
            let line = String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']).to_string();
            buf.clear();
            let msg = if console {
                Msg::Console(line)
            } else if line.trim().is_empty() {
                continue;
            } else {
                match decode_line::<Event>(&line) {
                    Ok(ev) => Msg::Event(ev),
                    Err(_) => Msg::Bad(line),
                }
            };
            if tx.send(msg).is_err() {
                return;
            }
        }
        if !console {
            let _ = tx.send(Msg::ChannelClosed);
        }
    });
}

/// Boots a VM, sends `request` after the hello, collects events until `Done` or an error.
/// `on_event` sees every event as it arrives. QEMU and the temp dir are gone on return.
pub fn run_vm(cfg: QemuConfig, request: &Request, t: Timeouts, on_event: &mut dyn FnMut(&Event)) -> VmReport {
    run_vm_snap(cfg, request, t, on_event, None)
}

/// [`run_vm`], saving a snapshot at the hello (the request is not sent) or starting from one
/// (`Resume` and the request are sent once the guest runs; the hello it answers with marks
/// the agent ready, so `boot_time` is QEMU start → ready).
pub fn run_vm_snap(
    mut cfg: QemuConfig,
    request: &Request,
    t: Timeouts,
    on_event: &mut dyn FnMut(&Event),
    snap: Option<&SnapMode>,
) -> VmReport {
    let mut s = Session::new(request, t, snap);
    let res = s.run(&mut cfg, on_event);
    s.report.error = res.err();
    s.report.console_tail = s.tail.into_iter().collect();
    s.report.total_time = s.start.elapsed();
    s.report
}

/// How often the loop looks at the clock and QEMU when nothing arrives.
const POLL: Duration = Duration::from_millis(50);

/// QEMU running under its guard, its sockets connected.
struct Started {
    guard: VmGuard,
    rx: mpsc::Receiver<Msg>,
    chan_w: UnixStream,
    qmp: Option<super::qmp::Qmp>,
}

/// The listening sockets QEMU connects to, in the order it connects.
struct Listeners {
    console: Option<UnixListener>,
    channel: UnixListener,
    qmp: Option<UnixListener>,
}

/// What the loop does after an agent event.
enum Flow {
    /// Look at the watchdog.
    Watch,
    /// The hello was handled: next message.
    Next,
    /// The run is over (`Done`, or the snapshot saved).
    Finished,
}

/// One run: what the watchdog decides from, what the report collects.
struct Session<'a> {
    request: &'a Request,
    t: Timeouts,
    snap: Option<&'a SnapMode>,
    start: Instant,
    watchdog: Watchdog,
    report: VmReport,
    tail: VecDeque<String>,
    request_sent: bool,
}

impl<'a> Session<'a> {
    fn new(request: &'a Request, t: Timeouts, snap: Option<&'a SnapMode>) -> Self {
        let expected = match &request.action {
            crate::protocol::Action::Assert { ids, .. } => ids.clone(),
            _ => vec![],
        };
        Session {
            request,
            t,
            snap,
            start: Instant::now(),
            watchdog: Watchdog::new(t.boot, t.step),
            report: VmReport {
                hello: None,
                events: vec![],
                bad_lines: vec![],
                console_tail: vec![],
                kernel_log: KernelLog::new(expected),
                error: None,
                boot_time: None,
                total_time: Duration::ZERO,
            },
            tail: VecDeque::new(),
            request_sent: false,
        }
    }

    fn run(&mut self, cfg: &mut QemuConfig, on_event: &mut dyn FnMut(&Event)) -> Result<(), VmError> {
        let (guard, listeners) = spawn(cfg, self.snap)?;
        let mut vm = connect(guard, listeners, self.start + self.t.boot, self.t)?;
        self.resume(&mut vm)?;
        self.watch(&mut vm, on_event)
    }

    /// A restored VM runs on at once: `Resume` and the request go to the agent (which answers
    /// with a hello).
    fn resume(&mut self, vm: &mut Started) -> Result<(), VmError> {
        if let (Some(SnapMode::Restore { state, resume, .. }), Some(q)) = (self.snap, vm.qmp.as_mut()) {
            snapvm::restore(q, state).map_err(|e| qmp_failed(e, &mut vm.guard))?;
            let lines = format!(
                "{}{}",
                encode_line(resume).unwrap_or_default(),
                encode_line(self.request).unwrap_or_default()
            );
            vm.chan_w.write_all(lines.as_bytes()).map_err(setup("send resume and request to the agent"))?;
            self.request_sent = true;
        }
        Ok(())
    }

    /// Messages in, the watchdog consulted after each (and after each quiet poll).
    fn watch(&mut self, vm: &mut Started, on_event: &mut dyn FnMut(&Event)) -> Result<(), VmError> {
        loop {
            match vm.rx.recv_timeout(POLL) {
                Ok(Msg::Console(line)) => self.console(line),
                Ok(Msg::Event(ev)) => match self.event(ev, vm, on_event)? {
                    Flow::Watch => {}
                    Flow::Next => continue,
                    Flow::Finished => return Ok(()),
                },
                Ok(Msg::Bad(line)) => self.report.bad_lines.push(line),
                Ok(Msg::ChannelClosed)
                | Err(mpsc::RecvTimeoutError::Timeout)
                | Err(mpsc::RecvTimeoutError::Disconnected) => {}
            }
            let exited = vm.guard.child().try_wait().ok().flatten();
            let tick = Input::Tick { qemu_exited: exited.is_some() };
            let mut decision = self.watchdog.feed(tick, self.start.elapsed());
            if let Decision::Drain = decision {
                for line in drain(&vm.rx) {
                    self.console(line);
                }
                decision = self.watchdog.feed(Input::Drained, self.start.elapsed());
            }
            match (decision, exited) {
                (Decision::Fail(e), _) => return Err(e),
                (Decision::QemuDied, Some(st)) => return Err(died(st, &mut vm.guard)),
                _ => {}
            }
        }
    }

    /// A console line: to the watchdog, the kernel log and the tail.
    fn console(&mut self, line: String) {
        self.watchdog.feed(Input::Console(&line), self.start.elapsed());
        self.report.kernel_log.feed(&line);
        self.tail.push_back(line);
        if self.tail.len() > CONSOLE_TAIL {
            self.tail.pop_front();
        }
    }

    /// An agent event: progress for the watchdog, to `on_event`, into the report; the hello
    /// starts the request (or the snapshot's save), `Done` ends the run.
    fn event(
        &mut self,
        ev: Event,
        vm: &mut Started,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<Flow, VmError> {
        let is_hello = matches!(ev, Event::Hello { .. });
        self.watchdog.feed(if is_hello { Input::Hello } else { Input::Event }, self.start.elapsed());
        on_event(&ev);
        if let Event::Hello { protocol_version, .. } = &ev {
            self.report.boot_time = Some(self.start.elapsed());
            if *protocol_version != PROTOCOL_VERSION {
                return Err(VmError::Version { guest: *protocol_version });
            }
            self.report.hello = Some(ev);
            return self.hello(vm);
        }
        match &ev {
            Event::Result { .. } => self.report.kernel_log.finished_one(),
            Event::Log { message } => {
                if let Some(line) = message.strip_prefix(crate::kernel_log::KMSG_PREFIX) {
                    self.report.kernel_log.feed(line);
                }
            }
            _ => {}
        }
        let done = ev == Event::Done;
        self.report.events.push(ev);
        if done {
            vm.guard.kill();
            return Ok(Flow::Finished);
        }
        Ok(Flow::Watch)
    }

    /// The agent is ready: save the snapshot (and end), or send the request if not sent yet.
    fn hello(&mut self, vm: &mut Started) -> Result<Flow, VmError> {
        if let (Some(SnapMode::Save { state, .. }), Some(q)) = (self.snap, vm.qmp.as_mut()) {
            q.set_deadline(snapvm::deadline(self.t.boot.as_secs().max(30)));
            snapvm::save(q, state).map_err(|e| qmp_failed(e, &mut vm.guard))?;
            vm.guard.kill();
            return Ok(Flow::Finished);
        }
        if !self.request_sent {
            let line = encode_line(self.request).unwrap_or_default();
            vm.chan_w.write_all(line.as_bytes()).map_err(setup("send request to the agent"))?;
            self.request_sent = true;
        }
        Ok(Flow::Next)
    }
}

fn setup(what: &str) -> impl FnOnce(std::io::Error) -> VmError {
    let what = what.to_string();
    move |source| VmError::Setup { what, source }
}

/// Binds QEMU's sockets in a temp dir (pointing `cfg` at them), writes the payload device of a
/// snapshot run, and spawns QEMU under a guard (which owns the temp dir).
fn spawn(cfg: &mut QemuConfig, snap: Option<&SnapMode>) -> Result<(VmGuard, Listeners), VmError> {
    let dir = tempfile::Builder::new()
        .prefix("isolab-vm-")
        .tempdir()
        .map_err(|source| VmError::Setup { what: "create temp dir".into(), source })?;
    let listen = |name: &str| {
        let p = dir.path().join(name);
        UnixListener::bind(&p)
            .map(|l| (l, p.clone()))
            .map_err(|source| VmError::Setup { what: format!("bind {}", p.display()), source })
    };
    let (channel, chan_p) = listen("chan.sock")?;
    cfg.channel = chan_p;
    let console = match cfg.console {
        Console::Socket(_) => {
            let (l, p) = listen("con.sock")?;
            cfg.console = Console::Socket(p);
            Some(l)
        }
        Console::Stdio => None,
    };
    let mut args = qemu_args(cfg);
    let qmp = match snap {
        Some(mode) => {
            let (l, p) = listen("qmp.sock")?;
            let payload = dir.path().join("payload");
            let archive = match mode {
                SnapMode::Restore { archive, .. } => archive.as_deref().map(Vec::as_slice),
                SnapMode::Save { .. } => None,
            };
            snapvm::write_payload(&payload, archive)
                .map_err(|source| VmError::Setup { what: format!("write {}", payload.display()), source })?;
            args.extend(snapvm::extra_args(mode, cfg.memory_mb, &p, &payload));
            Some(l)
        }
        None => None,
    };
    let mut cmd = Command::new(&cfg.qemu);
    cmd.args(&args).stderr(Stdio::piped());
    if console.is_some() {
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
    }
    let child = cmd
        .spawn()
        .map_err(|source| VmError::Spawn { command: format!("{} {}", cfg.qemu, args.join(" ")), source })?;
    Ok((VmGuard::new(child, dir), Listeners { console, channel, qmp }))
}

/// Accepts QEMU's connections by `deadline` (it connects its chardevs in order: console
/// first, then the channel, then QMP) and starts reading console and channel.
fn connect(mut guard: VmGuard, l: Listeners, deadline: Instant, t: Timeouts) -> Result<Started, VmError> {
    let (tx, rx) = mpsc::channel();
    if let Some(l) = &l.console {
        read_lines(accept(l, deadline, &mut guard).map_err(|e| fix_secs(e, t))?, tx.clone(), true);
    }
    let chan = accept(&l.channel, deadline, &mut guard).map_err(|e| fix_secs(e, t))?;
    let chan_w = chan.try_clone().map_err(setup("dup channel socket"))?;
    read_lines(chan, tx, false);
    let qmp = match &l.qmp {
        Some(l) => {
            let s = accept(l, deadline, &mut guard).map_err(|e| fix_secs(e, t))?;
            Some(super::qmp::Qmp::connect(s, deadline).map_err(|e| qmp_failed(e, &mut guard))?)
        }
        None => None,
    };
    Ok(Started { guard, rx, chan_w, qmp })
}

/// The console lines still on their way once QEMU is gone (given a moment to arrive).
fn drain(rx: &mpsc::Receiver<Msg>) -> Vec<String> {
    std::thread::sleep(POLL);
    rx.try_iter()
        .filter_map(|m| match m {
            Msg::Console(line) => Some(line),
            _ => None,
        })
        .collect()
}

fn fix_secs(e: VmError, t: Timeouts) -> VmError {
    match e {
        VmError::BootTimeout { .. } => VmError::BootTimeout { secs: t.boot.as_secs() },
        other => other,
    }
}
