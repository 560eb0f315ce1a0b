//! Escapes through paths the runtime mounts onto while it sets the container up: a rootfs
//! whose `/dev/null` (used to mask paths, CVE-2025-31133) or `/dev/console` (terminal: true,
//! CVE-2025-52565) is a symlink into host procfs, and a mount destination swapped for a
//! symlink by a second container while the first is created (CVE-2021-30465).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::escape::{in_guest, sh, with_host, HostFiles, HELPER_FILES};
use super::escape_console::run_with_console;
use super::util::add_mount;
use super::{Assertion, Ctx, Verdict};
use crate::v;

/// How many times the victim of the mount race is created.
const RACE_ROUNDS: usize = 12;

/// The assertions of this theme.
pub fn assertions() -> Vec<Assertion> {
    vec![
        Assertion {
            id: "escape.cve_2025_31133_devnull",
            description: "CVE-2025-31133: with the rootfs's /dev/null a symlink to core_pattern and no /dev tmpfs, every masked path still reads empty; host procfs is unchanged",
            needs: &[],
            check: devnull,
            weaken: unmasked,
        },
        Assertion {
            id: "escape.cve_2025_52565_console",
            description: "CVE-2025-52565: with the rootfs's /dev/console a symlink to core_pattern and terminal: true, nothing is mounted over procfs; host procfs is unchanged",
            needs: &[],
            check: console,
            weaken: console_over_core_pattern,
        },
        Assertion {
            id: "escape.cve_2021_30465_mount_race",
            description: "CVE-2021-30465: a mount destination a second container swaps with a symlink (12 creations) is mounted inside the rootfs or refused",
            needs: &[],
            check: mount_race,
            weaken: no_victim_mount,
        },
    ]
}

fn unmasked(cfg: &mut Value) {
    cfg["linux"]["maskedPaths"] = json!([]);
}

/// Negative control: the config itself bind-mounts the container's /dev/console over
/// core_pattern, which is what a runtime following the symlink does.
fn console_over_core_pattern(cfg: &mut Value) {
    add_mount(
        cfg,
        json!({ "destination": "/proc/sys/kernel/core_pattern", "type": "bind", "source": "/dev/null", "options": ["bind"] }),
    );
}

/// Negative control: the victim's volume is not mounted at all (the check must notice a mount
/// that is not where the container sees it).
fn no_victim_mount(cfg: &mut Value) {
    if let Some(m) = cfg["mounts"].as_array_mut() {
        m.retain(|m| m["destination"] != "/vol/d");
    }
}

