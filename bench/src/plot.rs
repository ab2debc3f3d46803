//! Latency-against-load charts as a self-contained SVG (no plotting dependency: a few lines and labels).

use std::fmt::Write as _;

/// One line of a chart.
pub struct Series {
    pub name: &'static str,
    pub points: Vec<(f64, f64)>,
}

/// One panel.
pub struct Chart {
    pub title: String,
    pub x_label: &'static str,
    pub y_label: &'static str,
    pub log_x: bool,
    pub log_y: bool,
    pub series: Vec<Series>,
}

const W: f64 = 520.0;
const H: f64 = 340.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 48.0;
const COLOURS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Axis ticks: powers of ten (log) or five even steps (linear).
fn ticks(lo: f64, hi: f64, log: bool) -> Vec<f64> {
    if log {
        let (a, b) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
        (a..=b).map(|e| 10f64.powi(e)).collect()
    } else {
        (0..=5).map(|i| lo + (hi - lo) * f64::from(i) / 5.0).collect()
    }
}

fn label(v: f64) -> String {
    if v >= 1000.0 {
        format!("{}k", v / 1000.0)
    } else if v >= 1.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// Renders the charts side by side, or an empty string when none has a point.
pub fn svg(charts: &[Chart]) -> String {
    let charts: Vec<&Chart> = charts.iter().filter(|c| c.series.iter().any(|s| !s.points.is_empty())).collect();
    if charts.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    let width = W * charts.len() as f64;
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{H}" viewBox="0 0 {width} {H}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(out, r#"<rect width="{width}" height="{H}" fill="white"/>"#);
    for (i, chart) in charts.iter().enumerate() {
        panel(&mut out, chart, W * i as f64);
    }
    out.push_str("</svg>\n");
    out
}

fn panel(out: &mut String, c: &Chart, x0: f64) {
    let points = || c.series.iter().flat_map(|s| s.points.iter().copied());
    let positive = |v: f64, log: bool| if log { v.max(1e-3) } else { v };
    let (mut xlo, mut xhi, mut ylo, mut yhi) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in points() {
        let (x, y) = (positive(x, c.log_x), positive(y, c.log_y));
        (xlo, xhi, ylo, yhi) = (xlo.min(x), xhi.max(x), ylo.min(y), yhi.max(y));
    }
    if !c.log_y {
        ylo = 0.0;
    }
    let xt = ticks(xlo, if xhi > xlo { xhi } else { xlo + 1.0 }, c.log_x);
    let yt = ticks(ylo, if yhi > ylo { yhi } else { ylo + 1.0 }, c.log_y);
    let (xlo, xhi) = (xt[0], xt[xt.len() - 1]);
    let (ylo, yhi) = (yt[0], yt[yt.len() - 1]);
    let scale = |v: f64, lo: f64, hi: f64, log: bool| {
        let (v, lo, hi) = if log { (v.max(lo).log10(), lo.log10(), hi.log10()) } else { (v, lo, hi) };
        if hi > lo { (v - lo) / (hi - lo) } else { 0.0 }
    };
    let px = |x: f64| x0 + LEFT + scale(x, xlo, xhi, c.log_x) * (W - LEFT - RIGHT);
    let py = |y: f64| H - BOTTOM - scale(y, ylo, yhi, c.log_y) * (H - TOP - BOTTOM);
    let _ =
        write!(out, r#"<text x="{}" y="20" font-size="13" font-weight="bold">{}</text>"#, x0 + LEFT, escape(&c.title));
    for &t in &xt {
        let x = px(t);
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP,
            H - BOTTOM,
            H - BOTTOM + 14.0,
            label(t)
        );
    }
    for &t in &yt {
        let y = py(t);
        let _ = write!(
            out,
            r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            x0 + LEFT,
            x0 + W - RIGHT,
            x0 + LEFT - 4.0,
            y + 4.0,
            label(t)
        );
    }
    let _ = write!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text transform="translate({:.1},{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        x0 + LEFT + (W - LEFT - RIGHT) / 2.0,
        H - 12.0,
        escape(c.x_label),
        x0 + 16.0,
        TOP + (H - TOP - BOTTOM) / 2.0,
        escape(c.y_label)
    );
    for (i, s) in c.series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(positive(x, c.log_x)), py(positive(y, c.log_y))))
            .collect();
        let _ =
            write!(out, r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#, path.join(" "));
        for p in &path {
            let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = write!(out, r#"<circle cx="{x}" cy="{y}" r="3" fill="{colour}"/>"#);
        }
        let ly = TOP + 14.0 * i as f64 + 4.0;
        let _ = write!(
            out,
            r#"<rect x="{:.1}" y="{:.1}" width="12" height="3" fill="{colour}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            x0 + W - RIGHT - 110.0,
            ly,
            x0 + W - RIGHT - 94.0,
            ly + 4.0,
            escape(s.name)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_draws_every_series_and_point() {
        let chart = Chart {
            title: "t <1>".into(),
            x_label: "x",
            y_label: "y",
            log_x: true,
            log_y: true,
            series: vec![
                Series { name: "p50", points: vec![(1.0, 0.5), (8.0, 1.0), (64.0, 4.0)] },
                Series { name: "p99", points: vec![(1.0, 1.0), (8.0, 3.0), (64.0, 20.0)] },
            ],
        };
        let svg = svg(&[chart]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 6);
        assert!(svg.contains("t &lt;1&gt;"), "titles are escaped");
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn charts_without_points_draw_nothing() {
        let empty = Chart {
            title: String::new(),
            x_label: "",
            y_label: "",
            log_x: false,
            log_y: false,
            series: vec![Series { name: "p50", points: vec![] }],
        };
        assert_eq!(svg(&[empty]), "");
    }
}
