//! Headless Chromium for tests of the pages the project generates (the trace viewer): open one
//! self-contained HTML file, let its scripts run, then read back the serialized DOM
//! ([`dump_dom`]) or a PNG of what it drew ([`screenshot`]).
//!
//! It relies on Debian's `chromium` package (`/usr/bin/chromium`), installed once under
//! setup.rs's machine-wide lock by [`ensure_chromium`], and on nothing but Chromium's command
//! line: no DevTools protocol, no driver. Each run is one `chromium --headless ... file:///...`
//! process with these flags (docs/platform.md, "Chromium"):
//!
//! - `--headless`: no display on these machines.
//! - `--no-sandbox`: xtask runs as root here, and Chromium refuses to start its sandbox as root;
//!   as a user the sandbox needs user namespaces the container may not give. The only page it
//!   ever opens is one of our own files, so the sandbox would protect nothing.
//! - `--disable-gpu`: there is no GPU; software rendering, without the GPU process's retries.
//! - `--disable-background-networking`, `--disable-component-update`, `--disable-sync`,
//!   `--disable-quic`, `--no-first-run`, `--no-default-browser-check`, `--disable-extensions`,
//!   `--disable-crash-reporter`: the network is closed, and without these Chromium tries
//!   Google's hosts at every start, many connections at a time, each refused (slow, noisy).
//! - `--user-data-dir=<fresh temporary directory>`: no profile shared between runs (two runs at
//!   once would fight over one profile's lock), nothing left behind; removed after the run.
//! - `--virtual-time-budget=<ms>`: Chromium fast-forwards timers while the page is idle and
//!   only dumps or shoots once that much virtual time has passed, so a page that draws from
//!   `load` or a `setTimeout` has finished; without it `--dump-dom` serializes the page as
//!   soon as it loaded (seen: 0 of 7 rows added 50 ms after `load`).
//! - `--run-all-compositor-stages-before-draw`: a screenshot is taken of a complete frame.
//! - `--force-device-scale-factor=1`, `--window-size=W,H`, `--hide-scrollbars`: the PNG is
//!   exactly W×H pixels of page.
//!
//! Limit: `requestAnimationFrame` callbacks are *not* reliably waited for. Virtual time does
//! not wait for frames, so when the machine is busy Chromium 156 sometimes serializes before a
//! pending frame ran (seen here: about 1 run in 6 to 18 with three runs at once, whether the
//! frame was requested from `load` or after a timer; never with timers alone, 0 in 36). A page
//! tested this way should do its work from `load`/`setTimeout`, not only in an animation frame.
//!
//! Invariants: a run is bounded by its timeout (Chromium's whole process group is killed,
//! since it forks renderer, GPU and utility processes); Chromium's stdout and stderr go to
//! files in the scratch directory, never to our terminal (it chatters on stderr even when all
//! is well), and its stderr's last lines are shown only when it fails.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::setup::{lock_path, on_path, once_under_lock};

/// The program Debian's `chromium` package puts on PATH (`/usr/bin/chromium`).
pub const CHROMIUM: &str = "chromium";

/// Virtual time given to a page's scripts after it loaded (fast-forwarded, so it costs real
/// time only while the page is busy).
const VIRTUAL_TIME_BUDGET_MS: u32 = 5_000;

/// Lines of Chromium's stderr shown under a failure.
const TAIL: usize = 15;

/// The flags of every run (see the module's documentation for why each is there).
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-crash-reporter",
    "--run-all-compositor-stages-before-draw",
    "--force-device-scale-factor=1",
];

/// Makes sure `chromium` is on PATH, installing Debian's `chromium` (once, under the set-up
/// lock, like [`crate::setup::ensure_gdb`]).
pub fn ensure_chromium() -> Result<()> {
    once_under_lock(&lock_path(), CHROMIUM, &|| on_path(CHROMIUM), &mut || {
        let start = Instant::now();
        crate::apt::install(&[CHROMIUM], "chromium*", "Chromium (for the browser tests)")?;
        if !on_path(CHROMIUM) {
            bail!("{CHROMIUM} is still not on PATH after installing Debian's chromium");
        }
        eprintln!(
            "xtask: installed {} in {:.0?}",
            chromium_version().unwrap_or_else(|| CHROMIUM.to_string()),
            start.elapsed()
        );
        Ok(())
    })
}

