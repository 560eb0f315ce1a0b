//! Live migration of a container between two guests on the same kernel: in the first VM a
//! container (a counter, and a file it holds open on fd 3) is started and checkpointed with
//! the runtime's `checkpoint`; its CRIU images come back to the host (tar.gz, base64 lines
//! on the command's stdout); the second VM gets them in its request (environment chunks),
//! restores the container from an identical bundle and shows that its state survived: the
//! counter goes on from where it was, fd 3 still names the same file and still appends to it.

use std::collections::BTreeMap;

use serde_json::json;

use crate::kernels::CheckedKernel;
use crate::lab::{self, LabOptions};
use crate::protocol::{Action, CgroupMode, Event, Request, Stream, PROTOCOL_VERSION};

/// Errors of a migration, each naming the VM and the step.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A VM broke (no hello, panic, timeout).
    #[error("{vm} VM: {error}\n{console}")]
    Vm {
        /// `source` or `target`.
        vm: &'static str,
        /// The harness's error.
        error: String,
        /// The last console lines.
        console: String,
    },
    /// A step inside a guest failed; its output says why.
    #[error("{vm} VM: {step} failed: {output}")]
    Step {
        /// `source` or `target`.
        vm: &'static str,
        /// The step.
        step: &'static str,
        /// What the guest printed.
        output: String,
    },
}

/// Bytes of base64 per environment variable (each must stay under MAX_ARG_STRLEN, 128 KiB).
pub const CHUNK: usize = 100_000;

/// The container's init: counts in /tmp/count and appends each value to fd 3 (/tmp/held).
pub const INIT: &str =
    "exec 3>>/tmp/held; i=0; while true; do i=$((i+1)); echo $i > /tmp/count; echo $i >&3; sleep 0.2; done";

/// The bundle's config.json: the same bytes in both guests, so the restore's digest check
/// passes. (rseq off: see `catalogue::criu::counter_config`.)
pub fn config() -> String {
    let mut cfg: serde_json::Value =
        serde_json::from_str(include_str!("catalogue/base_config.json")).expect("valid base config");
    cfg["process"]["args"] = json!(["sh", "-c", INIT]);
    cfg["root"]["path"] = json!("/tmp/mig/rootfs");
    if let Some(env) = cfg["process"]["env"].as_array_mut() {
        env.push(json!("GLIBC_TUNABLES=glibc.pthread.rseq=0"));
    }
    serde_json::to_string_pretty(&cfg).unwrap_or_default()
}

const BUNDLE: &str = r#"ip link set lo up
u=$(/init criu-usable); [ -z "$u" ] || { echo "$u"; exit 0; }
B=/tmp/mig; mkdir -p $B/rootfs/bin $B/rootfs/proc $B/rootfs/sys $B/rootfs/dev $B/rootfs/tmp $B/rootfs/etc
cp /bin/busybox $B/rootfs/bin/
for a in $(busybox --list); do [ $a = busybox ] || ln -sf busybox $B/rootfs/bin/$a; done
printf '%s' "$ISOLAB_MIGRATE_CONFIG" > $B/config.json
R=/isolab/runtime
"#;

/// The source guest's script: start, look, checkpoint, send the images. (GNU tar by its path:
/// busybox's sh runs its own applets first.)
pub const SOURCE: &str = r#"$R run -d -b $B mig </dev/null >/tmp/run.out 2>&1 || { echo "fail=run: $(cat /tmp/run.out)"; exit 1; }
sleep 2
echo "count=$($R exec mig cat /tmp/count)"
echo "held=$($R exec mig readlink /proc/1/fd/3)"
$R checkpoint --image-path /tmp/mig-img mig >/tmp/ckpt.out 2>&1 || { echo "fail=checkpoint: $(cat /tmp/ckpt.out)"; exit 1; }
echo "left=$($R list -q | wc -l)"
/usr/bin/tar -C /tmp/mig-img -czf - --exclude=dump.log . | base64 | sed 's/^/image:/'
"#;

/// The target guest's script: rebuild the images, restore, look twice.
pub const TARGET: &str = r#"mkdir -p /tmp/mig-img
i=0; while eval "c=\${ISOLAB_MIGRATE_IMAGE_$i-}"; [ -n "$c" ]; do printf '%s' "$c"; i=$((i+1)); done | base64 -d | /usr/bin/tar -C /tmp/mig-img -xzf -
$R restore -d --image-path /tmp/mig-img -b $B mig </dev/null >/tmp/restore.out 2>&1 || { echo "fail=restore: $(cat /tmp/restore.out) $(grep 'Error (' /tmp/mig-img/restore.log | head -n3)"; exit 1; }
echo "status=$($R state mig | grep '"status"' | tr -d ' ",' | cut -d: -f2)"
echo "pid1=$($R exec mig sh -c 'tr "\0" " " </proc/1/cmdline')"
echo "count=$($R exec mig cat /tmp/count)"
echo "held=$($R exec mig readlink /proc/1/fd/3)"
echo "lines=$($R exec mig sh -c 'wc -l < /tmp/held')"
sleep 1
echo "count2=$($R exec mig cat /tmp/count)"
echo "lines2=$($R exec mig sh -c 'wc -l < /tmp/held')"
$R delete -f mig
"#;

