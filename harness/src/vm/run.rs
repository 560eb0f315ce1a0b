//! Running one VM under a watchdog: spawn QEMU, accept its console and channel sockets, wait
//! for the agent's hello, send the request, collect events until `Done`.

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
use crate::kernel_log::KernelLog;
use crate::protocol::{decode_line, encode_line, Event, Request, PROTOCOL_VERSION};

/// Console lines meaning the guest kernel has stopped for good.
const STOP_MARKERS: &[&str] = &["reboot: System halted", "reboot: Power down", "reboot: Restarting system"];

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
    let start = Instant::now();
    let mut report = VmReport {
        hello: None,
        events: vec![],
        bad_lines: vec![],
        console_tail: vec![],
        kernel_log: KernelLog::new(match &request.action {
            crate::protocol::Action::Assert { ids, .. } => ids.clone(),
            _ => vec![],
        }),
        error: None,
        boot_time: None,
        total_time: Duration::ZERO,
    };
    let mut tail = VecDeque::new();
    let res = run_inner(&mut cfg, request, t, on_event, &mut report, &mut tail, start, snap);
    report.error = res.err();
    report.console_tail = tail.into_iter().collect();
    report.total_time = start.elapsed();
    report
}

#[allow(clippy::too_many_arguments)]
fn run_inner(
    cfg: &mut QemuConfig,
    request: &Request,
    t: Timeouts,
    on_event: &mut dyn FnMut(&Event),
    report: &mut VmReport,
    tail: &mut VecDeque<String>,
    start: Instant,
    snap: Option<&SnapMode>,
) -> Result<(), VmError> {
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
    let (chan_l, chan_p) = listen("chan.sock")?;
    cfg.channel = chan_p;
    let con_l = match cfg.console {
        Console::Socket(_) => {
            let (l, p) = listen("con.sock")?;
            cfg.console = Console::Socket(p);
            Some(l)
        }
        Console::Stdio => None,
    };
    let mut args = qemu_args(cfg);
    let qmp_l = match snap {
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
    if con_l.is_some() {
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
    }
    let child = cmd
        .spawn()
        .map_err(|source| VmError::Spawn { command: format!("{} {}", cfg.qemu, args.join(" ")), source })?;
    let mut guard = VmGuard::new(child, dir);
    let boot_deadline = start + t.boot;
    let (tx, rx) = mpsc::channel();
    // QEMU connects its chardevs in order: console first, then the channel.
    if let Some(l) = &con_l {
        read_lines(accept(l, boot_deadline, &mut guard).map_err(|e| fix_secs(e, t))?, tx.clone(), true);
    }
    let chan = accept(&chan_l, boot_deadline, &mut guard).map_err(|e| fix_secs(e, t))?;
    let mut chan_w =
        chan.try_clone().map_err(|source| VmError::Setup { what: "dup channel socket".into(), source })?;
    read_lines(chan, tx, false);
    let mut qmp = match &qmp_l {
        Some(l) => {
            let s = accept(l, boot_deadline, &mut guard).map_err(|e| fix_secs(e, t))?;
            Some(super::qmp::Qmp::connect(s, boot_deadline).map_err(|e| qmp_failed(e, &mut guard))?)
        }
        None => None,
    };
    let setup = |what: &str| {
        let what = what.to_string();
        move |source| VmError::Setup { what, source }
    };
    let mut request_sent = false;
    if let (Some(SnapMode::Restore { state, resume, .. }), Some(q)) = (snap, qmp.as_mut()) {
        snapvm::restore(q, state).map_err(|e| qmp_failed(e, &mut guard))?;
        let lines = format!(
            "{}{}",
            encode_line(resume).unwrap_or_default(),
            encode_line(request).unwrap_or_default()
        );
        chan_w.write_all(lines.as_bytes()).map_err(setup("send resume and request to the agent"))?;
        request_sent = true;
    }

    let mut last_progress = Instant::now();
    let mut panic_line: Option<(String, Instant)> = None;
    let mut stop_line: Option<(String, Instant)> = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(Msg::Console(line)) => {
                if panic_line.is_none() && line.contains("Kernel panic") {
                    panic_line = Some((line.trim().to_string(), Instant::now()));
                }
                report.kernel_log.feed(&line);
                if stop_line.is_none() && STOP_MARKERS.iter().any(|m| line.contains(m)) {
                    stop_line = Some((line.trim().to_string(), Instant::now()));
                }
                tail.push_back(line);
                if tail.len() > CONSOLE_TAIL {
                    tail.pop_front();
                }
            }
            Ok(Msg::Event(ev)) => {
                last_progress = Instant::now();
                on_event(&ev);
                if let Event::Hello { protocol_version, .. } = &ev {
                    report.boot_time = Some(start.elapsed());
                    if *protocol_version != PROTOCOL_VERSION {
                        return Err(VmError::Version { guest: *protocol_version });
                    }
                    report.hello = Some(ev);
                    if let (Some(SnapMode::Save { state, .. }), Some(q)) = (snap, qmp.as_mut()) {
                        q.set_deadline(snapvm::deadline(t.boot.as_secs().max(30)));
                        snapvm::save(q, state).map_err(|e| qmp_failed(e, &mut guard))?;
                        guard.kill();
                        return Ok(());
                    }
                    if !request_sent {
                        let line = encode_line(request).unwrap_or_default();
                        chan_w.write_all(line.as_bytes()).map_err(setup("send request to the agent"))?;
                        request_sent = true;
                    }
                    continue;
                }
                match &ev {
                    Event::Result { .. } => report.kernel_log.finished_one(),
                    Event::Log { message } => {
                        if let Some(line) = message.strip_prefix(crate::kernel_log::KMSG_PREFIX) {
                            report.kernel_log.feed(line);
                        }
                    }
                    _ => {}
                }
                let done = ev == Event::Done;
                report.events.push(ev);
                if done {
                    guard.kill();
                    return Ok(());
                }
            }
            Ok(Msg::Bad(line)) => report.bad_lines.push(line),
            Ok(Msg::ChannelClosed)
            | Err(mpsc::RecvTimeoutError::Timeout)
            | Err(mpsc::RecvTimeoutError::Disconnected) => {}
        }
        // Give the console a moment after a panic so the tail has the backtrace.
        if let Some((line, at)) = &panic_line {
            if at.elapsed() > Duration::from_millis(300) {
                return Err(VmError::KernelPanic { line: line.clone() });
            }
            continue;
        }
        // A halted guest (no ACPI power-off) keeps QEMU alive: the channel gets one second to
        // deliver `Done`, then it is an error rather than a wait for the step timeout.
        if let Some((line, at)) = &stop_line {
            if at.elapsed() > Duration::from_secs(1) {
                return Err(VmError::GuestStopped { line: line.clone() });
            }
        }
        if let Ok(Some(st)) = guard.child().try_wait() {
            drain(&rx, tail, &mut report.kernel_log);
            if let Some((line, _)) = panic_line.or_else(|| {
                tail.iter().find(|l| l.contains("Kernel panic")).map(|l| (l.clone(), Instant::now()))
            }) {
                return Err(VmError::KernelPanic { line: line.trim().to_string() });
            }
            return Err(died(st, &mut guard));
        }
        if report.hello.is_none() && Instant::now() > boot_deadline {
            return Err(VmError::BootTimeout { secs: t.boot.as_secs() });
        }
        if let Some(step) = t.step {
            if report.hello.is_some() && last_progress.elapsed() > step {
                return Err(VmError::StepTimeout { secs: step.as_secs() });
            }
        }
    }
}

fn drain(rx: &mpsc::Receiver<Msg>, tail: &mut VecDeque<String>, klog: &mut KernelLog) {
    std::thread::sleep(Duration::from_millis(50));
    while let Ok(m) = rx.try_recv() {
        if let Msg::Console(line) = m {
            klog.feed(&line);
            tail.push_back(line);
            if tail.len() > CONSOLE_TAIL {
                tail.pop_front();
            }
        }
    }
}

fn fix_secs(e: VmError, t: Timeouts) -> VmError {
    match e {
        VmError::BootTimeout { .. } => VmError::BootTimeout { secs: t.boot.as_secs() },
        other => other,
    }
}
