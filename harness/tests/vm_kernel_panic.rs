//! A real guest panic becomes a result: the agent panics the kernel (sysrq `c`) after the
//! first assertion (`isolab.crash_after=` on the command line), and the cell's records hold
//! a `kernel.no_panic` FAIL with the panic, the assertion that was running and the trace, in
//! the terminal table, results.json, JUnit, KTAP and HTML; the first assertion keeps its PASS.

mod vm_support;

use isolab_harness::kernel_findings::{NO_OOPS, NO_PANIC};
use isolab_harness::lab;
use isolab_harness::matrix::{run_cell, selected_ids};
use isolab_harness::protocol::{CgroupMode, Outcome};
use isolab_harness::report;

/// The records of the `uts.*` assertions on debian-6.1/v2 with `cmdline` added; and the ids.
fn cell_with(hook: &str) -> (Vec<report::Record>, Vec<String>) {
    let mut o = vm_support::options();
    let ids = selected_ids("uts.*");
    assert!(ids.len() >= 2, "need two assertions: {ids:?}");
    o.extra_cmdline = vec![format!("{hook}={}", ids[0])];
    let k = vm_support::kernel("debian-6.1", &o);
    let img = lab::image_for(&k, &o, None, &|_, _| {}).expect("image");
    let cell = vm_support::cell_info("debian-6.1", CgroupMode::V2, Default::default(), &o);
    (run_cell(&k, &img, &cell, &ids, &o, &mut |_| {}), ids)
}

/// A WARNING hidden from the console (`loglevel=3`) comes through /dev/kmsg: kernel.no_oops
/// FAILs naming it and the assertion that was running; nothing else changes.
#[test]
fn a_kernel_warning_from_kmsg_fails_no_oops_only() {
    let (records, ids) = cell_with("isolab.warn_after");
    let get = |id: &str| records.iter().find(|r| r.assertion == id).unwrap_or_else(|| panic!("no {id}"));
    for id in &ids {
        assert_eq!(get(id).status, Outcome::Pass, "{id}: {}", get(id).detail);
    }
    assert_eq!(get(NO_PANIC).status, Outcome::Pass, "{}", get(NO_PANIC).detail);
    let w = get(NO_OOPS);
    assert_eq!(w.status, Outcome::Fail, "is the packed agent current? {}", w.detail);
    assert!(w.detail.starts_with("warning: WARNING: CPU: 0 PID: 1 at isolab-test"), "{}", w.detail);
    assert!(w.detail.contains(&format!("running: {}", ids[1])), "{}", w.detail);
}

#[test]
fn a_guest_panic_is_a_fail_record_with_its_trace_in_every_output() {
    let (records, ids) = cell_with("isolab.crash_after");
    let get = |id: &str| records.iter().find(|r| r.assertion == id).unwrap_or_else(|| panic!("no {id}"));

    assert_eq!(get(&ids[0]).status, Outcome::Pass, "{}", get(&ids[0]).detail);
    // The retry panics again (same command line): the rest is an ERROR naming the panic.
    assert_eq!(get(&ids[1]).status, Outcome::Error, "is the packed agent current? {}", get(&ids[1]).detail);
    let p = get(NO_PANIC);
    eprintln!("{NO_PANIC}: {}", p.detail);
    assert_eq!(p.status, Outcome::Fail, "{}", p.detail);
    for want in [
        "panic: Kernel panic - not syncing: sysrq triggered crash".to_string(),
        format!("running: {}", ids[1]),
        "first try".into(),
        "retry".into(),
        "--- panic trace ---".into(),
        "sysrq_handle_crash".into(), // the kernel's own symbolised trace
        "--- console tail ---".into(),
    ] {
        assert!(p.detail.contains(&want), "{want:?} missing from:\n{}", p.detail);
    }
    assert!(!p.kernel_release.is_empty());
    assert_eq!(get(NO_OOPS).status, Outcome::Pass, "{}", get(NO_OOPS).detail);

    let headline = "Kernel panic - not syncing: sysrq triggered crash";
    let outputs = [
        ("terminal", report::render_table(&records, false)),
        ("results.json", serde_json::to_string(&records).unwrap()),
        ("junit", report::render_junit(&records)),
        ("ktap", report::render_ktap(&records)),
        ("html", report::render_html(&records, 1.0)),
    ];
    for (name, text) in &outputs {
        assert!(text.contains(NO_PANIC) && text.contains(headline), "{name} lacks the panic:\n{text}");
        assert!(text.contains("sysrq_handle_crash"), "{name} lacks the trace:\n{text}");
    }
    let html = &outputs[4].1;
    let top = html.find("id=\"kernel-reports\"").expect("the HTML has a kernel reports section");
    assert!(top < html.find("<table").unwrap(), "kernel reports come before the matrix");
}
