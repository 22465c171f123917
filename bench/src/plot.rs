//! A latency percentile curve as a standalone SVG (no plotting dependency): x is the
//! percentile on the usual log scale of 1/(1-p) (50%, 90%, 99%, 99.9%, …), y the latency in
//! µs, linear from 0.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
/// Nines shown on the x axis: up to 99.999%.
const MAX_NINES: f64 = 5.0;

/// `(percentile in %, latency in µs)` points of the curve from a histogram in ns.
pub fn curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let steps = 200;
    (0..=steps)
        .map(|i| {
            let nines = MAX_NINES * f64::from(i) / f64::from(steps);
            let q = 1.0 - 10f64.powf(-nines);
            (q * 100.0, h.value_at_quantile(q) as f64 / 1000.0)
        })
        .collect()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A "nice" axis top at or above `max`.
fn nice_ceiling(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|&v| v >= max)
        .unwrap_or(10.0 * magnitude)
}

/// The SVG document for one run's histogram (ns), titled `title`.
pub fn svg(h: &Histogram<u64>, title: &str) -> String {
    let points = curve(h);
    let y_max = nice_ceiling(points.iter().map(|p| p.1).fold(0.0, f64::max));
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x_of = |pct: f64| {
        let nines = (-(1.0 - pct / 100.0).max(1e-12).log10()).min(MAX_NINES);
        LEFT + plot_w * nines / MAX_NINES
    };
    let y_of = |us: f64| TOP + plot_h * (1.0 - us / y_max);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">{}</text>\n",
        WIDTH / 2.0,
        escape(title)
    );
    // Grid and labels.
    for (nines, label) in [
        (0.0, "0%"),
        (1.0, "90%"),
        (2.0, "99%"),
        (3.0, "99.9%"),
        (4.0, "99.99%"),
        (5.0, "99.999%"),
    ] {
        let x = LEFT + plot_w * nines / MAX_NINES;
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            TOP + plot_h,
            TOP + plot_h + 18.0
        );
    }
    for i in 0..=5 {
        let v = y_max * f64::from(i) / 5.0;
        let y = y_of(v);
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{v:.0}</text>",
            LEFT + plot_w,
            LEFT - 6.0,
            y + 4.0
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">percentile</text>\
         <text x=\"16\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {:.1})\">latency (µs)</text>",
        LEFT + plot_w / 2.0,
        HEIGHT - 8.0,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    if points.is_empty() {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">no successful requests</text>",
            LEFT + plot_w / 2.0,
            TOP + plot_h / 2.0
        );
    } else {
        let path: Vec<String> = points
            .iter()
            .map(|&(pct, us)| format!("{:.1},{:.1}", x_of(pct), y_of(us)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_curve_rises_and_the_svg_holds_it() {
        let mut h = crate::books::latency_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 1000).unwrap();
        }
        let points = curve(&h);
        assert!(
            points
                .windows(2)
                .all(|w| w[1].1 >= w[0].1 && w[1].0 > w[0].0)
        );
        assert!((points[0].1 - 1.0).abs() < 0.01, "min {}", points[0].1);
        let last = points[points.len() - 1].1;
        assert!((last - 10_000.0).abs() < 10.0, "p99.999 {last}");
        let doc = svg(&h, "a <test>");
        assert!(doc.starts_with("<svg") && doc.trim_end().ends_with("</svg>"));
        assert!(doc.contains("<polyline") && doc.contains("a &lt;test&gt;"));
        assert!(svg(&crate::books::latency_histogram(), "empty").contains("no successful"));
        assert_eq!(nice_ceiling(7300.0), 10000.0);
        assert_eq!(nice_ceiling(180.0), 200.0);
    }
}
