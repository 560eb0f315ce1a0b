//! JUnit XML (one testcase per record, a testsuite per cell) and KTAP.

use super::text::axes;
use super::Record;
use crate::protocol::Outcome;

/// Escape text for XML attributes and content.
pub(crate) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {
                o.push_str(&format!("&#x{:x};", c as u32))
            }
            c => o.push(c),
        }
    }
    o
}

/// JUnit XML readable by CI systems.
pub fn render_junit(records: &[Record]) -> String {
    let (_, cells) = axes(records);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"isolab\">\n");
    for cell in cells {
        let rs: Vec<&Record> = records.iter().filter(|r| r.cell() == cell).collect();
        let count = |o| rs.iter().filter(|r| r.status == o).count();
        let time: u64 = rs.iter().map(|r| r.duration_ms).sum();
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3}\">\n",
            esc(&cell),
            rs.len(),
            count(Outcome::Fail),
            count(Outcome::Error),
            count(Outcome::Skip),
            time as f64 / 1000.0
        ));
        for r in rs {
            let open = format!(
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                esc(&cell.replace('/', ".")),
                esc(&r.assertion),
                r.duration_ms as f64 / 1000.0
            );
            let body = match r.status {
                Outcome::Pass => None,
                Outcome::Fail => Some(format!(
                    "<failure message=\"{}\">{}</failure>",
                    esc(first_line(&r.detail)),
                    esc(&r.detail)
                )),
                Outcome::Error => Some(format!(
                    "<error message=\"{}\">{}</error>",
                    esc(first_line(&r.detail)),
                    esc(&r.detail)
                )),
                Outcome::Skip => Some(format!("<skipped message=\"{}\"/>", esc(first_line(&r.detail)))),
            };
            match body {
                None => out.push_str(&format!("{open}/>\n")),
                Some(b) => out.push_str(&format!("{open}>{b}</testcase>\n")),
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// One KTAP line's worth of `s`: control characters (a newline would start a new test line)
/// and `#` (which starts a directive) become `_`.
fn ktap_text(s: &str) -> String {
    s.chars().map(|c| if c.is_control() || c == '#' { '_' } else { c }).collect()
}

/// KTAP version 1: one test line per record, `# SKIP reason` for skips, diagnostics for
/// failures. Names and reasons come from results.json and the guest: whatever they hold,
/// each record stays one test line.
pub fn render_ktap(records: &[Record]) -> String {
    let mut out = format!("KTAP version 1\n1..{}\n", records.len());
    for (i, r) in records.iter().enumerate() {
        let name = ktap_text(&format!("{}:{}", r.cell(), r.assertion));
        let n = i + 1;
        match r.status {
            Outcome::Pass => out.push_str(&format!("ok {n} {name}\n")),
            Outcome::Skip => {
                out.push_str(&format!("ok {n} {name} # SKIP {}\n", ktap_text(first_line(&r.detail))))
            }
            Outcome::Fail | Outcome::Error => {
                for l in r.detail.lines() {
                    out.push_str(&format!("# {}\n", l.replace(|c: char| c.is_control(), "_")));
                }
                let tag = if r.status == Outcome::Error { " # ERROR" } else { "" };
                out.push_str(&format!("not ok {n} {name}{tag}\n"));
            }
        }
    }
    out
}
