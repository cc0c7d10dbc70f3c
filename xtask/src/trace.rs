//! `cargo xtask trace`: boots a kernel (the showcase, or a test kernel) with `trace=1` and a
//! trace window (an ivshmem device backed by a file, kernel/src/dev/tracemem.rs), then decodes
//! what the kernel wrote there
//! (rt-trace) and writes, under `target/trace/`, for each runtime the boot ran:
//! `NAME.json` (Chrome Trace Event format, for Perfetto), `NAME.svg` (our timeline) and
//! `NAME.html` (the timeline as one self-contained page with zoom and hover cards), and prints
//! the trace's summary and the result of checking it (rt-trace/src/check.rs).
//!
//! The same analysis ([`analyze`]) is what the harness runs for a test kernel marked
//! `//! @trace` (harness.rs), with the views verified: the JSON parsed back with the fields
//! Perfetto needs, the SVG parsed by `usvg` with one row per CPU, the page opened in headless
//! Chromium with one row per CPU in its DOM (browser.rs).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::build::{self, Firmware, Kernels};
use crate::qemu::{self, Machine, Serial};
use crate::symbolize::{Symbols, KERNEL_BASE};

/// What `cargo xtask trace` was asked for.
pub struct TraceRun<'a> {
    /// A test kernel (tests/src/bin/NAME.rs); None: the showcase kernel.
    pub test: Option<&'a str>,
    pub machine: Machine,
    /// Also render the SVG and the page as PNGs (headless Chromium).
    pub pictures: bool,
}

/// One decoded run, with its views written.
pub struct Analysis {
    pub model: rt_trace::model::Model,
    pub report: rt_trace::check::Report,
    pub summary: rt_trace::summary::Summary,
    /// The files written: JSON, SVG, HTML.
    pub files: [PathBuf; 3],
}

/// The directory the views go to.
pub fn out_dir() -> PathBuf {
    crate::root().join("target/trace")
}

