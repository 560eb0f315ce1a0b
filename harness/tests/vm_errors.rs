//! The watchdog: broken images, timeouts and QEMU deaths are ERRORs with the console tail,
//! and no QEMU is left behind.

mod vm_support;

use std::time::Duration;

use isolab_harness::lab;
use isolab_harness::protocol::{Action, CgroupMode, Request, PROTOCOL_VERSION};
use isolab_harness::vm::{guard, VmError};

const KERNEL: &str = "debian-6.1";

fn idle() -> Request {
    Request { protocol_version: PROTOCOL_VERSION, action: Action::Idle }
}

#[test]
fn an_init_that_dies_is_a_kernel_panic_error_with_console_tail() {
    let o = vm_support::options();
    let k = vm_support::kernel(KERNEL, &o);
    let dir = tempfile::tempdir().unwrap();
    let init = dir.path().join("broken-init");
    std::fs::write(&init, "#!/bin/sh\necho deliberately-broken-init >/dev/console\nexit 3\n").unwrap();
    let img = lab::image_for(&k, &o, Some(&init), &|_, _| {}).expect("image");
    let r = lab::boot(&k, &img, CgroupMode::V2, &idle(), &o, false, &mut |_| {});
    match &r.error {
        Some(VmError::KernelPanic { line }) => assert!(line.contains("Kernel panic"), "{line}"),
        other => panic!("expected a kernel panic error, got {other:?}"),
    }
    let tail = r.console_tail.join("\n");
    assert!(tail.contains("deliberately-broken-init"), "tail: {tail}");
    assert!(tail.contains("Attempted to kill init"), "tail: {tail}");
    assert!(r.console_tail.len() <= 50);
    assert!(r.hello.is_none());
    assert_eq!(guard::live_count(), 0, "QEMU left running");
}

#[test]
fn a_boot_that_never_says_hello_times_out_and_qemu_is_killed() {
    let mut o = vm_support::options();
    o.boot_timeout = Duration::from_millis(700);
    let k = vm_support::kernel(KERNEL, &o);
    let img = lab::image_for(&k, &o, None, &|_, _| {}).expect("image");
    let r = lab::boot(&k, &img, CgroupMode::V2, &idle(), &o, false, &mut |_| {});
    assert!(matches!(r.error, Some(VmError::BootTimeout { .. })), "{:?}", r.error);
    assert!(r.total_time < Duration::from_secs(5), "{:?}", r.total_time);
    assert_eq!(guard::live_count(), 0, "QEMU left running");
}

#[test]
fn a_silent_command_hits_the_step_timeout() {
    let mut o = vm_support::options();
    o.step_timeout = Duration::from_secs(2);
    let k = vm_support::kernel(KERNEL, &o);
    let img = lab::image_for(&k, &o, None, &|_, _| {}).expect("image");
    // The agent sends heartbeats every 5 s while a command runs: a 2 s step limit trips first.
    let req = Request {
        protocol_version: PROTOCOL_VERSION,
        action: Action::Exec { argv: vec!["sleep".into(), "30".into()], env: vec![], timeout_secs: 0 },
    };
    let r = lab::boot(&k, &img, CgroupMode::V2, &req, &o, false, &mut |_| {});
    assert!(matches!(r.error, Some(VmError::StepTimeout { .. })), "{:?}", r.error);
    assert!(r.hello.is_some());
    assert_eq!(guard::live_count(), 0, "QEMU left running");
}

#[test]
fn a_qemu_that_cannot_start_is_an_error() {
    let mut o = vm_support::options();
    o.qemu = "/nonexistent/qemu-system-x86_64".into();
    let k = vm_support::kernel(KERNEL, &o);
    let img = lab::image_for(&k, &o, None, &|_, _| {}).expect("image");
    let r = lab::boot(&k, &img, CgroupMode::V2, &idle(), &o, false, &mut |_| {});
    assert!(matches!(r.error, Some(VmError::Spawn { .. })), "{:?}", r.error);
}

#[test]
fn qemu_dying_early_is_an_error_with_its_stderr() {
    let mut o = vm_support::options();
    o.memory_mb = 1; // QEMU refuses to start the guest with this.
    let k = vm_support::kernel(KERNEL, &o);
    let img = lab::image_for(&k, &o, None, &|_, _| {}).expect("image");
    let r = lab::boot(&k, &img, CgroupMode::V2, &idle(), &o, false, &mut |_| {});
    assert!(r.error.is_some(), "a 1 MiB guest must not pass");
    assert!(r.hello.is_none());
    assert_eq!(guard::live_count(), 0);
}
