//! Start latency of isorun, phase by phase and whole, on a busybox bundle with every
//! namespace but user (pid, net, ipc, uts, mount, cgroup), a cgroup, pivot_root and a
//! readonly root:
//! - `phase/parse_validate`: config.json → validated spec (pure, in process);
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
