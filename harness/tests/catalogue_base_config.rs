//! `--base-config`: an engine's config reaches the runtime unchanged but for the documented
//! fields (catalogue/base.rs): what the container gets is read from inside, on this host.

mod common;

use isolab_harness::catalogue::{BaseConfig, Ctx};
use test_case::test_case;

const CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
];

fn mask(cfg: &serde_json::Value) -> u64 {
    cfg["process"]["capabilities"]["bounding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| 1u64 << CAPS.iter().position(|k| c == *k).unwrap_or_else(|| panic!("cap {c}")))
        .fold(0, |a, b| a | b)
}

fn field<'a>(status: &'a str, name: &str) -> &'a str {
    status.lines().find_map(|l| l.strip_prefix(&format!("{name}:"))).map(str::trim).unwrap_or("")
}

/// podman's base raises RLIMIT_NOFILE to 1048576: a host without CAP_SYS_RESOURCE (this
/// one's bounding set lacks it) cannot, with any runtime; the test says so and stops.
#[test_case("spec")]
#[test_case("docker")]
#[test_case("podman")]
#[test_case("containerd")]
fn the_engine_config_reaches_the_container(name: &str) {
    let dir = tempfile::Builder::new().prefix("isolab-base-").tempdir_in("/tmp").unwrap();
    let mut ctx = Ctx::new(&common::isorun(), dir.path(), std::path::Path::new("/bin/busybox")).unwrap();
    let base = BaseConfig::parse(name).unwrap();
    ctx.set_base(&base).unwrap();
    let engine = base.json().unwrap();
    let script = "cat /proc/self/status; echo ---; cat /proc/self/limits; echo ---; \
                  (touch /isolab-rw && echo rw) 2>/dev/null; ls /etc";
    let out = ctx.run(ctx.config(&["sh", "-c", script])).unwrap();
    let _ = std::fs::remove_file(ctx.rootfs().join("isolab-rw"));
    if out.code != 0 && out.stderr.contains("setrlimit(RlimitNofile): EPERM") {
        let own = std::fs::read_to_string("/proc/self/status").unwrap();
        let bnd = u64::from_str_radix(field(&own, "CapBnd"), 16).unwrap();
        assert_eq!(bnd & (1 << 24), 0, "refused although this host has CAP_SYS_RESOURCE: {}", out.stderr);
        eprintln!("SKIP {name}: this host lacks CAP_SYS_RESOURCE, so no runtime can raise RLIMIT_NOFILE as {name}'s config asks: {}", out.stderr.trim());
        return;
    }
    assert_eq!(out.code, 0, "{name}: {}", out.stderr);
    let parts: Vec<&str> = out.stdout.split("---\n").collect();
    let (status, limits, rest) = (parts[0], parts[1], parts[2]);
    assert_eq!(u64::from_str_radix(field(status, "CapBnd"), 16).unwrap(), mask(&engine), "{name}: CapBnd");
    assert_eq!(u64::from_str_radix(field(status, "CapEff"), 16).unwrap(), mask(&engine), "{name}: CapEff");
    let seccomp = if engine["linux"].get("seccomp").is_some() { "2" } else { "0" };
    assert_eq!(field(status, "Seccomp"), seccomp, "{name}: Seccomp");
    let nnp = if engine["process"]["noNewPrivileges"] == true { "1" } else { "0" };
    assert_eq!(field(status, "NoNewPrivs"), nnp, "{name}: NoNewPrivs");
    for r in engine["process"]["rlimits"].as_array().into_iter().flatten() {
        assert_eq!(r["type"], "RLIMIT_NOFILE", "only NOFILE is read back here");
        let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
        let want: Vec<String> = [&r["soft"], &r["hard"]].iter().map(|v| v.to_string()).collect();
        let got: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
        assert_eq!(got, want, "{name}: {line}");
    }
    let readonly = engine["root"]["readonly"] == true;
    assert_eq!(!rest.lines().any(|l| l == "rw"), readonly, "{name}: root.readonly {readonly}: {rest}");
    // The engine's per-container files (under /capture) are not mounted: no /etc/hosts here.
    assert!(!rest.lines().any(|l| l == "hosts" || l == "resolv.conf"), "{name}: {rest}");
}
