//! xtask's test-directive parser (`//! @smp 1 2`, `@args`, `@expect-fail`, ...:
//! harness.rs `parse_spec`), which reads the top of every tests/src/bin/*.rs.
//! Input: a test source (seeds: the real test kernels' directive lines).
//!
//! Properties: never panics; an error is a message that names the test; a success gives
//! runs with distinct names, each named after the test, with a CPU count in 1..=255, a guest
//! memory size and a timeout that makes a deadline; the lines that are not directives change
//! nothing; the command line's `--smp` replaces the test's counts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xtask::harness::{parse_spec, Overrides, TestSpec};

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let none = Overrides::default();
    let specs = match parse_spec("t", source, &none) {
        Ok(specs) => specs,
        Err(e) => {
            let msg = format!("{e:#}");
            assert!(
                msg.starts_with("t: "),
                "an error that does not name the test: {msg}"
            );
            return;
        }
    };
    assert!(!specs.is_empty(), "a test with no runs");
    let mut names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    for s in &specs {
        assert!(s.name == "t" || s.name.starts_with("t["), "{}", s.name);
        assert_eq!(s.bin, "t");
        assert!((1..=255).contains(&s.smp), "smp {}", s.smp);
        assert!(!s.mem.is_empty(), "no guest memory size");
        // The harness turns the timeout into a deadline (qemu.rs `run`).
        assert!(
            std::time::Instant::now().checked_add(s.timeout).is_some(),
            "a timeout of {:?} is no deadline",
            s.timeout
        );
    }
    names.sort_unstable();
    let n = names.len();
    names.dedup();
    assert_eq!(names.len(), n, "two runs with one name: {names:?}");
    // Only the directive lines count: dropping the others changes nothing.
    let only: String = source
        .lines()
        .filter(|l| l.trim().starts_with("//! @"))
        .map(|l| format!("{l}\n"))
        .collect();
    let again: Vec<TestSpec> = parse_spec("t", &only, &none).expect("directives alone parse");
    assert_eq!(again, specs);
    // The command line's CPU count replaces the test's list.
    let one = parse_spec(
        "t",
        source,
        &Overrides {
            smp: Some(3),
            cpu: None,
        },
    )
    .expect("an override does not make a good test bad");
    assert!(one.iter().all(|s| s.smp == 3));
});
