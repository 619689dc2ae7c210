//! `--plot FILE.svg`: scaling curves (aggregate Mops/s against threads) drawn with plotters'
//! SVG backend.

use std::path::Path;

use plotters::prelude::*;

/// One workload's measurements: (threads, aggregate Mops/s) in thread order.
pub struct Series {
    pub name: String,
    pub points: Vec<(usize, f64)>,
}

const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// Draws `series` into an SVG file at `path`.
pub fn draw(path: &Path, caption: &str, subtitle: &str, series: &[Series]) -> Result<(), String> {
    draw_inner(path, caption, subtitle, series)
        .map_err(|e| format!("cannot draw {}: {e}", path.display()))
}

fn draw_inner(
    path: &Path,
    caption: &str,
    subtitle: &str,
    series: &[Series],
) -> Result<(), Box<dyn std::error::Error>> {
    let max_threads = series
        .iter()
        .flat_map(|s| s.points.iter().map(|&(t, _)| t))
        .max()
        .unwrap_or(1)
        .max(2);
    let max_mops = series
        .iter()
        .flat_map(|s| s.points.iter().map(|&(_, m)| m))
        .fold(0.0f64, f64::max);
    let y_top = if max_mops > 0.0 { max_mops * 1.15 } else { 1.0 };

    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(64);
    title.draw(&Text::new(
        caption.to_owned(),
        (20, 12),
        ("sans-serif", 22).into_font(),
    ))?;
    title.draw(&Text::new(
        subtitle.to_owned(),
        (20, 40),
        ("sans-serif", 14).into_font().color(&RGBColor(90, 90, 90)),
    ))?;

    let mut chart = ChartBuilder::on(&body)
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(0.7f64..max_threads as f64 + 0.3, 0f64..y_top)?;
    chart
        .configure_mesh()
        .x_labels(max_threads)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .x_desc("threads")
        .y_desc("aggregate Mops/s")
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()?;

    for (index, s) in series.iter().enumerate() {
        let color = COLORS[index % COLORS.len()];
        chart
            .draw_series(
                LineSeries::new(
                    s.points.iter().map(|&(t, m)| (t as f64, m)),
                    color.stroke_width(2),
                )
                .point_size(4),
            )?
            .label(s.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
