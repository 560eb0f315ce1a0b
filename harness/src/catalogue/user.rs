//! user namespace: root inside is an unprivileged id outside, files of unmapped owners show
//! as the overflow id, and container root cannot act on host-owned files.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use serde_json::{json, Value};

use super::util::{add_mount, add_namespace, drop_namespace, status_field};
use super::{Assertion, Ctx, Need, Verdict};
use crate::v;

const NEEDS: &[Need] = &[Need::Namespace("user")];

/// The first host id of the map: container 0..65536 is host 100000..165536.
const HOST_BASE: u32 = 100_000;
const MAP_SIZE: u32 = 65_536;

/// The user assertions.
pub fn assertions() -> Vec<Assertion> {
    vec![
        Assertion {
            id: "user.root_maps_to_unprivileged",
            description: "uid 0 inside a user namespace is uid 100000 on the host",
            needs: NEEDS,
            check: root_maps_to_unprivileged,
            weaken: no_userns,
        },
        Assertion {
            id: "user.unmapped_owner_is_overflow",
            description: "a file owned by an unmapped host id shows as the overflow uid/gid inside",
            needs: NEEDS,
            check: unmapped_owner_is_overflow,
            weaken: no_userns,
        },
        Assertion {
            id: "user.container_root_cannot_touch_host_files",
            description: "container root cannot create a file in a bind-mounted host-root-owned 0755 dir",
            needs: NEEDS,
            check: cannot_touch_host_files,
            weaken: no_userns,
        },
    ]
}

/// The negative control: no user namespace, no maps (container root is host root).
fn no_userns(cfg: &mut Value) {
    drop_namespace(cfg, "user");
    if let Some(linux) = cfg["linux"].as_object_mut() {
        linux.remove("uidMappings");
        linux.remove("gidMappings");
    }
}

/// The base config running `args` in a new user namespace mapping 0 → 100000 (size 65536).
/// The work dir gets o+x so the mapped root (an "other" on the host) can reach the rootfs.
fn userns_config(ctx: &Ctx, args: &[&str]) -> Result<Value, Verdict> {
    make_traversable(ctx.dir())?;
    let mut cfg = ctx.config(args);
    add_namespace(&mut cfg, "user");
    // Docker's base sets ping_group_range to 0..2^31-1: the kernel refuses (EINVAL) gids the
    // namespace does not map, so under a user namespace it can only be left out.
    if let Some(sysctl) = cfg.pointer_mut("/linux/sysctl").and_then(Value::as_object_mut) {
        sysctl.remove("net.ipv4.ping_group_range");
    }
    let map = json!([{ "containerID": 0, "hostID": HOST_BASE, "size": MAP_SIZE }]);
    cfg["linux"]["uidMappings"] = map.clone();
    cfg["linux"]["gidMappings"] = map;
    Ok(cfg)
}

/// Add o+x to `dir` (a temp dir is 0700): the mapped root must traverse it to the rootfs.
fn make_traversable(dir: &Path) -> Result<(), Verdict> {
    let meta = std::fs::metadata(dir).map_err(|e| Verdict::error(format!("stat {}: {e}", dir.display())))?;
    let mode = meta.permissions().mode();
    if mode & 0o001 == 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode((mode | 0o001) & 0o7777))
            .map_err(|e| Verdict::error(format!("chmod o+x {}: {e}", dir.display())))?;
    }
    Ok(())
}

