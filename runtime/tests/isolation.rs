//! Real containers, as root: each namespace's isolation checked from inside the container
//! and, where it can be, from the host.

mod common;

use common::Fixture;
use serde_json::json;

#[test]
fn init_is_pid1_and_proc_shows_only_the_container() {
    let mut f = Fixture::new();
    let (code, out, err) = f.run(&["sh", "-c", "echo pid=$$; ls /proc | grep -c '^[0-9]'"], |_| {});
    assert_eq!(code, 0, "stderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "pid=1");
    // sh (pid 1), ls and grep: nothing from the host.
    let n: u32 = lines[1].trim().parse().unwrap();
    assert!(n <= 3, "container sees {n} processes in /proc");
}

#[test]
fn hostname_and_domainname_are_set_and_host_unchanged() {
    let mut f = Fixture::new();
    let host_before = nix::unistd::gethostname().unwrap();
    let script = "hostname; cat /proc/sys/kernel/domainname; hostname changed && hostname";
    let (code, out, err) = f.run(&["sh", "-c", script], |s| {
        s["hostname"] = json!("box1");
        s["domainname"] = json!("example.test");
        // Changing the hostname needs CAP_SYS_ADMIN (in the container's uts namespace).
        for set in ["bounding", "effective", "permitted"] {
            s["process"]["capabilities"][set].as_array_mut().unwrap().push(json!("CAP_SYS_ADMIN"));
        }
    });
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "box1\nexample.test\nchanged\n");
    assert_eq!(nix::unistd::gethostname().unwrap(), host_before);
}

#[test]
fn root_is_the_bundle_rootfs_and_old_root_is_gone() {
    let mut f = Fixture::new();
    let marker = f.bundle().join("rootfs/marker");
    std::fs::write(&marker, "inside\n").unwrap();
    let script = "cat /marker; awk '$5 == \"/\"' /proc/self/mountinfo | wc -l; cat /proc/self/mountinfo";
    let (code, out, err) = f.run(&["sh", "-c", script], |_| {});
    assert_eq!(code, 0, "stderr: {err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("inside"));
    assert_eq!(lines.next().map(str::trim), Some("1"), "exactly one mount at / inside");
    // Every mount point (field 5) lies in the container's own tree: nothing of the host's
    // root (its /tmp, /home, /work, /boot...) is reachable.
    let points: Vec<&str> = lines.filter_map(|l| l.split_whitespace().nth(4)).collect();
    let allowed = ["/", "/proc", "/dev", "/sys"];
    for p in &points {
        assert!(
            allowed.iter().any(|a| p == a || p.starts_with(&format!("{a}/"))),
            "unexpected mount point {p}: {points:#?}"
        );
    }
}

#[test]
fn readonly_root_gives_erofs() {
    let mut f = Fixture::new();
    let (code, out, _) =
        f.run(&["sh", "-c", "touch /newfile 2>&1; echo rc=$?"], |s| s["root"]["readonly"] = json!(true));
    assert_eq!(code, 0);
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(out.contains("rc=1"), "{out}");
    assert!(!f.bundle().join("rootfs/newfile").exists());
}

#[test]
fn masked_and_readonly_paths_hold() {
    let mut f = Fixture::new();
    let (code, out, err) = f.run(
        &[
            "sh",
            "-c",
            "wc -c < /proc/keys; ls /proc/acpi | wc -l; echo 1 > /proc/sys/kernel/sysrq 2>&1 || echo ro-ok",
        ],
        |_| {},
    );
    assert_eq!(code, 0, "stderr: {err}");
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(lines[0], "0", "/proc/keys masked by /dev/null");
    assert_eq!(lines[1], "0", "/proc/acpi masked by an empty tmpfs");
    assert!(out.contains("ro-ok"), "/proc/sys is read-only: {out}");
}

#[test]
fn user_namespace_maps_root_to_an_unprivileged_id() {
    let mut f = Fixture::new();
    let (code, out, err) = f.run(&["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u"], |s| {
        s["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
        s["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        s["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        // sysfs cannot be mounted by a user namespace that doesn't own the netns: fine here,
        // the netns is new too.
    });
    assert_eq!(code, 0, "stderr: {err}");
    let fields: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(fields[0], ["0", "100000", "65536"]);
    assert_eq!(fields[1], ["0", "100000", "65536"]);
    assert_eq!(fields[2], ["0"]);
}

#[test]
fn new_netns_has_only_lo() {
    let mut f = Fixture::new();
    let (code, out, err) = f.run(&["sh", "-c", "ls /sys/class/net"], |_| {});
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["lo"]);
}

#[test]
fn sysv_ipc_key_does_not_meet_the_hosts() {
    let mut f = Fixture::new();
    // A System V shm segment on the host; the container must not see it.
    let key = 0x1501_0000 + (std::process::id() as i32 & 0xffff);
    // SAFETY: shmget takes plain integers and returns an id or -1; no pointers involved.
    let shmid = unsafe { libc::shmget(key, 4096, libc::IPC_CREAT | 0o600) };
    assert!(shmid >= 0, "shmget on the host failed");
    let (code, out, err) = f.run(&["sh", "-c", "cat /proc/sysvipc/shm | wc -l"], |_| {});
    // SAFETY: removes the segment we created; IPC_RMID ignores the buffer pointer.
    unsafe { libc::shmctl(shmid, libc::IPC_RMID, std::ptr::null_mut()) };
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out.trim(), "1", "only the header line: the host's segment is invisible");
}

#[test]
fn time_namespace_offsets_apply_to_monotonic() {
    let mut f = Fixture::new();
    let (code, out, err) = f.run(&["cat", "/proc/uptime"], |s| {
        s["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "time"}));
        s["linux"]["timeOffsets"] = json!({"boottime": {"secs": 864000}, "monotonic": {"secs": 864000}});
    });
    assert_eq!(code, 0, "stderr: {err}");
    let up: f64 = out.split_whitespace().next().unwrap().parse().unwrap();
    assert!(up >= 864000.0, "uptime {up} does not include the 10-day boottime offset");
}

#[test]
fn exit_code_of_the_process_is_returned() {
    let mut f = Fixture::new();
    let (code, _, _) = f.run(&["sh", "-c", "exit 7"], |_| {});
    assert_eq!(code, 7);
}
