//! Validation of `linux.seccomp`: actions, architectures, flags, syscall rules and their
//! argument comparisons, plus runc's two rules about `SCMP_ACT_NOTIFY`.

use serde_json::{Map, Value};

use super::names::{SECCOMP_ACTIONS, SECCOMP_ARCHES, SECCOMP_FLAGS, SECCOMP_OPERATORS};
use super::process::one_of;
use super::report::{field, get, index, quote, Report};

const BASE: &str = "linux.seccomp";

/// A syscall has six arguments (`index` 0..=5).
const MAX_SYSCALL_ARGS: u64 = 6;

/// Validates `linux.seccomp`.
pub(crate) fn validate(sec: &Map<String, Value>, r: &mut Report) {
    if one_of(sec, BASE, "defaultAction", &SECCOMP_ACTIONS, true, r) == Some(true)
        && get(sec, "defaultAction").and_then(Value::as_str) == Some("SCMP_ACT_NOTIFY")
    {
        r.error("linux.seccomp.defaultAction", "SCMP_ACT_NOTIFY cannot be the default action");
    }
    r.u32_at(sec, BASE, "defaultErrnoRet");
    closed_list(sec, "architectures", &SECCOMP_ARCHES, r);
    closed_list(sec, "flags", &SECCOMP_FLAGS, r);
    if let Some(p) = r.str_at(sec, BASE, "listenerPath") {
        if !p.is_empty() && !p.starts_with('/') {
            r.error("linux.seccomp.listenerPath", format!("must be an absolute path, got {}", quote(p)));
        }
    }
    r.str_at(sec, BASE, "listenerMetadata");
    let Some(list) = r.array_at(sec, BASE, "syscalls") else { return };
    for (i, item) in list.iter().enumerate() {
        let path = index("linux.seccomp.syscalls", i);
        let Some(rule) = r.object(item, &path) else { continue };
        syscall_rule(rule, &path, r);
    }
}

fn closed_list(sec: &Map<String, Value>, key: &str, allowed: &[&str], r: &mut Report) {
    for (path, name) in r.strings_at(sec, BASE, key).unwrap_or_default() {
        if !allowed.contains(&name) {
            r.error(path, format!("unknown value {}", quote(name)));
        }
    }
}

fn syscall_rule(rule: &Map<String, Value>, path: &str, r: &mut Report) {
    let mut names = Vec::new();
    if r.require(rule, path, "names") {
        if let Some(list) = r.strings_at(rule, path, "names") {
            if list.is_empty() {
                r.error(field(path, "names"), "must name at least one syscall");
            }
            for (at, name) in list {
                if name.is_empty() {
                    r.error(at, "empty syscall name");
                }
                names.push(name);
            }
        }
    }
    let known = one_of(rule, path, "action", &SECCOMP_ACTIONS, true, r) == Some(true);
    if known
        && get(rule, "action").and_then(Value::as_str) == Some("SCMP_ACT_NOTIFY")
        && names.contains(&"write")
    {
        // The runtime itself writes to the notify socket: the container would hang.
        r.error(field(path, "action"), "SCMP_ACT_NOTIFY cannot be used for the write syscall");
    }
    r.u32_at(rule, path, "errnoRet");
    let Some(args) = r.array_at(rule, path, "args") else { return };
    for (j, item) in args.iter().enumerate() {
        let at = index(&field(path, "args"), j);
        let Some(arg) = r.object(item, &at) else { continue };
        if r.require(arg, &at, "index") {
            if let Some(ix) = r.u64_at(arg, &at, "index") {
                if ix >= MAX_SYSCALL_ARGS {
                    r.error(field(&at, "index"), format!("{ix} is not a syscall argument index (0..=5)"));
                }
            }
        }
        if r.require(arg, &at, "value") {
            r.u64_at(arg, &at, "value");
        }
        r.u64_at(arg, &at, "valueTwo");
        one_of(arg, &at, "op", &SECCOMP_OPERATORS, true, r);
    }
}
