//! What the engines' own configs found in the guests, each fixed in isorun and kept here.
//!
//! The checkpoint assertions with Docker's config on a cgroup v1 guest (debian-6.1, which has
//! the `misc` hierarchy): Docker's config has a `type: cgroup` mount and no cgroup namespace,
//! so /sys/fs/cgroup in the container is a tmpfs of binds of the container's own cgroup
//! directories. isorun must hand those binds to CRIU as external mounts, as runc does;
//! before it did, every checkpoint failed with CRIU's "./sys/fs/cgroup/misc doesn't have a
//! proper root mount".

mod vm_support;

use isolab_harness::catalogue::base::BaseConfig;
use isolab_harness::lab;
use isolab_harness::matrix::run_cell;
use isolab_harness::protocol::{CgroupMode, Outcome};

#[test]
fn checkpoint_with_dockers_config_on_cgroup_v1_passes_in_a_guest() {
    let o = vm_support::options();
    let k = vm_support::kernel("debian-6.1", &o);
    let img = lab::image_for(&k, &o, None, &|_, _| {}).expect("image");
    let cell = vm_support::cell_info(
        "debian-6.1",
        CgroupMode::V1,
        BaseConfig::parse("docker").expect("docker's captured config"),
        &o,
    );
    let ids: Vec<String> =
        ["checkpoint.pid1_survives", "checkpoint.mount_view_survives", "checkpoint.memory_limit_survives"]
            .map(String::from)
            .to_vec();
    let records = run_cell(&k, &img, &cell, &ids, &o, &mut |_| {});
    for id in &ids {
        let r = records.iter().find(|r| &r.assertion == id).unwrap_or_else(|| panic!("no record of {id}"));
        assert_eq!(r.status, Outcome::Pass, "{id} in debian-6.1/v1 with docker's config: {}", r.detail);
    }
}

/// podman's config raises RLIMIT_NOFILE to 1048576; with a user namespace (the `user.*`
/// assertions add one) the init could not raise it itself: every such container failed with
/// `setrlimit(RlimitNofile): EPERM` until the parent set the limits, as runc does.
#[test]
fn user_namespace_with_podmans_config_passes_in_a_guest() {
    let o = vm_support::options();
    let k = vm_support::kernel("debian-6.1", &o);
    let img = lab::image_for(&k, &o, None, &|_, _| {}).expect("image");
    let cell = vm_support::cell_info(
        "debian-6.1",
        CgroupMode::V2,
        BaseConfig::parse("podman").expect("podman's captured config"),
        &o,
    );
    let ids: Vec<String> =
        ["user.root_maps_to_unprivileged", "user.unmapped_owner_is_overflow", "security.rlimits_apply"]
            .map(String::from)
            .to_vec();
    let records = run_cell(&k, &img, &cell, &ids, &o, &mut |_| {});
    for id in &ids {
        let r = records.iter().find(|r| &r.assertion == id).unwrap_or_else(|| panic!("no record of {id}"));
        assert_eq!(r.status, Outcome::Pass, "{id} in debian-6.1/v2 with podman's config: {}", r.detail);
    }
}
