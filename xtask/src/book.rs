//! `cargo xtask book`: the course book in docs/book/ (mdBook), built into target/book/, and the
//! check that keeps it true to the code ([`check`]): every code reference a chapter makes — a
//! file (`rt-core/src/runq.rs`), an item in a file (`rt-core/src/runq.rs:steal_from`), a kernel
//! argument (`gomaxprocs=2`), an xtask command (`cargo xtask trace`) — must exist.
//!
//! What counts as a reference: inline code spans (outside fenced blocks) of those shapes, and
//! `cargo xtask` command lines inside fenced blocks. An item exists if its file defines it: a
//! line that declares it (`fn`, `struct`, `enum`, `const`, `static`, `type`, `trait`, `mod`,
//! `macro_rules!`, a Python `def` or `class`), or an enum variant or field at the start of a
//! line (`Name,` `Name {` `Name(` `name:`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The top-level folders a code reference may start with.
const ROOTS: &[&str] = &[
    "rt-core/",
    "rt-trace/",
    "kernel/",
    "xtask/",
    "tests/",
    "docs/",
];

/// `cargo xtask` subcommands (xtask/src/main.rs `Cmd`).
const COMMANDS: &[&str] = &["qemu", "test", "gdb", "trace", "bench", "book", "lab"];

/// The book's folder.
pub fn book_dir() -> PathBuf {
    crate::root().join("docs/book")
}

/// One problem found in the book: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    pub file: String,
    pub line: usize,
    pub what: String,
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.what)
    }
}

/// The references of one Markdown text: (line, text) for inline code spans outside fenced
/// blocks, and for `cargo xtask` lines inside them.
pub fn references(md: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (i, line) in md.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            let l = line.trim().trim_start_matches("$ ");
            if l.starts_with("cargo xtask") {
                out.push((i + 1, l.to_string()));
            }
            continue;
        }
        let mut rest = line;
        while let Some(a) = rest.find('`') {
            let after = &rest[a + 1..];
            let Some(b) = after.find('`') else { break };
            out.push((i + 1, after[..b].to_string()));
            rest = &after[b + 1..];
        }
    }
    out
}

/// Whether `file`'s text defines `name`.
pub fn defines(text: &str, name: &str) -> bool {
    const DECL: &[&str] = &[
        "fn ",
        "struct ",
        "enum ",
        "const ",
        "static ",
        "type ",
        "trait ",
        "mod ",
        "macro_rules! ",
        "def ",
        "class ",
    ];
    text.lines().any(|l| {
        let mut t = l.trim_start();
        // Any visibility: `pub`, `pub(crate)`, `pub(super)`, `pub(in path)`.
        if let Some(r) = t.strip_prefix("pub(") {
            if let Some((_, after)) = r.split_once(") ") {
                t = after;
            }
        }
        let words = t
            .trim_start_matches("pub ")
            .trim_start_matches("unsafe ")
            .trim_start_matches("extern \"C\" ")
            .trim_start_matches("extern \"x86-interrupt\" ")
            .trim_start_matches("extern \"sysv64\" ")
            .trim_start_matches("const ")
            .trim_start_matches("unsafe ")
            .trim_start_matches("async ");
        let declares = DECL.iter().any(|d| {
            words.strip_prefix(d).is_some_and(|r| {
                r.strip_prefix(name).is_some_and(|r| {
                    r.is_empty() || !r.starts_with(|c: char| c.is_alphanumeric() || c == '_')
                })
            })
        });
        // A static or const written `static mut NAME` / `pub static NAME: T`.
        let static_mut = words
            .strip_prefix("static mut ")
            .is_some_and(|r| r.starts_with(name));
        // An enum variant or a struct field at the start of its line.
        let member = words.strip_prefix(name).is_some_and(|r| {
            r.starts_with(',')
                || r.starts_with(" {")
                || r.starts_with('(')
                || r.starts_with(':')
                || r.starts_with(" =")
        });
        declares || static_mut || member
    })
}

/// The kernel's argument keys (kernel-args/src/lib.rs `KNOWN`, which kernel/src/args.rs
/// re-exports).
pub fn kernel_keys(root: &Path) -> Vec<String> {
    let text = fs::read_to_string(root.join("kernel-args/src/lib.rs")).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("key: \""))
        .filter_map(|r| r.split('"').next())
        .map(String::from)
        .collect()
}

