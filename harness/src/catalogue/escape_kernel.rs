//! Kernel-side escapes and the privileged syscalls a default container must be refused:
//! cgroup v1 `release_agent` (CVE-2022-0492), Dirty Pipe (CVE-2022-0847), loading a module,
//! `kexec_load`, the host's block device and `/dev/mem`.

use serde_json::{json, Value};

use super::escape::{in_guest, install_probe, sh_ok, with_host, HostFiles, PROBE};
use super::util::{add_cap, add_mount};
use super::{Assertion, Ctx, Verdict};
use crate::v;

/// The assertions of this theme.
pub fn assertions() -> Vec<Assertion> {
    vec![
        Assertion {
            id: "escape.cve_2022_0492_release_agent",
            description: "CVE-2022-0492: a cgroup v1 release_agent cannot be written, neither directly nor after unshare -UrmC",
            needs: &[],
            check: release_agent,
            weaken: admin_in_host_cgroupns,
        },
        Assertion {
            id: "escape.cve_2022_0847_dirty_pipe",
            description: "CVE-2022-0847 (Dirty Pipe): a read-only bind-mounted file keeps its bytes after a write and the splice trick",
            needs: &[],
            check: dirty_pipe,
            weaken: target_writable,
        },
        Assertion {
            id: "escape.module_load_refused",
            description: "init_module (insmod) is refused with EPERM with the default capabilities",
            needs: &[],
            check: module_load,
            weaken: with_sys_module,
        },
        Assertion {
            id: "escape.kexec_load_refused",
            description: "kexec_load is refused with EPERM with the default capabilities",
            needs: &[],
            check: kexec_load,
            weaken: with_sys_boot,
        },
        Assertion {
            id: "escape.host_block_device_refused",
            description: "the host's root block device can neither be made (mknod) nor opened or mounted inside",
            needs: &[],
            check: block_device,
            weaken: devices_open,
        },
        Assertion {
            id: "escape.dev_mem_refused",
            description: "raw /dev/mem is absent and cannot be made (mknod c 1 1) and read inside",
            needs: &[],
            check: dev_mem,
            weaken: devices_open,
        },
    ]
}

/// Negative control: CAP_SYS_ADMIN and the host's cgroup namespace, where a v1 hierarchy's
/// root (and its release_agent) can be mounted.
fn admin_in_host_cgroupns(cfg: &mut Value) {
    add_cap(cfg, "CAP_SYS_ADMIN");
    super::util::drop_namespace(cfg, "cgroup");
}

fn with_sys_module(cfg: &mut Value) {
    add_cap(cfg, "CAP_SYS_MODULE");
}

fn with_sys_boot(cfg: &mut Value) {
    add_cap(cfg, "CAP_SYS_BOOT");
}

/// Negative control for Dirty Pipe: the target's bind mount is read-write.
fn target_writable(cfg: &mut Value) {
    if let Some(mounts) = cfg["mounts"].as_array_mut() {
        for m in mounts.iter_mut().filter(|m| m["destination"] == "/target") {
            m["options"] = json!(["bind", "rw"]);
        }
    }
}

/// Negative control: mknod allowed, every device allowed, raw I/O.
fn devices_open(cfg: &mut Value) {
    add_cap(cfg, "CAP_MKNOD");
    add_cap(cfg, "CAP_SYS_RAWIO");
    cfg["linux"]["resources"]["devices"] = json!([{ "allow": true, "type": "a", "access": "rwm" }]);
}

/// Every v1 hierarchy an attacker could mount; in a cgroup namespace only one that already
/// exists can be (new hierarchies are for the initial namespace), so all are tried.
const V1_HIERARCHIES: &str = "rdma pids memory cpu,cpuacct cpuset freezer devices blkio net_cls,net_prio \
    perf_event hugetlb misc none,name=systemd none,name=isolab_escape";

fn release_agent(ctx: &mut Ctx) -> Verdict {
    // On a host the value is written back unchanged (the door, not the walk); in a guest a
    // helper path is written, as the exploit does.
    let value = if in_guest() { "echo /bin/isolab-escaped" } else { "cat $f" };
    let inner = format!(
        "d=/tmp/cg$$; mkdir -p $d; for o in {V1_HIERARCHIES}; do \
         mount -t cgroup -o $o cgroup $d 2>/dev/null && break; done; \
         f=$d/release_agent; [ -e $f ] || {{ echo mount=refused; exit 0; }}; \
         v=$({value}); echo \"$v\" > $f 2>/dev/null && echo write=ok || echo write=refused; umount $d"
    );
    let script = format!(
        "echo direct: $(sh -c '{inner}'); \
         echo userns: $(unshare -UrmC sh -c '{inner}' 2>/dev/null || echo unshare=refused)"
    );
    let host = HostFiles::read(&host_release_agents());
    let out = v!(sh_ok(ctx, ctx.config(&[]), &script));
    let inside = Verdict::check(!out.contains("write=ok") && out.lines().count() == 2, || {
        format!("release_agent written inside: {out:?}")
    });
    with_host(inside, &host)
}

/// The host's v1 `release_agent` files.
fn host_release_agents() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/sys/fs/cgroup") else { return Vec::new() };
    let mut v: Vec<String> = dir
        .flatten()
        .map(|e| e.path().join("release_agent"))
        .filter(|p| p.exists())
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    v.sort_unstable();
    v
}

