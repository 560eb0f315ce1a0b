//! Cgroup enforcement assertions on this host against isorun, each with its negative control.

mod common;

use test_case::test_case;

#[test_case("cgroup.memory.oom_kill")]
#[test_case("cgroup.pids.fork_eagain")]
#[test_case("cgroup.cpu.quota")]
#[test_case("cgroup.cpuset.affinity")]
#[test_case("cgroup.freezer.pause_resume")]
#[test_case("cgroup.devices.deny")]
fn passes_and_its_negative_control_fails(id: &str) {
    common::passes_and_control_fails(id);
}