fn root_maps_to_unprivileged(ctx: &mut Ctx) -> Verdict {
    let cfg = v!(userns_config(ctx, &["sleep", "300"]));
    let c = v!(ctx.start(cfg));
    // From the host: every uid of the detached init (real, effective, saved, fs) is 100000.
    let host_uid = status_field(c.pid, "Uid").unwrap_or_default();
    let host_gid = status_field(c.pid, "Gid").unwrap_or_default();
    let want = HOST_BASE.to_string();
    let host_ok = [&host_uid, &host_gid].iter().all(|f| {
        let ids: Vec<&str> = f.split_whitespace().collect();
        ids.len() == 4 && ids.iter().all(|id| *id == want)
    });
    // From inside: id 0, and the map in uid_map/gid_map.
    let out = ctx.exec(&c, &["sh", "-c", "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map"]);
    if out.code != 0 {
        return Verdict::fail(format!("exec failed ({}): {}", out.code, out.stderr.trim()));
    }
    let l = out.lines();
    let map_line = |s: &&str| s.split_whitespace().collect::<Vec<_>>() == ["0", want.as_str(), "65536"];
    let inside_ok = l.len() == 4 && l[0] == "0" && l[1] == "0" && map_line(&l[2]) && map_line(&l[3]);
    Verdict::check(host_ok && inside_ok, || {
        format!("host Uid: {host_uid:?} Gid: {host_gid:?}; inside id -u, id -g, uid_map, gid_map: {l:?}")
    })
}

fn unmapped_owner_is_overflow(ctx: &mut Ctx) -> Verdict {
    let file = ctx.rootfs().join("bin/busybox");
    let meta =
        v!(std::fs::metadata(&file).map_err(|e| Verdict::error(format!("stat {}: {e}", file.display()))));
    if (HOST_BASE..HOST_BASE + MAP_SIZE).contains(&meta.uid())
        || (HOST_BASE..HOST_BASE + MAP_SIZE).contains(&meta.gid())
    {
        return Verdict::error(format!("{} is owned by a mapped host id", file.display()));
    }
    let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_owned()).unwrap_or_default();
    let (host_ou, host_og) = (read("/proc/sys/kernel/overflowuid"), read("/proc/sys/kernel/overflowgid"));
    let cfg = v!(userns_config(
        ctx,
        &[
            "sh",
            "-c",
            "stat -c '%u %g' /bin/busybox; cat /proc/sys/kernel/overflowuid /proc/sys/kernel/overflowgid"
        ]
    ));
    let out = v!(ctx.run_ok(cfg));
    let l = out.lines();
    let want = format!("{host_ou} {host_og}");
    let ok = l.len() == 3 && l[0] == want && l[1] == host_ou && l[2] == host_og;
    Verdict::check(ok, || {
        format!(
            "host owner {}:{} of /bin/busybox shows inside as {:?}; overflow ids host {want:?}, inside {:?}",
            meta.uid(),
            meta.gid(),
            l.first(),
            l.get(1..)
        )
    })
}

fn cannot_touch_host_files(ctx: &mut Ctx) -> Verdict {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let host_dir = ctx.dir().join(format!("host-owned-{n}"));
    let _ = std::fs::remove_dir_all(&host_dir);
    let made = std::fs::create_dir(&host_dir)
        .and_then(|()| std::fs::set_permissions(&host_dir, std::fs::Permissions::from_mode(0o755)));
    v!(made.map_err(|e| Verdict::error(format!("make {}: {e}", host_dir.display()))));
    let meta = v!(std::fs::metadata(&host_dir).map_err(|e| Verdict::error(format!("stat: {e}"))));
    if meta.uid() != 0 {
        return Verdict::error(format!("{} is owned by uid {}, not root", host_dir.display(), meta.uid()));
    }
    let mut cfg = v!(userns_config(ctx, &["sh", "-c", "touch /mnt/from-container 2>&1; echo rc=$?"]));
    add_mount(
        &mut cfg,
        json!({ "destination": "/mnt", "type": "bind", "source": host_dir, "options": ["rbind", "rw"] }),
    );
    let out = v!(ctx.run_ok(cfg));
    let created = host_dir.join("from-container").exists();
    let _ = std::fs::remove_dir_all(&host_dir);
    let denied = !out.stdout.contains("rc=0") && out.stdout.to_lowercase().contains("permission denied");
    Verdict::check(denied && !created, || {
        format!(
            "touch in the host-owned dir from inside: {:?}; file on the host: {created}",
            out.stdout.trim()
        )
    })
}
