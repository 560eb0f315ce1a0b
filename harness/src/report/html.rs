//! A self-contained HTML page: the matrix as a coloured grid, each cell opening its detail.

use super::text::{axes, summary_line};
use super::xml::esc;
use super::Record;
use crate::protocol::Outcome;

/// The report page (no external resources).
pub fn render_html(records: &[Record], wall_secs: f64) -> String {
    let (rows, cols) = axes(records);
    let mut out = String::from(concat!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>isolab matrix</title><style>\n",
        "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}",
        "th,td{border:1px solid #ccc;padding:2px 6px;font-size:13px;vertical-align:top}",
        "th{background:#eee}td.PASS{background:#c8efc8}td.FAIL{background:#f4a6a6}",
        "td.SKIP{background:#f6e7a8}td.ERROR{background:#d9a6f4}details summary{cursor:pointer}",
        "pre{white-space:pre-wrap;max-width:40em;margin:0}\n</style></head><body>\n<h1>isolab matrix</h1>\n"
    ));
    out.push_str(&format!(
        "<p>{}</p>\n<table>\n<tr><th>assertion</th>",
        esc(&summary_line(records, wall_secs))
    ));
    for c in &cols {
        out.push_str(&format!("<th>{}</th>", esc(c)));
    }
    out.push_str("</tr>\n");
    for row in &rows {
        out.push_str(&format!("<tr><th style=\"text-align:left\">{}</th>", esc(row)));
        for c in &cols {
            match records.iter().find(|r| &r.assertion == row && &r.cell() == c) {
                None => out.push_str("<td>-</td>"),
                Some(r) => {
                    let status = match r.status {
                        Outcome::Pass => "PASS",
                        Outcome::Fail => "FAIL",
                        Outcome::Skip => "SKIP",
                        Outcome::Error => "ERROR",
                    };
                    out.push_str(&format!(
                        "<td class=\"{status}\"><details><summary>{status}</summary><pre>{} ms\n{}</pre></details></td>",
                        r.duration_ms,
                        esc(&r.detail)
                    ));
                }
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n</body></html>\n");
    out
}
