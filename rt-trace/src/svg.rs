//! A [`Model`] drawn by us as one SVG timeline, sized for a README (1200 px wide): a title,
//! one row per track (`<g class="cpu-row" data-m="M">`, sysmon's a thin marks-only row), a
//! time axis with round ticks, and a legend. Also the small text and colour helpers every
//! view shares (labels, end reasons, durations, goroutine colours), so the JSON, SVG and HTML
//! say the same thing in the same words.
//!
//! Invariants: exactly one `cpu-row` group per track, in track order; every text is
//! XML-escaped; the element count stays bounded (about two rectangles per pixel column per
//! row) however many slices the trace has: when it has more than [`DENSE_SLICES`], runs
//! narrower than a pixel are merged per pixel column (drawn in the colour of the goroutine
//! that ran longest there), and marks of one kind are kept once per pixel column. A drawn run
//! is never narrower than [`MIN_W`].

use std::collections::BTreeMap;
use std::format;
use std::string::String;
use std::vec::Vec;

use crate::format::{SYSMON, WAIT_REASONS};
use crate::model::{Mark, MarkKind, Model, SliceEnd, Span, Track};

// ---- Shared by the views ---------------------------------------------------------------

/// The goroutine's label ("G17 worker"), or "G17" if the model knows nothing of it.
pub fn goroutine_label(m: &Model, goid: u64) -> String {
    m.goroutines
        .get(&goid)
        .map_or_else(|| format!("G{goid}"), |g| g.label.clone())
}

/// Why a run ended, in words: "yield", "blocked: chan receive", "exited", ...
pub fn end_reason(end: SliceEnd) -> String {
    match end {
        SliceEnd::Stop(r) => r.as_str().into(),
        SliceEnd::Block(w) => match WAIT_REASONS.get(w as usize) {
            Some(s) if !s.is_empty() => format!("blocked: {s}"),
            _ => "blocked".into(),
        },
        SliceEnd::Destroy => "exited".into(),
        SliceEnd::Syscall => "entered a blocking call".into(),
        SliceEnd::Unfinished => "still running at the end".into(),
    }
}

/// What an instant mark says: "steal 3 Gs from P1", "preempt G17 worker (timer interrupt)".
pub fn mark_text(m: &Model, mk: &Mark) -> String {
    let g = || goroutine_label(m, mk.goid);
    let gs = |n: u64| if n == 1 { "G" } else { "Gs" };
    match mk.kind {
        MarkKind::Create => format!("create {}", g()),
        MarkKind::Steal { victim, n } => format!("steal {n} {} from P{victim}", gs(n)),
        MarkKind::Preempt(crate::format::StopReason::PreemptAsync) => {
            format!("preempt {} (timer interrupt)", g())
        }
        MarkKind::Preempt(crate::format::StopReason::PreemptSync) => {
            format!("preempt {} (safe point)", g())
        }
        MarkKind::Preempt(crate::format::StopReason::Yield) => format!("yield {}", g()),
        MarkKind::PreemptRequest => format!("preempt request {}", g()),
        MarkKind::Retake { p } => format!("retake P{p}"),
        MarkKind::TimerFire { n } => {
            format!("{n} {} fired", if n == 1 { "timer" } else { "timers" })
        }
        MarkKind::GlobalRunqGet { n } => format!("take {n} {} from the global queue", gs(n)),
    }
}

/// A duration with three significant digits and its unit: "850 ns", "12.3 µs", "1.25 s".
pub fn format_duration(ns: u64) -> String {
    let (unit, div) = match ns {
        0..1_000 => return format!("{ns} ns"),
        1_000..1_000_000 => ("µs", 1e3),
        1_000_000..1_000_000_000 => ("ms", 1e6),
        _ => ("s", 1e9),
    };
    let v = ns as f64 / div;
    let dec = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.dec$} {unit}")
}

/// A goroutine's colour, "#rrggbb": stable for a goid, hues spread by the golden ratio so
/// neighbouring goids (often neighbours on screen) differ by ~137°, with lightness and
/// saturation varied a little so far-apart goids whose hues meet still differ.
pub fn goroutine_color(goid: u64) -> String {
    let h = (goid as f64 * 0.618_033_988_749_895).fract() * 360.0;
    let s = 0.50 + 0.12 * ((goid / 3) % 3) as f64;
    let l = 0.46 + 0.07 * ((goid / 9) % 3) as f64;
    let (r, g, b) = hsl(h, s, l);
    format!("#{r:02x}{g:02x}{b:02x}")
}

fn hsl(h: f64, s: f64, l: f64) -> (u8, u8, u8) {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let hp = h / 60.0;
    let x = c * (1.0 - (hp % 2.0 - 1.0).abs());
    let (r, g, b) = match hp as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let mm = l - c / 2.0;
    let q = |v: f64| ((v + mm) * 255.0).round().clamp(0.0, 255.0) as u8;
    (q(r), q(g), q(b))
}

