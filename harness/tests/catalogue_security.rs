//! security assertions on this host against isorun, each with its negative control.

mod common;

use test_case::test_case;

#[test_case("security.cap_sys_admin_dropped")]
#[test_case("security.capabilities_match_config")]
#[test_case("security.no_new_privs")]
#[test_case("security.seccomp_errno")]
#[test_case("security.rlimits_apply")]
#[test_case("security.kmsg_denied")]
#[test_case("security.mknod_denied")]
#[test_case("security.ptrace_outside_denied")]
#[test_case("security.cve_2019_5736")]
fn passes_and_its_negative_control_fails(id: &str) {
    common::passes_and_control_fails(id);
}

/// A kernel without CONFIG_MAGIC_SYSRQ has no /proc/sysrq-trigger: the assertion SKIPs there
/// (with the reason), anywhere else it must PASS and fail its control.
#[test]
fn sysrq_trigger_denied_or_absent() {
    let id = "security.sysrq_trigger_denied";
    if std::path::Path::new("/proc/sysrq-trigger").exists() {
        common::passes_and_control_fails(id);
    } else {
        let (outcome, detail) = common::run(id, false);
        assert_eq!(outcome, isolab_harness::protocol::Outcome::Skip, "{id}: {detail}");
        assert!(detail.contains("CONFIG_MAGIC_SYSRQ"), "{detail}");
    }
}
