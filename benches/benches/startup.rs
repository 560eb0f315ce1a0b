//! Start latency of isorun, phase by phase and whole, on a busybox bundle with every
//! namespace but user (pid, net, ipc, uts, mount, cgroup), a cgroup, pivot_root and a
//! readonly root:
//! - `phase/parse_validate`: config.json → validated spec (pure, in process);
//! - `phase/parse_validate_docker`: the same with Docker 20.10's seccomp profile and
//!   capabilities in it (vm-images/engine-configs/docker.json), what engines send;
//! - `phase/seccomp_cache_hit_docker`: that profile's compiled filter from a warm cache
//!   (the key, the read, the checks);
//! - `phase/seccomp_install_docker`: loading it into a fresh child (seccomp(2)), the
//!   kernel's conversion and JIT;
//! - `phase/clone_namespaces`: clone3 into those namespaces, child exits, parent reaps;
//! - `phase/rootfs_setup`: mounts, devices, pivot_root, masked/readonly paths, timed inside
//!   a child already in its namespaces;
//! - `phase/exec_true`: fork + execve of the rootfs's busybox `true` + wait (no namespaces);
//! - `lifecycle/create_start_wait_delete`: the library's create, start, waitpid, delete;
//! - `run/*`: the `isorun run` binary end to end: default, without netns, with a user ns.
//!
//! Needs root; without it every group prints SKIP and measures nothing.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use isolab_benches::{
    add_user_ns, can_run, clone_and_reap, drop_net_ns, isorun_bin, isorun_run, time_in_child, Bundle,
};
use isolab_runtime::config::parse_config;
use isolab_runtime::container::plan::plan_namespaces;
use isolab_runtime::container::{self, CreateOptions};
use isolab_runtime::rootfs::{setup_rootfs, RootfsOptions};
use isolab_runtime::seccomp;
use isolab_runtime::state::StateStore;

fn phases(c: &mut Criterion) {
    if !can_run() {
        return;
    }
    let b = Bundle::new(&["/bin/true"], |_| {}).expect("bundle");
    let bytes = std::fs::read(b.config_path()).expect("config.json");
    let config = parse_config(&bytes).expect("valid config");
    let spec = config.spec();
    let plan = plan_namespaces(&config);
    let mut g = c.benchmark_group("phase");
    g.bench_function("parse_validate", |x| x.iter(|| parse_config(black_box(&bytes)).expect("valid")));
    let docker_bytes = with_docker_profile(&bytes);
    g.bench_function("parse_validate_docker", |x| {
        x.iter(|| parse_config(black_box(&docker_bytes)).expect("valid"))
    });
    let docker = parse_config(&docker_bytes).expect("valid docker config");
    let profile = docker.spec().linux().as_ref().and_then(|l| l.seccomp().clone()).expect("a profile");
    let root = tempfile::tempdir().expect("temp root");
    let limit = Duration::from_secs(10);
    let filter = seccomp::cache::compile_cached(root.path(), &profile, limit).expect("compiles");
    g.bench_function("seccomp_cache_hit_docker", |x| {
        x.iter(|| seccomp::cache::compile_cached(root.path(), black_box(&profile), limit).expect("hit"))
    });
    g.bench_function("seccomp_install_docker", |x| {
        x.iter_custom(|n| {
            (0..n)
                .map(|_| {
                    time_in_child(0, || {
                        nix::sys::prctl::set_no_new_privs().map_err(|e| e.to_string())?;
                        seccomp::install(&filter).map(drop).map_err(|e| e.to_string())
                    })
                })
                .sum()
        })
    });
    g.sample_size(30).measurement_time(Duration::from_secs(5));
    g.bench_function("clone_namespaces", |x| {
        x.iter_custom(|n| (0..n).map(|_| clone_and_reap(plan.clone_flags)).sum())
    });
    let rootfs = std::fs::canonicalize(b.path().join("rootfs")).expect("rootfs");
    let opts = RootfsOptions {
        rootfs: rootfs.clone(),
        bundle: b.path(),
        in_user_ns: false,
        in_cgroup_ns: true,
        host_cgroup_view: None,
        no_pivot: false,
        shared_mount_ns: false,
    };
    g.bench_function("rootfs_setup", |x| {
        x.iter_custom(|n| {
            (0..n)
                .map(|_| {
                    time_in_child(plan.clone_flags, || setup_rootfs(spec, &opts).map_err(|e| e.to_string()))
                })
                .sum()
        })
    });
    let true_bin = rootfs.join("bin/true");
    g.bench_function("exec_true", |x| {
        x.iter(|| assert!(std::process::Command::new(&true_bin).status().expect("spawn true").success()))
    });
    g.finish();
}

/// `config` with Docker 20.10's seccomp profile and capabilities, as the bench's `docker`
/// variant.
fn with_docker_profile(config: &[u8]) -> Vec<u8> {
    let docker: serde_json::Value =
        serde_json::from_str(include_str!("../../vm-images/engine-configs/docker.json"))
            .expect("docker.json");
    let mut v: serde_json::Value = serde_json::from_slice(config).expect("config.json");
    v["process"]["capabilities"] = docker["process"]["capabilities"].clone();
    v["linux"]["seccomp"] = docker["linux"]["seccomp"].clone();
    serde_json::to_vec(&v).expect("serialise")
}

fn lifecycle(c: &mut Criterion) {
    if !can_run() {
        return;
    }
    let b = Bundle::new(&["/bin/true"], |_| {}).expect("bundle");
    let store = StateStore::new(b.state_root());
    let opts = CreateOptions { bundle: b.path(), ..CreateOptions::default() };
    let mut g = c.benchmark_group("lifecycle");
    g.sample_size(20).measurement_time(Duration::from_secs(8));
    let mut k = 0u64;
    g.bench_function("create_start_wait_delete", |x| {
        x.iter_custom(|n| {
            let t = Instant::now();
            for _ in 0..n {
                k += 1;
                let id = format!("isolab-benches-{}-{k}", std::process::id());
                let created = container::create(&store, &id, &opts).expect("create");
                container::start(&store, &id).expect("start");
                nix::sys::wait::waitpid(created.pid, None).expect("wait");
                container::delete(&store, &id, false).expect("delete");
            }
            t.elapsed()
        })
    });
    g.finish();
}

fn run_binary(c: &mut Criterion) {
    if !can_run() {
        return;
    }
    let Some(bin) = isorun_bin() else {
        eprintln!(
            "SKIP run/*: no isorun binary (cargo build --release -p isolab-runtime, or ISOLAB_BENCH_ISORUN)"
        );
        return;
    };
    let bundles = [
        ("default", Bundle::new(&["/bin/true"], |_| {}).expect("bundle")),
        ("no_netns", Bundle::new(&["/bin/true"], drop_net_ns).expect("bundle")),
        ("userns", Bundle::new(&["/bin/true"], add_user_ns).expect("bundle")),
    ];
    let mut g = c.benchmark_group("run");
    g.sample_size(20).measurement_time(Duration::from_secs(8));
    let mut k = 0u64;
    for (name, b) in &bundles {
        g.bench_function(*name, |x| {
            x.iter(|| {
                k += 1;
                isorun_run(&bin, b, &format!("isolab-benches-run-{}-{k}", std::process::id()));
            })
        });
    }
    g.finish();
}

criterion_group!(benches, phases, lifecycle, run_binary);
criterion_main!(benches);