/// Whether dark text reads better than white on this "#rrggbb" colour.
pub fn dark_text_on(color: &str) -> bool {
    let v = |i: usize| u8::from_str_radix(&color[i..i + 2], 16).unwrap_or(0) as f64;
    0.299 * v(1) + 0.587 * v(3) + 0.114 * v(5) > 150.0
}

/// Text made safe for XML (and HTML) text and attribute values.
pub fn escape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A round tick step for a span: 1, 2 or 5 × 10^k ns, about `target` ticks over `span_ns`.
pub fn tick_step(span_ns: u64, target: u64) -> u64 {
    let raw = (span_ns / target.max(1)).max(1);
    let mut p = 1u64;
    while p.saturating_mul(10) <= raw {
        p *= 10;
    }
    [1, 2, 5, 10]
        .iter()
        .map(|k| k * p)
        .find(|s| *s >= raw)
        .unwrap_or(10 * p)
}

/// A tick's label for ticks `step` apart: the unit fits the step, decimals only as many as
/// the step needs ("0", "0.5 ms", "1 ms", "1.5 ms").
pub fn tick_label(t_ns: u64, step: u64) -> String {
    let (unit, exp) = match step {
        0..1_000 => ("ns", 0u32),
        1_000..1_000_000 => ("µs", 3),
        1_000_000..1_000_000_000 => ("ms", 6),
        _ => ("s", 9),
    };
    if t_ns == 0 {
        return "0".into();
    }
    let mut step_exp = 0u32;
    let mut s = step;
    while s > 0 && s.is_multiple_of(10) {
        s /= 10;
        step_exp += 1;
    }
    let dec = exp.saturating_sub(step_exp) as usize;
    let v = t_ns as f64 / 10f64.powi(exp as i32);
    format!("{v:.dec$} {unit}")
}

// ---- The drawing ------------------------------------------------------------------------

/// Above this many runs in all, runs narrower than a pixel are merged per pixel column.
pub const DENSE_SLICES: usize = 20_000;
/// The narrowest run drawn, in pixels.
pub const MIN_W: f64 = 0.5;

const WIDTH: f64 = 1200.0;
const LEFT: f64 = 128.0;
const RIGHT: f64 = 16.0;
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
const TOP: f64 = 44.0;
/// A CPU row: a 7 px band for marks, an 18 px lane for runs, 7 px to the next row.
const MARK_H: f64 = 7.0;
const LANE_H: f64 = 18.0;
const ROW_H: f64 = MARK_H + LANE_H + 7.0;
/// Sysmon's row: marks only.
const SYSMON_H: f64 = 16.0;
const SPIN_H: f64 = 4.0;

const RED: &str = "#d62728";
const BLUE: &str = "#1f77b4";
const GREEN: &str = "#2ca02c";
const PURPLE: &str = "#9467bd";
const ORANGE: &str = "#ff7f0e";
const TEAL: &str = "#17becf";
const SPIN: &str = "#f2b134";
const FLOW: &str = "#555555";
/// At most this many wake-up lines are drawn (cross-row ones only).
const MAX_FLOWS: usize = 400;

struct Plot {
    dur: f64,
}

impl Plot {
    fn x(&self, ns: u64) -> f64 {
        LEFT + ns as f64 * PLOT_W / self.dur
    }
}

