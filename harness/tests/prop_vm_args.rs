//! Property tests of the QEMU command line: whatever the paths (temp dirs can hold commas and
//! `=`), the CPU model and the kernel command line, `qemu_args` yields what QEMU parses as
//! meant: no empty argument, every option followed by its value, single-use options once,
//! unique chardev ids each used by a serial port, and chardev paths that read back exactly
//! under QEMU's option syntax (`key=value` pairs split on `,`, `,,` a literal comma).

use std::collections::HashSet;
use std::path::PathBuf;

use isolab_harness::protocol::CgroupMode;
use isolab_harness::vm::args::{kernel_cmdline, qemu_args, Accel, CmdlineOptions, Console, QemuConfig};
use proptest::prelude::*;

/// Options that take a value, and whether they may appear more than once.
const WITH_VALUE: &[(&str, bool)] = &[
    ("-machine", false),
    ("-accel", false),
    ("-cpu", false),
    ("-m", false),
    ("-smp", false),
    ("-display", false),
    ("-kernel", false),
    ("-initrd", false),
    ("-append", false),
    ("-chardev", true),
    ("-serial", true),
];
const FLAGS: &[&str] = &["-nodefaults", "-no-user-config", "-no-reboot"];

/// QEMU's QemuOpts parsing of `driver,key=value,...`: the leading driver name, then the pairs,
/// `,,` standing for a literal comma.
fn qemu_opts(s: &str) -> (String, Vec<(String, String)>) {
    let mut parts: Vec<String> = vec![String::new()];
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                parts.last_mut().unwrap().push(',');
            } else {
                parts.push(String::new());
            }
        } else {
            parts.last_mut().unwrap().push(c);
        }
    }
    let driver = parts.remove(0);
    let pairs = parts
        .into_iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (p, "on".to_owned()),
        })
        .collect();
    (driver, pairs)
}

fn path() -> impl Strategy<Value = PathBuf> {
    "/[a-z0-9,=._ -]{1,12}/[a-z0-9,=._-]{1,8}\\.sock".prop_map(PathBuf::from)
}

fn config() -> impl Strategy<Value = QemuConfig> {
    (
        (path(), path(), 64u32..4096, 1u32..8, any::<bool>()),
        prop::option::of(prop_oneof![Just(String::new()), "[a-z0-9+-]{1,10}"]),
        prop::collection::vec("[a-z0-9._=,-]{1,10}", 0..4),
        (any::<bool>(), path(), path()),
    )
        .prop_map(|((kernel, initrd, memory_mb, cpus, kvm), cpu, extra, (socket, con, channel))| {
            let cmdline =
                kernel_cmdline(&CmdlineOptions { cgroup: CgroupMode::V2, quiet: true, extra, cpus });
            QemuConfig {
                qemu: "qemu-system-x86_64".into(),
                kernel,
                initrd,
                memory_mb,
                cpus,
                accel: if kvm { Accel::Kvm } else { Accel::Tcg },
                cpu,
                cmdline,
                console: if socket { Console::Socket(con) } else { Console::Stdio },
                channel,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn qemu_parses_the_arguments_as_meant(c in config()) {
        let args = qemu_args(&c);
        prop_assert!(args.iter().all(|a| !a.is_empty()), "an empty argument: {:?}", args);
        let mut seen: HashSet<&str> = HashSet::new();
        let mut chardevs: Vec<(String, Vec<(String, String)>)> = Vec::new();
        let mut serials: Vec<String> = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let opt = args[i].as_str();
            if FLAGS.contains(&opt) {
                prop_assert!(seen.insert(opt), "{} twice", opt);
                i += 1;
                continue;
            }
            let spec = WITH_VALUE.iter().find(|(o, _)| *o == opt);
            prop_assert!(spec.is_some(), "unknown or misplaced argument {:?} in {:?}", opt, args);
            let (_, repeatable) = spec.unwrap();
            prop_assert!(*repeatable || seen.insert(opt), "{} twice in {:?}", opt, args);
            let value = args.get(i + 1);
            prop_assert!(value.is_some(), "{} has no value", opt);
            let value = value.unwrap();
            match opt {
                "-chardev" => chardevs.push(qemu_opts(value)),
                "-serial" => serials.push(value.clone()),
                "-kernel" => prop_assert_eq!(PathBuf::from(value), c.kernel.clone()),
                "-initrd" => prop_assert_eq!(PathBuf::from(value), c.initrd.clone()),
                "-append" => prop_assert_eq!(value, &c.cmdline),
                _ => {}
            }
            i += 2;
        }
        let ids: Vec<&str> = chardevs
            .iter()
            .map(|(_, kv)| kv.iter().find(|(k, _)| k == "id").map(|(_, v)| v.as_str()).unwrap_or(""))
            .collect();
        prop_assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len(), "duplicate chardev id");
        prop_assert_eq!(serials.iter().map(|s| s.trim_start_matches("chardev:")).collect::<Vec<_>>(), ids.clone());
        for (driver, kv) in &chardevs {
            let paths: Vec<&String> = kv.iter().filter(|(k, _)| k == "path").map(|(_, v)| v).collect();
            let keys: Vec<&String> = kv.iter().map(|(k, _)| k).collect();
            prop_assert_eq!(keys.iter().collect::<HashSet<_>>().len(), keys.len(), "a key twice: {:?}", kv);
            if driver == "socket" {
                let want = if kv.iter().any(|(k, v)| k == "id" && v == "chan") {
                    c.channel.clone()
                } else {
                    match &c.console { Console::Socket(p) => p.clone(), Console::Stdio => unreachable!() }
                };
                let want = want.display().to_string();
                prop_assert_eq!(paths, vec![&want], "chardev {:?}", kv);
            }
        }
    }
}

/// Regression (found by the property above): a socket path holding a comma ended QEMU's
/// `path=` value early, and an empty CPU model gave `-cpu ""`.
#[test]
fn commas_in_socket_paths_are_escaped_and_an_empty_cpu_model_is_the_default() {
    let c = QemuConfig {
        qemu: "qemu-system-x86_64".into(),
        kernel: "/k/vmlinuz".into(),
        initrd: "/i/initrd".into(),
        memory_mb: 256,
        cpus: 1,
        accel: Accel::Tcg,
        cpu: Some(String::new()),
        cmdline: "console=ttyS0".into(),
        console: Console::Socket("/tmp/a,b/con.sock".into()),
        channel: "/tmp/a,b/chan.sock".into(),
    };
    let args = qemu_args(&c);
    assert!(args.contains(&"socket,id=con,path=/tmp/a,,b/con.sock".to_owned()), "{args:?}");
    assert!(args.contains(&"socket,id=chan,path=/tmp/a,,b/chan.sock".to_owned()), "{args:?}");
    let cpu = args.iter().position(|a| a == "-cpu").unwrap();
    assert_eq!(args[cpu + 1], isolab_harness::vm::args::DEFAULT_TCG_CPU);
}
