//! checkpoint assertions on this host against isorun. Where `criu check` passes, each must
//! PASS and FAIL against its negative control; where it fails (CRIU 3.17 on this machine's
//! 6.18 kernel: "vdso: Unexpected rt vDSO area bounds"), each must SKIP with CRIU's own
//! reason — loudly, never a silent pass. The guests prove them (`ci/matrix`).

mod common;

use isolab_harness::protocol::Outcome;
use test_case::test_case;

fn criu_check() -> Option<String> {
    let out = std::process::Command::new("criu").arg("check").output().ok()?;
    (!out.status.success()).then(|| String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test_case("checkpoint.pid1_survives")]
#[test_case("checkpoint.hostname_survives")]
#[test_case("checkpoint.mount_view_survives")]
#[test_case("checkpoint.memory_limit_survives")]
#[test_case("checkpoint.host_view_not_widened")]
fn passes_and_its_negative_control_fails(id: &str) {
    assert!(
        std::path::Path::new("/usr/sbin/criu").exists(),
        "criu is required (apt-get install criu; ci/setup installs it)"
    );
    match criu_check() {
        None => common::passes_and_control_fails(id),
        Some(check) => {
            let (outcome, detail) = common::run(id, false);
            eprintln!("SKIP {id}: {detail}");
            assert_eq!(outcome, Outcome::Skip, "{id}: criu check fails here ({check}), yet: {detail}");
            let line = check.lines().find(|l| {
                l.contains("Error (")
                    && !["exited, status=1", "tun: ", "Diag module missing"].iter().any(|n| l.contains(n))
            });
            let line = line.expect("criu check printed an error line");
            assert!(
                detail.contains(line.trim()),
                "{id}: the skip must carry CRIU's reason {line:?}: {detail}"
            );
        }
    }
}

/// The runtime's own error on this host: CRIU's reason, nothing changed (the container keeps
/// running, no image directory is left).
#[test]
fn isorun_checkpoint_fails_with_criu_s_reason_and_leaves_the_container_running() {
    let Some(check) = criu_check() else {
        eprintln!("SKIP: criu check passes on this host; the failure path is not reachable here");
        return;
    };
    let dir = tempfile::Builder::new().prefix("isolab-ckpt-").tempdir_in("/tmp").unwrap();
    let mut ctx = isolab_harness::catalogue::Ctx::new(
        &common::isorun(),
        dir.path(),
        std::path::Path::new("/bin/busybox"),
    )
    .unwrap();
    let c = ctx.start(ctx.config(&["sleep", "60"])).expect("container starts");
    let images = dir.path().join("images");
    let out = ctx.runtime_cmd(&["checkpoint", "--image-path", &images.to_string_lossy(), &c.id]);
    assert_ne!(out.code, 0, "checkpoint cannot succeed where criu check fails");
    let line = check
        .lines()
        .find(|l| {
            l.contains("Error (")
                && !["exited, status=1", "tun: ", "Diag module missing"].iter().any(|n| l.contains(n))
        })
        .unwrap();
    assert!(out.stderr.contains(line.trim()), "stderr {:?} lacks CRIU's reason {line:?}", out.stderr);
    assert!(!images.exists(), "nothing was created before the failure");
    let st = ctx.state(&c.id).expect("state after the failed checkpoint");
    assert_eq!(st["status"], "running", "{st}");
    assert_eq!(st["pid"].as_i64(), Some(c.pid as i64), "the same init");
}

/// All five in one run where `criu check` fails: the shared round trip's SKIP is each one's,
/// with CRIU's reason, and no container is left behind.
#[test]
fn a_shared_refusal_is_each_assertion_s_and_leaves_no_container() {
    let Some(check) = criu_check() else {
        eprintln!("SKIP: criu check passes on this host; catalogue_checkpoint_vm covers the shared pass");
        return;
    };
    let line = check
        .lines()
        .find(|l| {
            l.contains("Error (")
                && !["exited, status=1", "tun: ", "Diag module missing"].iter().any(|n| l.contains(n))
        })
        .expect("criu check printed an error line");
    let dir = tempfile::Builder::new().prefix("isolab-ckpt-").tempdir_in("/tmp").unwrap();
    let mut got = Vec::new();
    isolab_harness::catalogue::run_selected(
        &common::isorun(),
        "checkpoint.*",
        &isolab_harness::catalogue::base::BaseConfig::default(),
        dir.path(),
        std::path::Path::new("/bin/busybox"),
        &mut |id, v, _| got.push((id.to_owned(), v.clone())),
    )
    .unwrap();
    assert_eq!(got.len(), 5, "{got:?}");
    for (id, v) in &got {
        assert_eq!(v.outcome, Outcome::Skip, "{id}: {}", v.detail);
        assert!(
            v.detail.contains(line.trim()),
            "{id}: the skip must carry CRIU's reason {line:?}: {}",
            v.detail
        );
    }
    // The first made the (refused) round trip; the next four reuse its verdict.
    for (id, v) in &got[1..] {
        assert!(v.detail.ends_with("(shared checkpoint)"), "{id} did not reuse it: {}", v.detail);
    }
    let list = std::process::Command::new(common::isorun())
        .arg("--root")
        .arg(dir.path().join("state"))
        .args(["list", "-q"])
        .output()
        .unwrap();
    assert!(list.status.success(), "isorun list: {}", String::from_utf8_lossy(&list.stderr));
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "", "containers left behind");
}
