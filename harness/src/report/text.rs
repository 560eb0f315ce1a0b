//! The terminal matrix: assertions as rows, kernel/cgroup cells as columns.

use super::{counts, Record};
use crate::protocol::Outcome;

fn glyph(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Fail => "FAIL",
        Outcome::Skip => "skip",
        Outcome::Error => "ERROR",
    }
}

fn colour(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "\x1b[32m",
        Outcome::Fail => "\x1b[1;31m",
        Outcome::Skip => "\x1b[33m",
        Outcome::Error => "\x1b[1;35m",
    }
}

/// Rows in first-seen order, and the cells in first-seen order.
pub(crate) fn axes(records: &[Record]) -> (Vec<String>, Vec<String>) {
    let mut rows: Vec<String> = Vec::new();
    let mut cols: Vec<String> = Vec::new();
    for r in records {
        if !rows.contains(&r.assertion) {
            rows.push(r.assertion.clone());
        }
        if !cols.contains(&r.cell()) {
            cols.push(r.cell());
        }
    }
    (rows, cols)
}

/// `312 pass, 0 fail, 24 skip, 0 error in 41 s`.
pub fn summary_line(records: &[Record], wall_secs: f64) -> String {
    let c = counts(records);
    format!("{} pass, {} fail, {} skip, {} error in {wall_secs:.1} s", c.pass, c.fail, c.skip, c.error)
}

/// The matrix as text; ANSI colours when `colour` (a tty).
pub fn render_table(records: &[Record], use_colour: bool) -> String {
    let (rows, cols) = axes(records);
    let w0 = rows.iter().map(String::len).max().unwrap_or(0).max("assertion".len());
    let widths: Vec<usize> = cols.iter().map(|c| c.len().max(5)).collect();
    let mut out = format!("{:<w0$}", "assertion");
    for (c, w) in cols.iter().zip(&widths) {
        out.push_str(&format!("  {c:<w$}"));
    }
    out.push('\n');
    for row in &rows {
        out.push_str(&format!("{row:<w0$}"));
        for (c, w) in cols.iter().zip(&widths) {
            let cell = records.iter().find(|r| &r.assertion == row && &r.cell() == c);
            let (text, col) = match cell {
                Some(r) => (glyph(r.status), colour(r.status)),
                None => ("-", ""),
            };
            if use_colour && !col.is_empty() {
                out.push_str(&format!("  {col}{text:<w$}\x1b[0m"));
            } else {
                out.push_str(&format!("  {text:<w$}"));
            }
        }
        let trimmed = out.trim_end_matches(' ').len();
        out.truncate(trimmed);
        out.push('\n');
    }
    for r in records.iter().filter(|r| matches!(r.status, Outcome::Fail | Outcome::Error)) {
        out.push_str(&format!(
            "{} {} {}: {}\n",
            glyph(r.status),
            r.cell(),
            r.assertion,
            r.detail.lines().next().unwrap_or("")
        ));
    }
    out.push_str(&pass_notes(records));
    out.push_str(&kernel_reports(records));
    out.push_str(&advisories(records));
    out
}

/// Whether a record is a guest kernel's report (`kernel.no_panic`, `kernel.no_oops`) that failed.
pub(crate) fn is_kernel_report(r: &Record) -> bool {
    r.assertion.starts_with("kernel.") && r.status != Outcome::Pass && r.status != Outcome::Skip
}

/// The failed kernel records in full (headline, trace, console tail), a panic being a finding.
fn kernel_reports(records: &[Record]) -> String {
    let mut out = String::new();
    for r in records.iter().filter(|r| is_kernel_report(r)) {
        out.push_str(&format!("=== {} {} ({}) ===\n", r.cell(), r.assertion, r.kernel_release));
        for l in r.detail.lines() {
            out.push_str(&format!("  | {l}\n"));
        }
    }
    out
}

/// The escape rows grouped under their CVE, with its advisory: `CVE-… <url>: id, id`.
fn advisories(records: &[Record]) -> String {
    let mut groups: Vec<(&super::Advisory, Vec<&str>)> = Vec::new();
    for r in records {
        let Some(a) = &r.advisory else { continue };
        match groups.iter_mut().find(|(g, _)| *g == a) {
            Some(g) if !g.1.contains(&r.assertion.as_str()) => g.1.push(&r.assertion),
            Some(_) => {}
            None => groups.push((a, vec![&r.assertion])),
        }
    }
    groups.iter().map(|(a, ids)| format!("{} {}: {}\n", a.id, a.url, ids.join(", "))).collect()
}

/// Passes that carry a note (a disclosed retry), a line per cell and note: a retried cell's
/// dozens of passes share one line.
fn pass_notes(records: &[Record]) -> String {
    let mut groups: Vec<(String, &str, Vec<&str>)> = Vec::new();
    for r in records.iter().filter(|r| r.status == Outcome::Pass && !r.detail.is_empty()) {
        let note = r.detail.lines().next().unwrap_or("");
        match groups.iter_mut().find(|(cell, n, _)| *cell == r.cell() && *n == note) {
            Some(g) => g.2.push(&r.assertion),
            None => groups.push((r.cell(), note, vec![&r.assertion])),
        }
    }
    groups
        .into_iter()
        .map(|(cell, note, ids)| match ids.as_slice() {
            [one] => format!("NOTE (pass) {cell} {one}: {note}\n"),
            many => format!("NOTE ({} passes) {cell}: {note}\n", many.len()),
        })
        .collect()
}

/// The `n` slowest assertions of a run, one line each (`  12.3 s  debian-6.1/v2 net.bridge_isolated`),
/// under a heading; empty when nothing took time.
pub fn slowest(records: &[Record], n: usize) -> String {
    let mut by_time: Vec<&Record> = records.iter().filter(|r| r.duration_ms > 0).collect();
    by_time.sort_by_key(|r| std::cmp::Reverse(r.duration_ms));
    if by_time.is_empty() {
        return String::new();
    }
    let total: u64 = records.iter().map(|r| r.duration_ms).sum();
    let mut out = format!("slowest assertions (of {:.1} s of assertion time):\n", total as f64 / 1000.0);
    for r in by_time.into_iter().take(n) {
        out += &format!("{:>7.1} s  {} {}\n", r.duration_ms as f64 / 1000.0, r.cell(), r.assertion);
    }
    out
}
