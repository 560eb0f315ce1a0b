//! The guest side: `isolab-agent` runs as PID 1 (`/init`) in the VM.
//!
//! Boot sequence: copy the initramfs into a tmpfs and switch into it (so containers can
//! `pivot_root`), mount the API filesystems, open the event channel (`/dev/ttyS1`, raw mode),
//! mount cgroups as `isolab.cgroup=` asks, load the modules in `/isolab/modules.list`, send
//! `Hello`, read one `Request` line, do it, send `Done`, power off. A snapshot of the VM is
//! taken while the agent waits for that line; each restored copy first gets a `Resume` line
//! (entropy, wall clock, the runtime as a payload) and answers it with the hello again.

pub mod boot;
pub mod exec;
mod kmsg;
pub mod payload;

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::protocol::{decode_line, encode_line, Action, Event, Request, Resume, PROTOCOL_VERSION};
use crate::sys;

/// The device the agent talks to the host on.
pub const CHANNEL_DEVICE: &str = "/dev/ttyS1";
/// The module list baked into the image: one `name path` per line, in load order.
pub const MODULES_LIST: &str = "/isolab/modules.list";

/// Where events go: the channel device, serialized by a mutex so lines never interleave.
#[derive(Debug)]
pub struct EventSink {
    out: Mutex<(File, Instant)>,
}

impl EventSink {
    /// Wraps an opened channel.
    pub fn new(file: File) -> Self {
        EventSink { out: Mutex::new((file, Instant::now())) }
    }

    /// Sends one event line; failures are reported on the console only (nowhere else to go).
    pub fn send(&self, ev: &Event) {
        let line = match encode_line(ev) {
            Ok(l) => l,
            Err(e) => {
                console(&format!("cannot encode event: {e}"));
                return;
            }
        };
        let mut g = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = g.0.write_all(line.as_bytes()).and_then(|()| g.0.flush()) {
            console(&format!("cannot write event to {CHANNEL_DEVICE}: {e}"));
        }
        g.1 = Instant::now();
    }

    /// Waits until every event written so far has left the UART (a write returns once the
    /// bytes are in the tty buffer; powering off before they are sent would lose them).
    pub fn drain(&self) {
        let g = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = sys::drain(&g.0) {
            console(&format!("tcdrain {CHANNEL_DEVICE}: {e}"));
        }
    }

    /// Sends a heartbeat when nothing was sent for `every`.
    pub fn heartbeat_if_due(&self, every: Duration) {
        let due = self.out.lock().map(|g| g.1.elapsed() >= every).unwrap_or(true);
        if due {
            self.send(&Event::Heartbeat { uptime_ms: uptime_ms() });
        }
    }
}

/// Prints a line on the kernel console (the agent's stderr is /dev/console).
pub fn console(msg: &str) {
    eprintln!("isolab-agent: {msg}");
}

/// Guest uptime in milliseconds, from /proc/uptime.
pub fn uptime_ms() -> u64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|f| f.parse::<f64>().ok()))
        .map(|secs| (secs * 1000.0) as u64)
        .unwrap_or(0)
}

fn fatal(msg: &str, sink: Option<&EventSink>) -> ! {
    console(msg);
    if let Some(s) = sink {
        s.send(&Event::Error { message: msg.to_string() });
        s.drain();
    }
    let err = sys::power_off();
    console(&format!("power off failed: {err}"));
    std::process::exit(1)
}

