//! uts and ipc assertions on this host against isorun, each with its negative control.

mod common;

use test_case::test_case;

#[test_case("uts.hostname_and_domainname")]
#[test_case("uts.change_inside_not_host")]
#[test_case("ipc.sysv_shm")]
#[test_case("ipc.sysv_msg")]
#[test_case("ipc.sysv_sem")]
#[test_case("ipc.posix_mqueue")]
fn passes_and_its_negative_control_fails(id: &str) {
    common::passes_and_control_fails(id);
}
