//! SVG plots with `plotters` (SVG backend only): a latency distribution per runtime (every
//! sample a dot, jittered sideways, with a bar at the median) and the density curves
//! (start and delete time per container, host memory per container, against N).

use std::path::Path;

use plotters::prelude::*;

use super::density::Point;
use super::startup::Series;
use super::BenchError;

fn plot_err(path: &Path) -> impl Fn(String) -> BenchError + '_ {
    move |message| BenchError::Plot { path: path.to_owned(), message }
}

/// Deterministic sideways jitter in [-0.3, 0.3) for sample `i`.
fn jitter(i: usize) -> f64 {
    ((i as f64 * 0.618_033_988_75).fract() - 0.5) * 0.6
}

/// One column of dots per series, y in `unit` (samples are ms; `s` divides by 1000).
pub fn distribution_svg(path: &Path, title: &str, series: &[Series], unit: &str) -> Result<(), BenchError> {
    draw_distribution(path, title, series, unit).map_err(plot_err(path))
}

fn draw_distribution(path: &Path, title: &str, series: &[Series], unit: &str) -> Result<(), String> {
    let div = if unit == "s" { 1000.0 } else { 1.0 };
    let shown: Vec<&Series> = series.iter().filter(|s| !s.samples_ms.is_empty()).collect();
    let ymax = shown.iter().flat_map(|s| s.samples_ms.iter()).fold(0.0f64, |a, b| a.max(*b)) / div;
    let k = shown.len().max(1);
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let names: Vec<String> = shown.iter().map(|s| s.runtime.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..(k as f64 - 0.5), 0f64..(ymax * 1.1).max(1e-3))
        .map_err(|e| e.to_string())?;
    let label = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 {
            names.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(2 * k + 1)
        .x_label_formatter(&label)
        .y_desc(unit)
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, s) in shown.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let x = i as f64;
        let dots = s.samples_ms.iter().enumerate().map(|(j, v)| (x + jitter(j), v / div));
        chart
            .draw_series(dots.map(|p| Circle::new(p, 3, color.mix(0.6).filled())))
            .map_err(|e| e.to_string())?;
        if let Some(m) = s.summary.map(|x| x.median / div) {
            chart
                .draw_series(LineSeries::new([(x - 0.35, m), (x + 0.35, m)], BLACK.stroke_width(3)))
                .map_err(|e| e.to_string())?;
        }
    }
    root.present().map_err(|e| e.to_string())
}

/// Left: start and delete ms per container against N; right: host KiB per container.
pub fn density_svg(path: &Path, points: &[Point]) -> Result<(), BenchError> {
    draw_density(path, points).map_err(plot_err(path))
}

fn draw_density(path: &Path, points: &[Point]) -> Result<(), String> {
    let ok: Vec<&Point> = points.iter().filter(|p| p.error.is_none()).collect();
    let mut runtimes: Vec<&str> = ok.iter().map(|p| p.runtime.as_str()).collect();
    runtimes.dedup();
    runtimes.sort_unstable();
    runtimes.dedup();
    let nmax = ok.iter().map(|p| p.n).max().unwrap_or(1) as f64 * 1.05;
    let tmax = ok.iter().map(|p| p.start_per_ms.max(p.delete_per_ms)).fold(1.0f64, f64::max) * 1.1;
    let mmax = ok.iter().map(|p| p.host_kib.max(p.kernel_kib)).fold(1.0f64, f64::max) * 1.1;
    let mmin = ok.iter().map(|p| p.host_kib).fold(0.0f64, f64::min) * 1.1;
    let root = SVGBackend::new(path, (1200, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (left, right) = root.split_horizontally(600);
    let panels = [
        (left, "time per container", "ms", 0.0, tmax),
        (right, "host memory per container: meminfo − PSS (solid), kernel (pale)", "KiB", mmin, mmax),
    ];
    for (pi, (area, title, unit, lo, hi)) in panels.into_iter().enumerate() {
        let mut chart = ChartBuilder::on(&area)
            .caption(title, ("sans-serif", 18))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..nmax, lo..hi)
            .map_err(|e| e.to_string())?;
        chart.configure_mesh().x_desc("N containers").y_desc(unit).draw().map_err(|e| e.to_string())?;
        for (i, rt) in runtimes.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let mine: Vec<&&Point> = ok.iter().filter(|p| p.runtime == *rt).collect();
            let curves: Vec<(String, Vec<(f64, f64)>)> = if pi == 0 {
                vec![
                    (format!("{rt} start"), mine.iter().map(|p| (p.n as f64, p.start_per_ms)).collect()),
                    (format!("{rt} delete"), mine.iter().map(|p| (p.n as f64, p.delete_per_ms)).collect()),
                ]
            } else {
                vec![
                    (format!("{rt} host"), mine.iter().map(|p| (p.n as f64, p.host_kib)).collect()),
                    (format!("{rt} kernel"), mine.iter().map(|p| (p.n as f64, p.kernel_kib)).collect()),
                ]
            };
            for (ci, (name, pts)) in curves.into_iter().enumerate() {
                let style = if ci == 0 { color.stroke_width(2) } else { color.mix(0.5).stroke_width(2) };
                chart
                    .draw_series(LineSeries::new(pts.clone(), style))
                    .map_err(|e| e.to_string())?
                    .label(name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
                chart
                    .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, style.filled())))
                    .map_err(|e| e.to_string())?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::stats::summarize;

    #[test]
    fn jitter_stays_inside_its_column() {
        assert!((0..1000).map(jitter).all(|j| (-0.3..0.3).contains(&j)));
    }

    #[test]
    fn both_plots_are_svg_with_their_labels() {
        let dir = tempfile::tempdir().unwrap();
        let s = |n: &str, v: &[f64]| Series {
            runtime: n.into(),
            samples_ms: v.to_vec(),
            summary: summarize(v),
            ..Series::default()
        };
        let f = dir.path().join("startup.svg");
        distribution_svg(&f, "start", &[s("isorun", &[8.0, 9.0]), s("runc", &[30.0, 31.0])], "ms").unwrap();
        let svg = std::fs::read_to_string(&f).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("isorun") && svg.contains("runc"), "{svg}");
        let p = |n: usize, ms: f64| Point {
            runtime: "isorun".into(),
            n,
            start_per_ms: ms,
            delete_per_ms: ms / 2.0,
            host_kib: 300.0,
            ..Point::default()
        };
        let f = dir.path().join("density.svg");
        density_svg(&f, &[p(100, 8.0), p(500, 9.0)]).unwrap();
        let svg = std::fs::read_to_string(&f).unwrap();
        assert!(svg.contains("isorun start") && svg.contains("N containers"), "{svg}");
    }
}
