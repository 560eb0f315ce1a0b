//! Regressions of config validation found by the hostile-bundles test and the fuzz targets.

use isolab_runtime::config::parse_config;
use serde_json::{json, Value};

const BASE: &str = include_str!("../src/spec/default.json");

/// Regression (found by the hostile bundles test): an argument or variable longer than the
/// kernel's MAX_ARG_STRLEN was accepted by create and could only fail with E2BIG at start.
#[test]
fn strings_execve_cannot_take_are_refused() {
    let mut doc: Value = serde_json::from_str(BASE).unwrap();
    doc["process"]["args"] = json!(["/bin/true", "x".repeat(128 * 1024)]);
    doc["process"]["env"] = json!(["OK=1", format!("BIG={}", "y".repeat(200_000))]);
    let errors = parse_config(&serde_json::to_vec(&doc).unwrap()).unwrap_err();
    let paths: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["process.args[1]", "process.env[1]"], "{errors}");
    doc["process"]["args"] = json!(["/bin/true", "x".repeat(128 * 1024 - 1)]);
    doc["process"]["env"] = json!(["OK=1"]);
    parse_config(&serde_json::to_vec(&doc).unwrap()).expect("131071 bytes fit");
}

/// Regression: a syntax error inside a member (invalid UTF-8 in one env string) names it.
#[test]
fn syntax_errors_inside_a_member_name_it() {
    let text = BASE.replace("\"TERM=xterm\"", "\"TERM=\u{1}\"");
    let bytes: Vec<u8> = text.bytes().map(|b| if b == 1 { 0xff } else { b }).collect();
    let errors = parse_config(&bytes).unwrap_err();
    assert_eq!(errors.0.len(), 1);
    assert_eq!(errors.0[0].path, "(json)");
    assert!(errors.0[0].reason.ends_with(", in process.env[1]"), "{}", errors.0[0]);
}
