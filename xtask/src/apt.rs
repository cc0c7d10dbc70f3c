//! Installing Debian packages the way this project's machines need (docs/platform.md, "QEMU").
//!
//! The hard part is not `apt-get install`; it is choosing *where* a package comes from. A
//! machine image may already hold some of a package family from a newer suite than its apt
//! sources list: today's image ships `qemu-utils 1:10.0.2+…~bpo12+1` (a bookworm-backports
//! build) but lists only bookworm, bookworm-updates and bookworm-security, so a plain
//! `apt-get install qemu-system-x86` picks 7.2 and is refused (`qemu-utils : Breaks:
//! qemu-system-common (< 1:8.0+dfsg-5~)`). The rules, in order:
//!
//! 1. **Match what is installed.** If any installed package of the family (`qemu-*`) is newer
//!    than the candidate the plain sources offer, the family's packages must come from the
//!    suite that built it: `<codename>-backports` ([`choose_suite`]).
//! 2. **Fall back when refused.** Otherwise try the plain suite; if apt's simulation refuses it,
//!    try backports.
//! 3. **Add a backports source only when needed**, built from the machine's own apt sources
//!    (the stanza that lists `<codename>`: same `URIs:`, `Components:`, `Signed-By:`), never a
//!    hard-coded mirror, and say what was written and why ([`backports_source`]).
//! 4. **Never remove or downgrade.** Every install runs with `--no-remove` and without
//!    `--allow-downgrades` (with `-y`, apt then refuses a downgrade); a simulation that would
//!    remove a package stops the install before it starts.
//! 5. **Wait for other apts.** dpkg's frontend lock is waited for by apt itself
//!    (`-o DPkg::Lock::Timeout`); the lists and archives locks are not (apt-get update fails at
//!    once: "Could not get lock /var/lib/apt/lists/lock"), so such a run is retried until
//!    [`LOCK_WAIT`] has passed ([`run_apt`]).
//! 6. **Fail clearly.** A failure names the cause in one sentence, shows apt's last lines and
//!    the exact commands to run by hand ([`Failure`]).
//!
//! Serialising *our own* processes (several xtasks starting at once) is `setup.rs`'s lock; this
//! file assumes it runs alone among xtasks.

use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How long to wait for another apt to release its locks.
pub const LOCK_WAIT: Duration = Duration::from_secs(600);
/// Lines of apt's output shown under a failure.
const TAIL: usize = 15;

/// Where apt keeps its configuration (`/etc/apt`; a scratch directory in tests).
#[derive(Debug, Clone)]
pub struct AptDirs {
    pub etc: PathBuf,
}

impl Default for AptDirs {
    fn default() -> Self {
        AptDirs {
            etc: PathBuf::from("/etc/apt"),
        }
    }
}

/// The suite a package is installed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Suite {
    /// Whatever the machine's sources offer by default (apt's own choice).
    Plain,
    /// `-t <codename>-backports`, with the reason it is needed.
    Backports { why: String },
}

/// An installed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub name: String,
    pub version: String,
}

/// Rule 1: the suite that matches what the machine already has. `newer(a, b)` is Debian's
/// version order (`dpkg --compare-versions a gt b`).
pub fn choose_suite(
    codename: &str,
    package: &str,
    installed: &[Installed],
    plain_candidate: Option<&str>,
    newer: &dyn Fn(&str, &str) -> bool,
) -> Suite {
    let Some(candidate) = plain_candidate else {
        return Suite::Backports {
            why: format!("the machine's apt sources offer no {package}"),
        };
    };
    for pkg in installed {
        if newer(&pkg.version, candidate) {
            let build = if pkg.version.contains("~bpo") {
                format!(" (a {codename}-backports build)")
            } else {
                String::new()
            };
            return Suite::Backports {
                why: format!(
                    "{} {}{build} is installed, newer than the {package} {candidate} that the \
                     machine's apt sources offer, and a package family must come from one build",
                    pkg.name, pkg.version
                ),
            };
        }
    }
    Suite::Plain
}

/// `/etc/os-release`'s `VERSION_CODENAME` (e.g. `bookworm`).
pub fn codename(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|l| {
        let v = l.strip_prefix("VERSION_CODENAME=")?;
        let v = v.trim().trim_matches('"');
        (!v.is_empty()).then(|| v.to_string())
    })
}

// ---------------------------------------------------------------------------------------------
// apt sources: reading them, and making a backports source from them (rule 3)
// ---------------------------------------------------------------------------------------------