/// Checks one reference; None if it is fine or is not a reference at all.
pub fn check_one(root: &Path, keys: &[String], r: &str) -> Option<String> {
    let r = r.trim();
    if let Some(cmd) = r.strip_prefix("cargo xtask") {
        let mut words = cmd.split_whitespace();
        let sub = words.next().unwrap_or("");
        if !COMMANDS.contains(&sub) {
            return Some(format!("`{r}`: no command `cargo xtask {sub}`"));
        }
        let mut after_dashes = false;
        for w in words {
            if w == "--" {
                after_dashes = true;
            } else if after_dashes && (sub == "qemu" || sub == "trace" || sub == "gdb") {
                if let Some(bad) = bad_kernel_arg(keys, w) {
                    return Some(format!("`{r}`: {bad}"));
                }
            }
        }
        return None;
    }
    if ROOTS.iter().any(|p| r.starts_with(p)) && !r.contains(' ') {
        let (path, item) = match r.split_once(':') {
            Some((p, i)) => (p, Some(i)),
            None => (r, None),
        };
        let file = root.join(path);
        if !file.exists() {
            return Some(format!("`{r}`: no file {path}"));
        }
        if let Some(item) = item {
            let name = item.rsplit("::").next().unwrap_or(item);
            let text = fs::read_to_string(&file).unwrap_or_default();
            if !defines(&text, name) {
                return Some(format!("`{r}`: {path} defines no `{name}`"));
            }
        }
        return None;
    }
    // A lone `key=value` of lower-case letters is a kernel argument.
    if r.contains('=')
        && !r.contains(' ')
        && r.split('=').next().is_some_and(|k| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
    {
        return bad_kernel_arg(keys, r);
    }
    None
}

fn bad_kernel_arg(keys: &[String], w: &str) -> Option<String> {
    let (k, _) = w.split_once('=')?;
    if keys.iter().any(|key| key == k) {
        None
    } else {
        Some(format!(
            "no kernel argument `{k}` (kernel-args/src/lib.rs KNOWN)"
        ))
    }
}

/// Every stale reference in the book's chapters, and every chapter in SUMMARY.md that is
/// missing (or file that SUMMARY.md does not list).
pub fn check(root: &Path) -> Result<Vec<Stale>> {
    let src = root.join("docs/book/src");
    let summary = fs::read_to_string(src.join("SUMMARY.md"))
        .with_context(|| format!("no {}", src.join("SUMMARY.md").display()))?;
    let keys = kernel_keys(root);
    let mut stale = Vec::new();
    let listed: Vec<String> = summary
        .lines()
        .filter_map(|l| l.split("](").nth(1))
        .filter_map(|r| r.split(')').next())
        .map(String::from)
        .collect();
    for name in &listed {
        if !src.join(name).is_file() {
            stale.push(Stale {
                file: "SUMMARY.md".into(),
                line: 0,
                what: format!("lists {name}, which does not exist"),
            });
        }
    }
    let mut files: Vec<PathBuf> = fs::read_dir(&src)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        if name != "SUMMARY.md" && !listed.contains(&name) {
            stale.push(Stale {
                file: name.clone(),
                line: 0,
                what: "is not listed in SUMMARY.md".into(),
            });
        }
        let text = fs::read_to_string(&f)?;
        for (line, r) in references(&text) {
            if let Some(what) = check_one(root, &keys, &r) {
                stale.push(Stale {
                    file: name.clone(),
                    line,
                    what,
                });
            }
        }
    }
    stale.extend(lab_problems(root, &src)?);
    Ok(stale)
}

/// The labs against the book and the source: every `LAB(name)` region belongs to a lab of
/// lab.rs `LABS`, every lab has a region, and every lab's chapter tells how to start it
/// (`cargo xtask lab start NAME`).
fn lab_problems(root: &Path, src: &Path) -> Result<Vec<Stale>> {
    let mut stale = Vec::new();
    let regions = match crate::lab::regions(root) {
        Ok(r) => r,
        Err(e) => {
            stale.push(Stale {
                file: "(source)".into(),
                line: 0,
                what: format!("malformed LAB marker: {e:#}"),
            });
            return Ok(stale);
        }
    };
    for r in &regions {
        if crate::lab::find(&r.lab).is_err() {
            stale.push(Stale {
                file: r.file.clone(),
                line: r.begin,
                what: format!(
                    "LAB({}) is not a lab the book describes (lab.rs LABS)",
                    r.lab
                ),
            });
        }
    }
    for lab in crate::lab::LABS {
        if !regions.iter().any(|r| r.lab == lab.name) {
            stale.push(Stale {
                file: lab.chapter.into(),
                line: 0,
                what: format!(
                    "lab {} has no LAB({}) region in the source",
                    lab.name, lab.name
                ),
            });
        }
        let text = fs::read_to_string(src.join(lab.chapter)).unwrap_or_default();
        if !text.contains(&format!("cargo xtask lab start {}", lab.name)) {
            stale.push(Stale {
                file: lab.chapter.into(),
                line: 0,
                what: format!(
                    "does not describe lab {} (no `cargo xtask lab start {}`)",
                    lab.name, lab.name
                ),
            });
        }
    }
    Ok(stale)
}

