//! A self-contained HTML page a person reads at a glance: the guest kernels' panics and
//! oopses first, then the retried cells and the changes against the baseline, then the matrix
//! (each column headed by its kernel release, runtime version and assertion time; each cell
//! opening its detail in one click; changed cells outlined), with a filter that keeps only
//! the rows holding a non-PASS cell (also on load with `#nonpass` in the address).

use super::diff::Change;
use super::text::{axes, is_kernel_report, summary_line};
use super::xml::esc;
use super::Record;
use crate::protocol::Outcome;

const STYLE: &str = concat!(
    "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}",
    "th,td{border:1px solid #ccc;padding:2px 6px;font-size:13px;vertical-align:top}",
    "th{background:#eee}th small{font-weight:normal;color:#444}td.PASS{background:#c8efc8}",
    "td.FAIL{background:#f4a6a6}td.SKIP{background:#f6e7a8}td.ERROR{background:#d9a6f4}",
    "td.changed{outline:3px solid #0050d0;outline-offset:-3px}details summary{cursor:pointer}",
    "pre{white-space:pre-wrap;max-width:60em;margin:0;font-size:12px}",
    "section{margin:0 0 1em 0;padding:.5em 1em;border-left:6px solid #999}",
    "#kernel-reports.bad{border-color:#c00;background:#fff0f0}#kernel-reports.ok{border-color:#2a2}",
    "#retries{border-color:#d80}#changes{border-color:#0050d0}li.regression{color:#b00;font-weight:bold}",
);

const SCRIPT: &str = concat!(
    "function isolabFilter(on){document.body.classList.toggle('nonpass',on);",
    "for(const r of document.querySelectorAll('tr.allpass')){r.hidden=on;}}",
    "window.addEventListener('DOMContentLoaded',function(){const b=document.getElementById('only-nonpass');",
    "if(location.hash==='#nonpass'){b.checked=true;}isolabFilter(b.checked);});",
);

fn status(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "PASS",
        Outcome::Fail => "FAIL",
        Outcome::Skip => "SKIP",
        Outcome::Error => "ERROR",
    }
}

/// Whether a record carries the note of a retried cell.
fn retried(r: &Record) -> bool {
    r.detail.contains("(cell retried:")
}

/// The page, without a baseline.
pub fn render_html(records: &[Record], wall_secs: f64) -> String {
    render_html_diff(records, wall_secs, &[])
}

/// The page, with the `changes` against a baseline listed and their cells outlined.
pub fn render_html_diff(records: &[Record], wall_secs: f64, changes: &[Change]) -> String {
    let mut out = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>isolab matrix</title>\
         <style>{STYLE}</style><script>{SCRIPT}</script></head><body>\n<h1>isolab matrix</h1>\n\
         <p id=\"summary\">{}</p>\n",
        esc(&summary_line(records, wall_secs))
    );
    out += &kernel_section(records);
    out += &retry_section(records);
    out += &change_section(changes);
    out += "<p><label><input type=\"checkbox\" id=\"only-nonpass\" \
            onchange=\"isolabFilter(this.checked)\"> only rows with a non-PASS cell</label></p>\n";
    out += &matrix(records, changes);
    out += "</body></html>\n";
    out
}

/// The cell id of a record, for links from the sections above the matrix.
fn anchor(r: &Record) -> String {
    format!("c-{}-{}", r.cell(), r.assertion).replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
}

fn kernel_section(records: &[Record]) -> String {
    let bad: Vec<&Record> = records.iter().filter(|r| is_kernel_report(r)).collect();
    if bad.is_empty() {
        let checked = records.iter().any(|r| r.assertion.starts_with("kernel."));
        let text = if checked {
            "No guest kernel printed a panic, oops, BUG, WARNING or hung task."
        } else {
            "Guest kernel reports were not checked in this run (no VM)."
        };
        return format!("<section id=\"kernel-reports\" class=\"ok\">{text}</section>\n");
    }
    let mut s = format!(
        "<section id=\"kernel-reports\" class=\"bad\"><h2>Guest kernel reports: {}</h2>\n",
        bad.len()
    );
    for r in bad {
        let head = r.detail.lines().next().unwrap_or_default();
        s += &format!(
            "<details><summary><a href=\"#{}\">{} {}</a> ({}): {}</summary><pre>{}</pre></details>\n",
            anchor(r),
            esc(&r.cell()),
            esc(&r.assertion),
            esc(&r.kernel_release),
            esc(head),
            esc(&r.detail)
        );
    }
    s + "</section>\n"
}

