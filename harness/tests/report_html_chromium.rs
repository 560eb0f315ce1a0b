//! report.html rendered by a real browser (Debian's headless `chromium`, installed by
//! ci/setup), its DOM checked after the page's script ran: the kernel reports, the retried
//! cell and the baseline regression sit above the matrix, the column headers carry kernel
//! release, runtime version and assertion time, every cell opens its detail in one click,
//! and `#nonpass` hides the rows whose cells all passed. A screenshot is written next to it.

use std::path::Path;
use std::process::Command;

use isolab_harness::protocol::Outcome::{self, *};
use isolab_harness::report::{diff, render_html_diff, Record};

fn rec(kernel: &str, cgroup: &str, assertion: &str, status: Outcome, detail: &str) -> Record {
    Record {
        kernel: kernel.into(),
        kernel_release: format!("{}.0-test-amd64", kernel.trim_start_matches("debian-")),
        cgroup: cgroup.into(),
        runtime: "isorun".into(),
        runtime_version: "isorun 0.1.0".into(),
        assertion: assertion.into(),
        status,
        detail: detail.into(),
        duration_ms: 1500,
        base_config: "spec".into(),
        advisory: None,
    }
}

fn records() -> Vec<Record> {
    let retried = "(cell retried: the first VM broke: kernel panic: Kernel panic - not syncing: Fatal exception in interrupt)";
    vec![
        rec("debian-6.1", "v2", "pid.init_is_pid1", Pass, ""),
        rec("debian-6.1", "v2", "cgroup.memory.oom_kill", Fail, "no OOM kill counted"),
        rec("debian-6.1", "v2", "kernel.no_panic", Pass, ""),
        rec("debian-6.1", "v2", "kernel.no_oops", Pass, ""),
        rec("debian-7.2", "v2", "pid.init_is_pid1", Pass, retried),
        rec("debian-7.2", "v2", "cgroup.memory.oom_kill", Pass, retried),
        rec(
            "debian-7.2",
            "v2",
            "kernel.no_panic",
            Fail,
            "panic: Kernel panic - not syncing: Fatal exception in interrupt (running: cgroup.cpu.quota)\n\
             --- panic trace ---\n dequeue_task_fair+0x1c/0x2a0",
        ),
        rec("debian-7.2", "v2", "kernel.no_oops", Pass, ""),
    ]
}

/// Run Debian's chromium headless on `url` with `extra` flags; its stdout.
fn chromium(profile: &Path, extra: &[&str], url: &str) -> String {
    let bin = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| {
            panic!("no chromium: ci/setup installs Debian's `chromium` (apt-get install chromium)")
        });
    let out = Command::new("timeout")
        .args(["-k", "5", "60", bin, "--headless", "--no-sandbox", "--disable-gpu"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg("--no-first-run")
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(out.status.success(), "chromium {url}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn chromium_renders_the_report_and_the_filter_hides_passing_rows() {
    let dir = tempfile::Builder::new().prefix("isolab-html-").tempdir_in("/tmp").unwrap();
    let recs = records();
    let mut base = recs.clone();
    base[1].status = Pass; // oom_kill on 6.1/v2 passed in the baseline: a regression now
    let page = dir.path().join("report.html");
    std::fs::write(&page, render_html_diff(&recs, 12.0, &diff(&base, &recs))).unwrap();
    let url = format!("file://{}", page.display());

    let dom = chromium(&dir.path().join("profile-a"), &["--dump-dom"], &url);
    let at = |needle: &str| dom.find(needle).unwrap_or_else(|| panic!("{needle:?} not in the DOM:\n{dom}"));
    let table = at("<table id=\"matrix\">");
    assert!(at("Fatal exception in interrupt") < table, "the panic is above the matrix");
    assert!(at("<section id=\"kernel-reports\" class=\"bad\">") < table);
    assert!(at("<section id=\"retries\">") < table);
    assert!(at("REGRESSION: debian-6.1/v2 cgroup.memory.oom_kill PASS -&gt; FAIL") < table);
    assert!(dom.contains("<small class=\"release\">7.2.0-test-amd64</small>"));
    assert!(dom.contains("<small class=\"runtime\">isorun 0.1.0</small>"));
    assert!(dom.contains("<small class=\"time\">6.0 s of assertions</small>"));
    assert_eq!(dom.matches("<td id=").count(), 8, "a cell per record");
    assert_eq!(dom.matches("<td id=").count(), dom.matches("<td id=\"c-").count());
    assert_eq!(
        dom.matches("<details><summary>").count(),
        8 + 1,
        "every cell (and the panic) opens in one click"
    );
    assert!(dom.contains("class=\"FAIL changed\""), "the regression is outlined");
    assert!(!dom.contains(" hidden=\"\""), "nothing hidden without the filter");

    let filtered = chromium(&dir.path().join("profile-b"), &["--dump-dom"], &format!("{url}#nonpass"));
    assert!(filtered.contains("<body class=\"nonpass\">"), "{filtered}");
    let hidden: Vec<&str> = filtered
        .split("<tr ")
        .filter(|r| r.split('>').next().unwrap().contains("hidden"))
        .map(|r| r.split("</th>").next().unwrap())
        .collect();
    // pid.init_is_pid1 and kernel.no_oops pass everywhere; oom_kill and no_panic do not.
    assert_eq!(hidden.len(), 2, "{hidden:?}");
    assert!(hidden.iter().all(|r| r.contains("allpass")), "{hidden:?}");
    assert!(filtered.contains("kernel.no_panic") && filtered.contains("cgroup.memory.oom_kill"));

    let shot = dir.path().join("report.png");
    chromium(
        &dir.path().join("profile-c"),
        &[&format!("--screenshot={}", shot.display()), "--window-size=1100,700", "--hide-scrollbars"],
        &url,
    );
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a real picture: {} bytes", png.len());
    if let Some(keep) = std::env::var_os("ISOLAB_HTML_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}
