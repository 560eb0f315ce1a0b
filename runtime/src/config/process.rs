//! Validation of `process`: args, cwd, env, user, rlimits, capabilities and the rest.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::names::{is_known_capability, suggest, CAPABILITY_SETS, KNOWN_CAPS, RLIMIT_TYPES};
use super::report::{field, get, index, quote, Report};

/// The process's scheduling policies (`process.scheduler.policy`).
const SCHED_POLICIES: [&str; 7] =
    ["SCHED_OTHER", "SCHED_FIFO", "SCHED_RR", "SCHED_BATCH", "SCHED_ISO", "SCHED_IDLE", "SCHED_DEADLINE"];

/// I/O priority classes (`process.ioPriority.class`).
const IOPRIO_CLASSES: [&str; 3] = ["IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE"];

/// Validates `doc.process` (required: `create` cannot do without it).
pub(crate) fn validate(doc: &Map<String, Value>, r: &mut Report) {
    if get(doc, "process").is_none() {
        r.error("process", "required but missing (it is needed to create the container)");
        return;
    }
    let Some(p) = r.object_at(doc, "", "process") else { return };
    args(p, r);
    cwd(p, r);
    env(p, r);
    user(p, r);
    rlimits(p, r);
    capabilities(p, r);
    terminal(p, r);
    r.bool_at(p, "process", "noNewPrivileges");
    r.str_at(p, "process", "apparmorProfile");
    r.str_at(p, "process", "selinuxLabel");
    if let Some(adj) = r.i64_at(p, "process", "oomScoreAdj") {
        if !(-1000..=1000).contains(&adj) {
            r.error("process.oomScoreAdj", format!("{adj} is outside -1000..=1000"));
        }
    }
    if let Some(sched) = r.object_at(p, "process", "scheduler") {
        one_of(sched, "process.scheduler", "policy", &SCHED_POLICIES, true, r);
    }
    if let Some(io) = r.object_at(p, "process", "ioPriority") {
        one_of(io, "process.ioPriority", "class", &IOPRIO_CLASSES, true, r);
        if let Some(prio) = r.i64_at(io, "process.ioPriority", "priority") {
            if !(0..=7).contains(&prio) {
                r.error("process.ioPriority.priority", format!("{prio} is outside 0..=7"));
            }
        }
    }
}

/// Checks that `obj.key` is one of `allowed` (and present when `required`).
pub(crate) fn one_of(
    obj: &Map<String, Value>,
    parent: &str,
    key: &str,
    allowed: &[&str],
    required: bool,
    r: &mut Report,
) -> Option<bool> {
    if required && !r.require(obj, parent, key) {
        return None;
    }
    let value = r.str_at(obj, parent, key)?;
    let ok = allowed.contains(&value);
    if !ok {
        r.error(
            field(parent, key),
            format!("unknown value {}, expected one of {}", quote(value), allowed.join(", ")),
        );
    }
    Some(ok)
}

fn args(p: &Map<String, Value>, r: &mut Report) {
    if !r.require(p, "process", "args") {
        return;
    }
    let Some(items) = r.array_at(p, "process", "args") else { return };
    if items.is_empty() {
        r.error("process.args", "must have at least one element (the program to run)");
    } else if items.first().and_then(Value::as_str) == Some("") {
        r.error("process.args[0]", "the program to run must not be empty");
    }
    for (path, arg) in r.strings_at(p, "process", "args").unwrap_or_default() {
        if arg.contains('\0') {
            r.error(path, "contains a NUL byte");
        } else if let Some(reason) = too_long_for_execve(arg) {
            r.error(path, reason);
        }
    }
}

/// The kernel's limit on one argument or environment string of execve(2), terminating NUL
/// included (`MAX_ARG_STRLEN`, 32 pages): a longer one fails with E2BIG at `start`, after
/// `create` said yes, so it is refused here.
pub(crate) const MAX_ARG_STRLEN: usize = 32 * 4096;

fn too_long_for_execve(s: &str) -> Option<String> {
    (s.len() >= MAX_ARG_STRLEN).then(|| {
        format!(
            "{} bytes, execve(2) accepts at most {} per string (MAX_ARG_STRLEN)",
            s.len(),
            MAX_ARG_STRLEN - 1
        )
    })
}

