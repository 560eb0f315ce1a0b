//! Escapes through the kernel's per-user and per-inode lookups that namespaces do not cover:
//! keyrings (a host key reachable from a container sharing the caller's session keyring) and
//! "shocker" (open_by_handle_at opening a host file by its handle, no path needed).

use serde_json::Value;

use super::escape::{host_marker, install_probe, sh_ok, PROBE};
use super::escape_probe::{handle_of, invalidate_key, thread_session_with_key};
use super::util::{add_cap, unchanged};
use super::{Assertion, Ctx, Verdict};
use crate::v;

/// The assertions of this theme.
pub fn assertions() -> Vec<Assertion> {
    vec![
        Assertion {
            id: "escape.keyring_session",
            description: "a key in the caller's session keyring is not reachable inside: the init and an exec'd process get their own session keyring",
            needs: &[],
            check: keyring,
            // The control is a runtime flag (`run --no-new-keyring`), not a config: see
            // harness/tests/catalogue_escape_keys.rs.
            weaken: unchanged,
        },
        Assertion {
            id: "escape.shocker_open_by_handle_at",
            description: "shocker: open_by_handle_at of a host file's handle (outside the rootfs, same filesystem) is refused inside",
            needs: &[],
            check: shocker,
            weaken: with_dac_read_search,
        },
    ]
}

fn with_dac_read_search(cfg: &mut Value) {
    add_cap(cfg, "CAP_DAC_READ_SEARCH");
}

fn keyring(ctx: &mut Ctx) -> Verdict {
    v!(install_probe(ctx));
    let desc = format!("isolab-escape-{}", std::process::id());
    // The key lives in a session keyring of one thread, which runs the container: whatever
    // the runtime does not replace, the container inherits.
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            let (ses, key) = thread_session_with_key(&desc).map_err(|e| {
                Verdict::skip(format!("keyrings unusable on kernel {}: {e}", ctx.facts.kernel_release))
            })?;
            let init = sh_ok(ctx, ctx.config(&[]), &format!("{PROBE} keyring {desc}"));
            let exec = exec_probe(ctx, &desc);
            invalidate_key(key);
            Ok::<_, Verdict>((ses, init, exec))
        })
        .join()
    });
    let (ses, init, exec) = match result {
        Ok(Ok(x)) => x,
        Ok(Err(v)) => return v,
        Err(_) => return Verdict::error("the keyring thread panicked"),
    };
    let init = v!(init);
    let exec = v!(exec);
    // Under a base config whose seccomp profile refuses keyctl (Docker's), the probe's keyctl
    // calls fail EPERM before reaching any keyring: the key is unreachable, said as such.
    let keyctl_refused = super::util::seccomp_refuses(&ctx.config(&[]), "keyctl");
    let mut bad = Vec::new();
    let mut refused = Vec::new();
    for (who, out) in [("init", &init), ("exec", &exec)] {
        let session = out.lines().find_map(|l| l.strip_prefix("session=")).unwrap_or("");
        let found = out.lines().find_map(|l| l.strip_prefix("found=")).unwrap_or("");
        if keyctl_refused && session == "EPERM" && found == "EPERM" {
            refused.push(who);
            continue;
        }
        if found != "ENOKEY" || session == ses.to_string() || session.is_empty() {
            bad.push(format!(
                "{who}: session keyring {session:?} (caller's {ses}), host key search {found:?}"
            ));
        }
    }
    let mut v = Verdict::check(bad.is_empty(), || bad.join("; "));
    if !refused.is_empty() {
        let note = format!(
            "keyctl refused (EPERM) in {} by the base config {}'s seccomp profile",
            refused.join(" and "),
            ctx.base().name
        );
        v.detail = if v.detail.is_empty() { note } else { format!("{}; {note}", v.detail) };
    }
    v
}

/// Start a container and run the keyring probe through `exec` in it; the exec's output.
fn exec_probe(ctx: &mut Ctx, desc: &str) -> Result<String, Verdict> {
    let c = ctx.start(ctx.config(&["sleep", "300"]))?;
    let out = ctx.exec(&c, &[PROBE, "keyring", desc]);
    ctx.delete(&c.id);
    if out.code != 0 {
        return Err(Verdict::fail(format!("exec failed ({}): {}", out.code, out.stderr.trim())));
    }
    Ok(out.stdout.trim().to_owned())
}

fn shocker(ctx: &mut Ctx) -> Verdict {
    v!(install_probe(ctx));
    let (marker, content) = v!(host_marker(ctx, "shocker"));
    let (kind, hex) = match handle_of(&marker) {
        Ok(h) => h,
        Err(e) => {
            return Verdict::skip(format!(
                "the filesystem of {} gives no file handles: {e}",
                marker.display()
            ))
        }
    };
    let out = v!(sh_ok(ctx, ctx.config(&[]), &format!("{PROBE} handle {kind} {hex}")));
    if out.contains("ENOSYS") || out.contains("EOPNOTSUPP") {
        return Verdict::skip(format!("kernel {}: open_by_handle_at: {out}", ctx.facts.kernel_release));
    }
    Verdict::check(out.starts_with("open_by_handle_at=E") && !out.contains(&content), || {
        format!("a host file opened by handle inside: {out:?}")
    })
}
