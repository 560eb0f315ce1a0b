//! CVE-2019-5736: a container process must not reach the isorun binary through
//! /proc/<pid>/exe. While a container is `created`, its PID 1 *is* isorun (waiting on the
//! exec fifo); a process `exec`'d into the container tries to open and overwrite it.

mod common;

use common::{text, Fixture, ISORUN};

#[test]
fn proc_exe_of_the_waiting_init_cannot_be_opened_or_overwritten() {
    let mut f = Fixture::new();
    let before = std::fs::read(ISORUN).unwrap();
    f.config(&["true"], |_| {});
    let id = f.id("cve");
    let bundle = f.bundle();
    let out = f.isorun(&["create", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(out.status.success(), "create: {}", text(&out.stderr));
    let attack = "cat /proc/1/comm; \
        (cat /proc/1/exe > /dev/null) 2>&1 && echo READ-OK; \
        (echo pwned >> /proc/1/exe) 2>&1 && echo WRITE-OK; \
        (cat /proc/1/fd/1 > /dev/null) 2>&1 && echo FDS-OK; true";
    let out = f.isorun(&["exec", &id, "sh", "-c", attack]);
    assert!(out.status.success(), "exec: {}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.starts_with("isorun"), "PID 1 is still the runtime: {said}");
    assert!(!said.contains("READ-OK") && !said.contains("WRITE-OK") && !said.contains("FDS-OK"), "{said}");
    assert!(said.contains("Permission denied"), "{said}");
    assert_eq!(std::fs::read(ISORUN).unwrap(), before, "the runtime binary on the host is unchanged");
}
