//! A config without a mount namespace (runc runs it): the container shares the caller's
//! mount namespace and chroots into its rootfs. Every isorun command here runs inside one
//! scratch mount namespace of the test's own (`unshare -m --propagation private`), so the
//! host's mount table is never touched; a script prints what it saw there.

mod common;

use std::process::Command;

use common::{text, Fixture, ISORUN};
use serde_json::{json, Value};

/// The default config without a mount namespace and without what runc refuses then.
fn no_mount_ns(c: &mut Value) {
    let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
    ns.retain(|n| n["type"] != "mount");
    c["linux"]["maskedPaths"] = json!([]);
    c["linux"]["readonlyPaths"] = json!([]);
    c["hostname"] = json!("nomnt");
}

/// Run `script` (with $ISORUN, $ROOT, $BUNDLE, $ROOTFS, $ID set) in a fresh private mount
/// namespace; (exit code, stdout, stderr).
fn in_scratch_ns(f: &Fixture, id: &str, script: &str) -> (i32, String, String) {
    let rootfs = f.bundle().join("rootfs");
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .env("ISORUN", ISORUN)
        .env("ROOT", f.root())
        .env("BUNDLE", f.bundle())
        .env("ROOTFS", &rootfs)
        .env("ID", id)
        .output()
        .expect("unshare (util-linux) must be installed");
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// The value printed after `key=` on a line of its own.
fn field<'a>(out: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}=");
    out.lines().find_map(|l| l.strip_prefix(prefix.as_str())).unwrap_or_else(|| panic!("no {key} in {out}"))
}

#[test]
fn runs_on_its_rootfs_and_delete_leaves_no_mount() {
    let mut f = Fixture::new();
    f.config(&["sleep", "100"], no_mount_ns);
    let id = f.id("nomnt");
    let script = r#"
        set -e
        "$ISORUN" --root "$ROOT" run -d --bundle "$BUNDLE" "$ID"
        pid=$("$ISORUN" --root "$ROOT" state "$ID" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
        echo "root=$(readlink /proc/$pid/root)"
        echo "same_mntns=$([ "$(readlink /proc/$pid/ns/mnt)" = "$(readlink /proc/self/ns/mnt)" ] && echo yes || echo no)"
        echo "inside=$("$ISORUN" --root "$ROOT" exec "$ID" sh -c 'echo $(cat /proc/1/comm),$(hostname),$(ls /bin/busybox),$(touch /x 2>/dev/null && echo rw || echo ro)')"
        echo "proc_mounted=$(grep -c " $ROOTFS/proc " /proc/self/mountinfo || true)"
        echo "mounts_while_running=$(grep -c " $ROOTFS" /proc/self/mountinfo || true)"
        "$ISORUN" --root "$ROOT" delete --force "$ID"
        echo "mounts_after_delete=$(grep -c " $ROOTFS" /proc/self/mountinfo || true)"
    "#;
    let (code, out, err) = in_scratch_ns(&f, &id, script);
    assert_eq!(code, 0, "script failed\nstdout: {out}\nstderr: {err}");
    let rootfs = f.bundle().join("rootfs");
    assert_eq!(field(&out, "root"), rootfs.to_str().unwrap(), "the init is chrooted into its rootfs");
    assert_eq!(field(&out, "same_mntns"), "yes", "the init shares the caller's mount namespace");
    assert_eq!(
        field(&out, "inside"),
        "sleep,nomnt,/bin/busybox,ro",
        "PID 1, hostname, its /bin, root.readonly"
    );
    assert_eq!(field(&out, "proc_mounted"), "1", "the container's /proc is a mount in the caller's ns");
    assert!(field(&out, "mounts_while_running").parse::<u32>().unwrap() >= 5, "{out}");
    assert_eq!(field(&out, "mounts_after_delete"), "0", "delete left mounts behind: {out}");
}

#[test]
fn failed_create_leaves_no_mount() {
    let mut f = Fixture::new();
    // createRuntime runs once every mount is in place, just before the chroot.
    f.config(&["true"], |c| {
        no_mount_ns(c);
        c["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]});
    });
    let id = f.id("nomnt-fail");
    let script = r#"
        if "$ISORUN" --root "$ROOT" create --bundle "$BUNDLE" "$ID"; then echo created=yes; else echo created=no; fi
        echo "mounts_after=$(grep -c " $ROOTFS" /proc/self/mountinfo || true)"
    "#;
    let (code, out, err) = in_scratch_ns(&f, &id, script);
    assert_eq!(code, 0, "script failed\nstdout: {out}\nstderr: {err}");
    assert_eq!(field(&out, "created"), "no", "the failing hook must fail create: {err}");
    assert!(err.contains("createRuntime"), "{err}");
    assert_eq!(field(&out, "mounts_after"), "0", "a failed create left mounts behind: {out}");
}

#[test]
fn masked_paths_without_mount_ns_refused_by_name() {
    let mut f = Fixture::new();
    f.config(&["true"], |c| {
        no_mount_ns(c);
        c["linux"]["maskedPaths"] = json!(["/proc/kcore"]);
    });
    let id = f.id("nomnt-masked");
    let script = r#"
        "$ISORUN" --root "$ROOT" create --bundle "$BUNDLE" "$ID"
        echo "code=$?"
        echo "mounts_after=$(grep -c " $ROOTFS" /proc/self/mountinfo || true)"
    "#;
    let (_, out, err) = in_scratch_ns(&f, &id, script);
    assert_ne!(field(&out, "code"), "0", "create must refuse");
    assert!(
        err.contains("linux.maskedPaths: unable to restrict sys entries without a private MNT namespace"),
        "{err}"
    );
    assert_eq!(field(&out, "mounts_after"), "0", "{out}");
}