/// What a guest script printed: `key=value` lines, and the `image:` lines joined.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Said {
    /// The key=value lines (last wins).
    pub keys: BTreeMap<String, String>,
    /// The base64 image (source only).
    pub image: String,
    /// Every line, for error messages.
    pub lines: Vec<String>,
}

/// Parses a guest script's stdout lines.
pub fn parse(lines: &[String]) -> Said {
    let mut s = Said { lines: lines.to_vec(), ..Said::default() };
    for l in lines {
        if let Some(b) = l.strip_prefix("image:") {
            s.image.push_str(b.trim());
        } else if let Some((k, v)) = l.split_once('=') {
            s.keys.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    s
}

/// The base64 image split into environment variables for the target's request.
pub fn image_env(image: &str) -> Vec<(String, String)> {
    image
        .as_bytes()
        .chunks(CHUNK)
        .enumerate()
        .map(|(i, c)| (format!("ISOLAB_MIGRATE_IMAGE_{i}"), String::from_utf8_lossy(c).into_owned()))
        .collect()
}

/// The outcome of a migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Migrated and every property held; the figures, one per line.
    Migrated(Vec<String>),
    /// CRIU cannot work on this kernel (its reason).
    Skipped(String),
}

/// Checks what the two guests said; the figures on success, else what did not hold.
pub fn verdict(src: &Said, dst: &Said) -> Result<Vec<String>, String> {
    let num = |s: &Said, k: &str| s.keys.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let (c0, c1, c2) = (num(src, "count"), num(dst, "count"), num(dst, "count2"));
    let (l1, l2) = (num(dst, "lines"), num(dst, "lines2"));
    let held0 = src.keys.get("held").cloned().unwrap_or_default();
    let held1 = dst.keys.get("held").cloned().unwrap_or_default();
    let mut bad = Vec::new();
    if src.keys.get("left").map(String::as_str) != Some("0") {
        bad.push(format!("the source still lists {:?} containers after checkpoint", src.keys.get("left")));
    }
    if dst.keys.get("status").map(String::as_str) != Some("running") {
        bad.push(format!("restored status {:?}", dst.keys.get("status")));
    }
    if !dst.keys.get("pid1").is_some_and(|p| p.contains("while true")) {
        bad.push(format!("PID 1 after restore is {:?}, not the counter", dst.keys.get("pid1")));
    }
    if c0 == 0 || c1 < c0 || c2 <= c1 {
        bad.push(format!("counter: {c0} at checkpoint, {c1} then {c2} after restore"));
    }
    if held0 != "/tmp/held" || held1 != held0 || l1 < c0 || l2 <= l1 {
        bad.push(format!("fd 3: {held0:?} before, {held1:?} after; /tmp/held had {l1} then {l2} lines"));
    }
    if !bad.is_empty() {
        return Err(bad.join("; "));
    }
    Ok(vec![
        format!("counter at checkpoint (source VM): {c0}"),
        format!("counter after restore (target VM): {c1}, one second later: {c2}"),
        format!("fd 3 of PID 1: {held0} before, {held1} after; its lines: {l1}, then {l2}"),
        format!("image carried across: {} bytes of base64", src.image.len()),
    ])
}

/// The guests of a migration: both boot the same kernel, image and cgroup mode.
struct Guest<'a> {
    k: &'a CheckedKernel,
    image: &'a std::path::Path,
    cgroup: CgroupMode,
    o: &'a LabOptions,
}

/// Boots one VM for `script`; a VM that broke the way the matrix retries a cell for (a panic,
/// a boot or step timeout: [`crate::vm::VmError::worth_a_retry`]) is booted once more, saying so through
/// `progress`.
fn run_vm(
    vm: &'static str,
    g: &Guest<'_>,
    script: &str,
    env: &[(String, String)],
    progress: &dyn Fn(&str),
) -> Result<Said, MigrateError> {
    match boot_once(vm, g, script, env) {
        Err((error, true)) => {
            progress(&format!("NOTE: the {vm} VM broke ({error}); booting it once more"));
            boot_once(vm, g, script, env).map_err(|(e, _)| e)
        }
        other => other.map_err(|(e, _)| e),
    }
}

