//! A hand-written SVG latency plot: latency by percentile, one line per target, with the
//! percentile axis stretched towards the tail (x = -log10(1 - p)), as HDR plots usually are.

use std::fmt::Write;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 360.0;
const LEFT: f64 = 60.0;
const BOTTOM: f64 = 40.0;
const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// Position of percentile `p` (0-100) on the tail-stretched axis; 99.99 and above share the end.
fn x_of(p: f64) -> f64 {
    let tail = (1.0 - (p / 100.0)).max(1e-4);
    -tail.log10() / 4.0
}

/// Plots `series` (name, [(percentile, ms)]) under `title`.
pub fn latency_plot(title: &str, series: &[(String, Vec<(f64, f64)>)]) -> String {
    let max_ms = series.iter().flat_map(|(_, pts)| pts.iter().map(|p| p.1)).fold(0.0_f64, f64::max).max(0.001);
    // A log y axis: latency tails span several orders of magnitude.
    let (lo, hi) = (
        series
            .iter()
            .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
            .filter(|v| *v > 0.0)
            .fold(max_ms, f64::min)
            .log10()
            .floor(),
        max_ms.log10().ceil().max(-2.0),
    );
    let hi = if hi <= lo { lo + 1.0 } else { hi };
    let plot_w = WIDTH - LEFT - 20.0;
    let plot_h = HEIGHT - BOTTOM - 40.0;
    let px = |p: f64| LEFT + x_of(p) * plot_w;
    let py = |ms: f64| 40.0 + plot_h - ((ms.max(10f64.powf(lo)).log10() - lo) / (hi - lo)) * plot_h;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ =
        writeln!(s, r#"<text x="{}" y="20" font-size="14" text-anchor="middle">{}</text>"#, WIDTH / 2.0, escape(title));
    for p in [0.0, 90.0, 99.0, 99.9, 99.99] {
        let x = px(p);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="40" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">p{p}</text>"##,
            40.0 + plot_h,
            HEIGHT - BOTTOM + 15.0
        );
    }
    let mut decade = lo;
    while decade <= hi {
        let ms = 10f64.powf(decade);
        let y = py(ms);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{} ms</text>"##,
            LEFT + plot_w,
            LEFT - 5.0,
            y + 4.0,
            crate::report::fmt_value(ms)
        );
        decade += 1.0;
    }
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = points.iter().map(|&(p, ms)| format!("{:.1},{:.1}", px(p), py(ms))).collect();
        let _ = writeln!(s, r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#, path.join(" "));
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" fill="{color}">{}</text>"#,
            LEFT + 10.0,
            55.0 + 14.0 * i as f64,
            escape(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plot_has_one_line_per_series_and_escapes_titles() {
        let svg =
            latency_plot("a < b", &[("x".into(), vec![(50.0, 1.0), (99.0, 5.0)]), ("y".into(), vec![(50.0, 2.0)])]);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a &lt; b"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    }
}