fn cwd(p: &Map<String, Value>, r: &mut Report) {
    if !r.require(p, "process", "cwd") {
        return;
    }
    if let Some(cwd) = r.str_at(p, "process", "cwd") {
        if !cwd.starts_with('/') {
            r.error("process.cwd", format!("must be an absolute path, got {}", quote(cwd)));
        } else if cwd.contains('\0') {
            r.error("process.cwd", "contains a NUL byte");
        }
    }
}

fn env(p: &Map<String, Value>, r: &mut Report) {
    for (path, var) in r.strings_at(p, "process", "env").unwrap_or_default() {
        if var.find('=').is_none_or(|at| at == 0) {
            r.error(path, format!("{} is not of the form KEY=value", quote(var)));
        } else if var.contains('\0') {
            r.error(path, "contains a NUL byte");
        } else if let Some(reason) = too_long_for_execve(var) {
            r.error(path, reason);
        }
    }
}

fn user(p: &Map<String, Value>, r: &mut Report) {
    if !r.require(p, "process", "user") {
        return;
    }
    let Some(user) = r.object_at(p, "process", "user") else { return };
    for key in ["uid", "gid"] {
        if r.require(user, "process.user", key) {
            r.u32_at(user, "process.user", key);
        }
    }
    if let Some(umask) = r.u32_at(user, "process.user", "umask") {
        if umask > 0o777 {
            r.error("process.user.umask", format!("{umask} ({umask:#o}) has bits beyond 0o777"));
        }
    }
    if let Some(gids) = r.array_at(user, "process.user", "additionalGids") {
        for (i, gid) in gids.iter().enumerate() {
            r.unsigned(gid, &index("process.user.additionalGids", i), u64::from(u32::MAX), "uint32");
        }
    }
    r.str_at(user, "process.user", "username");
}

fn rlimits(p: &Map<String, Value>, r: &mut Report) {
    let Some(list) = r.array_at(p, "process", "rlimits") else { return };
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, item) in list.iter().enumerate() {
        let path = index("process.rlimits", i);
        let Some(rl) = r.object(item, &path) else { continue };
        if r.require(rl, &path, "type") {
            if let Some(ty) = r.str_at(rl, &path, "type") {
                if !RLIMIT_TYPES.contains(&ty) {
                    let hint = suggest(ty, RLIMIT_TYPES, "RLIMIT_").map(|s| format!(" (did you mean {s}?)"));
                    r.error(
                        field(&path, "type"),
                        format!("unknown rlimit {}{}", quote(ty), hint.unwrap_or_default()),
                    );
                } else if let Some(first) = seen.get(ty) {
                    r.error(
                        field(&path, "type"),
                        format!("duplicate rlimit {ty} (first at process.rlimits[{first}])"),
                    );
                } else {
                    seen.insert(ty, i);
                }
            }
        }
        let soft = r.require(rl, &path, "soft").then(|| r.u64_at(rl, &path, "soft")).flatten();
        let hard = r.require(rl, &path, "hard").then(|| r.u64_at(rl, &path, "hard")).flatten();
        if let (Some(soft), Some(hard)) = (soft, hard) {
            if soft > hard {
                r.error(field(&path, "soft"), format!("soft limit {soft} is above the hard limit {hard}"));
            }
        }
    }
}

fn capabilities(p: &Map<String, Value>, r: &mut Report) {
    let Some(caps) = r.object_at(p, "process", "capabilities") else { return };
    for set in CAPABILITY_SETS {
        for (path, name) in r.strings_at(caps, "process.capabilities", set).unwrap_or_default() {
            if !is_known_capability(name) {
                let hint = suggest(name, KNOWN_CAPS, "CAP_").map(|s| format!(" (did you mean {s}?)"));
                r.error(path, format!("unknown capability {}{}", quote(name), hint.unwrap_or_default()));
            }
        }
    }
}

fn terminal(p: &Map<String, Value>, r: &mut Report) {
    let terminal = r.bool_at(p, "process", "terminal").unwrap_or(false);
    let Some(size) = r.object_at(p, "process", "consoleSize") else { return };
    if !terminal {
        // runtime-spec: "Runtimes MUST ignore consoleSize if terminal is false or unset."
        r.warn("process.consoleSize", "ignored: process.terminal is not true");
        return;
    }
    for key in ["height", "width"] {
        r.require(size, "process.consoleSize", key);
        if let Some(v) = get(size, key) {
            r.unsigned(
                v,
                &field("process.consoleSize", key),
                u64::from(u16::MAX),
                "a terminal dimension (uint16)",
            );
        }
    }
}
