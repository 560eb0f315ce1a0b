//! mount assertions on this host against isorun, each with its negative control.

mod common;

use test_case::test_case;

#[test_case("mount.root_is_bundle_rootfs")]
#[test_case("mount.old_root_gone")]
#[test_case("mount.inside_mounts_invisible_to_host")]
#[test_case("mount.host_mounts_do_not_propagate_in")]
#[test_case("mount.readonly_root_erofs")]
#[test_case("mount.masked_paths")]
#[test_case("mount.readonly_paths")]
fn passes_and_its_negative_control_fails(id: &str) {
    common::passes_and_control_fails(id);
}