/// `Chromium 156.0.8078.114 ...`, for messages.
pub fn chromium_version() -> Option<String> {
    let out = Command::new(CHROMIUM).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_string())
}

/// Opens `html` in headless Chromium, lets its scripts run ([`VIRTUAL_TIME_BUDGET_MS`] of
/// virtual time after load), and returns the DOM as Chromium serializes it (`--dump-dom`).
pub fn dump_dom(html: &Path, timeout: Duration) -> Result<String> {
    let run = run_chromium(html, &["--dump-dom".to_string()], timeout)?;
    let dom = fs::read_to_string(&run.stdout)
        .with_context(|| format!("cannot read Chromium's output {}", run.stdout.display()))?;
    if dom.trim().is_empty() {
        bail!(
            "chromium printed no DOM for {}{}",
            html.display(),
            tail_note(&run.stderr_tail)
        );
    }
    Ok(dom)
}

/// Opens `html` in headless Chromium at `width`×`height`, lets its scripts run, and writes what
/// it drew to `png`.
pub fn screenshot(
    html: &Path,
    png: &Path,
    width: u32,
    height: u32,
    timeout: Duration,
) -> Result<()> {
    let png = std::path::absolute(png)
        .with_context(|| format!("cannot make {} absolute", png.display()))?;
    // A PNG from an earlier run must not pass for this one's.
    match fs::remove_file(&png) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("cannot remove the old {}", png.display()))
        }
    }
    let args = [
        format!("--screenshot={}", png.display()),
        format!("--window-size={width},{height}"),
        "--hide-scrollbars".to_string(),
    ];
    let run = run_chromium(html, &args, timeout)?;
    match fs::metadata(&png) {
        Ok(m) if m.len() > 0 => Ok(()),
        Ok(_) => bail!(
            "chromium wrote an empty screenshot {}{}",
            png.display(),
            tail_note(&run.stderr_tail)
        ),
        Err(_) => bail!(
            "chromium exited successfully but wrote no screenshot {}{}",
            png.display(),
            tail_note(&run.stderr_tail)
        ),
    }
}

/// What a successful run left: its stdout (a file in the scratch directory, valid while the
/// run lives) and the last lines of its stderr.
struct Run {
    _scratch: Scratch,
    stdout: PathBuf,
    stderr_tail: Vec<String>,
}

/// Runs `chromium FLAGS --user-data-dir=<fresh> --virtual-time-budget=.. EXTRA file://HTML`,
/// bounded by `timeout`.
fn run_chromium(html: &Path, extra: &[String], timeout: Duration) -> Result<Run> {
    let url = file_url(html)?;
    let scratch = Scratch::new()?;
    let profile = scratch.0.join("profile");
    let stdout = scratch.0.join("stdout");
    let stderr = scratch.0.join("stderr");
    let mut cmd = Command::new(CHROMIUM);
    cmd.args(FLAGS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}"))
        .args(extra)
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout).context("cannot create Chromium's stdout file")?)
        .stderr(fs::File::create(&stderr).context("cannot create Chromium's stderr file")?);
    // Its own process group, so that its renderer and helper processes can be killed with it.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().with_context(|| {
        format!("cannot start {CHROMIUM} (is it installed? see ensure_chromium)")
    })?;
    let status = wait_bounded(&mut child, timeout);
    // Whatever the leader did, no helper of this run outlives it (nor keeps the profile busy).
    kill_group(child.id());
    let stderr_tail = tail(&stderr);
    match status? {
        Some(status) if status.success() => Ok(Run {
            _scratch: scratch,
            stdout,
            stderr_tail,
        }),
        Some(status) => bail!(
            "chromium failed on {url} ({status}){}",
            tail_note(&stderr_tail)
        ),
        None => {
            let _ = child.wait();
            bail!(
                "chromium did not finish within {} s on {url} (killed){}",
                timeout.as_secs_f64(),
                tail_note(&stderr_tail)
            )
        }
    }
}

/// The child's exit status, or None if it still ran after `timeout`.
fn wait_bounded(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().context("cannot wait for chromium")? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(20)));
    }
}