/// One VM run: what its script said, or why it gave no usable answer and whether that is
/// worth another try.
fn boot_once(
    vm: &'static str,
    g: &Guest<'_>,
    script: &str,
    env: &[(String, String)],
) -> Result<Said, (MigrateError, bool)> {
    let argv = vec!["sh".into(), "-c".into(), script.to_owned()];
    let action = Action::Exec { argv, env: env.to_vec(), timeout_secs: 300 };
    let req = Request { protocol_version: PROTOCOL_VERSION, action };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let report = lab::boot(g.k, g.image, g.cgroup, &req, g.o, false, &mut |ev| match ev {
        Event::CommandOutput { stream: Stream::Stdout, line } => out.push(line.clone()),
        Event::CommandOutput { stream: Stream::Stderr, line } => err.push(line.clone()),
        _ => {}
    });
    if let Some(e) = report.error {
        let console = report.console_tail.join("\n");
        return Err((MigrateError::Vm { vm, error: e.to_string(), console }, e.worth_a_retry()));
    }
    let said = parse(&out);
    if let Some(f) = said.keys.get("fail") {
        return Err((MigrateError::Step { vm, step: "script", output: f.clone() }, false));
    }
    match report.exit_code() {
        Some(0) => Ok(said),
        code => {
            let how = code.map_or("did not exit".to_owned(), |c| format!("exited {c}"));
            let output = format!("the guest script {how}; its stdout: {out:?}; its stderr: {err:?}");
            Err((MigrateError::Step { vm, step: "script", output }, false))
        }
    }
}

/// Migrates a container from one VM on kernel `k` to another; SKIP when CRIU cannot work.
pub fn migrate(
    k: &CheckedKernel,
    image: &std::path::Path,
    cgroup: CgroupMode,
    o: &LabOptions,
    progress: &dyn Fn(&str),
) -> Result<Outcome, MigrateError> {
    let g = Guest { k, image, cgroup, o };
    let cfg = vec![("ISOLAB_MIGRATE_CONFIG".to_string(), config())];
    progress("source VM: start the container, checkpoint it, send the images");
    let src = run_vm("source", &g, &format!("{BUNDLE}{SOURCE}"), &cfg, progress)?;
    if let Some(reason) = src.keys.get("skip") {
        return Ok(Outcome::Skipped(format!("CRIU cannot work on {}: {reason}", k.files.name)));
    }
    if src.image.is_empty() {
        return Err(MigrateError::Step { vm: "source", step: "send images", output: src.lines.join("\n") });
    }
    progress(&format!("target VM: {} bytes of images in, restore, look", src.image.len()));
    let mut env = cfg;
    env.extend(image_env(&src.image));
    let dst = run_vm("target", &g, &format!("{BUNDLE}{TARGET}"), &env, progress)?;
    verdict(&src, &dst).map(Outcome::Migrated).map_err(|output| MigrateError::Step {
        vm: "target",
        step: "state survived",
        output,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(text: &str) -> Said {
        parse(&text.lines().map(str::to_string).collect::<Vec<_>>())
    }

    #[test]
    fn parses_keys_and_joins_image_lines() {
        let s = said("count=12\nheld=/tmp/held\nimage:QUJD\nimage:REVG\nnoise\n");
        assert_eq!(s.keys["count"], "12");
        assert_eq!(s.image, "QUJDREVG");
    }

    #[test]
    fn image_env_chunks_in_order() {
        let img = "a".repeat(CHUNK * 2 + 5);
        let env = image_env(&img);
        assert_eq!(env.len(), 3);
        assert_eq!(env[2].0, "ISOLAB_MIGRATE_IMAGE_2");
        assert_eq!(env.iter().map(|(_, v)| v.as_str()).collect::<String>(), img);
    }

    #[test]
    fn the_config_is_stable_and_runs_the_counter() {
        assert_eq!(config(), config(), "same bytes in both guests");
        assert!(config().contains("exec 3>>/tmp/held") && config().contains("rseq=0"));
    }

    #[test]
    fn verdict_needs_the_counter_and_the_held_file_to_go_on() {
        let src = said("count=10\nheld=/tmp/held\nleft=0\nimage:xx\n");
        let good = said(
            "status=running\npid1=sh -c exec 3>>/tmp/held; while true\ncount=11\nheld=/tmp/held\nlines=11\ncount2=16\nlines2=16\n",
        );
        assert!(verdict(&src, &good).is_ok(), "{:?}", verdict(&src, &good));
        // A counter that restarted from zero (a fresh container, not a restored one).
        let fresh = said(
            "status=running\npid1=sh while true\ncount=3\nheld=/tmp/held\nlines=3\ncount2=8\nlines2=8\n",
        );
        assert!(verdict(&src, &fresh).unwrap_err().contains("counter"));
        // A counter that stopped (restored but frozen).
        let stopped = said(
            "status=running\npid1=while true\ncount=11\nheld=/tmp/held\nlines=11\ncount2=11\nlines2=11\n",
        );
        assert!(verdict(&src, &stopped).is_err());
        // fd 3 lost.
        let lost = said(
            "status=running\npid1=while true\ncount=11\nheld=/dev/null\nlines=11\ncount2=16\nlines2=16\n",
        );
        assert!(verdict(&src, &lost).unwrap_err().contains("fd 3"));
    }
}