/// One deb822 stanza (`Types: deb` ... ) as its fields, raw values kept (continuation lines
/// included, so a multi-line `Signed-By:` key survives).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stanza {
    fields: Vec<(String, String)>,
}

impl Stanza {
    fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    fn words(&self, key: &str) -> Vec<&str> {
        self.get(key)
            .map(|v| v.split_whitespace().collect())
            .unwrap_or_default()
    }

    fn enabled(&self) -> bool {
        !matches!(self.get("Enabled").map(str::trim), Some(v) if v.eq_ignore_ascii_case("no"))
    }
}

/// Parses a deb822 `.sources` file (sources.list(5)): stanzas separated by blank lines,
/// `Key: value` fields, continuation lines indented, `#` comments.
fn parse_deb822(text: &str) -> Vec<Stanza> {
    let mut stanzas = Vec::new();
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.lines().chain(std::iter::once("")) {
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            if !fields.is_empty() {
                stanzas.push(Stanza {
                    fields: std::mem::take(&mut fields),
                });
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = fields.last_mut() {
                v.push('\n');
                v.push_str(line);
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            fields.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    stanzas
}

/// One-line style (`deb [opts] URI suite comp...`), enabled lines only.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OneLine {
    options: Option<String>,
    uri: String,
    suite: String,
    components: Vec<String>,
}

fn parse_one_line(text: &str) -> Vec<OneLine> {
    text.lines()
        .filter_map(|l| {
            let l = l.split('#').next()?.trim();
            let rest = l.strip_prefix("deb ")?.trim_start();
            let (options, rest) = match rest.strip_prefix('[') {
                Some(r) => {
                    let (opts, r) = r.split_once(']')?;
                    (Some(opts.trim().to_string()), r)
                }
                None => (None, rest),
            };
            let mut w = rest.split_whitespace();
            Some(OneLine {
                options,
                uri: w.next()?.to_string(),
                suite: w.next()?.to_string(),
                components: w.map(String::from).collect(),
            })
        })
        .collect()
}

/// The files apt reads its sources from, in apt's order (sources.list, then sources.list.d's
/// `*.list` and `*.sources`, sorted; anything else there, like `x.list.disabled`, is ignored).
fn source_files(dirs: &AptDirs) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let main = dirs.etc.join("sources.list");
    if main.is_file() {
        files.push(main);
    }
    if let Ok(entries) = fs::read_dir(dirs.etc.join("sources.list.d")) {
        let mut more: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "list" || x == "sources"))
            .collect();
        more.sort();
        files.extend(more);
    }
    files
}

fn is_deb822(path: &Path) -> bool {
    path.extension().is_some_and(|x| x == "sources")
}

/// The file that already offers `suite` to apt (enabled, `deb` type), if any.
pub fn source_offering(dirs: &AptDirs, suite: &str) -> Option<PathBuf> {
    source_files(dirs).into_iter().find(|f| {
        let text = fs::read_to_string(f).unwrap_or_default();
        if is_deb822(f) {
            parse_deb822(&text).iter().any(|s| {
                s.enabled()
                    && s.words("Types").contains(&"deb")
                    && s.words("Suites").contains(&suite)
            })
        } else {
            parse_one_line(&text).iter().any(|l| l.suite == suite)
        }
    })
}

/// A source for `<codename>-backports` made from the machine's own source for `<codename>`:
/// the path to write and its text. `why` goes into the file's header comment.
pub fn backports_source(dirs: &AptDirs, codename: &str, why: &str) -> Result<(PathBuf, String)> {
    let suite = format!("{codename}-backports");
    let header = |from: &Path| {
        format!(
            "# Added by gort's `cargo xtask` (xtask/src/apt.rs): {why}.\n\
             # Made from {}: the same archive and key, suite {suite}.\n",
            from.display()
        )
    };
    for f in source_files(dirs) {
        let text = fs::read_to_string(&f).unwrap_or_default();
        if is_deb822(&f) {
            let Some(base) = parse_deb822(&text).into_iter().find(|s| {
                s.enabled()
                    && s.words("Types").contains(&"deb")
                    && s.words("Suites").contains(&codename)
            }) else {
                continue;
            };
            let mut out = header(&f);
            out.push_str("Types: deb\n");
            for (k, v) in &base.fields {
                match k.to_ascii_lowercase().as_str() {
                    "types" | "enabled" => {}
                    "suites" => out.push_str(&format!("Suites: {suite}\n")),
                    _ => out.push_str(&format!("{k}: {v}\n")),
                }
            }
            return Ok((
                dirs.etc
                    .join("sources.list.d")
                    .join(format!("{suite}.sources")),
                out,
            ));
        }
        if let Some(base) = parse_one_line(&text)
            .into_iter()
            .find(|l| l.suite == codename)
        {
            let opts = base.options.map(|o| format!("[{o}] ")).unwrap_or_default();
            let out = format!(
                "{}deb {opts}{} {suite} {}\n",
                header(&f),
                base.uri,
                base.components.join(" ")
            );
            return Ok((
                dirs.etc
                    .join("sources.list.d")
                    .join(format!("{suite}.list")),
                out,
            ));
        }
    }
    bail!(
        "no apt source for `{codename}` in {} to make a {suite} source from",
        dirs.etc.display()
    )
}