fn dirty_pipe(ctx: &mut Ctx) -> Verdict {
    v!(install_probe(ctx));
    let target = ctx.dir().join("dirtypipe-target");
    let original = "ORIGINAL-read-only-bytes-0123456789";
    if let Err(e) = std::fs::write(&target, original) {
        return Verdict::error(format!("write {}: {e}", target.display()));
    }
    let mut cfg = ctx.config(&[]);
    let src = target.to_string_lossy();
    add_mount(
        &mut cfg,
        json!({ "destination": "/target", "type": "bind", "source": src, "options": ["bind", "ro"] }),
    );
    let out = v!(sh_ok(ctx, cfg, &format!("touch /target 2>/dev/null; {PROBE} dirtypipe /target ESCAPED")));
    let host = std::fs::read_to_string(&target).unwrap_or_default();
    let inside = out.lines().find_map(|l| l.strip_prefix("content=")).unwrap_or("");
    Verdict::check(host == original && inside == original, || {
        format!("the read-only file is now {host:?} on the host, {inside:?} inside; probe: {out:?}")
    })
}

/// Whether a probe's errno line says the kernel lacks the syscall (a SKIP, not a pass).
fn kernel_lacks(out: &str) -> bool {
    out.contains("ENOSYS") || out.contains("Function not implemented")
}

fn module_load(ctx: &mut Ctx) -> Verdict {
    if !super::Facts::has_path("/proc/modules") {
        return Verdict::skip(format!(
            "kernel {} has no loadable modules (CONFIG_MODULES unset)",
            ctx.facts.kernel_release
        ));
    }
    let host = HostFiles::read(&["/proc/modules"]);
    // /etc/passwd is no module: with the permission, the kernel refuses its format instead.
    let out = v!(sh_ok(ctx, ctx.config(&[]), "insmod /etc/passwd 2>&1; echo rc=$?"));
    if kernel_lacks(&out) {
        return Verdict::skip(format!("init_module: {out}"));
    }
    let inside = Verdict::check(out.contains("not permitted"), || {
        format!("insmod inside got past the permission check: {out:?}")
    });
    with_host(inside, &host)
}

fn kexec_load(ctx: &mut Ctx) -> Verdict {
    v!(install_probe(ctx));
    let out = v!(sh_ok(ctx, ctx.config(&[]), &format!("{PROBE} kexec")));
    if kernel_lacks(&out) {
        return Verdict::skip(format!("kernel {} has no kexec_load: {out}", ctx.facts.kernel_release));
    }
    let host = std::fs::read_to_string("/sys/kernel/kexec_loaded").unwrap_or_default();
    Verdict::check(out == "kexec_load=EPERM" && host.trim() != "1", || {
        format!("inside: {out:?}; host /sys/kernel/kexec_loaded: {:?}", host.trim())
    })
}

/// major:minor of the block device under `/` on this side, else the first partition listed.
fn host_block_device() -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata("/").ok()?.dev();
    let (ma, mi) = (libc::major(dev), libc::minor(dev));
    if ma != 0 {
        return Some((ma, mi));
    }
    let parts = std::fs::read_to_string("/proc/partitions").ok()?;
    parts.lines().skip(2).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        Some((f.first()?.parse().ok()?, f.get(1)?.parse().ok()?))
    })
}

fn block_device(ctx: &mut Ctx) -> Verdict {
    // A guest booted from its initramfs has no disk: 8:0 (sda) then, whose mknod must be
    // refused all the same.
    let (ma, mi) = host_block_device().unwrap_or((8, 0));
    // Open and read one sector on a host; mount it read-only in a guest.
    let use_it = if in_guest() {
        "mount -o ro /dev/isolab-blk /mnt"
    } else {
        "dd if=/dev/isolab-blk of=/dev/null bs=512 count=1"
    };
    let script = format!(
        "echo mknod=$(mknod /dev/isolab-blk b {ma} {mi} 2>/dev/null; echo $?); echo use=$({use_it} 2>/dev/null; echo $?)"
    );
    let cfg = ctx.config(&[]);
    let note = ctx.base_note(super::util::has_cap(&cfg, "CAP_MKNOD"), "CAP_MKNOD granted");
    let out = v!(sh_ok(ctx, cfg, &script));
    // Both layers must hold: no CAP_MKNOD, and the device cgroup refusing the open.
    let l: Vec<&str> = out.lines().collect();
    Verdict::check(l.len() == 2 && l[0] != "mknod=0" && l[1] != "use=0", || {
        format!("block device {ma}:{mi} inside: {out:?}{note}")
    })
}

fn dev_mem(ctx: &mut Ctx) -> Verdict {
    if !super::Facts::has_path("/dev/mem") {
        return Verdict::skip(format!(
            "kernel {} has no /dev/mem (CONFIG_DEVMEM unset)",
            ctx.facts.kernel_release
        ));
    }
    let script = "echo present=$([ -e /dev/mem ] && echo yes || echo no); \
        echo read=$(mknod /dev/isolab-mem c 1 1 2>/dev/null; dd if=/dev/isolab-mem of=/dev/null bs=1 count=1 2>/dev/null; echo $?)";
    let out = v!(sh_ok(ctx, ctx.config(&[]), script));
    let l: Vec<&str> = out.lines().collect();
    Verdict::check(l.len() == 2 && l[0] == "present=no" && l[1] != "read=0", || {
        format!("/dev/mem inside: {out:?}")
    })
}