/// Boots, decodes, writes the views and prints the summaries. Returns the exit status: the
/// kernel's verdict, or 1 if a trace did not decode or failed its check.
pub fn run(r: &TraceRun) -> Result<u8> {
    crate::setup::ensure_all(r.machine.firmware == Firmware::Uefi)?;
    let name = r.test.unwrap_or("kernel");
    let elves = match r.test {
        Some(t) => build::build_kernels(Kernels::Tests(&[t.to_string()]), false)?,
        None => build::build_kernels(Kernels::Main, false)?,
    };
    let images = build::make_images(&elves, r.machine.firmware)?;
    let dir = out_dir();
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let bin = dir.join(format!("{name}.window"));
    qemu::trace_window(&bin)?;
    let mut m = r.machine.clone();
    m.trace_window = Some(bin.clone());
    if !m.kernel_args.iter().any(|a| a.starts_with("trace=")) {
        m.kernel_args.push("trace=1".into());
    }
    eprintln!(
        "xtask: booting {} with tracing on, {} CPU(s); the trace goes to {}",
        images[0].display(),
        m.smp,
        bin.display()
    );
    let ran = qemu::run(
        &images[0],
        &m,
        Serial::Inherit,
        &qemu::scratch(&format!("trace-{name}")),
    )?;
    eprintln!(
        "xtask: {} after {:.1} s",
        ran.ending.describe(),
        ran.elapsed.as_secs_f64()
    );
    let bytes = qemu::read_trace_window(&bin)?;
    let raw = dir.join(format!("{name}.bin"));
    fs::write(&raw, &bytes).with_context(|| format!("cannot write {}", raw.display()))?;
    let _ = fs::remove_file(&bin);
    let runs = rt_trace::decode::decode_runs(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", bin.display()))?;
    let mut ok = true;
    for (i, t) in runs.iter().enumerate() {
        let stem = run_stem(name, i, runs.len());
        let a = analyze(t, &elves[0], &dir, &stem)?;
        println!(
            "\n== trace {} of {}: {} ({} Ps, {:.1} ms emulated)",
            i + 1,
            runs.len(),
            stem,
            t.gomaxprocs,
            a.model.duration_ns as f64 / 1e6
        );
        print!("{}", a.summary);
        for w in &a.report.warnings {
            println!("warning: {w}");
        }
        for p in &a.report.problems {
            println!("problem: {p}");
        }
        if !a.report.problems.is_empty() {
            ok = false;
        }
        for f in &a.files {
            println!("wrote {}", f.display());
        }
        if r.pictures {
            for f in pictures(&a.files)? {
                println!("wrote {}", f.display());
            }
        }
    }
    let code = ran.ending.exit_code() as u8;
    Ok(if code == 0 && !ok { 1 } else { code })
}

/// Builds the model of one decoded run (naming goroutines from `elf`'s symbols), checks it,
/// and writes its three views as `dir/stem.{json,svg,html}`.
pub fn analyze(
    t: &rt_trace::decode::Trace,
    elf: &Path,
    dir: &Path,
    stem: &str,
) -> Result<Analysis> {
    let syms = std::cell::RefCell::new(Symbols::new(elf, KERNEL_BASE, &crate::root()));
    let name_of = |pc: u64| syms.borrow_mut().function_at(pc as usize, true);
    let model = rt_trace::model::build(t, &name_of);
    let report = rt_trace::check::check(t, &model);
    let summary = rt_trace::summary::summarize(&model);
    let files = [
        dir.join(format!("{stem}.json")),
        dir.join(format!("{stem}.svg")),
        dir.join(format!("{stem}.html")),
    ];
    let texts = [
        rt_trace::json::to_string(&model),
        rt_trace::svg::svg(&model),
        rt_trace::html::html(&model),
    ];
    for (f, text) in files.iter().zip(texts) {
        fs::write(f, text).with_context(|| format!("cannot write {}", f.display()))?;
    }
    Ok(Analysis {
        model,
        report,
        summary,
        files,
    })
}

/// The file stem of run `i` of `n` in one boot: `name`, or `name-1`, `name-2`, ...
fn run_stem(name: &str, i: usize, n: usize) -> String {
    if n == 1 {
        name.to_string()
    } else {
        format!("{name}-{}", i + 1)
    }
}

/// The CPU tracks of a model (not sysmon's).
pub fn cpu_tracks(m: &rt_trace::model::Model) -> usize {
    m.tracks
        .iter()
        .filter(|t| t.m != rt_trace::format::SYSMON)
        .count()
}

/// Verifies a test kernel's trace, for the harness: it decodes (one run or more), each run
/// passes rt-trace's check (losses allowed only when reported), has one track per CPU, and
/// its three views are what their readers need. Returns a one-line reason on failure.
pub fn verify(bin: &Path, elf: &Path, stem: &str, smp: u32, browser: bool) -> Result<(), String> {
    let bytes = qemu::read_trace_window(bin).map_err(|e| format!("{e:#}"))?;
    let runs = rt_trace::decode::decode_runs(&bytes).map_err(|e| format!("trace: {e}"))?;
    let dir = out_dir();
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    for (i, t) in runs.iter().enumerate() {
        let stem = run_stem(stem, i, runs.len());
        let a = analyze(t, elf, &dir, &stem).map_err(|e| format!("{e:#}"))?;
        if let Some(p) = a.report.problems.first() {
            return Err(format!(
                "trace run {}: {} problem(s), the first: {p}",
                i + 1,
                a.report.problems.len()
            ));
        }
        let cpus = cpu_tracks(&a.model);
        if t.gomaxprocs as usize >= smp as usize && cpus != smp as usize {
            return Err(format!(
                "trace run {}: {cpus} CPU tracks for {smp} CPUs and {} Ps",
                i + 1,
                t.gomaxprocs
            ));
        }
        check_json(&a.files[0], &a.model)?;
        // One row per CPU, and sysmon's when it recorded anything.
        let rows = a.model.tracks.len();
        check_svg(&a.files[1], rows)?;
        if browser {
            check_html(&a.files[2], rows)?;
        }
    }
    Ok(())
}

/// The JSON parses, every event has the fields Perfetto's importer needs for its phase, and
/// there is one named thread per CPU track.
pub fn check_json(path: &Path, m: &rt_trace::model::Model) -> Result<(), String> {
    let text = fs::read_to_string(path).map_err(|e| e.to_string())?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    let events = v["traceEvents"]
        .as_array()
        .ok_or_else(|| format!("{}: no traceEvents array", path.display()))?;
    let mut slices = 0;
    for e in events {
        let ph = e["ph"]
            .as_str()
            .ok_or_else(|| format!("event without ph: {e}"))?;
        for field in ["pid", "name"] {
            if e.get(field).is_none() {
                return Err(format!("{} event without {field}: {e}", ph));
            }
        }
        if ph != "M" && !e["ts"].is_number() {
            return Err(format!("{ph} event without a numeric ts: {e}"));
        }
        match ph {
            "X" => {
                if !e["dur"].is_number() || e.get("tid").is_none() {
                    return Err(format!("X event without dur or tid: {e}"));
                }
                slices += 1;
            }
            "s" | "t" | "f" if e.get("id").is_none() => {
                return Err(format!("flow event without id: {e}"));
            }
            "C" if !e["args"].is_object() => {
                return Err(format!("counter without args: {e}"));
            }
            _ => {}
        }
    }
    let runs: usize = m.tracks.iter().map(|t| t.slices.len()).sum();
    if slices < runs {
        return Err(format!(
            "{}: {slices} slices for {runs} goroutine runs",
            path.display()
        ));
    }
    for t in &m.tracks {
        let named = events.iter().any(|e| {
            e["ph"] == "M" && e["name"] == "thread_name" && e["args"]["name"] == t.label.as_str()
        });
        if !named {
            return Err(format!("{}: no thread named {:?}", path.display(), t.label));
        }
    }
    Ok(())
}

/// The SVG parses as an image (usvg) and has one row per CPU.
pub fn check_svg(path: &Path, rows_wanted: usize) -> Result<(), String> {
    let text = fs::read_to_string(path).map_err(|e| e.to_string())?;
    usvg::Tree::from_str(&text, &usvg::Options::default())
        .map_err(|e| format!("{}: not a valid SVG: {e}", path.display()))?;
    let rows = text.matches("class=\"cpu-row\"").count();
    if rows != rows_wanted {
        return Err(format!(
            "{}: {rows} rows for {rows_wanted} tracks (one per CPU, and sysmon's)",
            path.display()
        ));
    }
    Ok(())
}

/// The page opens in headless Chromium and its script draws one row per CPU (read from the
/// DOM after it ran); a screenshot of it is saved beside it (`NAME.html.png`).
pub fn check_html(path: &Path, rows_wanted: usize) -> Result<(), String> {
    crate::browser::ensure_chromium().map_err(|e| format!("{e:#}"))?;
    let dom =
        crate::browser::dump_dom(path, Duration::from_secs(90)).map_err(|e| format!("{e:#}"))?;
    let rows = dom.matches("class=\"cpu-row").count();
    let want = format!("data-rows=\"{rows_wanted}\"");
    if rows != rows_wanted || !dom.contains(&want) {
        return Err(format!(
            "{} in Chromium: {rows} rows in the DOM (and {}) for {rows_wanted} CPUs",
            path.display(),
            if dom.contains(&want) {
                "the page says so"
            } else {
                "the page did not report drawing them"
            }
        ));
    }
    let png = path.with_extension("html.png");
    crate::browser::screenshot(path, &png, 1280, 720, Duration::from_secs(90))
        .map_err(|e| format!("{e:#}"))?;
    Ok(())
}

/// Renders the views as pictures with headless Chromium: `NAME.svg.png` (the timeline, for
/// the README) and `NAME.html.png` (the page as a reader first sees it).
pub fn pictures(files: &[PathBuf; 3]) -> Result<[PathBuf; 2]> {
    crate::browser::ensure_chromium()?;
    let svg_png = files[1].with_extension("svg.png");
    let html_png = files[2].with_extension("html.png");
    // The picture is the SVG's own size (its root's width and height attributes).
    let svg = fs::read_to_string(&files[1])?;
    let attr = |name: &str| -> Option<u32> {
        let root = &svg[..svg.find('>')?];
        let at = root.find(&format!(" {name}=\""))? + name.len() + 3;
        root[at..]
            .split('"')
            .next()?
            .parse::<f64>()
            .ok()
            .map(|v| v.ceil() as u32)
    };
    let (w, h) = (attr("width").unwrap_or(1200), attr("height").unwrap_or(560));
    crate::browser::screenshot(&files[1], &svg_png, w, h, Duration::from_secs(120))?;
    crate::browser::screenshot(&files[2], &html_png, 1280, 720, Duration::from_secs(120))?;
    Ok([svg_png, html_png])
}

/// The kernel arguments `cargo xtask trace` refuses (it sets `trace=1` itself).
pub fn check_args(args: &[String]) -> Result<()> {
    if args.iter().any(|a| a == "trace=0") {
        bail!("`cargo xtask trace -- trace=0` turns off what it is for");
    }
    Ok(())
}
