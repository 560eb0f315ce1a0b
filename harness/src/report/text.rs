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
    out.push_str(&advisories(records));
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
