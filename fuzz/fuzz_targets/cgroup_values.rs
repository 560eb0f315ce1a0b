//! cgroup value strings: cpuset lists (`0-3,5`), `blkio.*`/`io.stat` text, the host's
//! mountinfo + /proc/self/cgroup (layout detection) and `linux.cgroupsPath` resolution.
//! Properties: never panics; a parsed cpu list is bounded (every cpu < 4096, at most 4096
//! per range) and formats back to a list that parses to the same cpus; a resolved cgroup path
//! is absolute, normalised, not `/`, and has no `..` (it cannot leave the hierarchy); a
//! detected layout's mount points stay under the given root.
#![no_main]

use std::path::{Component, Path};

use arbitrary::Arbitrary;
use isolab_runtime::cgroups::path::resolve;
use isolab_runtime::cgroups::stats::{parse_blkio_v1, parse_io_stat};
use isolab_runtime::cgroups::Hierarchies;
use isolab_runtime::container::plan::parse_cpu_list;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    cpus: String,
    stat: String,
    mountinfo: String,
    proc_cgroup: String,
    id: String,
    cgroups_path: Option<String>,
    own: String,
}

fn format_cpu_list(cpus: &[usize]) -> String {
    cpus.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
}

fuzz_target!(|i: Input| {
    if let Some(cpus) = parse_cpu_list(&i.cpus) {
        assert!(cpus.iter().all(|c| *c < 4096), "{:?}", i.cpus);
        let again = parse_cpu_list(&format_cpu_list(&cpus)).expect("a formatted list parses");
        assert_eq!(again, cpus);
    }

    for e in parse_blkio_v1(&i.stat) {
        assert!(!e.op.is_empty());
    }
    let (bytes, ios) = parse_io_stat(&i.stat);
    assert!(bytes.iter().chain(&ios).all(|e| e.op == "Read" || e.op == "Write"));

    let root = Path::new("/fuzzroot");
    if let Ok(h) = Hierarchies::detect(&i.mountinfo, &i.proc_cgroup, root) {
        for v1 in &h.v1 {
            assert!(v1.mount.starts_with(root), "{:?}", v1.mount);
            assert!(!v1.controllers.is_empty());
        }
        if let Some(u) = &h.unified {
            assert!(u.starts_with(root), "{u:?}");
        }
        let _ = h.own_cgroup();
    }

    if let Ok(p) = resolve(&i.id, i.cgroups_path.as_deref(), &i.own) {
        assert!(p.starts_with('/') && p != "/" && !p.contains("//"), "{p:?}");
        for c in Path::new(&p).components() {
            assert!(matches!(c, Component::RootDir | Component::Normal(_)), "{p:?} leaves the hierarchy");
        }
        assert!(Path::new("/sys/fs/cgroup").join(p.trim_start_matches('/')).starts_with("/sys/fs/cgroup"));
    }
});
