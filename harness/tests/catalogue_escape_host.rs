//! `isolab check --host --only 'escape.*'` walks through no door on the host: the usermode
//! helpers (core_pattern, modprobe, uevent_helper), the host's keyrings, its mounts and its
//! cgroup release agents are as they were before.

mod vm_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// What an escape would change on the host, read now.
#[derive(Debug, PartialEq, Eq)]
struct HostState {
    helpers: Vec<(String, Option<String>)>,
    keyrings: BTreeSet<String>,
    mounts: BTreeSet<String>,
}

fn lines(path: &str) -> BTreeSet<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
}

fn read_state() -> HostState {
    let mut files: Vec<String> =
        ["/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe", "/sys/kernel/uevent_helper"]
            .map(String::from)
            .to_vec();
    for e in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        files.push(e.path().join("release_agent").to_string_lossy().into_owned());
    }
    HostState {
        helpers: files.into_iter().map(|f| (f.clone(), std::fs::read_to_string(&f).ok())).collect(),
        // Serial, flags and description; the usage and expiry columns change by themselves.
        keyrings: lines("/proc/keys")
            .into_iter()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                format!(
                    "{} {} {}",
                    f.first().unwrap_or(&""),
                    f.get(7).unwrap_or(&""),
                    f.get(8..).map(|d| d.join(" ")).unwrap_or_default()
                )
            })
            .collect(),
        mounts: lines("/proc/self/mountinfo"),
    }
}

/// The entries of `after` not in `before` that check `pid` made: its containers
/// (`isolab-PID-N`, keyrings `_ses.isolab-PID-N`), its key (`isolab-escape-PID`), its work dir
/// (`isolab-check-PID`). Other tests on a shared host make mounts and keys of their own.
fn ours(before: &BTreeSet<String>, after: &BTreeSet<String>, pid: u32) -> Vec<String> {
    let tags = [format!("isolab-{pid}-"), format!("isolab-escape-{pid}"), format!("isolab-check-{pid}")];
    after.difference(before).filter(|l| tags.iter().any(|t| l.contains(t.as_str()))).cloned().collect()
}

#[test]
fn check_host_escape_leaves_the_host_as_it_was() {
    vm_support::agent();
    let out = tempfile::tempdir().unwrap();
    let before = read_state();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_isolab"))
        .args(["check", "--host", "--only", "escape.*", "--out"])
        .arg(out.path())
        .arg("--runtime")
        .arg(vm_support::runtime())
        .spawn()
        .expect("run isolab check");
    let pid = child.id();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "isolab check --host --only 'escape.*' must pass");
    let results = std::fs::read_to_string(out.path().join("results.json")).unwrap();
    assert!(results.matches("\"escape.").count() >= 12, "the escape section ran: {results}");
    // Keyrings of finished containers are garbage-collected shortly after.
    let end = Instant::now() + Duration::from_secs(15);
    let after = loop {
        let now = read_state();
        if ours(&before.keyrings, &now.keyrings, pid).is_empty() || Instant::now() > end {
            break now;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        before.helpers, after.helpers,
        "core_pattern, modprobe, uevent_helper or a release_agent changed"
    );
    assert_eq!(ours(&before.keyrings, &after.keyrings, pid), Vec::<String>::new(), "keys left on the host");
    assert_eq!(ours(&before.mounts, &after.mounts, pid), Vec::<String>::new(), "mounts left on the host");
}
