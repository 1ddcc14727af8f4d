//! The meals-per-day bar chart, drawn on the server as inline SVG (no script, no library).

use super::texts::esc;
use chrono::NaiveDate;
use std::fmt::Write;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// The smallest 1, 2 or 5 times a power of ten at or above `max` (at least 1).
fn nice_ceiling(max: i64) -> i64 {
    let mut step = 1i64;
    loop {
        for m in [1, 2, 5] {
            if step * m >= max {
                return step * m;
            }
        }
        step *= 10;
    }
}

/// One bar per day, in order; `label` names the chart for screen readers.
pub fn meals_per_day(points: &[(NaiveDate, i64)], label: &str) -> String {
    let mut svg = String::new();
    let max = nice_ceiling(points.iter().map(|p| p.1).max().unwrap_or(0).max(1));
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let _ = write!(
        svg,
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}">"#,
        esc(label)
    );
    for (i, v) in [0, max / 2, max].into_iter().enumerate() {
        if i == 1 && max < 2 {
            continue;
        }
        let y = TOP + plot_h - plot_h * v as f64 / max as f64;
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ccc"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{v}</text>"##,
            WIDTH - RIGHT,
            LEFT - 4.0,
            y + 4.0
        );
    }
    let n = points.len().max(1) as f64;
    let slot = plot_w / n;
    let bar = (slot * 0.8).max(1.0);
    let label_every = (points.len() as f64 / 12.0).ceil().max(1.0) as usize;
    for (i, (day, value)) in points.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        let h = plot_h * *value as f64 / max as f64;
        let y = TOP + plot_h - h;
        let _ = write!(
            svg,
            r##"<rect x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{h:.1}" fill="#2e7d32"><title>{day}: {value}</title></rect>"##
        );
        if i % label_every == 0 {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"#,
                x + bar / 2.0,
                HEIGHT - 10.0,
                day.format("%d.%m")
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_are_round() {
        assert_eq!(nice_ceiling(1), 1);
        assert_eq!(nice_ceiling(3), 5);
        assert_eq!(nice_ceiling(7), 10);
        assert_eq!(nice_ceiling(11), 20);
        assert_eq!(nice_ceiling(250), 500);
    }

    #[test]
    fn one_bar_per_day_with_its_value() {
        let d = |n| NaiveDate::from_ymd_opt(2026, 11, n).unwrap();
        let svg = meals_per_day(&[(d(23), 10), (d(24), 0), (d(25), 5)], "Meals <per> day");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains("<title>2026-11-23: 10</title>"));
        assert!(
            svg.contains(r#"height="180.0""#),
            "the tallest bar fills the plot: {svg}"
        );
        assert!(svg.contains("Meals &lt;per&gt; day"));
        assert!(!svg.contains("<script"));
        assert_eq!(meals_per_day(&[], "x").matches("<rect").count(), 0);
    }
}
