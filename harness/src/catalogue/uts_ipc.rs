//! uts and ipc namespaces: hostname and domainname come from the config and changing them
//! inside leaves the host's alone; System V objects and POSIX queues of the host stay out.

use std::ffi::CString;

use serde_json::json;

use super::util::{add_cap, drop_namespace};
use super::{Assertion, Ctx, Need, Verdict};
use crate::v;

const UTS: &[Need] = &[Need::Namespace("uts")];
const IPC: &[Need] = &[Need::Namespace("ipc")];

fn no_ipc_ns(cfg: &mut serde_json::Value) {
    drop_namespace(cfg, "ipc");
}

/// The uts and ipc assertions.
pub fn assertions() -> Vec<Assertion> {
    vec![
        Assertion {
            id: "uts.hostname_and_domainname",
            description: "hostname and domainname inside are the config's; the host's are untouched",
            needs: UTS,
            check: hostname_and_domainname,
            weaken: |cfg| drop_namespace(cfg, "uts"),
        },
        Assertion {
            id: "uts.change_inside_not_host",
            description: "a hostname set inside (with CAP_SYS_ADMIN) leaves the host's unchanged",
            needs: UTS,
            check: change_inside_not_host,
            weaken: |cfg| {
                drop_namespace(cfg, "uts");
                if let Some(o) = cfg.as_object_mut() {
                    o.remove("hostname");
                    o.remove("domainname");
                }
            },
        },
        Assertion {
            id: "ipc.sysv_shm",
            description: "a host System V shared memory segment is not listed inside",
            needs: IPC,
            check: |ctx| sysv_invisible(ctx, Sysv::Shm),
            weaken: no_ipc_ns,
        },
        Assertion {
            id: "ipc.sysv_msg",
            description: "a host System V message queue is not listed inside",
            needs: IPC,
            check: |ctx| sysv_invisible(ctx, Sysv::Msg),
            weaken: no_ipc_ns,
        },
        Assertion {
            id: "ipc.sysv_sem",
            description: "a host System V semaphore set is not listed inside",
            needs: IPC,
            check: |ctx| sysv_invisible(ctx, Sysv::Sem),
            weaken: no_ipc_ns,
        },
        Assertion {
            id: "ipc.posix_mqueue",
            description: "a host POSIX message queue is absent from the container's /dev/mqueue",
            needs: IPC,
            check: posix_mqueue,
            weaken: no_ipc_ns,
        },
    ]
}

fn read_trim(p: &str) -> String {
    std::fs::read_to_string(p).unwrap_or_default().trim().to_owned()
}

/// The host's hostname and domainname, written back when dropped if this check's own unique
/// values reached the host (a negative control, or a broken runtime, may set the host's).
/// Only those values are undone, so checks running in parallel never undo each other.
#[derive(Debug)]
struct HostUts {
    hostname: String,
    domainname: String,
    ours: Vec<String>,
}

impl HostUts {
    const HOST: &'static str = "/proc/sys/kernel/hostname";
    const DOMAIN: &'static str = "/proc/sys/kernel/domainname";

    /// Save the host's values; `ours` are the values this check may set.
    fn save(ours: &[&str]) -> Self {
        HostUts {
            hostname: read_trim(Self::HOST),
            domainname: read_trim(Self::DOMAIN),
            ours: ours.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl Drop for HostUts {
    fn drop(&mut self) {
        for (p, v) in [(Self::HOST, &self.hostname), (Self::DOMAIN, &self.domainname)] {
            if !v.is_empty() && self.ours.contains(&read_trim(p)) {
                let _ = std::fs::write(p, v);
            }
        }
    }
}

fn ns_link(pid: &str, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).map(|l| l.display().to_string()).unwrap_or_default()
}

fn hostname_and_domainname(ctx: &mut Ctx) -> Verdict {
    let (h, d) = (format!("isolab-h-{}", std::process::id()), format!("isolab-d-{}", std::process::id()));
    let _host = HostUts::save(&[&h, &d]);
    let mut cfg = ctx.config(&["sleep", "120"]);
    cfg["hostname"] = json!(h);
    cfg["domainname"] = json!(d);
    let c = v!(ctx.start(cfg));
    let out = ctx.exec(&c, &["sh", "-c", "hostname; cat /proc/sys/kernel/domainname"]);
    if out.code != 0 {
        return Verdict::fail(format!("exec failed ({}): {}", out.code, out.stderr.trim()));
    }
    let own_ns = ns_link(&c.pid.to_string(), "uts") != ns_link("self", "uts");
    let (host_h, host_d) = (read_trim(HostUts::HOST), read_trim(HostUts::DOMAIN));
    let l = out.lines();
    Verdict::check(l == [h.as_str(), d.as_str()] && own_ns && host_h != h && host_d != d, || {
        format!("inside {l:?} (want [{h}, {d}]); own uts ns: {own_ns}; host: {host_h}/{host_d}")
    })
}

fn change_inside_not_host(ctx: &mut Ctx) -> Verdict {
    let new = format!("isolab-c-{}", std::process::id());
    let saved = HostUts::save(&[&new]);
    let mut cfg = ctx.config(&["sh", "-c", &format!("hostname {new} && hostname")]);
    add_cap(&mut cfg, "CAP_SYS_ADMIN");
    let out = ctx.run(cfg);
    let host_after = read_trim(HostUts::HOST);
    drop(saved);
    let out = v!(out);
    if out.code != 0 || out.stdout.trim() != new {
        return Verdict::fail(format!(
            "hostname {new} inside: exit {}: {}{}",
            out.code, out.stdout, out.stderr
        ));
    }
    Verdict::check(host_after != new, || format!("the host's hostname became {host_after:?}"))
}

/// A System V IPC kind.
#[derive(Debug, Clone, Copy)]
enum Sysv {
    Shm,
    Msg,
    Sem,
}

impl Sysv {
    fn name(self) -> &'static str {
        match self {
            Sysv::Shm => "shm",
            Sysv::Msg => "msg",
            Sysv::Sem => "sem",
        }
    }

    /// Create an object with `key` (exclusively); its id.
    fn create(self, key: libc::key_t) -> std::io::Result<i32> {
        let flags = libc::IPC_CREAT | libc::IPC_EXCL | 0o600;
        let id = match self {
            // SAFETY: shmget takes only integers and allocates nothing in this process.
            Sysv::Shm => unsafe { libc::shmget(key, 4096, flags) },
            // SAFETY: msgget takes only integers.
            Sysv::Msg => unsafe { libc::msgget(key, flags) },
            // SAFETY: semget takes only integers.
            Sysv::Sem => unsafe { libc::semget(key, 1, flags) },
        };
        if id < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(id)
        }
    }