/// Where `cargo xtask book` installs mdBook when it is not on PATH.
fn tools_dir() -> PathBuf {
    crate::tool_root().join("target/tools")
}

/// The mdbook program: on PATH, or installed once under target/tools by `cargo install`.
pub fn ensure_mdbook() -> Result<PathBuf> {
    if crate::setup::on_path("mdbook") {
        return Ok(PathBuf::from("mdbook"));
    }
    let local = tools_dir().join("bin/mdbook");
    let present = || local.is_file();
    crate::setup::once_under_lock(&crate::setup::lock_path(), "mdbook", &present, &mut || {
        eprintln!("xtask: installing mdBook (cargo install mdbook --locked) into target/tools; the first time takes a few minutes");
        let st = Command::new(crate::cargo())
            .args(["install", "mdbook", "--locked", "--root"])
            .arg(tools_dir())
            .status()
            .context("cannot run cargo install")?;
        if !st.success() {
            bail!("cargo install mdbook failed ({st})");
        }
        Ok(())
    })?;
    if !local.is_file() {
        bail!("mdbook is still missing after `cargo install mdbook`");
    }
    Ok(local)
}

/// Checks the book, then builds it into target/book/ (or serves it with `serve`).
pub fn run(serve: bool) -> Result<u8> {
    let root = crate::root();
    let stale = check(&root)?;
    for s in &stale {
        eprintln!("book: {s}");
    }
    if !stale.is_empty() {
        bail!("the book has {} stale reference(s)", stale.len());
    }
    let mdbook = ensure_mdbook()?;
    let mut cmd = Command::new(&mdbook);
    cmd.arg(if serve { "serve" } else { "build" })
        .arg(book_dir());
    let st = cmd.status().context("cannot run mdbook")?;
    if !st.success() {
        bail!("mdbook failed ({st})");
    }
    if !serve {
        println!(
            "xtask: the book is in {}",
            root.join("target/book/index.html").display()
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_code_and_fenced_commands_are_references() {
        let md = "See `rt-core/src/runq.rs:steal_from` and `x + 1`.\n```text\n$ cargo xtask qemu -- gomaxprocs=2\nnot a command\n```\n`tick=5`";
        let refs = references(md);
        assert_eq!(
            refs,
            [
                (1, "rt-core/src/runq.rs:steal_from".to_string()),
                (1, "x + 1".to_string()),
                (3, "cargo xtask qemu -- gomaxprocs=2".to_string()),
                (6, "tick=5".to_string()),
            ]
        );
    }

    #[test]
    fn real_references_pass_and_stale_ones_are_named() {
        let root = crate::root();
        let keys = kernel_keys(&root);
        assert!(keys.iter().any(|k| k == "gomaxprocs"), "{keys:?}");
        for ok in [
            "rt-core/src/runq.rs",
            "rt-core/src/runq.rs:steal_from",
            "rt-core/src/sched.rs:find_runnable",
            "rt-core/src/g.rs:WaitReason",
            "rt-core/src/mcall.rs:Gosched",
            "kernel/src/dev/tracemem.rs:MAGIC",
            "kernel/src/x86/interrupts.rs:page_fault",
            "kernel/src/rt/run.rs:CURRENT",
            "cargo xtask qemu --smp 4 -- gomaxprocs=2 schedtrace=100",
            "trace=1",
            "x + 1",
        ] {
            assert_eq!(check_one(&root, &keys, ok), None, "{ok}");
        }
        for bad in [
            "rt-core/src/nothere.rs",
            "rt-core/src/runq.rs:steal_everything",
            "cargo xtask fly",
            "cargo xtask qemu -- gomaxprocz=2",
            "gomaxprocz=2",
        ] {
            assert!(check_one(&root, &keys, bad).is_some(), "{bad} passed");
        }
    }

    #[test]
    fn the_book_has_no_stale_reference() {
        let stale = check(&crate::root()).unwrap();
        let text: Vec<String> = stale.iter().map(|s| s.to_string()).collect();
        assert!(text.is_empty(), "{}", text.join("\n"));
    }
}