/// The agent's entry point as PID 1. Never returns: the VM is powered off.
pub fn run_as_init() -> ! {
    let mut phases = vec![("agent_start".to_string(), sys::boottime_ms())];
    let mut phase = |name: &str| phases.push((name.to_string(), sys::boottime_ms()));
    let copy_root = boot::early_cmdline().split_whitespace().any(|w| w == "isolab.root=copy");
    let switched = if copy_root { boot::switch_to_tmpfs_root() } else { boot::switch_to_bind_root() };
    if let Err(e) = switched {
        fatal(&e.to_string(), None);
    }
    phase("switch_root");
    if let Err(e) = boot::mount_api_filesystems() {
        fatal(&e.to_string(), None);
    }
    let chan = OpenOptions::new().read(true).write(true).open(CHANNEL_DEVICE);
    let chan = match chan {
        Ok(c) => c,
        Err(e) => fatal(&format!("open {CHANNEL_DEVICE}: {e}"), None),
    };
    if let Err(e) = sys::make_raw(&chan) {
        fatal(&format!("raw mode on {CHANNEL_DEVICE}: {e}"), None);
    }
    let reader = match chan.try_clone() {
        Ok(r) => r,
        Err(e) => fatal(&format!("dup {CHANNEL_DEVICE}: {e}"), None),
    };
    let sink = EventSink::new(chan);

    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let mode = boot::cgroup_mode_from_cmdline(&cmdline);
    let (controllers, mut warnings) = match boot::mount_cgroups(mode) {
        Ok(x) => x,
        Err(e) => fatal(&e.to_string(), Some(&sink)),
    };
    phase("mounts");
    let list = std::fs::read_to_string(MODULES_LIST).unwrap_or_default();
    let (modules_loaded, mod_warnings) = boot::load_modules(&list);
    phase("modules");
    warnings.extend(mod_warnings);
    for w in &warnings {
        console(w);
    }
    let kernel_release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut hello = Event::Hello {
        protocol_version: PROTOCOL_VERSION,
        kernel_release: kernel_release.trim().to_string(),
        cgroup_mode: mode,
        cgroup_controllers: controllers,
        modules_loaded,
        boot_warnings: warnings,
        uptime_ms: uptime_ms(),
        phases_ms: phases,
    };
    sink.send(&hello);

    // A snapshot is taken here, while the agent waits for its first line. A restored copy gets
    // a `Resume` line first, then its request.
    let mut reader = BufReader::new(reader);
    let line = loop {
        let mut line = String::new();
        if let Err(e) = reader.read_line(&mut line) {
            fatal(&format!("read request from {CHANNEL_DEVICE}: {e}"), Some(&sink));
        }
        match decode_line::<Resume>(&line) {
            Ok(r) => {
                resume(&sink, &r, &mut hello);
                sink.send(&hello);
            }
            Err(_) => break line,
        }
    };
    match decode_line::<Request>(&line) {
        Ok(req) if req.protocol_version != PROTOCOL_VERSION => sink.send(&Event::Error {
            message: format!(
                "protocol version {} requested, agent speaks {PROTOCOL_VERSION}",
                req.protocol_version
            ),
        }),
        Ok(req) => handle(&sink, req.action),
        Err(e) => sink.send(&Event::Error { message: e.to_string() }),
    }
    sink.send(&Event::Done);
    sink.drain();
    let err = sys::power_off();
    fatal(&format!("power off: {err}"), None)
}

/// Makes this restored copy of a snapshot its own: entropy, wall clock, the payload. Problems
/// become boot warnings of the hello re-sent afterwards (and an `Error` event for a payload
/// that could not be unpacked: the runtime under test would be missing).
fn resume(sink: &EventSink, r: &Resume, hello: &mut Event) {
    let mut warnings = Vec::new();
    match hex_decode(&r.seed_hex) {
        Some(seed) if !seed.is_empty() => {
            let res =
                OpenOptions::new().write(true).open("/dev/urandom").and_then(|f| sys::add_entropy(&f, &seed));
            match res {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warnings.push(format!("RNDRESEEDCRNG on /dev/urandom: {e}")),
                Err(e) => warnings.push(format!("RNDADDENTROPY on /dev/urandom: {e}")),
            }
        }
        _ => warnings.push(format!("resume: seed_hex {:?} is not hex bytes", r.seed_hex)),
    }
    if let Err(e) = sys::set_realtime(r.unix_time_ns) {
        warnings.push(format!("clock_settime(CLOCK_REALTIME): {e}"));
    }
    if r.payload {
        match payload::unpack(std::path::Path::new("/")) {
            Ok((files, bytes)) => console(&format!("payload: {files} entries, {bytes} bytes")),
            Err(e) => {
                sink.send(&Event::Error { message: format!("payload: {e}") });
                warnings.push(format!("payload: {e}"));
            }
        }
    }
    for w in &warnings {
        console(w);
    }
    if let Event::Hello { boot_warnings, uptime_ms: up, phases_ms, .. } = hello {
        boot_warnings.extend(warnings);
        *up = uptime_ms();
        phases_ms.push(("restored".into(), sys::boottime_ms()));
    }
}