    /// Remove object `id` (IPC_RMID).
    fn remove(self, id: i32) {
        match self {
            // SAFETY: IPC_RMID ignores the buffer argument, so a null pointer is allowed.
            Sysv::Shm => unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) },
            // SAFETY: IPC_RMID ignores the buffer argument, so a null pointer is allowed.
            Sysv::Msg => unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) },
            // SAFETY: IPC_RMID takes no fourth argument; integers only.
            Sysv::Sem => unsafe { libc::semctl(id, 0, libc::IPC_RMID) },
        };
    }
}

/// A host System V object, removed when dropped.
#[derive(Debug)]
struct SysvObject {
    kind: Sysv,
    id: i32,
    key: libc::key_t,
}

impl SysvObject {
    fn create(kind: Sysv) -> Result<Self, Verdict> {
        let base = 0x4953_0000 | (std::process::id() as libc::key_t & 0xffff);
        let mut last = None;
        for i in 0..16 {
            let key = base + (i << 24);
            match kind.create(key) {
                Ok(id) => return Ok(SysvObject { kind, id, key }),
                Err(e) => last = Some(e),
            }
        }
        Err(Verdict::error(format!("create a host System V {}: {last:?}", kind.name())))
    }
}

impl Drop for SysvObject {
    fn drop(&mut self) {
        self.kind.remove(self.id);
    }
}

/// The keys (first column, decimal) of a /proc/sysvipc table.
fn sysv_keys(table: &str) -> Vec<i64> {
    table.lines().skip(1).filter_map(|l| l.split_whitespace().next()?.parse().ok()).collect()
}

fn sysv_invisible(ctx: &mut Ctx, kind: Sysv) -> Verdict {
    let obj = v!(SysvObject::create(kind));
    let table = format!("/proc/sysvipc/{}", kind.name());
    if !sysv_keys(&std::fs::read_to_string(&table).unwrap_or_default()).contains(&i64::from(obj.key)) {
        return Verdict::error(format!("the host's {table} lacks its own key {:#x}", obj.key));
    }
    let out = v!(ctx.run_ok(ctx.config(&["cat", &table])));
    if !out.stdout.contains("key") {
        return Verdict::error(format!("{table} inside has no header: {:?}", out.stdout));
    }
    let seen = sysv_keys(&out.stdout).contains(&i64::from(obj.key));
    Verdict::check(!seen, || format!("{table} inside lists the host's key {:#x}", obj.key))
}

/// A host POSIX message queue, closed and unlinked when dropped.
#[derive(Debug)]
struct HostQueue {
    name: CString,
    mqd: libc::mqd_t,
}

impl HostQueue {
    fn open(name: &str) -> std::io::Result<Self> {
        let name = CString::new(name).map_err(std::io::Error::other)?;
        let flags = libc::O_CREAT | libc::O_EXCL | libc::O_RDWR;
        // SAFETY: `name` is a valid NUL-terminated string; with O_CREAT mq_open reads a mode_t
        // and an attribute pointer, and a null pointer asks for the default attributes.
        let mqd = unsafe {
            libc::mq_open(name.as_ptr(), flags, 0o600 as libc::mode_t, std::ptr::null::<libc::mq_attr>())
        };
        if mqd == -1 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(HostQueue { name, mqd })
    }
}

impl Drop for HostQueue {
    fn drop(&mut self) {
        // SAFETY: `mqd` is a descriptor this value opened, closed here once.
        unsafe { libc::mq_close(self.mqd) };
        // SAFETY: `name` is a valid NUL-terminated string.
        unsafe { libc::mq_unlink(self.name.as_ptr()) };
    }
}

fn posix_mqueue(ctx: &mut Ctx) -> Verdict {
    let name = format!("isolab-{}", std::process::id());
    let _q = match HostQueue::open(&format!("/{name}")) {
        Ok(q) => q,
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            return Verdict::skip(format!("kernel {} has no POSIX message queues", ctx.facts.kernel_release));
        }
        Err(e) => return Verdict::error(format!("mq_open /{name} on the host: {e}")),
    };
    let out = v!(ctx.run_ok(ctx.config(&["ls", "-a", "/dev/mqueue"])));
    let seen = out.lines().contains(&name.as_str());
    Verdict::check(!seen, || format!("/dev/mqueue inside lists the host's queue {name}: {:?}", out.lines()))
}
