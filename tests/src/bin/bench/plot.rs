//! The bench's figures as files: a CSV of every row of every table, and SVG charts drawn
//! from it (plain SVG written here: bars and lines need no plotting library).

use std::fmt::Write as _;
use std::path::Path;

/// One row of a table: a figure of a platform, over its rounds.
pub struct Row {
    pub section: String,
    pub platform: String,
    pub cpus: u32,
    pub figure: String,
    pub median_ns: f64,
    pub min_ns: f64,
    pub max_ns: f64,
    /// VM exits and kicks per operation (`vmm run` only).
    pub exits: Option<f64>,
    pub kicks: Option<f64>,
}

/// `section,platform,cpus,figure,median_ns,min_ns,max_ns,exits_per_op,kicks_per_op`.
pub fn csv(rows: &[Row]) -> String {
    let mut out = String::from("section,platform,cpus,figure,median_ns,min_ns,max_ns,exits_per_op,kicks_per_op\n");
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_default();
    for r in rows {
        let _ = writeln!(
            out,
            "{},{},{},{},{:.0},{:.0},{:.0},{},{}",
            r.section, r.platform, r.cpus, r.figure, r.median_ns, r.min_ns, r.max_ns, opt(r.exits), opt(r.kicks)
        );
    }
    out
}

/// Reads back what [`csv`] wrote (the charts can be redrawn from a run's CSV).
pub fn from_csv(text: &str) -> Result<Vec<Row>, String> {
    let num = |v: &str| v.parse::<f64>().map_err(|_| format!("not a number: {v:?}"));
    let opt = |v: &str| if v.is_empty() { Ok(None) } else { num(v).map(Some) };
    text.lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let [section, platform, cpus, figure, median, min, max, exits, kicks] = f[..] else {
                return Err(format!("not 9 fields: {l:?}"));
            };
            Ok(Row {
                section: section.into(),
                platform: platform.into(),
                cpus: cpus.parse().map_err(|_| format!("bad CPU count in {l:?}"))?,
                figure: figure.into(),
                median_ns: num(median)?,
                min_ns: num(min)?,
                max_ns: num(max)?,
                exits: opt(exits)?,
                kicks: opt(kicks)?,
            })
        })
        .collect()
}

const COLORS: [&str; 10] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Horizontal bars of ns per op (log scale) for `section`'s figures, one bar per platform
/// in each figure's group: ours beside the host's Linux. None if the section has no rows.
pub fn per_op_svg(rows: &[Row], section: &str, title: &str) -> Option<String> {
    let rows: Vec<&Row> = rows.iter().filter(|r| r.section == section).collect();
    if rows.is_empty() {
        return None;
    }
    let mut figures: Vec<&str> = Vec::new();
    let mut platforms: Vec<&str> = Vec::new();
    for r in &rows {
        if !figures.contains(&r.figure.as_str()) {
            figures.push(&r.figure);
        }
        if !platforms.contains(&r.platform.as_str()) {
            platforms.push(&r.platform);
        }
    }
    let (lo, hi) = rows.iter().fold((f64::INFINITY, 0f64), |(lo, hi), r| (lo.min(r.median_ns), hi.max(r.median_ns)));
    let (decade_lo, decade_hi) = (lo.max(1.0).log10().floor() as i32, hi.max(10.0).log10().ceil() as i32);
    let (left, width, bar, gap) = (170.0, 520.0, 12.0, 10.0);
    let group = bar * platforms.len() as f64 + gap;
    let top = 60.0 + 16.0 * platforms.len() as f64;
    let height = top + group * figures.len() as f64 + 40.0;
    let x = |ns: f64| left + width * (ns.max(1.0).log10() - f64::from(decade_lo)) / f64::from(decade_hi - decade_lo);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"20\" font-size=\"14\">{}</text>\n",
        escape(title),
        w = left + width + 40.0
    );
    for (i, p) in platforms.iter().enumerate() {
        let y = 36.0 + 16.0 * i as f64;
        let _ = writeln!(svg, "<rect x=\"{left}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{}</text>", y, COLORS[i % COLORS.len()], left + 14.0, y + 9.0, escape(p));
    }
    for d in decade_lo..=decade_hi {
        let xd = x(10f64.powi(d));
        let label = match d {
            0..=2 => format!("{} ns", 10u64.pow(d as u32)),
            3..=5 => format!("{} us", 10u64.pow(d as u32 - 3)),
            _ => format!("{} ms", 10u64.pow((d - 6) as u32)),
        };
        let _ = writeln!(svg, "<line x1=\"{xd}\" y1=\"{top}\" x2=\"{xd}\" y2=\"{}\" stroke=\"#ccc\"/><text x=\"{xd}\" y=\"{}\" text-anchor=\"middle\">{label}</text>", height - 30.0, height - 16.0);
    }
    for (f, figure) in figures.iter().enumerate() {
        let y0 = top + group * f as f64;
        let _ = writeln!(svg, "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", left - 6.0, y0 + group / 2.0, escape(figure));
        for (i, p) in platforms.iter().enumerate() {
            let Some(r) = rows.iter().find(|r| r.figure == *figure && r.platform == *p) else { continue };
            let y = y0 + bar * i as f64;
            let _ = writeln!(
                svg,
                "<rect x=\"{left}\" y=\"{y}\" width=\"{:.1}\" height=\"{}\" fill=\"{}\"><title>{}: {} {:.0} ns/op</title></rect>",
                (x(r.median_ns) - left).max(1.0),
                bar - 2.0,
                COLORS[i % COLORS.len()],
                escape(p),
                escape(figure),
                r.median_ns
            );
        }
    }
    svg.push_str("</svg>\n");
    Some(svg)
}