/// SIGKILL to the process group `pgid` (harmless when it has no members left).
fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The last [`TAIL`] non-empty lines of a file.
fn tail(path: &Path) -> Vec<String> {
    let text = fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(TAIL)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

fn tail_note(tail: &[String]) -> String {
    if tail.is_empty() {
        "; its stderr was empty".to_string()
    } else {
        let mut s = String::from("; the end of its stderr:");
        for l in tail {
            s.push_str("\n    | ");
            s.push_str(l);
        }
        s
    }
}

/// `file://` URL of the absolute path of `html`, percent-encoding all but unreserved bytes.
fn file_url(html: &Path) -> Result<String> {
    let abs = fs::canonicalize(html).with_context(|| format!("cannot open {}", html.display()))?;
    if !abs.is_file() {
        bail!("{} is not a file", abs.display());
    }
    use std::os::unix::ffi::OsStrExt;
    let mut url = String::from("file://");
    for &b in abs.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(url)
}

/// A fresh directory under the system's temporary directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "gort-chromium-{}-{}-{nanos}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        // create_dir (not create_dir_all): fails rather than reuse a directory that exists.
        fs::create_dir(&dir)
            .with_context(|| format!("cannot create a scratch directory {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(60);
    const ROWS: usize = 7;

    /// A page whose script adds [`ROWS`] `.row` elements 50 ms after load and records their count in `data-rows`; `extra` is inserted into the
    /// script before that.
    fn page(dir: &Path, name: &str, extra: &str) -> PathBuf {
        let html = format!(
            r#"<!doctype html>
<html><head><meta charset="utf-8"><title>rows</title>
<style>body {{ margin: 0; background: #fff; }} .row {{ height: 10px; background: #36c; margin: 2px; }}</style>
</head><body>
<script>
window.addEventListener("load", () => {{
  setTimeout(() => {{
    {extra}
    for (let i = 0; i < {ROWS}; i++) {{
      const d = document.createElement("div");
      d.className = "row";
      d.textContent = "row " + i;
      document.body.appendChild(d);
    }}
    document.body.dataset.rows = String(document.querySelectorAll(".row").length);
  }}, 50);
}});
</script>
</body></html>
"#
        );
        let path = dir.join(name);
        fs::write(&path, html).unwrap();
        path
    }

    #[test]
    fn file_urls_are_absolute_and_encoded() {
        let dir = Scratch::new().unwrap();
        let path = dir.0.join("a b%#.html");
        fs::write(&path, "x").unwrap();
        let url = file_url(&path).unwrap();
        assert!(url.starts_with("file:///"), "{url}");
        assert!(url.ends_with("/a%20b%25%23.html"), "{url}");
        assert!(file_url(&dir.0.join("missing.html")).is_err());
    }

    #[test]
    fn dump_dom_sees_what_scripts_added_after_load() {
        ensure_chromium().unwrap();
        let dir = Scratch::new().unwrap();
        let html = page(&dir.0, "rows.html", "");
        let dom = dump_dom(&html, TIMEOUT).unwrap();
        assert_eq!(dom.matches(r#"class="row""#).count(), ROWS, "{dom}");
        assert!(
            dom.contains(&format!(r#"data-rows="{ROWS}""#)),
            "no data-rows=\"{ROWS}\" on body: {dom}"
        );
    }

    #[test]
    fn screenshot_is_a_png_of_the_window_size() {
        ensure_chromium().unwrap();
        let dir = Scratch::new().unwrap();
        let html = page(&dir.0, "rows.html", "");
        let png = dir.0.join("shot.png");
        let (w, h) = (321u32, 203u32);
        screenshot(&html, &png, w, h, TIMEOUT).unwrap();
        let bytes = fs::read(&png).unwrap();
        assert!(bytes.len() > 24, "{} bytes", bytes.len());
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG signature");
        assert_eq!(&bytes[12..16], b"IHDR", "first chunk is not IHDR");
        let be = |b: &[u8]| u32::from_be_bytes(b.try_into().unwrap());
        assert_eq!((be(&bytes[16..20]), be(&bytes[20..24])), (w, h));
    }

    #[test]
    fn a_page_that_never_finishes_is_killed_at_the_timeout() {
        ensure_chromium().unwrap();
        let dir = Scratch::new().unwrap();
        let html = dir.0.join("spin.html");
        fs::write(&html, "<!doctype html><script>for (;;) {}</script>").unwrap();
        let start = Instant::now();
        let err = dump_dom(&html, Duration::from_secs(3)).unwrap_err();
        assert!(
            format!("{err}").contains("chromium did not finish within 3 s"),
            "{err:#}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
    }
}
