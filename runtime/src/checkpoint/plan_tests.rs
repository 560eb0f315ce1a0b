//! Table tests of the pure checkpoint plans.
use super::*;
use test_case::test_case;

#[test_case("Version: 3.17.1\n", Some((3, 17, 1)); "debian bookworm")]
#[test_case("Version: 3.19\nGitID: v3.19\n", Some((3, 19, 0)); "no patch, git id")]
#[test_case("Version: 4.0-rc1\n", Some((4, 0, 0)); "rc suffix")]
#[test_case("criu: command not found", None; "garbage")]
#[test_case("Version: x.y", None; "not numbers")]
fn versions(out: &str, want: Option<(u32, u32, u32)>) {
    assert_eq!(parse_criu_version(out), want);
}

#[test]
fn error_line_skips_helper_noise_and_the_summary() {
    let log = "(00.01) Error (criu/util.c:642): exited, status=1\n\
               (00.14) Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds\n\
               (00.14) Error (criu/crtools.c:260): Could not initialize kernel features detection.\n";
    assert_eq!(
        criu_error_line(log).unwrap(),
        "Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds"
    );
    let log = "(0.3) Error (criu/cr-dump.c:203): 75 has rseq but kernel lacks get_rseq_conf feature\n\
               (0.3) Error (criu/cr-dump.c:2053): Dumping FAILED.\n";
    assert!(criu_error_line(log).unwrap().contains("rseq"));
    // debian-7.2 without a tun device: an optional probe's error comes first.
    let log = "(0.1) Error (criu/tun.c:85): tun: Unable to create tun: No such file or directory\n\
               (0.1) Error (criu/sockets.c:209): sockets: Diag module missing (-2)\n\
               (0.2) Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds\n";
    assert!(criu_error_line(log).unwrap().contains("vDSO"));
    assert_eq!(
        criu_error_line("(0.3) Error (x.c:1): Dumping FAILED.\n").unwrap(),
        "Error (x.c:1): Dumping FAILED."
    );
    assert_eq!(criu_error_line("a\nlast words\n\n").unwrap(), "last words");
    assert_eq!(criu_error_line(""), None);
}

#[test_case("pipe:[1234]", Some(7), 1234, false, Some("pipe:[1234]"); "pipe")]
#[test_case("socket:[99]", Some(7), 99, true, Some("socket:[99]"); "socket")]
#[test_case("/dev/null", Some(0x1f), 0x10, false, Some("file[1f:10]"); "host file is external")]
#[test_case("/dev/null", Some(0x1f), 0x10, true, None; "container file dumped as is")]
#[test_case("/x", None, 5, false, None; "no mount id")]
fn stdio_keys(link: &str, mnt: Option<u64>, ino: u64, inside: bool, want: Option<&str>) {
    assert_eq!(stdio_key(link, mnt, ino, inside).as_deref(), want);
}

fn spec(mounts: serde_json::Value) -> Spec {
    serde_json::from_value(serde_json::json!({ "ociVersion": "1.0.2", "mounts": mounts })).unwrap()
}

#[test]
fn only_bind_mounts_are_external_and_relative_sources_use_the_bundle() {
    let s = spec(serde_json::json!([
        { "destination": "/proc", "type": "proc", "source": "proc" },
        { "destination": "/data", "type": "bind", "source": "/srv/data" },
        { "destination": "/conf", "source": "conf", "options": ["rbind", "ro"] },
        { "destination": "/tmp", "type": "tmpfs", "source": "tmpfs" }
    ]));
    let b = bind_mounts(&s, Path::new("/b"));
    assert_eq!(
        b,
        vec![
            BindMount { destination: "/data".into(), source: "/srv/data".into() },
            BindMount { destination: "/conf".into(), source: "/b/conf".into() },
        ]
    );
}

#[test]
fn dump_arguments() {
    let p = DumpPlan {
        pid: 42,
        images: "/img".into(),
        work: "/work".into(),
        root: "/b/rootfs".into(),
        leave_running: true,
        tcp_established: false,
        file_locks: true,
        binds: vec![BindMount { destination: "/data".into(), source: "/srv/data".into() }],
        external_files: vec!["file[1f:10]".into()],
        network_lock: network_lock(false),
    };
    let a = dump_args(&p).join(" ");
    assert!(a.starts_with("dump --tree 42 --images-dir /img --work-dir /work --log-file dump.log"), "{a}");
    assert!(a.contains("--root /b/rootfs"), "{a}");
    assert!(a.contains("--external mnt[/data]:/data"), "{a}");
    assert!(a.contains("--external file[1f:10]"), "{a}");
    assert!(a.contains("--leave-running") && a.contains("--file-locks"), "{a}");
    assert!(!a.contains("--tcp-established"), "{a}");
    assert!(a.contains("--network-lock nftables"), "{a}");
    assert_eq!(network_lock(true), None, "iptables-restore present: CRIU's default, as runc");
    let a = dump_args(&DumpPlan { network_lock: None, ..p }).join(" ");
    assert!(!a.contains("--network-lock"), "CRIU's default; {a}");
}