/// Speed-up over one CPU (the same figure's median on one CPU over its median on N) for
/// each (platform kind, figure) of `sections`: one line each, CPUs on the x axis. None
/// without rows on more than one CPU.
pub fn scaling_svg(rows: &[Row], sections: &[&str], title: &str) -> Option<String> {
    // (kind, figure) -> [(cpus, speed-up)]; the kind is the platform's name up to its CPU count.
    let kind = |r: &Row| r.platform.split(' ').take_while(|w| !w.chars().all(|c| c.is_ascii_digit())).collect::<Vec<_>>().join(" ");
    let mut lines: Vec<(String, Vec<(u32, f64)>)> = Vec::new();
    for r in rows.iter().filter(|r| sections.contains(&r.section.as_str()) && r.cpus > 1) {
        let Some(one) = rows.iter().find(|o| o.section == r.section && o.figure == r.figure && o.cpus == 1 && kind(o) == kind(r)) else { continue };
        let name = format!("{} {}", kind(r), r.figure);
        let at = match lines.iter().position(|(n, _)| *n == name) {
            Some(i) => i,
            None => {
                lines.push((name, vec![(1, 1.0)]));
                lines.len() - 1
            }
        };
        lines[at].1.push((r.cpus, one.median_ns / r.median_ns));
    }
    if lines.is_empty() {
        return None;
    }
    let max_cpus = lines.iter().flat_map(|(_, p)| p.iter().map(|&(c, _)| c)).max().unwrap_or(2);
    // The axis ends at twice the most CPUs: a larger speed-up (a one-CPU figure that
    // stalls, as an SQ poller sharing its CPU with a spinning submitter) is drawn at the
    // top with its value written beside it.
    let cap = f64::from(2 * max_cpus);
    let max_y = lines.iter().flat_map(|(_, p)| p.iter().map(|&(_, s)| s)).fold(2.0f64, f64::max).min(cap).ceil();
    let (left, top, width, plot_h) = (50.0, 40.0, 560.0, 260.0);
    let height = top + plot_h + 50.0 + 15.0 * lines.len() as f64;
    let x = |c: u32| left + width * f64::from(c - 1) / f64::from((max_cpus - 1).max(1));
    let y = |s: f64| top + plot_h * (1.0 - s / max_y);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"20\" font-size=\"14\">{}</text>\n",
        left + width + 40.0,
        escape(title)
    );
    for s in 0..=(max_y as u32) {
        let ys = y(f64::from(s));
        let _ = writeln!(svg, "<line x1=\"{left}\" y1=\"{ys}\" x2=\"{}\" y2=\"{ys}\" stroke=\"#ccc\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{s}x</text>", left + width, left - 6.0, ys + 4.0);
    }
    for c in 1..=max_cpus {
        let _ = writeln!(svg, "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{c}</text>", x(c), top + plot_h + 16.0);
    }
    let _ = writeln!(svg, "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">CPUs (speed-up over one CPU)</text>", left + width / 2.0, top + plot_h + 32.0);
    for (i, (name, points)) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let dash = if name.starts_with("QEMU") { " stroke-dasharray=\"5,3\"" } else { "" };
        let path: Vec<String> = points.iter().map(|&(c, s)| format!("{:.1},{:.1}", x(c), y(s.min(max_y)))).collect();
        let _ = writeln!(svg, "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{dash}/>", path.join(" "));
        // Points above the axis: their values in the legend.
        let off: Vec<String> = points.iter().filter(|&&(_, s)| s > max_y).map(|&(c, s)| format!("{c} CPUs: {s:.0}x")).collect();
        let label = if off.is_empty() { name.clone() } else { format!("{name} (off the chart: {})", off.join(", ")) };
        let ly = top + plot_h + 48.0 + 15.0 * i as f64;
        let _ = writeln!(svg, "<line x1=\"{left}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"2\"{dash}/><text x=\"{}\" y=\"{}\">{}</text>", left + 24.0, left + 30.0, ly + 4.0, escape(&label));
    }
    svg.push_str("</svg>\n");
    Some(svg)
}