/// A rootfs of its own (busybox linked from the shared one) with `links` (path, target)
/// planted as symlinks; recreated on every call.
fn private_rootfs(ctx: &Ctx, name: &str, links: &[(&str, &str)]) -> Result<PathBuf, Verdict> {
    let err =
        |what: &str, p: &Path, e: std::io::Error| Verdict::error(format!("{what} {}: {e}", p.display()));
    let dir = ctx.dir().join(format!("rootfs-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| err("mkdir", &bin, e))?;
    for e in std::fs::read_dir(ctx.rootfs().join("bin")).map_err(|e| err("read", &bin, e))?.flatten() {
        let to = bin.join(e.file_name());
        let r = match std::fs::read_link(e.path()) {
            Ok(target) => std::os::unix::fs::symlink(target, &to),
            Err(_) => std::fs::hard_link(e.path(), &to).or_else(|_| std::fs::copy(e.path(), &to).map(drop)),
        };
        r.map_err(|e| err("link", &to, e))?;
    }
    for d in ["proc", "sys", "dev", "tmp", "etc", "root", "mnt"] {
        std::fs::create_dir_all(dir.join(d)).map_err(|e| err("mkdir", &dir, e))?;
    }
    for (path, target) in links {
        let p = dir.join(path);
        std::os::unix::fs::symlink(target, &p).map_err(|e| err("symlink", &p, e))?;
    }
    ctx.give_to_runtime_user(&dir).map_err(Verdict::error)?;
    Ok(dir)
}

/// The base config on `rootfs` without a /dev tmpfs (the runtime makes the devices in the
/// rootfs's own /dev, where the symlink waits).
fn config_on(ctx: &Ctx, rootfs: &Path) -> Value {
    let mut cfg = ctx.config(&[]);
    cfg["root"]["path"] = json!(rootfs);
    if let Some(m) = cfg["mounts"].as_array_mut() {
        m.retain(|m| !matches!(m["destination"].as_str(), Some("/dev" | "/dev/shm" | "/dev/mqueue")));
    }
    cfg
}

fn devnull(ctx: &mut Ctx) -> Verdict {
    let root = v!(private_rootfs(ctx, "devnull", &[("dev/null", "/proc/sys/kernel/core_pattern")]));
    let cfg = config_on(ctx, &root);
    let masked: Vec<String> = cfg["linux"]["maskedPaths"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect();
    // Each masked path that exists: a file must read nothing, a directory list nothing. In a
    // guest each masked file is also written (a vulnerable runtime made it core_pattern).
    let write = if in_guest() { "echo '|/bin/isolab-escaped' > $p 2>/dev/null;" } else { "" };
    let script = format!(
        "for p in {}; do [ -e $p ] || continue; {write} \
         if [ -d $p ]; then echo \"$p dir $(ls -A $p | wc -l)\"; else echo \"$p file $(head -c 64 $p 2>/dev/null | wc -c)\"; fi; done",
        masked.join(" ")
    );
    let host = HostFiles::read(&HELPER_FILES);
    let out = v!(sh(ctx, cfg, &script));
    let leaks: Vec<&str> = out.stdout.lines().filter(|l| !l.ends_with(" 0")).collect();
    // A runtime may refuse the symlinked /dev/null (safe); one that runs must mask.
    let inside = if out.code != 0 && out.stdout.trim().is_empty() {
        Verdict::pass()
    } else {
        Verdict::check(out.code == 0 && leaks.is_empty() && !out.stdout.trim().is_empty(), || {
            format!(
                "masked paths show content: {leaks:?} (exit {}, stderr {:?})",
                out.code,
                out.stderr.trim()
            )
        })
    };
    with_host(inside, &host)
}

fn console(ctx: &mut Ctx) -> Verdict {
    let root = v!(private_rootfs(ctx, "console", &[("dev/console", "/proc/sys/kernel/core_pattern")]));
    let mut cfg = config_on(ctx, &root);
    cfg["process"]["terminal"] = json!(true);
    let write = if in_guest() { "echo '|/bin/isolab-escaped' > /dev/console 2>/dev/null;" } else { "" };
    let script = format!(
        "{write} echo core_pattern=$(stat -c %F /proc/sys/kernel/core_pattern); \
         echo mounted=$(grep -c ' /proc/sys/kernel/core_pattern ' /proc/self/mountinfo)"
    );
    cfg["process"]["args"] = json!(["sh", "-c", script]);
    let host = HostFiles::read(&HELPER_FILES);
    let out = v!(run_with_console(ctx, cfg));
    let text = out.replace('\r', "");
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| l.contains('=')).collect();
    let ok = lines.len() == 2 && lines[0].starts_with("core_pattern=regular") && lines[1] == "mounted=0";
    let inside = Verdict::check(ok, || format!("inside the terminal: {text:?}"));
    with_host(inside, &host)
}

fn mount_race(ctx: &mut Ctx) -> Verdict {
    let vol = ctx.dir().join("race-vol");
    let src = ctx.dir().join("race-src");
    // The symlink's target is the host path of a directory inside the shared rootfs: followed
    // on the host side (the CVE) the mount shows inside at /mnt/race-landing; resolved inside
    // the rootfs (safe) it shows at <that host path> below the container's root.
    let landing = ctx.rootfs().join("mnt/race-landing");
    for d in [&vol.join("d"), &src, &landing] {
        if let Err(e) = std::fs::create_dir_all(d) {
            return Verdict::error(format!("mkdir {}: {e}", d.display()));
        }
    }
    let _ = std::os::unix::fs::symlink(&landing, vol.join("lnk"));
    let bind = |src: &Path, dest: &str| json!({ "destination": dest, "type": "bind", "source": src, "options": ["rbind", "rw"] });
    // The racer swaps the directory d and the symlink lnk as fast as it can.
    let mut racer = ctx.config(&[
        "sh",
        "-c",
        "cd /vol; while [ ! -e stop ]; do mv -T d d.dir; mv -T lnk d; mv -T d lnk; mv -T d.dir d; done",
    ]);
    add_mount(&mut racer, bind(&vol, "/vol"));
    // Where its mount of race-src is, from its own mount table (the racer keeps renaming the
    // directory, so looking at files would race); a mount outside its root is not listed.
    let awk = "awk '$4 ~ /race-src/ {print \"mnt=\" $5}' /proc/self/mountinfo; echo end";
    let mut victim = ctx.config(&["sh", "-c", awk]);
    add_mount(&mut victim, bind(&vol, "/vol"));
    add_mount(&mut victim, bind(&src, "/vol/d"));
    let safe = ["mnt=/vol/d".to_owned(), "mnt=/vol/d.dir".to_owned(), format!("mnt={}", landing.display())];
    // Without the racer the victim must see its mount (else the check proves nothing).
    let warm = v!(ctx.run(victim.clone()));
    if !warm.stdout.lines().any(|l| l == "mnt=/vol/d") {
        return Verdict::fail(format!(
            "the victim's mount is not inside its rootfs even without a race: {:?} {:?}",
            warm.stdout.trim(),
            warm.stderr.trim()
        ));
    }
    let r = v!(ctx.start(racer));
    // A victim can also start with no such mount: its runtime made a new `d` while the
    // racer had moved the directory away, and the racer's next rename replaced that
    // mountpoint, which detaches the mount (the kernel does that across namespaces). That is
    // the racer's doing inside the volume, not an escape: the symlink only ever points at the
    // landing, so a mount that followed it from the host's root shows as /mnt/race-landing.
    let (mut landed, mut refused, mut detached, mut bad) = (0, 0, 0, Vec::new());
    for _ in 0..RACE_ROUNDS {
        let out = v!(ctx.run(victim.clone()));
        let mounts: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with("mnt=")).collect();
        match (out.code, mounts.as_slice()) {
            (0, []) => detached += 1,
            (0, [m]) if safe.iter().any(|s| s == m) => landed += 1,
            (0, _) => bad.push(mounts.join(" ")),
            _ => refused += 1,
        }
    }
    let _ = std::fs::write(vol.join("stop"), "");
    ctx.delete(&r.id);
    let _ = std::fs::remove_dir(&landing);
    Verdict::check(bad.is_empty(), || {
        format!(
            "{landed} mounted inside, {refused} refused, {detached} detached by the racer, {} elsewhere: \
             {bad:?} (/mnt/race-landing: the symlink was followed from the host's root)",
            bad.len()
        )
    })
}
