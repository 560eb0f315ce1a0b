//! GitHub Actions workflow commands: one `::error` line per failing assertion (FAIL or ERROR,
//! with every cell it failed in), pointing at the assertion's definition in the catalogue so
//! the pull request shows it on that line. Printed to a step's stdout, GitHub turns them into
//! annotations; no plugin needed. GitHub shows at most 10 error annotations per step, hence
//! one per assertion rather than one per cell.

use std::collections::HashMap;

use super::Record;
use crate::protocol::Outcome;

/// Where an assertion is defined: a path relative to the repository root, and a line.
pub type Sources = HashMap<String, (String, u32)>;

/// Message text longer than this is cut (GitHub truncates long annotations anyway).
const MESSAGE_MAX: usize = 2000;

/// Escaping of a command's message (GitHub's toolkit: `%`, CR, LF).
fn esc_data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Escaping of a command's property value (also `:` and `,`, which end it).
fn esc_prop(s: &str) -> String {
    esc_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Where each of `ids` first appears as a string literal in one source file (pure): (id,
/// 1-based line). Catalogue entries are written `id: "…"` or through a macro taking the id
/// first, so the first literal is the definition.
pub fn find_ids(text: &str, ids: &[&str]) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for id in ids {
        let lit = format!("\"{id}\"");
        if let Some(i) = text.lines().position(|l| l.contains(&lit)) {
            out.push((id.to_string(), i as u32 + 1));
        }
    }
    out
}

/// The annotation lines for `records` (pure): one per (assertion, FAIL/ERROR), in report order.
pub fn render_annotations(records: &[Record], sources: &Sources) -> String {
    let mut groups: Vec<(&str, Outcome, Vec<&Record>)> = Vec::new();
    for r in records.iter().filter(|r| matches!(r.status, Outcome::Fail | Outcome::Error)) {
        match groups.iter_mut().find(|(a, s, _)| *a == r.assertion && *s == r.status) {
            Some(g) => g.2.push(r),
            None => groups.push((r.assertion.as_str(), r.status, vec![r])),
        }
    }
    let mut out = String::new();
    for (assertion, status, rs) in groups {
        let word = if status == Outcome::Fail { "FAIL" } else { "ERROR" };
        let cells: Vec<String> = rs.iter().map(|r| r.cell()).collect();
        let title = format!("isolab {word} {assertion} on {}", cells.join(" "));
        let mut msg = String::new();
        for r in &rs {
            msg.push_str(&format!(
                "{} ({}): {}\n",
                r.cell(),
                r.kernel_release,
                r.detail.lines().next().unwrap_or("")
            ));
        }
        if rs.len() == 1 {
            msg = format!("{}: {}", rs[0].cell(), rs[0].detail);
        }
        let msg: String = msg.trim_end().chars().take(MESSAGE_MAX).collect();
        let mut props = Vec::new();
        if let Some((file, line)) = sources.get(assertion) {
            props.push(format!("file={}", esc_prop(file)));
            props.push(format!("line={line}"));
        }
        props.push(format!("title={}", esc_prop(&title)));
        out.push_str(&format!("::error {}::{}\n", props.join(","), esc_data(&msg)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Outcome::*;
    use crate::report::tests::rec;

    #[test]
    fn ids_are_found_with_their_lines() {
        let text =
            "fn x() {\n    Assertion {\n        id: \"pid.init_is_pid1\",\n  a!(\n \"b.c\",\n \"b.c\" }";
        let found = find_ids(text, &["pid.init_is_pid1", "b.c", "b", "absent"]);
        assert_eq!(found, vec![("pid.init_is_pid1".to_string(), 3), ("b.c".to_string(), 5)]);
    }

    #[test]
    fn one_error_per_failing_assertion_with_its_cells_file_and_line() {
        let records = vec![
            rec("debian-6.1", "v1", "cgroup.memory.oom_kill", Fail, "no OOM kill counted\nmore"),
            rec("debian-6.1", "v2", "cgroup.memory.oom_kill", Fail, "100% used, a:b"),
            rec("debian-6.1", "v2", "pid.init_is_pid1", Pass, ""),
            rec("debian-7.2", "v2", "pid.init_is_pid1", Error, "VM died\nconsole"),
            rec("debian-7.2", "v2", "uts.hostname", Skip, "no"),
        ];
        let sources: Sources =
            [("cgroup.memory.oom_kill".to_string(), ("harness/src/catalogue/cgroup.rs".to_string(), 19))]
                .into();
        let out = render_annotations(&records, &sources);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert_eq!(
            lines[0],
            "::error file=harness/src/catalogue/cgroup.rs,line=19,title=isolab FAIL cgroup.memory.oom_kill on \
             debian-6.1/v1 debian-6.1/v2::debian-6.1/v1 (debian-6.1-rel): no OOM kill counted%0A\
             debian-6.1/v2 (debian-6.1-rel): 100%25 used, a:b"
        );
        assert_eq!(
            lines[1],
            "::error title=isolab ERROR pid.init_is_pid1 on debian-7.2/v2::debian-7.2/v2: VM died%0Aconsole",
            "no file= when the source is unknown; the whole detail of a single cell"
        );
        assert!(render_annotations(&records[2..3], &sources).is_empty());
    }

    #[test]
    fn properties_cannot_be_forged() {
        let r = rec("k", "v2", "a,line=1::x", Fail, "d");
        let out = render_annotations(&[r], &Sources::new());
        assert!(out.starts_with("::error title=isolab FAIL a%2Cline=1%3A%3Ax on k/v2::"), "{out}");
        assert_eq!(out.matches("::").count(), 2, "{out}");
    }
}