/// Lower-case or upper-case hex to bytes (None if malformed).
pub fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

fn handle(sink: &EventSink, action: Action) {
    match action {
        Action::Idle => {}
        Action::Exec { argv, env, timeout_secs } => exec::run_command(sink, &argv, &env, timeout_secs),
        Action::Shell => exec::run_shell(sink),
        Action::Assert { runtime, ids, base } => run_assertions(sink, &runtime, &ids, &base),
    }
}

/// Where the catalogue works in the guest (bundles, the container rootfs, state).
const ASSERT_WORKDIR: &str = "/var/lib/isolab-assert";

/// Run the catalogue against `runtime`, one `Result` event per assertion, with heartbeats
/// so a long check is not taken for a hung guest.
fn run_assertions(sink: &EventSink, runtime: &str, ids: &[String], base: &crate::catalogue::BaseConfig) {
    let only = ids.join(",");
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let crash_after = test_hook(&cmdline, "isolab.crash_after=");
    let warn_after = test_hook(&cmdline, "isolab.warn_after=");
    let mut kmsg = kmsg::Kmsg::open();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(500));
                sink.heartbeat_if_due(Duration::from_secs(5));
            }
        });
        let result = crate::catalogue::run_selected(
            std::path::Path::new(runtime),
            &only,
            base,
            std::path::Path::new(ASSERT_WORKDIR),
            std::path::Path::new("/bin/busybox"),
            &mut |id, v, ms| {
                // The assertion's kernel warnings go first, so the host counts them as its own.
                for line in kmsg.as_mut().map(kmsg::Kmsg::drain).unwrap_or_default() {
                    sink.send(&Event::Log { message: format!("{}{line}", crate::kernel_log::KMSG_PREFIX) });
                }
                sink.send(&Event::Result {
                    id: id.to_owned(),
                    outcome: v.outcome,
                    detail: v.detail.clone(),
                    duration_ms: ms,
                });
                if warn_after.as_deref() == Some(id) {
                    // A WARNING record as the kernel writes one, for the kmsg path's test.
                    let _ = std::fs::write(
                        "/dev/kmsg",
                        "<4>WARNING: CPU: 0 PID: 1 at isolab-test written by the agent\n",
                    );
                    let _ = std::fs::write("/dev/kmsg", "<4>---[ end trace isolab-test ]---\n");
                }
                if crash_after.as_deref() == Some(id) {
                    // The deliberate panic of the harness's own tests (kernel_findings).
                    let _ = std::fs::write("/proc/sysrq-trigger", "c");
                }
            },
        );
        if let Err(e) = result {
            sink.send(&Event::Error { message: format!("catalogue: {e}") });
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}

/// The harness's own tests of kernel reports, from the kernel command line: once assertion ID
/// has reported, `isolab.crash_after=ID` panics the guest (sysrq `c`) and `isolab.warn_after=ID`
/// writes a WARNING record to /dev/kmsg, so a test can watch either become a result.
fn test_hook(cmdline: &str, key: &str) -> Option<String> {
    cmdline.split_whitespace().find_map(|w| w.strip_prefix(key)).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::{hex_decode, test_hook};

    #[test]
    fn test_hooks_come_from_the_cmdline() {
        let k = "isolab.crash_after=";
        assert_eq!(test_hook("console=ttyS0 isolab.crash_after=pid.x quiet", k).as_deref(), Some("pid.x"));
        assert_eq!(test_hook("console=ttyS0 isolab.warn_after=pid.x", k), None);
    }

    #[test]
    fn hex() {
        assert_eq!(hex_decode("00ffA0"), Some(vec![0, 255, 160]));
        assert_eq!(hex_decode("0"), None);
        assert_eq!(hex_decode("zz"), None);
        assert_eq!(hex_decode(""), Some(vec![]));
    }
}
