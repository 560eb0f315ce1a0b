//! mount namespace: the root is the bundle's rootfs, the old root is gone, mounts do not leak
//! out or propagate in, a readonly root gives EROFS, maskedPaths and readonlyPaths hold.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use super::util::{add_cap, add_mount};
use super::{Assertion, Ctx, Need, Verdict};
use crate::v;

const NEEDS: &[Need] = &[Need::Namespace("mnt")];

/// The mount assertions.
pub fn assertions() -> Vec<Assertion> {
    vec![
        Assertion {
            id: "mount.root_is_bundle_rootfs",
            description: "the container's / is the bundle rootfs (marker file, same device and inode)",
            needs: NEEDS,
            check: root_is_bundle_rootfs,
            weaken: |cfg| cfg["root"]["path"] = json!("/"),
        },
        Assertion {
            id: "mount.old_root_gone",
            description:
                "no mount point inside lies outside / and the config's mounts (/proc, /dev, /sys, /tmp)",
            needs: NEEDS,
            check: old_root_gone,
            weaken: |cfg| {
                add_mount(
                    cfg,
                    json!({ "destination": "/mnt", "type": "bind", "source": "/", "options": ["rbind", "rprivate"] }),
                )
            },
        },
        Assertion {
            id: "mount.inside_mounts_invisible_to_host",
            description:
                "a tmpfs mounted inside (even under a bind of a host shared mount) never shows on the host",
            needs: NEEDS,
            check: inside_mounts_invisible,
            weaken: all_shared,
        },
        Assertion {
            id: "mount.host_mounts_do_not_propagate_in",
            description: "with rootfsPropagation rprivate a host mount made later under the rootfs stays out",
            needs: NEEDS,
            check: host_mounts_stay_out,
            weaken: |cfg| cfg["linux"]["rootfsPropagation"] = json!("rslave"),
        },
        Assertion {
            id: "mount.readonly_root_erofs",
            description: "creating a file in a readonly root fails with EROFS and nothing reaches the rootfs",
            needs: NEEDS,
            check: readonly_root_erofs,
            weaken: |cfg| cfg["root"]["readonly"] = json!(false),
        },
        Assertion {
            id: "mount.masked_paths",
            description: "maskedPaths that have content on the host read empty inside",
            needs: NEEDS,
            check: masked_paths,
            weaken: |cfg| cfg["linux"]["maskedPaths"] = json!([]),
        },
        Assertion {
            id: "mount.readonly_paths",
            description: "/proc/sys is mounted ro inside and writing /proc/sys/kernel/hostname fails EROFS",
            needs: &[Need::Namespace("mnt"), Need::Namespace("uts")],
            check: readonly_paths,
            weaken: |cfg| cfg["linux"]["readonlyPaths"] = json!([]),
        },
    ]
}

/// The negative control of `inside_mounts_invisible`: everything rshared.
fn all_shared(cfg: &mut Value) {
    cfg["linux"]["rootfsPropagation"] = json!("rshared");
    for m in cfg["mounts"].as_array_mut().into_iter().flatten() {
        if m["type"] == "bind" {
            if let Some(opts) = m["options"].as_array_mut() {
                opts.push(json!("rshared"));
            }
        }
    }
}

/// The mount points (field 5) of a mountinfo text.
fn mount_points(mountinfo: &str) -> Vec<&str> {
    mountinfo.lines().filter_map(|l| l.split_whitespace().nth(4)).collect()
}

/// The mount sources (the field after the fstype) of a mountinfo text.
fn mount_sources(mountinfo: &str) -> Vec<&str> {
    mountinfo.lines().filter_map(|l| l.split_once(" - ")?.1.split_whitespace().nth(1)).collect()
}

/// A host mount (or shared bind) undone, with the directories made for it, when dropped.
#[derive(Debug)]
struct HostMount {
    dir: PathBuf,
    remove: Vec<PathBuf>,
}

impl HostMount {
    /// Bind `dir` onto itself and make it a shared mount; `dir/sub` is made for inner mounts.
    fn shared_bind(dir: PathBuf) -> Result<Self, Verdict> {
        std::fs::create_dir_all(dir.join("sub"))
            .map_err(|e| Verdict::error(format!("mkdir {}: {e}", dir.display())))?;
        let guard = HostMount { remove: vec![dir.join("sub"), dir.clone()], dir };
        let d = guard.dir.to_string_lossy().into_owned();
        mount_cmd(&["--bind", &d, &d])?;
        mount_cmd(&["--make-shared", &d])?;
        Ok(guard)
    }