/// Writes the CSV and the charts into `dir`; returns the paths written.
pub fn write_all(rows: &[Row], dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let mut put = |name: &str, text: String| -> std::io::Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        written.push(path);
        Ok(())
    };
    put("bench.csv", csv(rows))?;
    if let Some(svg) = per_op_svg(rows, "syscalls", "ns per operation: our guest (vmm, QEMU TCG) beside host Linux (log scale)") {
        put("syscalls.svg", svg)?;
    }
    if let Some(svg) = per_op_svg(rows, "disk", "4 KiB disk reads, ns per read (log scale)") {
        put("disk.svg", svg)?;
    }
    if let Some(svg) = scaling_svg(rows, &["scaling"], "io_uring NOPs: speed-up over one CPU (vmm solid, QEMU MTTCG dashed)") {
        put("scaling.svg", svg)?;
    }
    if let Some(svg) = scaling_svg(rows, &["scaling disk"], "QD32 disk reads: speed-up over one CPU (vmm solid, QEMU MTTCG dashed)") {
        put("scaling-disk.svg", svg)?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(section: &str, platform: &str, cpus: u32, figure: &str, ns: f64) -> Row {
        Row { section: section.into(), platform: platform.into(), cpus, figure: figure.into(), median_ns: ns, min_ns: ns, max_ns: ns, exits: None, kicks: None }
    }

    #[test]
    fn csv_has_a_line_per_row() {
        let rows = [row("syscalls", "host Linux", 1, "getppid", 100.0), row("syscalls", "vmm (KVM)", 1, "getppid", 900.0)];
        let text = csv(&rows);
        assert_eq!(text.lines().count(), 3);
        assert!(text.contains("syscalls,vmm (KVM),1,getppid,900,900,900,,"));
    }

    #[test]
    fn csv_reads_back() {
        let rows = [row("disk", "vmm", 2, "pread", 1234.0)];
        let back = from_csv(&csv(&rows)).expect("parses");
        assert_eq!((back.len(), back[0].cpus, back[0].median_ns, back[0].exits), (1, 2, 1234.0, None));
        assert!(from_csv("header\nshort,row\n").is_err());
    }

    #[test]
    fn scaling_compares_with_one_cpu_of_the_same_kind() {
        let rows = [
            row("scaling", "vmm 1 vCPU", 1, "nop_threads", 1000.0),
            row("scaling", "vmm 2 vCPUs", 2, "nop_threads", 500.0),
            row("scaling", "QEMU MTTCG 1 CPU", 1, "nop_threads", 300.0),
            row("scaling", "QEMU MTTCG 2 CPUs", 2, "nop_threads", 300.0),
        ];
        let svg = scaling_svg(&rows, &["scaling"], "t").expect("a chart");
        assert!(svg.contains(">vmm nop_threads<") && svg.contains(">QEMU MTTCG nop_threads<"), "{svg}");
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(scaling_svg(&rows[..1], &["scaling"], "t").is_none());
    }

    #[test]
    fn per_op_chart_has_a_bar_per_row() {
        let rows = [row("disk", "host Linux", 1, "pread", 20_000.0), row("disk", "vmm", 1, "pread", 2_000_000.0)];
        let svg = per_op_svg(&rows, "disk", "t").expect("a chart");
        assert_eq!(svg.matches("<title>").count(), 2);
        assert!(per_op_svg(&rows, "nothing", "t").is_none());
    }
}