#[test]
fn restore_arguments() {
    let p = RestorePlan {
        images: "/img".into(),
        work: "/img".into(),
        root: "/run/isorun/c/criu-root".into(),
        pid_file: "/run/isorun/c/criu.pid".into(),
        tcp_established: true,
        file_locks: false,
        binds: vec![BindMount { destination: "/data".into(), source: "/srv/new".into() }],
        stdio: vec![(0, "file[1f:10]".into()), (1, "pipe:[77]".into())],
        cgroup_root: Some("/isorun/new".into()),
        network_lock: None,
    };
    let a = restore_args(&p).join(" ");
    assert!(a.starts_with("restore --images-dir /img --work-dir /img --log-file restore.log"), "{a}");
    assert!(a.contains("--root /run/isorun/c/criu-root --restore-detached"), "{a}");
    assert!(a.contains("--pidfile /run/isorun/c/criu.pid"), "{a}");
    assert!(a.contains("--manage-cgroups=soft") && a.contains("--cgroup-root /isorun/new"), "{a}");
    assert!(a.contains("--external mnt[/data]:/srv/new"), "{a}");
    assert!(a.contains("--inherit-fd fd[0]:file[1f:10] --inherit-fd fd[1]:pipe:[77]"), "{a}");
    assert!(a.contains("--tcp-established") && !a.contains("--file-locks"), "{a}");
}

fn spec_with(mounts: serde_json::Value, namespaces: serde_json::Value) -> Spec {
    serde_json::from_value(serde_json::json!({
        "ociVersion": "1.0.2",
        "mounts": mounts,
        "linux": { "namespaces": namespaces }
    }))
    .unwrap()
}

const HIERARCHIES: &[(&str, &str)] =
    &[("cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct/c"), ("misc", "/sys/fs/cgroup/misc/c")];

#[test_case(serde_json::json!([{"type": "mount"}]), &["/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/misc"]; "no cgroup namespace: one external bind per hierarchy")]
#[test_case(serde_json::json!([{"type": "mount"}, {"type": "cgroup"}]), &[]; "a cgroup namespace: fresh mounts, nothing external")]
fn cgroup_mount_binds(namespaces: serde_json::Value, want: &[&str]) {
    let s = spec_with(
        serde_json::json!([
            { "destination": "/sys/fs/cgroup/", "type": "cgroup", "source": "cgroup", "options": ["ro"] },
            { "destination": "/proc", "type": "proc", "source": "proc" }
        ]),
        namespaces,
    );
    let h: Vec<(String, PathBuf)> =
        HIERARCHIES.iter().map(|(n, d)| (n.to_string(), PathBuf::from(d))).collect();
    let b = cgroup_binds(&s, &h);
    assert_eq!(b.iter().map(|b| b.destination.as_str()).collect::<Vec<_>>(), want);
    for (bind, (_, dir)) in b.iter().zip(HIERARCHIES) {
        assert_eq!(bind.source, PathBuf::from(dir));
    }
}

#[test]
fn no_cgroup_mount_no_cgroup_binds() {
    let s = spec_with(
        serde_json::json!([{ "destination": "/proc", "type": "proc", "source": "proc" }]),
        serde_json::json!([]),
    );
    let h = vec![("misc".to_string(), PathBuf::from("/sys/fs/cgroup/misc/c"))];
    assert!(cgroup_binds(&s, &h).is_empty());
}

#[test_case("12:misc:/user/x\n2:cpu,cpuacct:/user/x\n0::/user/x\n", "12:misc:/isorun/c\n2:cpu,cpuacct:/isorun/c\n0::/isorun/c\n"; "every hierarchy")]
#[test_case("", ""; "empty")]
fn cgroup_text_retargeted(own: &str, want: &str) {
    assert_eq!(cgroup_text_at(own, "/isorun/c"), want);
}