// ---------------------------------------------------------------------------------------------
// Running apt (rules 4-6)
// ---------------------------------------------------------------------------------------------

/// What one apt run printed (stdout and stderr interleaved, as a terminal shows them).
#[derive(Debug, Clone)]
pub struct AptRun {
    pub ok: bool,
    pub lines: Vec<String>,
}

/// apt's word for "another process holds a lock I need".
fn lock_busy(lines: &[String]) -> Option<&str> {
    lines
        .iter()
        .find(|l| {
            l.contains("Could not get lock")
                || l.contains("Unable to acquire the dpkg frontend lock")
        })
        .map(String::as_str)
}

/// Runs `apt-get ARGS` (or `apt-cache`), echoing its output indented when `echo`, retrying
/// while another process holds one of apt's locks (up to [`LOCK_WAIT`]).
pub fn run_apt(program: &str, args: &[&str], echo: bool) -> Result<AptRun> {
    let start = Instant::now();
    let mut waited = false;
    loop {
        // While waiting, each try's output is held back (it is the same lock message every
        // two seconds) and shown only for the try that got through.
        let run = run_once(program, args, echo && !waited)?;
        match (run.ok, lock_busy(&run.lines)) {
            (false, Some(line)) if start.elapsed() < LOCK_WAIT => {
                if !waited {
                    eprintln!(
                        "xtask: another apt holds a lock ({}); waiting for it (up to {} min)",
                        line.trim_start_matches("E: ").trim(),
                        LOCK_WAIT.as_secs() / 60
                    );
                    waited = true;
                }
                std::thread::sleep(Duration::from_secs(2));
            }
            _ => {
                if waited {
                    eprintln!(
                        "xtask: waited {:.0} s for the other apt; going on",
                        start.elapsed().as_secs_f64()
                    );
                    if echo {
                        for l in run
                            .lines
                            .iter()
                            .filter(|l| !l.starts_with("(Reading database"))
                        {
                            eprintln!("    {l}");
                        }
                    }
                }
                return Ok(run);
            }
        }
    }
}

fn run_once(program: &str, args: &[&str], echo: bool) -> Result<AptRun> {
    let (reader, writer) = std::io::pipe().context("cannot make a pipe for apt's output")?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(std::process::Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    // The child holds the pipe's write ends now; ours must go, or the reads never see EOF.
    drop(cmd);
    let mut lines = Vec::new();
    for line in BufReader::new(reader).lines() {
        let line = line.unwrap_or_default();
        // dpkg's "(Reading database ... 5%" progress is one long line of carriage returns.
        if echo && !line.starts_with("(Reading database") {
            eprintln!("    {line}");
        }
        lines.push(line);
    }
    let status = child.wait()?;
    Ok(AptRun {
        ok: status.success(),
        lines,
    })
}

/// `dpkg --compare-versions a gt b`: Debian's version order, from the authority on it.
pub fn dpkg_newer(a: &str, b: &str) -> bool {
    Command::new("dpkg")
        .args(["--compare-versions", a, "gt", b])
        .status()
        .is_ok_and(|s| s.success())
}

/// Installed packages whose names match `pattern` (dpkg-query's glob, e.g. `qemu-*`).
pub fn installed(pattern: &str) -> Vec<Installed> {
    let Ok(out) = Command::new("dpkg-query")
        .args([
            "-W",
            "-f",
            "${db:Status-Abbrev}\t${Package}\t${Version}\n",
            pattern,
        ])
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let status = f.next()?;
            let (name, version) = (f.next()?, f.next()?);
            (status.starts_with("ii") && !version.is_empty()).then(|| Installed {
                name: name.to_string(),
                version: version.to_string(),
            })
        })
        .collect()
}