fn retry_section(records: &[Record]) -> String {
    let mut cells: Vec<(String, String)> = Vec::new();
    for r in records.iter().filter(|r| retried(r)) {
        let note = r.detail.lines().find(|l| l.contains("(cell retried:")).unwrap_or_default().to_owned();
        if !cells.iter().any(|(c, n)| *c == r.cell() && *n == note) {
            cells.push((r.cell(), note));
        }
    }
    if cells.is_empty() {
        return String::new();
    }
    let items: String = cells.iter().map(|(c, n)| format!("<li>{}: {}</li>\n", esc(c), esc(n))).collect();
    format!("<section id=\"retries\"><h2>Retried cells: {}</h2><ul>\n{items}</ul></section>\n", cells.len())
}

fn change_section(changes: &[Change]) -> String {
    if changes.is_empty() {
        return String::new();
    }
    let regressions = changes.iter().filter(|c| c.regression).count();
    let items: String = changes
        .iter()
        .map(|c| {
            let class = if c.regression { " class=\"regression\"" } else { "" };
            format!("<li{class}>{}</li>\n", esc(&c.to_string()))
        })
        .collect();
    format!(
        "<section id=\"changes\"><h2>Against the baseline: {} changes, {regressions} regressions</h2><ul>\n{items}</ul></section>\n",
        changes.len()
    )
}

/// A column's header: the cell, its kernel release, runtime version and summed assertion time.
fn column_header(records: &[Record], cell: &str) -> String {
    let of: Vec<&Record> = records.iter().filter(|r| r.cell() == cell).collect();
    let first = |f: fn(&Record) -> &str| of.iter().map(|r| f(r)).find(|s| !s.is_empty()).unwrap_or("?");
    let secs = of.iter().map(|r| r.duration_ms).sum::<u64>() as f64 / 1000.0;
    format!(
        "<th>{}<br><small class=\"release\">{}</small><br><small class=\"runtime\">{}</small>\
         <br><small class=\"time\">{secs:.1} s of assertions</small></th>",
        esc(cell),
        esc(first(|r| &r.kernel_release)),
        esc(first(|r| &r.runtime_version)),
    )
}

fn matrix(records: &[Record], changes: &[Change]) -> String {
    let (rows, cols) = axes(records);
    let mut out = String::from("<table id=\"matrix\">\n<tr><th>assertion</th>");
    for c in &cols {
        out += &column_header(records, c);
    }
    out += "</tr>\n";
    for row in &rows {
        let cells: Vec<Option<&Record>> =
            cols.iter().map(|c| records.iter().find(|r| &r.assertion == row && &r.cell() == c)).collect();
        let all_pass = cells.iter().flatten().all(|r| r.status == Outcome::Pass);
        let class = if all_pass { "allpass" } else { "nonpass" };
        out += &format!("<tr class=\"{class}\"><th style=\"text-align:left\">{}</th>", esc(row));
        for cell in cells {
            let Some(r) = cell else {
                out += "<td>-</td>";
                continue;
            };
            let what = format!("{} {}", r.cell(), r.assertion);
            let change = changes.iter().find(|c| c.what == what);
            let st = status(r.status);
            let mut class = st.to_owned();
            let mut title = String::new();
            if let Some(c) = change {
                class += " changed";
                title = format!(" title=\"{}\"", esc(&c.to_string()));
            }
            let mark = if retried(r) { " ↻" } else { "" };
            out += &format!(
                "<td id=\"{}\" class=\"{class}\"{title}><details><summary>{st}{mark}</summary><pre>{} ms\n{}</pre></details></td>",
                anchor(r),
                r.duration_ms,
                esc(&r.detail)
            );
        }
        out += "</tr>\n";
    }
    out + "</table>\n"
}