fn f(v: f64) -> String {
    // Two decimals are plenty at this scale and keep the file small.
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// Spans merged where the gap between them is under a pixel, as pixel intervals.
fn merged_spans(p: &Plot, spans: &[Span]) -> Vec<(f64, f64)> {
    let mut v: Vec<(f64, f64)> = spans
        .iter()
        .map(|s| (p.x(s.start_ns), p.x(s.end_ns)))
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a - last.1 < 1.0 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

fn rect(out: &mut String, x: f64, y: f64, w: f64, h: f64, fill: &str) {
    out.push_str(&format!(
        r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{fill}"/>"#,
        f(x),
        f(y),
        f(w.max(MIN_W)),
        f(h)
    ));
}

/// A mark's shape at `x`, with its top at `y` (the mark band of a row).
fn mark_shape(out: &mut String, kind: &MarkKind, x: f64, y: f64) {
    let (xs, ys) = (f(x), f(y));
    let tri_down = |fill: &str, stroke: &str| {
        format!(
            r#"<path d="M{} {ys}h7l-3.5 6.5z" fill="{fill}" stroke="{stroke}" stroke-width="1"/>"#,
            f(x - 3.5)
        )
    };
    let s = match kind {
        MarkKind::Preempt(crate::format::StopReason::PreemptAsync) => tri_down(RED, RED),
        MarkKind::Preempt(crate::format::StopReason::PreemptSync) => tri_down("#ffffff", RED),
        MarkKind::Preempt(crate::format::StopReason::Yield) => tri_down("#bbbbbb", "#888888"),
        MarkKind::Steal { .. } => {
            format!(r#"<path d="M{xs} {ys}l3.5 3.5l-3.5 3.5l-3.5-3.5z" fill="{BLUE}"/>"#)
        }
        MarkKind::Create => {
            format!(
                r#"<circle cx="{xs}" cy="{}" r="2.2" fill="{GREEN}"/>"#,
                f(y + 3.5)
            )
        }
        MarkKind::PreemptRequest => format!(
            r#"<path d="M{xs} {ys}v{}" stroke="{RED}" stroke-width="1.5"/>"#,
            f(SYSMON_H - 4.0)
        ),
        MarkKind::Retake { .. } => {
            format!(
                r#"<rect x="{}" y="{}" width="6" height="6" fill="{PURPLE}"/>"#,
                f(x - 3.0),
                f(y + 0.5)
            )
        }
        MarkKind::TimerFire { .. } => format!(
            r#"<circle cx="{xs}" cy="{}" r="2.5" fill="none" stroke="{ORANGE}" stroke-width="1.3"/>"#,
            f(y + 3.5)
        ),
        MarkKind::GlobalRunqGet { .. } => {
            format!(
                r#"<path d="M{} {}h7l-3.5-6.5z" fill="{TEAL}"/>"#,
                f(x - 3.5),
                f(y + 6.5)
            )
        }
    };
    out.push_str(&s);
}

/// Which legend/mark class a mark belongs to (one kept per pixel column per class).
pub(crate) fn mark_class(kind: &MarkKind) -> u8 {
    match kind {
        MarkKind::Create => 0,
        MarkKind::Steal { .. } => 1,
        MarkKind::Preempt(crate::format::StopReason::PreemptAsync) => 2,
        MarkKind::Preempt(crate::format::StopReason::PreemptSync) => 3,
        MarkKind::Preempt(crate::format::StopReason::Yield) => 4,
        MarkKind::PreemptRequest => 5,
        MarkKind::Retake { .. } => 6,
        MarkKind::TimerFire { .. } => 7,
        MarkKind::GlobalRunqGet { .. } => 8,
    }
}

fn draw_marks(out: &mut String, p: &Plot, t: &Track, y: f64, dense: bool) {
    let mut seen: BTreeMap<(u8, i64), ()> = BTreeMap::new();
    for mk in &t.marks {
        let x = p.x(mk.ts_ns);
        if dense
            && seen
                .insert((mark_class(&mk.kind), x.round() as i64), ())
                .is_some()
        {
            continue;
        }
        mark_shape(out, &mk.kind, x, y);
    }
}

fn draw_runs(out: &mut String, m: &Model, p: &Plot, t: &Track, y: f64, dense: bool) {
    // A pending group of sub-pixel runs in one pixel column: (column, x0, x1, time per goid).
    let mut group: Option<(i64, f64, f64, BTreeMap<u64, u64>)> = None;
    let flush = |out: &mut String, g: &mut Option<(i64, f64, f64, BTreeMap<u64, u64>)>| {
        if let Some((_, x0, x1, by)) = g.take() {
            let goid = by.iter().max_by_key(|(_, ns)| **ns).map_or(0, |(g, _)| *g);
            rect(out, x0, y, x1 - x0, LANE_H, &goroutine_color(goid));
        }
    };
    let titled = t.slices.len() <= 2_000;
    for s in &t.slices {
        let (x0, x1) = (p.x(s.start_ns), p.x(s.end_ns));
        let w = x1 - x0;
        if dense && w < 1.0 {
            let col = x0.floor() as i64;
            match &mut group {
                Some((c, _, gx1, by)) if *c == col => {
                    *gx1 = gx1.max(x1);
                    *by.entry(s.goid).or_default() += s.end_ns - s.start_ns;
                }
                _ => {
                    flush(out, &mut group);
                    let mut by = BTreeMap::new();
                    by.insert(s.goid, s.end_ns - s.start_ns);
                    group = Some((col, x0, x1, by));
                }
            }
            continue;
        }
        flush(out, &mut group);
        let color = goroutine_color(s.goid);
        let label = goroutine_label(m, s.goid);
        if titled {
            out.push_str(&format!(
                r#"<rect x="{}" y="{}" width="{}" height="{LANE_H}" fill="{color}"><title>{}</title></rect>"#,
                f(x0),
                f(y),
                f(w.max(MIN_W)),
                escape_xml(&format!(
                    "{label}: {} from {}, {}",
                    format_duration(s.end_ns - s.start_ns),
                    format_duration(s.start_ns),
                    end_reason(s.end)
                ))
            ));
        } else {
            rect(out, x0, y, w, LANE_H, &color);
        }
        // The label inside runs wide enough for it (about 6 px a character at 10 px).
        let room = ((w - 6.0) / 6.0).floor();
        if room >= 3.0 {
            let chars: Vec<char> = label.chars().collect();
            let text: String = if chars.len() as f64 <= room {
                label.clone()
            } else {
                chars[..(room as usize - 1)].iter().collect::<String>() + "…"
            };
            let fill = if dark_text_on(&color) {
                "#111111"
            } else {
                "#ffffff"
            };
            out.push_str(&format!(
                r#"<text x="{}" y="{}" class="in" fill="{fill}">{}</text>"#,
                f(x0 + 3.0),
                f(y + LANE_H / 2.0 + 3.5),
                escape_xml(&text)
            ));
        }
    }
    flush(out, &mut group);
}

/// The whole trace as one SVG document.
pub fn svg(m: &Model) -> String {
    let p = Plot {
        dur: m.duration_ns.max(1) as f64,
    };
    let total: usize = m.tracks.iter().map(|t| t.slices.len()).sum();
    let dense = total > DENSE_SLICES;

    // Row tops, by track.
    let mut ys = Vec::with_capacity(m.tracks.len());
    let mut y = TOP;
    for t in &m.tracks {
        ys.push(y);
        y += if t.m == SYSMON { SYSMON_H + 6.0 } else { ROW_H };
    }
    let axis_y = y + 2.0;
    let legend_y = axis_y + 34.0;
    let height = legend_y + 22.0;

    let mut out = String::with_capacity(64 * 1024 + total * 60);
    out.push_str(&format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{}" viewBox="0 0 {WIDTH} {}" font-family="Helvetica, Arial, sans-serif" font-size="12">"#,
        f(height),
        f(height)
    ));
    out.push_str(concat!(
        "<style>.label{font-size:12px;fill:#222}.in{font-size:10px}",
        ".tick{font-size:10px;fill:#555}.title{font-size:15px;font-weight:bold;fill:#111}",
        ".legend{font-size:11px;fill:#333}</style>",
        r##"<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">"##,
        r##"<rect width="6" height="6" fill="#e4e4e4"/><path d="M0 0v6" stroke="#b8b8b8" stroke-width="2"/></pattern></defs>"##,
    ));
    out.push_str(&format!(
        r##"<rect width="{WIDTH}" height="{}" fill="#ffffff"/>"##,
        f(height)
    ));

    // Title.
    let cpus = m.tracks.iter().filter(|t| t.m != SYSMON).count();
    let title = format!(
        "Execution trace · GOMAXPROCS {} · {} · {} {} ({})",
        m.gomaxprocs,
        format_duration(m.duration_ns),
        cpus,
        if m.kernel { "CPUs" } else { "threads" },
        if m.kernel { "kernel" } else { "host" }
    );
    out.push_str(&format!(
        r#"<text class="title" x="{}" y="22">{}</text>"#,
        f(LEFT),
        escape_xml(&title)
    ));
    let lost: u64 = m.lost.values().fold(0, |a, &n| a.saturating_add(n));
    let mut warn = Vec::new();
    if lost > 0 {
        warn.push(format!("{lost} events lost"));
    }
    if m.unflushed_ms > 0 {
        warn.push(format!("{} Ms never flushed", m.unflushed_ms));
    }
    if !warn.is_empty() {
        out.push_str(&format!(
            r#"<text x="{}" y="22" text-anchor="end" fill="{RED}">{}</text>"#,
            f(WIDTH - RIGHT),
            escape_xml(&warn.join(", "))
        ));
    }

    // Grid lines under the rows.
    let step = tick_step(m.duration_ns.max(1), 10);
    let mut ticks = Vec::new();
    let mut t = 0u64;
    while t <= m.duration_ns {
        ticks.push(t);
        t = match t.checked_add(step) {
            Some(n) => n,
            None => break,
        };
    }
    for &t in &ticks {
        let x = f(p.x(t));
        out.push_str(&format!(
            r##"<path d="M{x} {}V{}" stroke="#eeeeee" stroke-width="1"/>"##,
            f(TOP - 4.0),
            f(axis_y)
        ));
    }

    // Rows.
    for (t, &y) in m.tracks.iter().zip(&ys) {
        out.push_str(&format!(
            r#"<g class="cpu-row" data-m="{}" data-label="{}">"#,
            t.m,
            escape_xml(&t.label)
        ));
        if t.m == SYSMON {
            out.push_str(&format!(
                r##"<text class="label" x="{}" y="{}" text-anchor="end" fill="#666">{}</text>"##,
                f(LEFT - 8.0),
                f(y + SYSMON_H / 2.0 + 4.0),
                escape_xml(&t.label)
            ));
            out.push_str(&format!(
                r##"<path d="M{} {}H{}" stroke="#cccccc" stroke-width="1"/>"##,
                f(LEFT),
                f(y + SYSMON_H - 2.0),
                f(WIDTH - RIGHT)
            ));
            draw_marks(&mut out, &p, t, y + 1.0, dense);
        } else {
            let lane = y + MARK_H;
            out.push_str(&format!(
                r#"<text class="label" x="{}" y="{}" text-anchor="end">{}</text>"#,
                f(LEFT - 8.0),
                f(lane + LANE_H / 2.0 + 4.0),
                escape_xml(&t.label)
            ));
            rect(&mut out, LEFT, lane, PLOT_W, LANE_H, "#f6f6f6");
            for (a, b) in merged_spans(&p, &t.halts) {
                rect(&mut out, a, lane, b - a, LANE_H, "url(#hatch)");
            }
            draw_runs(&mut out, m, &p, t, lane, dense);
            for (a, b) in merged_spans(&p, &t.spins) {
                rect(&mut out, a, lane + LANE_H - SPIN_H, b - a, SPIN_H, SPIN);
            }
            draw_marks(&mut out, &p, t, y, dense);
        }
        out.push_str("</g>");
    }

    // Wake-ups across rows, when there are few enough to read.
    let row_of: BTreeMap<u16, usize> = m.tracks.iter().enumerate().map(|(i, t)| (t.m, i)).collect();
    let cross: Vec<_> = m.flows.iter().filter(|fl| fl.from_m != fl.to_m).collect();
    if !cross.is_empty() && cross.len() <= MAX_FLOWS {
        out.push_str(&format!(
            r#"<g class="flows" fill="none" stroke="{FLOW}" stroke-width="0.8" stroke-opacity="0.6">"#
        ));
        for fl in cross {
            let (Some(&a), Some(&b)) = (row_of.get(&fl.from_m), row_of.get(&fl.to_m)) else {
                continue;
            };
            let mid = |i: usize| {
                let t = &m.tracks[i];
                if t.m == SYSMON {
                    ys[i] + SYSMON_H / 2.0
                } else {
                    ys[i] + MARK_H + LANE_H / 2.0
                }
            };
            let (x0, y0, x1, y1) = (p.x(fl.from_ns), mid(a), p.x(fl.to_ns), mid(b));
            let ym = (y0 + y1) / 2.0;
            out.push_str(&format!(
                r#"<path d="M{} {}C{} {} {} {} {} {}"/>"#,
                f(x0),
                f(y0),
                f(x0),
                f(ym),
                f(x1),
                f(ym),
                f(x1),
                f(y1)
            ));
            out.push_str(&format!(
                r#"<circle cx="{}" cy="{}" r="1.6" fill="{FLOW}" stroke="none"/>"#,
                f(x1),
                f(y1)
            ));
        }
        out.push_str("</g>");
    }

    // Time axis.
    out.push_str(&format!(
        r##"<g class="axis"><path d="M{} {}H{}" stroke="#888888" stroke-width="1"/>"##,
        f(LEFT),
        f(axis_y),
        f(WIDTH - RIGHT)
    ));
    for (i, &t) in ticks.iter().enumerate() {
        let x = p.x(t);
        out.push_str(&format!(
            r##"<path d="M{} {}v5" stroke="#888888" stroke-width="1"/>"##,
            f(x),
            f(axis_y)
        ));
        let anchor = if i == 0 {
            "start"
        } else if x > WIDTH - RIGHT - 24.0 {
            "end"
        } else {
            "middle"
        };
        out.push_str(&format!(
            r#"<text class="tick" x="{}" y="{}" text-anchor="{anchor}">{}</text>"#,
            f(x),
            f(axis_y + 17.0),
            escape_xml(&tick_label(t, step))
        ));
    }
    out.push_str("</g>");

    // Legend.
    out.push_str(&format!(
        r#"<g class="legend" transform="translate(16,{})">"#,
        f(legend_y)
    ));
    let mut x = 0.0;
    let mut item = |out: &mut String, shape: String, text: &str| {
        out.push_str(&shape.replace("{X}", &f(x)));
        out.push_str(&format!(
            r#"<text class="legend" x="{}" y="10">{}</text>"#,
            f(x + 22.0),
            escape_xml(text)
        ));
        x += 22.0 + text.chars().count() as f64 * 6.2 + 16.0;
    };
    let mut sw = String::new();
    for (i, g) in [1u64, 2, 3].iter().enumerate() {
        sw.push_str(&format!(
            r#"<rect x="{{X}}" y="1" width="6" height="11" fill="{}" transform="translate({},0)"/>"#,
            goroutine_color(*g),
            i * 6
        ));
    }
    item(&mut out, sw, "goroutine runs");
    item(
        &mut out,
        r#"<rect x="{X}" y="1" width="18" height="11" fill="url(#hatch)"/>"#.into(),
        "halted",
    );
    item(
        &mut out,
        format!(r#"<rect x="{{X}}" y="8" width="18" height="{SPIN_H}" fill="{SPIN}"/>"#),
        "spinning",
    );
    let shape = |k: MarkKind| {
        let mut s = String::new();
        mark_shape(&mut s, &k, 9.0, 3.0);
        format!(r#"<g transform="translate({{X}},0)">{s}</g>"#)
    };
    let tri_a = shape(MarkKind::Preempt(crate::format::StopReason::PreemptAsync));
    let tri_s = shape(MarkKind::Preempt(crate::format::StopReason::PreemptSync));
    let steal = shape(MarkKind::Steal { victim: 0, n: 0 });
    let create = shape(MarkKind::Create);
    let timer = shape(MarkKind::TimerFire { n: 0 });
    let global = shape(MarkKind::GlobalRunqGet { n: 0 });
    item(&mut out, tri_a, "timer-interrupt preemption");
    item(&mut out, tri_s, "safe-point preemption");
    item(&mut out, steal, "steal");
    item(&mut out, create, "create");
    item(&mut out, timer, "timers");
    item(&mut out, global, "global queue");
    item(
        &mut out,
        format!(r#"<path d="M{{X}} 6h18" stroke="{FLOW}" stroke-width="1"/>"#),
        "wake-up",
    );
    out.push_str("</g></svg>");
    out
}

/// A small hand-built model for the views' tests: three CPUs and sysmon, a run of each end
/// kind, both kinds of preemption, a steal, halts and spins, flows across CPUs (one from a
/// halted CPU, as a timer readies a goroutine), P tracks with run-queue samples, and labels
/// that need escaping.
#[cfg(test)]
pub(crate) fn sample_model() -> Model {
    use crate::format::{StopReason, UnblockSource};
    use crate::model::{Flow, PTrack, Slice};
    let sl = |goid, p, start_ns, end_ns, end| Slice {
        goid,
        p,
        start_ns,
        end_ns,
        end,
    };
    let sp = |start_ns, end_ns| Span { start_ns, end_ns };
    let mk = |ts_ns, kind, goid| Mark { ts_ns, kind, goid };
    let mut goroutines = BTreeMap::new();
    for (goid, label) in [
        (1, "G1 main"),
        (17, "G17 worker"),
        (18, "G18 worker"),
        (19, "G19 serve<&\"http://x\" src=y>"),
    ] {
        goroutines.insert(
            goid,
            crate::model::GInfo {
                goid,
                label: label.into(),
                creator: 1,
                create_pc: 0x1000,
                created_ns: Some(0),
            },
        );
    }
    Model {
        kernel: true,
        gomaxprocs: 2,
        duration_ns: 2_000_000,
        tracks: std::vec![
            Track {
                m: 0,
                cpu: Some(0),
                label: "CPU 0 (M0)".into(),
                slices: std::vec![
                    sl(1, Some(0), 0, 300_000, SliceEnd::Block(3)),
                    sl(
                        17,
                        Some(0),
                        310_000,
                        900_000,
                        SliceEnd::Stop(StopReason::PreemptAsync)
                    ),
                    sl(
                        18,
                        Some(0),
                        900_000,
                        1_500_000,
                        SliceEnd::Stop(StopReason::PreemptSync)
                    ),
                    sl(1, Some(0), 1_500_000, 2_000_000, SliceEnd::Unfinished),
                ],
                halts: std::vec![sp(300_000, 310_000)],
                spins: std::vec![],
                marks: std::vec![
                    mk(100_000, MarkKind::Create, 17),
                    mk(150_000, MarkKind::Create, 18),
                    mk(900_000, MarkKind::Preempt(StopReason::PreemptAsync), 17),
                    mk(1_500_000, MarkKind::Preempt(StopReason::PreemptSync), 18),
                ],
            },
            Track {
                m: 1,
                cpu: Some(1),
                label: "CPU 1 (M1)".into(),
                slices: std::vec![
                    sl(19, Some(1), 400_000, 700_000, SliceEnd::Block(8)),
                    sl(17, Some(1), 950_000, 1_200_000, SliceEnd::Destroy),
                    sl(19, None, 1_250_001, 1_250_400, SliceEnd::Syscall),
                ],
                halts: std::vec![sp(50_000, 390_000), sp(1_300_000, 2_000_000)],
                spins: std::vec![sp(0, 50_000), sp(390_000, 400_000)],
                marks: std::vec![mk(400_000, MarkKind::Steal { victim: 0, n: 3 }, 19)],
            },
            Track {
                m: 2,
                cpu: Some(2),
                label: "CPU 2 (M2)".into(),
                slices: std::vec![],
                halts: std::vec![sp(0, 2_000_000)],
                spins: std::vec![],
                marks: std::vec![
                    mk(250_000, MarkKind::TimerFire { n: 1 }, 0),
                    mk(260_000, MarkKind::GlobalRunqGet { n: 2 }, 0),
                ],
            },
            Track {
                m: SYSMON,
                cpu: None,
                label: "sysmon".into(),
                slices: std::vec![],
                halts: std::vec![],
                spins: std::vec![],
                marks: std::vec![
                    mk(850_000, MarkKind::PreemptRequest, 17),
                    mk(1_300_000, MarkKind::Retake { p: 1 }, 0),
                ],
            },
        ],
        procs: std::vec![
            PTrack {
                p: 0,
                held: std::vec![(0, sp(0, 2_000_000))],
                runq: std::vec![
                    (0, 0),
                    (100_000, 1),
                    (150_000, 2),
                    (310_000, 1),
                    (900_000, 1)
                ],
            },
            PTrack {
                p: 1,
                held: std::vec![(1, sp(400_000, 1_300_000))],
                runq: std::vec![(400_000, 0), (950_000, 1)],
            },
        ],
        flows: std::vec![
            // A timer readies G17 on halted CPU 2; it runs on CPU 0.
            Flow {
                goid: 17,
                source: UnblockSource::Timer,
                waker: 0,
                from_m: 2,
                from_ns: 250_000,
                to_m: 0,
                to_ns: 310_000,
            },
            // G17 (on CPU 1) wakes G1, which runs on CPU 0.
            Flow {
                goid: 1,
                source: UnblockSource::Goroutine,
                waker: 17,
                from_m: 1,
                from_ns: 1_000_000,
                to_m: 0,
                to_ns: 1_500_000,
            },
            // G17 also wakes G19 in the same run; G19 runs on CPU 1.
            Flow {
                goid: 19,
                source: UnblockSource::Goroutine,
                waker: 17,
                from_m: 1,
                from_ns: 1_100_000,
                to_m: 1,
                to_ns: 1_250_001,
            },
        ],
        goroutines,
        lost: [(2u16, 5u64)].into_iter().collect(),
        unflushed_ms: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> usvg::Tree {
        usvg::Tree::from_str(s, &usvg::Options::default()).expect("the SVG parses")
    }

    /// The `data-m` of every `cpu-row` group, in document order.
    fn rows(s: &str) -> Vec<String> {
        s.match_indices(r#"<g class="cpu-row" data-m=""#)
            .map(|(i, pat)| {
                let rest = &s[i + pat.len()..];
                rest[..rest.find('"').unwrap()].into()
            })
            .collect()
    }

    #[test]
    fn lost_counts_past_a_u64_sum_draw() {
        // Found by fuzzing (trace_views): the lost-events sum overflowed.
        let mut m = sample_model();
        m.lost.insert(0, u64::MAX);
        m.lost.insert(1, 9);
        assert!(svg(&m).contains(&alloc::format!("{}", u64::MAX)));
    }

    #[test]
    fn the_sample_parses_and_has_one_row_per_track_in_order() {
        let m = sample_model();
        let s = svg(&m);
        let tree = parse(&s);
        assert_eq!(tree.size().width(), 1200.0);
        let want: Vec<String> = m.tracks.iter().map(|t| format!("{}", t.m)).collect();
        assert_eq!(rows(&s), want);
        assert_eq!(s.matches("class=\"cpu-row\"").count(), m.tracks.len());
        for t in &m.tracks {
            assert!(
                s.contains(&format!(">{}</text>", escape_xml(&t.label))),
                "{}",
                t.label
            );
        }
        // The title says what the trace is.
        assert!(
            s.contains("GOMAXPROCS 2 · 2.00 ms · 3 CPUs (kernel)"),
            "{}",
            &s[..600]
        );
    }

    #[test]
    fn text_is_escaped() {
        let s = svg(&sample_model());
        assert!(!s.contains("serve<&"));
        assert!(s.contains("serve&lt;&amp;&quot;"));
        parse(&s);
        assert_eq!(escape_xml("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
    }

    #[test]
    fn both_kinds_of_preemption_steals_halts_and_spins_are_drawn_distinctly() {
        let s = svg(&sample_model());
        let async_tri = format!(r#"fill="{RED}" stroke="{RED}""#);
        let sync_tri = format!(r##"fill="#ffffff" stroke="{RED}""##);
        // Once on CPU 0, once in the legend.
        assert_eq!(s.matches(&async_tri).count(), 2);
        assert_eq!(s.matches(&sync_tri).count(), 2);
        assert!(
            s.matches(&format!(r#"fill="{BLUE}""#)).count() >= 2,
            "a steal diamond"
        );
        assert!(s.matches("url(#hatch)").count() >= 4, "halts are hatched");
        assert!(
            s.matches(&format!(r#"fill="{SPIN}""#)).count() >= 2,
            "spins are a band"
        );
        // The wake-ups across CPUs: two of the three flows.
        let flows = &s[s.find(r#"<g class="flows""#).unwrap()..];
        assert_eq!(
            flows[..flows.find("</g>").unwrap()]
                .matches("<path")
                .count(),
            2
        );
    }

    #[test]
    fn a_sub_pixel_run_is_still_visible() {
        let s = svg(&sample_model());
        // G19's 399 ns run on CPU 1 is 0.21 px wide at 2 ms over 1056 px; drawn MIN_W wide.
        for w in s.match_indices(" width=\"").map(|(i, p)| &s[i + p.len()..]) {
            let v: f64 = w[..w.find('"').unwrap()].parse().unwrap();
            assert!(v >= MIN_W, "a rect {v} px wide");
        }
    }

    #[test]
    fn a_dense_trace_stays_small_and_keeps_its_rows() {
        let mut m = sample_model();
        // 40k runs of 20 ns every 50 ns on CPU 2, 1000 marks.
        let t = &mut m.tracks[2];
        t.halts.clear();
        for i in 0..40_000u64 {
            t.slices.push(crate::model::Slice {
                goid: 100 + i % 7,
                p: Some(1),
                start_ns: i * 50,
                end_ns: i * 50 + 20,
                end: SliceEnd::Stop(crate::format::StopReason::Yield),
            });
            if i % 40 == 0 {
                t.marks.push(Mark {
                    ts_ns: i * 50,
                    kind: MarkKind::Steal { victim: 0, n: 1 },
                    goid: 0,
                });
            }
        }
        let s = svg(&m);
        parse(&s);
        assert_eq!(rows(&s).len(), m.tracks.len());
        let rects = s.matches("<rect").count();
        assert!(rects < 3_000, "{rects} rects for 40k runs");
        assert!(s.len() < 600_000, "{} bytes", s.len());
        // Every pixel column the runs cover gets something: 2 ms = 1056 px, runs over 2 ms.
        assert!(rects > 1_000, "{rects}");
    }

    #[test]
    fn neighbouring_goroutines_get_clearly_different_stable_colours() {
        let rgb = |c: &str| {
            let v = |i: usize| i32::from_str_radix(&c[i..i + 2], 16).unwrap();
            (v(1), v(3), v(5))
        };
        for g in 1..500u64 {
            assert_eq!(goroutine_color(g), goroutine_color(g));
            let (a, b) = (rgb(&goroutine_color(g)), rgb(&goroutine_color(g + 1)));
            let d2 = (a.0 - b.0).pow(2) + (a.1 - b.1).pow(2) + (a.2 - b.2).pow(2);
            assert!(d2 > 60 * 60, "G{g} {a:?} and G{} {b:?}", g + 1);
        }
    }

    #[test]
    fn ticks_are_round_and_labelled_in_the_unit_of_their_step() {
        assert_eq!(tick_step(2_000_000, 10), 200_000);
        assert_eq!(tick_step(1_000, 10), 100);
        assert_eq!(tick_step(7_300_000_000, 10), 1_000_000_000);
        assert_eq!(tick_step(1, 10), 1);
        assert_eq!(tick_label(0, 200_000), "0");
        assert_eq!(tick_label(400_000, 200_000), "400 µs");
        assert_eq!(tick_label(1_500_000, 500_000), "1500 µs");
        assert_eq!(tick_label(1_500_000, 1_000_000), "2 ms");
        assert_eq!(tick_label(3_000, 1_000), "3 µs");
        assert_eq!(tick_label(2_000_000_000, 1_000_000_000), "2 s");
        assert_eq!(tick_label(250, 50), "250 ns");
        assert_eq!(format_duration(850), "850 ns");
        assert_eq!(format_duration(12_345), "12.3 µs");
        assert_eq!(format_duration(1_250_000_000), "1.25 s");
    }

    #[test]
    fn the_shared_words_are_the_ones_the_views_promise() {
        let m = sample_model();
        assert_eq!(end_reason(SliceEnd::Block(3)), "blocked: chan receive");
        assert_eq!(end_reason(SliceEnd::Block(200)), "blocked");
        assert_eq!(end_reason(SliceEnd::Destroy), "exited");
        assert_eq!(end_reason(SliceEnd::Syscall), "entered a blocking call");
        assert_eq!(end_reason(SliceEnd::Unfinished), "still running at the end");
        assert_eq!(goroutine_label(&m, 17), "G17 worker");
        assert_eq!(goroutine_label(&m, 99), "G99");
        let steal = Mark {
            ts_ns: 0,
            kind: MarkKind::Steal { victim: 1, n: 3 },
            goid: 0,
        };
        assert_eq!(mark_text(&m, &steal), "steal 3 Gs from P1");
    }
}