/// `apt-cache policy PKG`'s `Candidate:` (None when apt knows no installable version).
pub fn candidate(package: &str) -> Option<String> {
    let out = Command::new("apt-cache")
        .args(["policy", package])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let v = l.trim().strip_prefix("Candidate:")?.trim();
        (v != "(none)" && !v.is_empty()).then(|| v.to_string())
    })
}

/// The options of every install: wait for dpkg's lock, never remove, never pull in
/// recommendations (QEMU recommends a desktop's worth).
fn install_args<'a>(
    suite_arg: &'a [String],
    packages: &'a [&'a str],
    simulate: bool,
) -> Vec<&'a str> {
    let mut args = vec![
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "--no-remove",
        "-o",
        "DPkg::Lock::Timeout=600",
    ];
    if simulate {
        args.push("--simulate");
    }
    args.extend(suite_arg.iter().map(String::as_str));
    args.extend(packages);
    args
}

/// A failed install, said the way a user can act on.
#[derive(Debug)]
pub struct Failure {
    pub what: String,
    pub cause: String,
    pub tail: Vec<String>,
    pub by_hand: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "could not install {}", self.what)?;
        writeln!(f, "  cause: {}", self.cause)?;
        if !self.tail.is_empty() {
            writeln!(f, "  apt's last lines:")?;
            for l in &self.tail {
                writeln!(f, "    | {l}")?;
            }
        }
        writeln!(f, "  to install it by hand, run:")?;
        for c in &self.by_hand {
            writeln!(f, "    {c}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}

/// The cause of a failed apt run, in one sentence.
pub fn cause_of(lines: &[String]) -> String {
    let any = |needles: &[&str]| lines.iter().any(|l| needles.iter().any(|n| l.contains(n)));
    if let Some(l) = lock_busy(lines) {
        return format!(
            "another process still held apt's lock after {} minutes ({})",
            LOCK_WAIT.as_secs() / 60,
            l.trim_start_matches("E: ").trim()
        );
    }
    if any(&[
        "Temporary failure resolving",
        "Could not resolve",
        "Failed to fetch",
        "Unable to connect",
    ]) {
        return "the package archive could not be reached (see the fetch errors above)".into();
    }
    if any(&[
        "would be removed",
        "Packages need to be removed but remove is disabled",
    ]) {
        return "installing would remove packages the machine has, which xtask never does".into();
    }
    if any(&["were downgraded", "downgrade"]) {
        return "installing would downgrade packages the machine has, which xtask never does"
            .into();
    }
    if any(&[
        "Breaks:",
        "Depends:",
        "Conflicts:",
        "unmet dependencies",
        "held broken packages",
    ]) {
        return "the versions apt offers conflict with packages already installed".into();
    }
    if any(&["Unable to locate package", "has no installation candidate"]) {
        return "no apt source offers the package".into();
    }
    "apt-get failed (its last lines are below)".into()
}

fn last_lines(lines: &[String]) -> Vec<String> {
    lines[lines.len().saturating_sub(TAIL)..].to_vec()
}

/// Installs `packages` (a family whose installed members match `family`, e.g. `qemu-*`) by
/// the rules above. `describe` names them for messages.
pub fn install(packages: &[&str], family: &str, describe: &str) -> Result<()> {
    let dirs = AptDirs::default();
    let os = fs::read_to_string("/etc/os-release").unwrap_or_default();
    let codename = codename(&os).context("/etc/os-release names no VERSION_CODENAME")?;
    let backports = format!("{codename}-backports");
    let first = packages[0];
    let root = is_root();

    if root {
        eprintln!(
            "xtask: {describe} is missing; installing {} with apt-get",
            packages.join(" ")
        );
        let up = run_apt("apt-get", &["update", "-q"], true)?;
        if !up.ok {
            // Not fatal by itself: the lists already here may be enough; say so and go on.
            eprintln!(
                "xtask: apt-get update failed ({}); trying with the package lists as they are",
                cause_of(&up.lines)
            );
        }
    }
    let family_installed = installed(family);
    let mut suite = choose_suite(
        &codename,
        first,
        &family_installed,
        candidate(first).as_deref(),
        &dpkg_newer,
    );
    if suite == Suite::Plain && root {
        let sim = run_apt("apt-get", &install_args(&[], packages, true), false)?;
        if refusal(&sim).is_some() {
            let why = sim
                .lines
                .iter()
                .rev()
                .find(|l| l.contains("Breaks:") || l.starts_with("E: "))
                .map(|l| l.trim().to_string())
                .unwrap_or_else(|| cause_of(&sim.lines));
            eprintln!(
                "xtask: apt refuses {} from the plain suites ({why}); trying {backports}",
                packages.join(" ")
            );
            suite = Suite::Backports {
                why: format!(
                    "apt refused {} from the machine's default suites: {why}",
                    packages.join(" ")
                ),
            };
        }
    }

    // The source to add, if the suite needs one the machine does not list.
    let mut new_source: Option<(PathBuf, String)> = None;
    if let Suite::Backports { why } = &suite {
        eprintln!("xtask: {first} must come from {backports}: {why}");
        match source_offering(&dirs, &backports) {
            Some(f) => eprintln!("xtask: {backports} is already listed in {}", f.display()),
            None => new_source = Some(backports_source(&dirs, &codename, why)?),
        }
    }
    let suite_arg: Vec<String> = match suite {
        Suite::Plain => Vec::new(),
        Suite::Backports { .. } => vec!["-t".into(), backports.clone()],
    };
    let mut by_hand = Vec::new();
    if let Some((path, text)) = &new_source {
        by_hand.push(write_file_command(path, text));
    }
    by_hand.push("sudo apt-get update".into());
    by_hand.push(format!(
        "sudo apt-get install -y --no-install-recommends {}{}",
        suite_arg
            .iter()
            .map(|a| format!("{a} "))
            .collect::<String>(),
        packages.join(" ")
    ));
    let fail = |cause: String, tail: Vec<String>| -> anyhow::Error {
        Failure {
            what: format!(
                "{}{}",
                packages.join(" "),
                if suite_arg.is_empty() {
                    String::new()
                } else {
                    format!(" from {backports}")
                }
            ),
            cause,
            tail,
            by_hand: by_hand.clone(),
        }
        .into()
    };
    if !root {
        return Err(fail(
            format!("{describe} is missing, and installing it needs root (xtask runs as a user)"),
            Vec::new(),
        ));
    }
    if !crate::setup::on_path("apt-get") {
        return Err(fail("this machine has no apt-get".into(), Vec::new()));
    }

    if let Some((path, text)) = &new_source {
        fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!(
            "xtask: no apt source lists {backports}; added {}, made from the machine's own source for {codename}:",
            path.display()
        );
        for l in text.lines() {
            eprintln!("    | {l}");
        }
    }
    let result = install_from(
        &suite_arg,
        &backports,
        packages,
        new_source.is_some(),
        &fail,
    );
    if let (Err(_), Some((path, _))) = (&result, &new_source) {
        // Leave the machine as it was: the commands above add the source again by hand.
        if fs::remove_file(path).is_ok() {
            eprintln!(
                "xtask: removed {} again, since the install failed",
                path.display()
            );
        }
    }
    result
}

/// Why apt's simulation of an install (`--simulate`) means it must not go ahead: apt refused, or
/// it would remove a package (rule 4). None: go ahead.
fn refusal(sim: &AptRun) -> Option<String> {
    if !sim.ok {
        return Some(cause_of(&sim.lines));
    }
    let removed = sim.lines.iter().find(|l| l.starts_with("Remv "))?;
    Some(format!(
        "installing would remove a package the machine has ({removed}), which xtask never does"
    ))
}

/// The steps after the suite is chosen (and its source added, `update` saying whether the
/// lists must be fetched for it): simulate, then install.
fn install_from(
    suite_arg: &[String],
    suite: &str,
    packages: &[&str],
    update: bool,
    fail: &dyn Fn(String, Vec<String>) -> anyhow::Error,
) -> Result<()> {
    if update {
        let up = run_apt("apt-get", &["update", "-q"], true)?;
        // apt-get update exits 0 when a source cannot be fetched ("W: Failed to fetch").
        let missed: Vec<String> = up
            .lines
            .iter()
            .filter(|l| l.contains("Failed to fetch") && l.contains(suite))
            .cloned()
            .collect();
        if !up.ok || !missed.is_empty() {
            let tail = if missed.is_empty() {
                last_lines(&up.lines)
            } else {
                missed
            };
            return Err(fail(
                format!(
                    "apt-get update could not fetch {suite}'s package lists: {}",
                    cause_of(&up.lines)
                ),
                tail,
            ));
        }
    }
    if !suite_arg.is_empty() {
        let sim = run_apt("apt-get", &install_args(suite_arg, packages, true), false)?;
        if let Some(cause) = refusal(&sim) {
            return Err(fail(cause, last_lines(&sim.lines)));
        }
    }
    let run = run_apt("apt-get", &install_args(suite_arg, packages, false), true)?;
    if !run.ok {
        return Err(fail(cause_of(&run.lines), last_lines(&run.lines)));
    }
    Ok(())
}

/// One line a user can paste to write `text` to `path` as root (printf with one argument a
/// line, each in single quotes).
pub fn write_file_command(path: &Path, text: &str) -> String {
    let args: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!(" '{}'", l.replace('\'', "'\\''")))
        .collect();
    format!(
        "printf '%s\\n'{args} | sudo tee {} >/dev/null",
        path.display()
    )
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The machine's own file, as it is on today's image.
    const DEBIAN_SOURCES: &str = "Types: deb\n\
# http://snapshot.debian.org/archive/debian/20250520T000000Z\n\
URIs: http://deb.debian.org/debian\n\
Suites: bookworm bookworm-updates\n\
Components: main\n\
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\
\n\
Types: deb\n\
# http://snapshot.debian.org/archive/debian-security/20250520T000000Z\n\
URIs: http://deb.debian.org/debian-security\n\
Suites: bookworm-security\n\
Components: main\n\
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n";

    fn scratch(name: &str) -> AptDirs {
        let etc = std::env::temp_dir().join(format!("xtask-apt-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&etc);
        fs::create_dir_all(etc.join("sources.list.d")).unwrap();
        AptDirs { etc }
    }

    /// Debian's order from dpkg itself (the machines this runs on are Debian).
    fn newer(a: &str, b: &str) -> bool {
        dpkg_newer(a, b)
    }

    fn pkg(name: &str, version: &str) -> Installed {
        Installed {
            name: name.into(),
            version: version.into(),
        }
    }

    #[test]
    fn a_newer_qemu_on_the_machine_asks_for_backports() {
        let have = [pkg("qemu-utils", "1:10.0.2+ds-2+deb13u1~bpo12+1")];
        let suite = choose_suite(
            "bookworm",
            "qemu-system-x86",
            &have,
            Some("1:7.2+dfsg-7+deb12u18+b2"),
            &newer,
        );
        let Suite::Backports { why } = suite else {
            panic!("expected backports, got {suite:?}")
        };
        assert!(
            why.contains("qemu-utils 1:10.0.2+ds-2+deb13u1~bpo12+1 (a bookworm-backports build)"),
            "{why}"
        );
        assert!(why.contains("1:7.2+dfsg-7+deb12u18+b2"), "{why}");
        // The same machine with the plain QEMU's utilities: the plain suite.
        let have = [pkg("qemu-utils", "1:7.2+dfsg-7+deb12u18+b2")];
        assert_eq!(
            choose_suite(
                "bookworm",
                "qemu-system-x86",
                &have,
                Some("1:7.2+dfsg-7+deb12u18+b2"),
                &newer
            ),
            Suite::Plain
        );
        // Nothing of the family installed: the plain suite.
        assert_eq!(
            choose_suite(
                "bookworm",
                "qemu-system-x86",
                &[],
                Some("1:7.2+dfsg-7+deb12u18+b2"),
                &newer
            ),
            Suite::Plain
        );
        // No candidate at all: only another suite can help.
        assert!(matches!(
            choose_suite("bookworm", "qemu-system-x86", &[], None, &newer),
            Suite::Backports { .. }
        ));
    }

    #[test]
    fn dpkg_orders_backports_builds_as_debian_does() {
        assert!(dpkg_newer(
            "1:10.0.2+ds-2+deb13u1~bpo12+1",
            "1:7.2+dfsg-7+deb12u18+b2"
        ));
        assert!(!dpkg_newer(
            "1:7.2+dfsg-7+deb12u18+b2",
            "1:10.0.2+ds-2+deb13u1~bpo12+1"
        ));
        // `~` sorts before the end: a backport is older than the release it was built from.
        assert!(dpkg_newer(
            "1:10.0.2+ds-2+deb13u1",
            "1:10.0.2+ds-2+deb13u1~bpo12+1"
        ));
    }

    #[test]
    fn the_backports_source_is_made_from_the_machines_own() {
        let dirs = scratch("deb822");
        fs::write(
            dirs.etc.join("sources.list.d/debian.sources"),
            DEBIAN_SOURCES,
        )
        .unwrap();
        // A disabled file is not a source (apt reads only *.list and *.sources).
        fs::write(
            dirs.etc.join("sources.list.d/other.list.disabled-by-farm"),
            "deb http://example.invalid/x bookworm-backports main\n",
        )
        .unwrap();
        assert_eq!(source_offering(&dirs, "bookworm-backports"), None);
        assert_eq!(
            source_offering(&dirs, "bookworm-security"),
            Some(dirs.etc.join("sources.list.d/debian.sources"))
        );
        let (path, text) = backports_source(&dirs, "bookworm", "a test").unwrap();
        assert_eq!(
            path,
            dirs.etc.join("sources.list.d/bookworm-backports.sources")
        );
        let stanzas = parse_deb822(&text);
        assert_eq!(stanzas.len(), 1, "{text}");
        let s = &stanzas[0];
        assert_eq!(s.get("Types"), Some("deb"));
        assert_eq!(s.get("URIs"), Some("http://deb.debian.org/debian"));
        assert_eq!(s.get("Suites"), Some("bookworm-backports"));
        assert_eq!(s.get("Components"), Some("main"));
        assert_eq!(
            s.get("Signed-By"),
            Some("/usr/share/keyrings/debian-archive-keyring.gpg")
        );
        assert!(
            text.starts_with("# Added by gort's `cargo xtask`"),
            "{text}"
        );
        assert!(text.contains("a test"), "{text}");
        // Once written, it is found, so it is never added twice.
        fs::write(&path, &text).unwrap();
        assert_eq!(source_offering(&dirs, "bookworm-backports"), Some(path));
        fs::remove_dir_all(&dirs.etc).unwrap();
    }

    #[test]
    fn other_mirrors_keys_and_formats_carry_over() {
        // A deb822 file whose first stanza is the security archive, a disabled stanza, and a
        // multi-line Signed-By: the source is made from the enabled stanza listing the release.
        let dirs = scratch("mirror");
        let text = "Types: deb deb-src\nURIs: http://mirror.example/debian\nSuites: trixie-security\nComponents: main\n\n\
Enabled: no\nTypes: deb\nURIs: http://disabled.example/debian\nSuites: trixie\nComponents: main\n\n\
Types: deb deb-src\nURIs: http://mirror.example/debian\nSuites: trixie trixie-updates\nComponents: main contrib\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n abc\n -----END PGP PUBLIC KEY BLOCK-----\n";
        fs::write(dirs.etc.join("sources.list.d/mine.sources"), text).unwrap();
        let (path, out) = backports_source(&dirs, "trixie", "why").unwrap();
        assert_eq!(path.file_name().unwrap(), "trixie-backports.sources");
        let s = &parse_deb822(&out)[0];
        assert_eq!(s.get("Types"), Some("deb"), "{out}");
        assert_eq!(s.get("URIs"), Some("http://mirror.example/debian"), "{out}");
        assert_eq!(s.get("Components"), Some("main contrib"), "{out}");
        assert!(s.get("Signed-By").unwrap().contains("\n abc\n"), "{out}");
        fs::remove_dir_all(&dirs.etc).unwrap();

        // The one-line format in sources.list.
        let dirs = scratch("oneline");
        fs::write(
            dirs.etc.join("sources.list"),
            "# comment\ndeb-src http://m.example/debian bookworm main\n\
             deb [signed-by=/k.gpg arch=amd64] http://m.example/debian bookworm main non-free # tail\n",
        )
        .unwrap();
        let (path, out) = backports_source(&dirs, "bookworm", "why").unwrap();
        assert_eq!(
            path,
            dirs.etc.join("sources.list.d/bookworm-backports.list")
        );
        let line = out.lines().find(|l| l.starts_with("deb ")).unwrap();
        assert_eq!(line, "deb [signed-by=/k.gpg arch=amd64] http://m.example/debian bookworm-backports main non-free");
        assert_eq!(source_offering(&dirs, "bookworm-backports"), None);
        fs::write(&path, &out).unwrap();
        assert_eq!(source_offering(&dirs, "bookworm-backports"), Some(path));
        fs::remove_dir_all(&dirs.etc).unwrap();

        // No source for the release at all: a named error, not a guessed mirror.
        let dirs = scratch("none");
        let e = backports_source(&dirs, "bookworm", "why").unwrap_err();
        assert!(
            e.to_string().contains("no apt source for `bookworm`"),
            "{e}"
        );
        fs::remove_dir_all(&dirs.etc).unwrap();
    }

    #[test]
    fn failures_name_their_cause() {
        let l = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let breaks = l(&[
            "The following packages have unmet dependencies:",
            " qemu-utils : Breaks: qemu-system-common (< 1:8.0+dfsg-5~) but 1:7.2+dfsg-7+deb12u18+b3 is to be installed",
            "E: Unable to correct problems, you have held broken packages.",
        ]);
        assert_eq!(
            cause_of(&breaks),
            "the versions apt offers conflict with packages already installed"
        );
        let lock = l(&[
            "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 7 (apt-get)",
        ]);
        assert!(
            cause_of(&lock).contains("held apt's lock"),
            "{}",
            cause_of(&lock)
        );
        assert!(lock_busy(&lock).is_some());
        assert!(lock_busy(&breaks).is_none());
        let net = l(&[
            "Err:1 http://deb.debian.org/debian bookworm InRelease",
            "  Temporary failure resolving 'deb.debian.org'",
        ]);
        assert!(cause_of(&net).contains("could not be reached"));
        let remove = l(&["E: Packages need to be removed but remove is disabled."]);
        assert!(cause_of(&remove).contains("never does"));
        let f = Failure {
            what: "qemu-system-x86 from bookworm-backports".into(),
            cause: cause_of(&breaks),
            tail: breaks,
            by_hand: vec!["sudo apt-get update".into()],
        };
        let text = f.to_string();
        assert!(
            text.starts_with(
                "could not install qemu-system-x86 from bookworm-backports\n  cause: the versions"
            ),
            "{text}"
        );
        assert!(
            text.contains("    | E: Unable to correct problems"),
            "{text}"
        );
        assert!(
            text.contains("  to install it by hand, run:\n    sudo apt-get update"),
            "{text}"
        );
    }

    #[test]
    fn the_by_hand_command_writes_the_same_file() {
        let dir = std::env::temp_dir().join(format!("xtask-apt-printf-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.sources");
        let text =
            "# a comment\nTypes: deb\nURIs: http://m.example/it's\nSigned-By:\n -----BEGIN\n .\n";
        let cmd = write_file_command(&path, text).replace("sudo ", "");
        let ok = Command::new("sh").args(["-c", &cmd]).status().unwrap();
        assert!(ok.success(), "{cmd}");
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "Types: deb\nURIs: http://m.example/it's\nSigned-By:\n -----BEGIN\n .\n"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_simulation_that_removes_or_fails_is_a_refusal() {
        let sim = |ok: bool, lines: &[&str]| AptRun {
            ok,
            lines: lines.iter().map(|l| l.to_string()).collect(),
        };
        assert_eq!(
            refusal(&sim(true, &["Inst qemu-system-x86 (1:10.0.2)"])),
            None
        );
        let r = refusal(&sim(
            true,
            &["Remv qemu-utils [1:10.0.2]", "Inst qemu-system-x86 (1:7.2)"],
        ));
        assert!(r.unwrap().contains("(Remv qemu-utils [1:10.0.2])"));
        let r = refusal(&sim(false, &["E: Unable to locate package nope"]));
        assert_eq!(r.as_deref(), Some("no apt source offers the package"));
    }

    #[test]
    fn the_release_comes_from_os_release() {
        assert_eq!(
            codename("NAME=\"Debian\"\nVERSION_CODENAME=bookworm\n").as_deref(),
            Some("bookworm")
        );
        assert_eq!(
            codename("VERSION_CODENAME=\"trixie\"\n").as_deref(),
            Some("trixie")
        );
        assert_eq!(codename("NAME=x\n"), None);
    }

    #[test]
    fn a_busy_lock_is_waited_for_and_other_failures_are_not() {
        // A stand-in for apt: "Could not get lock" (exit 100) twice, then success.
        let dir = std::env::temp_dir().join(format!("xtask-apt-retry-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let count = dir.join("tries");
        let script = format!(
            "n=$(cat {0} 2>/dev/null || echo 0); echo $((n+1)) > {0}; \
             if [ $n -lt 2 ]; then echo 'E: Could not get lock /var/lib/apt/lists/lock. It is held by process 1 (apt-get)' >&2; exit 100; fi; \
             echo done",
            count.display()
        );
        let run = run_apt("sh", &["-c", &script], false).unwrap();
        assert!(run.ok);
        assert_eq!(run.lines, ["done"]);
        assert_eq!(fs::read_to_string(&count).unwrap().trim(), "3");
        // Any other failure is returned at once.
        let run = run_apt(
            "sh",
            &["-c", "echo 'E: Unable to locate package x'; exit 100"],
            false,
        )
        .unwrap();
        assert!(!run.ok);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn apt_output_is_read_whole_from_both_streams() {
        // run_once merges stdout and stderr through one pipe; a shell stands in for apt.
        let run = run_once("sh", &["-c", "echo out; echo err >&2; exit 3"], false).unwrap();
        assert!(!run.ok);
        assert_eq!(run.lines, ["out", "err"]);
    }
}
