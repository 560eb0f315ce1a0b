//! KCIDB JSON (schema v5.3, the `kcidb-io` package's `LATEST`) for KernelCI's common results
//! database: one checkout and one build per kernel (the distribution's prebuilt kernel), one
//! test per kernel × cgroup × assertion with `path` = the assertion id and `environment` = the
//! kernel and cgroup mode it ran under. Submit it with `kcidb-submit` (package `kcidb`).

use serde_json::{json, Value};

use super::Record;
use crate::protocol::Outcome;

/// Schema version written.
pub const KCIDB_VERSION: (u32, u32) = (5, 3);

/// `log_excerpt`'s limit in the schema.
const EXCERPT_MAX: usize = 16384;

/// Who submits and which run this is (object ids must be unique per origin across runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KcidbOptions {
    /// The origin KernelCI knows the submitter by (`[a-z0-9_]+`).
    pub origin: String,
    /// Unique per run, e.g. the CI system's run id.
    pub run_id: String,
}

/// Whether `origin` is a valid KCIDB origin name (pure).
pub fn valid_origin(origin: &str) -> bool {
    !origin.is_empty() && origin.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A KCIDB test path for an assertion id: its dot-separated parts, each limited to
/// `[a-zA-Z0-9_-]` (anything else becomes `_`; catalogue ids already are).
pub fn test_path(assertion: &str) -> String {
    assertion
        .split('.')
        .map(|p| {
            let p: String = p
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
                .collect();
            if p.is_empty() {
                "_".to_string()
            } else {
                p
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn status(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "PASS",
        Outcome::Fail => "FAIL",
        Outcome::Skip => "SKIP",
        Outcome::Error => "ERROR",
    }
}

/// Text the schema accepts (`[^\0]*`), at most `max` characters.
fn text(s: &str, max: usize) -> String {
    s.chars().filter(|c| *c != '\0').take(max).collect()
}

/// The KCIDB document (pure).
pub fn render_kcidb(records: &[Record], o: &KcidbOptions) -> Value {
    let id = |what: &str, parts: &[&str]| {
        text(&format!("{}:{}/{what}/{}", o.origin, o.run_id, parts.join("/")), usize::MAX)
    };
    let mut kernels: Vec<(&str, &str)> = Vec::new();
    for r in records {
        if !kernels.contains(&(r.kernel.as_str(), r.kernel_release.as_str())) {
            kernels.push((&r.kernel, &r.kernel_release));
        }
    }
    let checkouts: Vec<Value> = kernels
        .iter()
        .map(|(k, rel)| {
            json!({
                "id": id("checkout", &[k, rel]),
                "origin": o.origin,
                "comment": text(&format!("{k}: prebuilt kernel {rel}"), usize::MAX),
                "valid": true,
                "misc": { "kernel": k, "kernel_release": rel },
            })
        })
        .collect();
    let builds: Vec<Value> = kernels
        .iter()
        .map(|(k, rel)| {
            json!({
                "id": id("build", &[k, rel]),
                "checkout_id": id("checkout", &[k, rel]),
                "origin": o.origin,
                "architecture": "x86_64",
                "config_name": text(k, usize::MAX),
                "comment": text(&format!("{k} ({rel})"), usize::MAX),
                "status": "PASS",
                "misc": { "kernel": k, "kernel_release": rel },
            })
        })
        .collect();
    let tests: Vec<Value> = records
        .iter()
        .map(|r| {
            // A spec record's id is what it was before base configs existed.
            let setup = r.setup();
            let mut t = json!({
                "id": id("test", &[&r.kernel, &r.kernel_release, &setup, &r.assertion]),
                "build_id": id("build", &[&r.kernel, &r.kernel_release]),
                "origin": o.origin,
                "path": test_path(&r.assertion),
                "environment": {
                    "comment": text(&format!("{} ({}) × cgroup {}", r.kernel, r.kernel_release, setup), usize::MAX),
                    "misc": { "kernel": r.kernel, "kernel_release": r.kernel_release, "cgroup": r.cgroup,
                              "base_config": r.base_config },
                },
                "status": status(r.status),
                "duration": r.duration_ms as f64 / 1000.0,
                "misc": { "assertion": r.assertion, "runtime": r.runtime, "runtime_version": r.runtime_version },
            });
            if !r.detail.is_empty() {
                t["log_excerpt"] = Value::String(text(&r.detail, EXCERPT_MAX));
            }
            t
        })
        .collect();
    json!({
        "version": { "major": KCIDB_VERSION.0, "minor": KCIDB_VERSION.1 },
        "checkouts": checkouts,
        "builds": builds,
        "tests": tests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Outcome::*;
    use crate::report::tests::rec;
    use test_case::test_case;

    #[test_case("pid.init_is_pid1", "pid.init_is_pid1" ; "catalogue id")]
    #[test_case("escape.cve-2019-5736", "escape.cve-2019-5736" ; "dash kept")]
    #[test_case("a b..c:d", "a_b._.c_d" ; "sanitized")]
    fn paths(id: &str, want: &str) {
        assert_eq!(test_path(id), want);
    }

    #[test_case("isolab", true ; "plain")]
    #[test_case("my_ci2", true ; "digits underscore")]
    #[test_case("My-CI", false ; "upper and dash")]
    #[test_case("", false ; "empty")]
    fn origins(o: &str, ok: bool) {
        assert_eq!(valid_origin(o), ok);
    }

    #[test]
    fn one_build_per_kernel_one_test_per_record_with_environment_and_path() {
        let records = vec![
            rec("debian-6.1", "v1", "pid.init_is_pid1", Pass, ""),
            rec("debian-6.1", "v2", "pid.init_is_pid1", Fail, "x\0y"),
            rec("debian-7.2", "v2", "uts.hostname", Skip, "no uts"),
        ];
        let o = KcidbOptions { origin: "isolab".into(), run_id: "42".into() };
        let d = render_kcidb(&records, &o);
        assert_eq!(d["version"], json!({"major": 5, "minor": 3}));
        assert_eq!(d["builds"].as_array().unwrap().len(), 2);
        assert_eq!(d["checkouts"].as_array().unwrap().len(), 2);
        let tests = d["tests"].as_array().unwrap();
        assert_eq!(tests.len(), 3);
        assert_eq!(tests[1]["path"], "pid.init_is_pid1");
        assert_eq!(tests[1]["status"], "FAIL");
        assert_eq!(tests[1]["log_excerpt"], "xy");
        assert_eq!(tests[1]["environment"]["misc"]["cgroup"], "v2");
        assert_eq!(tests[1]["build_id"], d["builds"][0]["id"]);
        assert_eq!(d["builds"][0]["checkout_id"], d["checkouts"][0]["id"]);
        assert_ne!(tests[0]["id"], tests[1]["id"], "one id per kernel × cgroup × assertion");
        assert!(tests[0].get("log_excerpt").is_none());
        assert!(tests[1]["id"].as_str().unwrap().starts_with("isolab:42/test/"));
    }
}
