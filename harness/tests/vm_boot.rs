//! Real boots under TCG: every default kernel, both cgroup modes, one nextest test each.

mod vm_support;

use isolab_harness::lab;
use isolab_harness::protocol::{Action, CgroupMode, Event, Request, Stream, PROTOCOL_VERSION};
use test_case::test_case;

fn exec(argv: &[&str]) -> Request {
    Request {
        protocol_version: PROTOCOL_VERSION,
        action: Action::Exec {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: vec![],
            timeout_secs: 60,
        },
    }
}

#[test_case("debian-5.10", CgroupMode::V1 ; "debian_5_10_cgroup_v1")]
#[test_case("debian-5.10", CgroupMode::V2 ; "debian_5_10_cgroup_v2")]
#[test_case("debian-6.1", CgroupMode::V1 ; "debian_6_1_cgroup_v1")]
#[test_case("debian-6.1", CgroupMode::V2 ; "debian_6_1_cgroup_v2")]
#[test_case("debian-6.12", CgroupMode::V1 ; "debian_6_12_cgroup_v1")]
#[test_case("debian-6.12", CgroupMode::V2 ; "debian_6_12_cgroup_v2")]
#[test_case("debian-7.2", CgroupMode::V1 ; "debian_7_2_cgroup_v1")]
#[test_case("debian-7.2", CgroupMode::V2 ; "debian_7_2_cgroup_v2")]
fn boots_and_says_hello(name: &str, cgroup: CgroupMode) {
    let o = vm_support::options();
    let k = vm_support::kernel(name, &o);
    let img = lab::image_for(&k, &o, None, &|_, _| {}).expect("image");
    let req = exec(&[
        "sh",
        "-c",
        "uname -r; grep \" /sys/fs/cgroup \" /proc/mounts | cut -d\" \" -f3; echo oops >&2; exit 3",
    ]);
    let r = lab::boot(&k, &img, cgroup, &req, &o, false, &mut |_| {});
    assert!(r.error.is_none(), "{name}: {:?}\n{}", r.error, r.console_tail.join("\n"));
    let Some(Event::Hello { kernel_release, cgroup_mode, modules_loaded, cgroup_controllers, .. }) = &r.hello
    else {
        panic!("no hello: {r:?}");
    };
    assert_eq!(kernel_release, &k.files.release);
    assert_eq!(*cgroup_mode, cgroup);
    let wanted: Vec<&String> = k.modules.iter().map(|(n, _)| n).collect();
    assert_eq!(modules_loaded.iter().collect::<Vec<_>>(), wanted, "all modules loaded, in order");
    for m in ["veth", "bridge", "dummy", "overlay"] {
        assert!(modules_loaded.iter().any(|l| l == m), "{m} not loaded: {modules_loaded:?}");
    }
    assert!(cgroup_controllers.iter().any(|c| c == "pids"), "{cgroup_controllers:?}");
    let out: Vec<(Stream, &str)> = r
        .events
        .iter()
        .filter_map(|e| match e {
            Event::CommandOutput { stream, line } => Some((*stream, line.as_str())),
            _ => None,
        })
        .collect();
    let fs = if cgroup == CgroupMode::V2 { "cgroup2" } else { "tmpfs" };
    assert!(out.contains(&(Stream::Stdout, k.files.release.as_str())), "{out:?}");
    assert!(out.contains(&(Stream::Stdout, fs)), "{out:?}");
    assert!(out.contains(&(Stream::Stderr, "oops")), "{out:?}");
    assert_eq!(r.exit_code(), Some(3));
    assert_eq!(r.events.last(), Some(&Event::Done));
    let boot = r.boot_time.expect("boot time");
    eprintln!("{name} {}: hello after {:.2}s", cgroup.as_str(), boot.as_secs_f64());
}

/// A user's own kernel: a kernels.toml entry with a local image and modules directory (here
/// the cached Debian 6.1 files, as a user would point at a build tree) boots the same way.
#[test]
fn a_local_kernel_entry_boots() {
    let o = vm_support::options();
    let debian = vm_support::kernel("debian-6.1", &o);
    let modules = debian.files.modules_dir.clone().expect("modules dir");
    let text = format!(
        "[suite]\nmodules = [\"veth\", \"bridge\"]\n[[kernel]]\nname = \"mine\"\ndefault = false\nbzimage = {:?}\nmodules_dir = {:?}\n",
        debian.files.vmlinuz, modules
    );
    let m = isolab_harness::kernels::Matrix::parse(&text, std::path::Path::new("local.toml")).unwrap();
    let spec = m.select(&["mine".into()]).unwrap()[0];
    let k = lab::checked_kernel(spec, &m, &o.cache).expect("local kernel needs no fetch");
    assert_eq!(k.files.release, debian.files.release, "release taken from the modules dir name");
    let img = lab::image_for(&k, &o, None, &|_, _| {}).expect("image");
    let r = lab::boot(&k, &img, CgroupMode::V2, &exec(&["true"]), &o, false, &mut |_| {});
    assert!(r.error.is_none(), "{:?}\n{}", r.error, r.console_tail.join("\n"));
    let Some(Event::Hello { modules_loaded, .. }) = &r.hello else { panic!("no hello") };
    assert_eq!(modules_loaded, &["veth", "llc", "stp", "bridge"]);
    assert_eq!(r.exit_code(), Some(0));
}
