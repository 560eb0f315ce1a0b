//! escape.* assertions on this host against isorun, each with its negative control: a
//! weakened config here, a runtime wrapper that leaks an fd or keeps the caller's keyring in
//! catalogue_escape_wrapped.rs, and, for the kernel features this host may lack (modules,
//! kexec, /proc/kcore, /dev/mem), in a debian-6.1 guest in catalogue_escape_vm.rs.

mod common;
mod vm_support;

use isolab_harness::protocol::Outcome;
use test_case::test_case;

#[test_case("escape.cve_2016_9962_exec_ptrace")]
#[test_case("escape.cve_2025_31133_devnull")]
#[test_case("escape.cve_2025_52565_console")]
#[test_case("escape.cve_2021_30465_mount_race")]
#[test_case("escape.cve_2022_0492_release_agent")]
#[test_case("escape.cve_2022_0847_dirty_pipe")]
#[test_case("escape.usermode_helper_write")]
#[test_case("escape.firmware_acpi_hidden")]
#[test_case("escape.debugfs_unreachable")]
#[test_case("escape.host_block_device_refused")]
#[test_case("escape.shocker_open_by_handle_at")]
fn passes_and_its_negative_control_fails(id: &str) {
    vm_support::agent(); // the static agent carries the probes into the rootfs
    common::passes_and_control_fails(id);
}

/// Kernel features this host may not have: where it has the file, PASS and a FAILing control;
/// where not, a SKIP naming the missing feature (the guest test runs the control instead).
#[test_case("escape.kcore_unreadable", "/proc/kcore", "CONFIG_PROC_KCORE")]
#[test_case("escape.module_load_refused", "/proc/modules", "CONFIG_MODULES")]
#[test_case("escape.dev_mem_refused", "/dev/mem", "CONFIG_DEVMEM")]
#[test_case("escape.kexec_load_refused", "/sys/kernel/kexec_loaded", "kexec_load")]
fn passes_or_skips_with_the_missing_feature(id: &str, path: &str, why: &str) {
    vm_support::agent();
    if std::path::Path::new(path).exists() {
        common::passes_and_control_fails(id);
        return;
    }
    let (outcome, detail) = common::run(id, false);
    eprintln!("{id} on this host: {outcome:?} {detail}");
    assert_eq!(outcome, Outcome::Skip, "{id}: {detail}");
    assert!(detail.contains(why), "{id}: the SKIP names {why}: {detail}");
}
