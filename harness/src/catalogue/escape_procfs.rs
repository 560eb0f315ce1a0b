//! Host-facing procfs and sysfs files a container root must not write or read: the usermode
//! helpers the kernel runs as host root (`core_pattern`, `modprobe`, `uevent_helper`), the
//! firmware and ACPI tables, debugfs and /proc/kcore.

use serde_json::{json, Value};

use super::escape::{in_guest, sh_ok, with_host, HostFiles, HELPER_FILES};
use super::util::add_cap;
use super::{Assertion, Ctx, Verdict};
use crate::v;

/// The assertions of this theme.
pub fn assertions() -> Vec<Assertion> {
    vec![
        Assertion {
            id: "escape.usermode_helper_write",
            description: "core_pattern, /proc/sys/kernel/modprobe and uevent_helper (run by the kernel as host root) cannot be opened for writing inside; the host's are unchanged",
            needs: &[],
            check: usermode_helpers,
            weaken: proc_sys_writable,
        },
        Assertion {
            id: "escape.firmware_acpi_hidden",
            description: "/sys/firmware and /proc/acpi (host firmware tables, ACPI control) are empty inside",
            needs: &[],
            check: firmware_acpi,
            weaken: unmasked,
        },
        Assertion {
            id: "escape.debugfs_unreachable",
            description: "/sys/kernel/debug is empty inside and debugfs/tracefs cannot be mounted",
            needs: &[],
            check: debugfs,
            weaken: with_sys_admin,
        },
        Assertion {
            id: "escape.kcore_unreadable",
            description: "/proc/kcore (the host's memory as an ELF core) reads nothing inside",
            needs: &[],
            check: kcore,
            weaken: kcore_open,
        },
    ]
}

/// Negative control: /proc/sys and /sys writable.
fn proc_sys_writable(cfg: &mut Value) {
    if let Some(list) = cfg["linux"]["readonlyPaths"].as_array_mut() {
        list.retain(|p| p != "/proc/sys");
    }
    if let Some(mounts) = cfg["mounts"].as_array_mut() {
        for m in mounts.iter_mut().filter(|m| m["destination"] == "/sys") {
            m["options"] = json!(["nosuid", "noexec", "nodev", "rw"]);
        }
    }
}

/// Negative control: no masked paths.
fn unmasked(cfg: &mut Value) {
    cfg["linux"]["maskedPaths"] = json!([]);
}

fn with_sys_admin(cfg: &mut Value) {
    add_cap(cfg, "CAP_SYS_ADMIN");
}

/// Negative control: /proc/kcore unmasked and CAP_SYS_RAWIO (what reading it needs).
fn kcore_open(cfg: &mut Value) {
    unmasked(cfg);
    add_cap(cfg, "CAP_SYS_RAWIO");
}

fn usermode_helpers(ctx: &mut Ctx) -> Verdict {
    let present: Vec<&str> = HELPER_FILES.iter().copied().filter(|p| super::Facts::has_path(p)).collect();
    if present.is_empty() {
        return Verdict::skip(format!(
            "kernel {} has none of {HELPER_FILES:?} (no coredump helper, modules or uevent helper)",
            ctx.facts.kernel_release
        ));
    }
    let host = HostFiles::read(&HELPER_FILES);
    // On a host only the open for writing (O_APPEND, no data): the door, not the walk. In a
    // guest the write itself: a helper path the kernel would run as root.
    let body = if in_guest() { "echo '|/bin/isolab-escaped %p' >> $f" } else { "exec 3>> $f" };
    let script = format!("for f in {}; do ( {body} ) 2>/dev/null; echo \"$f=$?\"; done", present.join(" "));
    let out = v!(sh_ok(ctx, ctx.config(&[]), &script));
    let opened: Vec<&str> = out.lines().filter(|l| l.ends_with("=0")).collect();
    let inside = Verdict::check(opened.is_empty() && out.lines().count() == present.len(), || {
        format!("opened for writing inside: {opened:?} (all: {out:?})")
    });
    with_host(inside, &host)
}

/// The non-empty ones of `dirs` on this side (an empty one proves nothing when hidden).
fn non_empty(dirs: &[&str]) -> Vec<String> {
    dirs.iter()
        .filter(|d| std::fs::read_dir(d).map(|mut r| r.next().is_some()).unwrap_or(false))
        .map(|d| d.to_string())
        .collect()
}

fn firmware_acpi(ctx: &mut Ctx) -> Verdict {
    let dirs = non_empty(&["/sys/firmware", "/proc/acpi"]);
    if dirs.is_empty() {
        return Verdict::skip(format!(
            "kernel {}: /sys/firmware and /proc/acpi are empty or absent on this side",
            ctx.facts.kernel_release
        ));
    }
    let script = format!("for d in {}; do echo \"$d=$(ls -A $d 2>/dev/null | wc -l)\"; done", dirs.join(" "));
    let out = v!(sh_ok(ctx, ctx.config(&[]), &script));
    let seen: Vec<&str> = out.lines().filter(|l| !l.ends_with("=0")).collect();
    Verdict::check(seen.is_empty() && out.lines().count() == dirs.len(), || {
        format!("entries visible inside: {seen:?} (host non-empty: {dirs:?})")
    })
}

fn debugfs(ctx: &mut Ctx) -> Verdict {
    if !super::Facts::has_path("/sys/kernel/debug") {
        return Verdict::skip(format!(
            "kernel {} has no /sys/kernel/debug (no debugfs)",
            ctx.facts.kernel_release
        ));
    }
    let script = "echo entries=$(ls -A /sys/kernel/debug 2>/dev/null | wc -l); \
        for t in debugfs tracefs; do mkdir -p /tmp/$t; mount -t $t none /tmp/$t 2>/dev/null; echo $t=$?; done";
    let out = v!(sh_ok(ctx, ctx.config(&[]), script));
    let l: Vec<&str> = out.lines().collect();
    let ok = l.len() == 3 && l[0] == "entries=0" && l[1..].iter().all(|m| !m.ends_with("=0"));
    Verdict::check(ok, || format!("inside (entries, mount exit codes): {out:?}"))
}

fn kcore(ctx: &mut Ctx) -> Verdict {
    if !super::Facts::has_path("/proc/kcore") {
        return Verdict::skip(format!(
            "kernel {} has no /proc/kcore (built without CONFIG_PROC_KCORE)",
            ctx.facts.kernel_release
        ));
    }
    let out =
        v!(sh_ok(ctx, ctx.config(&[]), "echo bytes=$(dd if=/proc/kcore bs=64 count=1 2>/dev/null | wc -c)"));
    Verdict::check(out == "bytes=0", || format!("read of /proc/kcore inside: {out:?}"))
}