    fn sub(&self) -> PathBuf {
        self.dir.join("sub")
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        // A lazy unmount of the top detaches the whole tree (busybox umount has no -R).
        super::util::detach(&self.dir.to_string_lossy());
        for d in &self.remove {
            let _ = std::fs::remove_dir(d);
        }
    }
}

fn mount_cmd(args: &[&str]) -> Result<(), Verdict> {
    let out = Command::new("mount")
        .args(args)
        .output()
        .map_err(|e| Verdict::error(format!("run mount {args:?}: {e}")))?;
    if !out.status.success() {
        return Err(Verdict::error(format!(
            "host mount {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn host_mountinfo(pid: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default()
}

fn root_is_bundle_rootfs(ctx: &mut Ctx) -> Verdict {
    let meta = v!(std::fs::metadata(ctx.rootfs()).map_err(|e| Verdict::error(format!("stat rootfs: {e}"))));
    let out = v!(ctx.run_ok(ctx.config(&["sh", "-c", "cat /isolab-rootfs-marker && stat -c '%d %i' /"])));
    let want = format!("{} {}", meta.dev(), meta.ino());
    let l = out.lines();
    Verdict::check(l.first() == Some(&"isolab") && l.get(1) == Some(&want.as_str()), || {
        format!("inside: {l:?}; host rootfs {} has dev/inode {want}", ctx.rootfs().display())
    })
}

fn old_root_gone(ctx: &mut Ctx) -> Verdict {
    let cfg = ctx.config(&["cat", "/proc/self/mountinfo"]);
    // The container's own: its root and what its config mounts (isolab's base: /proc, /dev,
    // /sys, /tmp; containerd's adds /run, Docker's /sys/fs/cgroup), and what lies under them.
    let own: Vec<String> = cfg["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["destination"].as_str().map(|d| d.trim_end_matches('/').to_owned()))
        .collect();
    let out = v!(ctx.run_ok(cfg));
    let allowed = |p: &str| p == "/" || own.iter().any(|a| p == a || p.starts_with(&format!("{a}/")));
    let points = mount_points(&out.stdout);
    let bad: Vec<&str> = points.iter().copied().filter(|p| !allowed(p)).collect();
    if points.is_empty() {
        return Verdict::error("empty /proc/self/mountinfo inside");
    }
    Verdict::check(bad.is_empty(), || format!("mount points outside the container's own: {bad:?}"))
}

fn inside_mounts_invisible(ctx: &mut Ctx) -> Verdict {
    let pid = std::process::id();
    let host = v!(HostMount::shared_bind(ctx.dir().join(format!("shared-{pid}"))));
    let dest = format!("/mnt/isolab-shared-{pid}");
    let _ = std::fs::create_dir_all(ctx.rootfs().join(dest.trim_start_matches('/')));
    let mut cfg = ctx.config(&["sleep", "120"]);
    add_cap(&mut cfg, "CAP_SYS_ADMIN");
    add_mount(
        &mut cfg,
        json!({ "destination": dest, "type": "bind", "source": host.dir, "options": ["bind"] }),
    );
    let c = v!(ctx.start(cfg));
    let source = format!("isolab-priv-{pid}");
    let out = ctx.exec(&c, &["mount", "-t", "tmpfs", &source, &format!("{dest}/sub")]);
    if out.code != 0 {
        return Verdict::error(format!("mount inside failed ({}): {}", out.code, out.stderr.trim()));
    }
    let seen_inside = mount_sources(&host_mountinfo(&c.pid.to_string())).contains(&source.as_str());
    if !seen_inside {
        return Verdict::error(format!("the container's mountinfo (pid {}) lacks {source}", c.pid));
    }
    // Propagation is synchronous; a short grace still covers a slow reader.
    std::thread::sleep(Duration::from_millis(50));
    let host_info = host_mountinfo("self");
    let leaked = mount_sources(&host_info).contains(&source.as_str());
    drop(host);
    Verdict::check(!leaked, || format!("the tmpfs {source} mounted inside shows in the host's mountinfo"))
}

fn host_mounts_stay_out(ctx: &mut Ctx) -> Verdict {
    let pid = std::process::id();
    let rel = format!("mnt/isolab-prop-{pid}");
    let host = v!(HostMount::shared_bind(ctx.rootfs().join(&rel)));
    let cfg = ctx.config(&["sleep", "120"]);
    let note = ctx.base_note(
        cfg.pointer("/linux/rootfsPropagation").is_none(),
        "linux.rootfsPropagation unset: the runtime's default, rslave, lets host mounts in",
    );
    let c = v!(ctx.start(cfg));
    let source = format!("isolab-host-{pid}");
    let sub = host.sub().to_string_lossy().into_owned();
    v!(mount_cmd(&["-t", "tmpfs", &source, &sub]));
    if !mount_sources(&host_mountinfo("self")).contains(&source.as_str()) {
        return Verdict::error(format!("the host's own tmpfs {source} is not in its mountinfo"));
    }
    let inside = ctx.exec(&c, &["cat", "/proc/self/mountinfo"]);
    if inside.code != 0 {
        return Verdict::fail(format!("exec cat mountinfo failed: {}", inside.stderr.trim()));
    }
    let from_host = host_mountinfo(&c.pid.to_string());
    if from_host.is_empty() {
        return Verdict::error(format!("cannot read /proc/{}/mountinfo", c.pid));
    }
    let seen_inside = mount_sources(&inside.stdout).contains(&source.as_str());
    let seen_from_host = mount_sources(&from_host).contains(&source.as_str());
    Verdict::check(!seen_inside && !seen_from_host, || {
        format!(
            "host tmpfs {source} at {sub} propagated in (inside: {seen_inside}, /proc/pid: {seen_from_host}){note}"
        )
    })
}

fn readonly_root_erofs(ctx: &mut Ctx) -> Verdict {
    let name = format!("isolab-erofs-{}", std::process::id());
    let script = format!("touch /{name} 2>&1; echo rc=$?");
    let cfg = ctx.config(&["sh", "-c", &script]);
    let note =
        ctx.base_note(cfg["root"]["readonly"] != true, "root.readonly unset: the engine's root is writable");
    let out = ctx.run_ok(cfg);
    let host_file = ctx.rootfs().join(&name);
    let created = host_file.exists();
    let _ = std::fs::remove_file(&host_file);
    let out = v!(out);
    Verdict::check(
        !created && !out.stdout.contains("rc=0") && out.stdout.contains("Read-only file system"),
        || format!("touch /{name} inside: {:?}; on the host rootfs: {created}{note}", out.stdout.trim()),
    )
}

/// Base-config masked paths with content on the host: (path, is a directory).
fn masked_candidates(base: &Value) -> Vec<(String, bool)> {
    let mut found = Vec::new();
    for p in base["linux"]["maskedPaths"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        let path = Path::new(p);
        if path.is_dir() {
            if std::fs::read_dir(path).map(|mut d| d.next().is_some()).unwrap_or(false) {
                found.push((p.to_owned(), true));
            }
        } else if has_a_byte(path) {
            found.push((p.to_owned(), false));
        }
    }
    found
}

fn has_a_byte(path: &Path) -> bool {
    use std::io::Read;
    let mut b = [0u8; 1];
    std::fs::File::open(path).and_then(|mut f| f.read(&mut b)).map(|n| n == 1).unwrap_or(false)
}

fn masked_paths(ctx: &mut Ctx) -> Verdict {
    let candidates = masked_candidates(&ctx.config(&[]));
    if candidates.is_empty() {
        return Verdict::skip(format!(
            "none of the base config's maskedPaths exists with content on kernel {}",
            ctx.facts.kernel_release
        ));
    }
    let script: String = candidates
        .iter()
        .map(|(p, dir)| {
            if *dir {
                format!("echo \"{p} $(ls -A {p} | wc -l)\"; ")
            } else {
                format!("echo \"{p} $(head -c 1 {p} | wc -c)\"; ")
            }
        })
        .collect();
    let out = v!(ctx.run_ok(ctx.config(&["sh", "-c", &script])));
    let lines = out.lines();
    if lines.len() != candidates.len() {
        return Verdict::error(format!("unexpected output: {:?}", out.stdout));
    }
    let visible: Vec<&str> = lines.iter().copied().filter(|l| !l.ends_with(" 0")).collect();
    Verdict::check(visible.is_empty(), || {
        format!("masked paths with content inside (path, count): {visible:?}")
    })
}

fn readonly_paths(ctx: &mut Ctx) -> Verdict {
    let script = "echo \"opts=$(grep ' /proc/sys ' /proc/self/mountinfo | cut -d' ' -f6)\"; \
                  { cat /proc/sys/kernel/hostname > /proc/sys/kernel/hostname; } 2>&1 || echo failed";
    let cfg = ctx.config(&["sh", "-c", script]);
    let out = v!(ctx.run_ok(cfg));
    let l = out.lines();
    let opts = l.first().and_then(|o| o.strip_prefix("opts=")).unwrap_or_default();
    let ro = opts.split(',').any(|o| o == "ro");
    let erofs = out.stdout.contains("Read-only file system") && out.stdout.contains("failed");
    let write = if out.stdout.contains("failed") {
        l.get(1..).unwrap_or_default().join(" ")
    } else {
        "succeeded".into()
    };
    Verdict::check(ro && erofs, || {
        format!("/proc/sys mount options inside {opts:?}; writing kernel/hostname: {write}")
    })
}
