//! The harness's reading of a test kernel's serial output (harness.rs `judge`,
//! `failure_reason`, `printed`): the `[gort-test] result:` line, the unfinished `test NAME
//! ... ` line, `KERNEL PANIC`, `EXCEPTION:`, `fatal error:` and the expected texts.
//! Input: serial output, then optionally NUL-separated `@expect-fail` texts (seeds: real
//! serial output of passing and failing test kernels). Each input is judged under every way
//! QEMU can end.
//!
//! Properties: never panics; a pass without expected failures needs the success code and a
//! result line as the runner writes it (`N passed, 0 failed`) with N > 0; a pass with expected failures needs the
//! failure code and every text printed; a failure's reason is one non-empty line; a piece
//! of the output (with ` ... ` between its parts) is always `printed`.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use xtask::harness::{judge, printed, Outcome};
use xtask::qemu::{Ending, KERNEL_FAILURE, KERNEL_SUCCESS};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let serial = parts.next().unwrap_or_default();
    let expect: Vec<String> = parts.map(String::from).collect();
    let endings = [
        Ending::Kernel(KERNEL_SUCCESS),
        Ending::Kernel(KERNEL_FAILURE),
        Ending::Kernel(7),
        Ending::Reset { triple_fault: true },
        Ending::Reset {
            triple_fault: false,
        },
        Ending::QemuError(Some(1)),
        Ending::QemuError(None),
        Ending::Timeout(Duration::from_secs(60)),
    ];
    for ending in &endings {
        for expect_fail in [&[][..], &expect[..]] {
            match judge(ending, serial, expect_fail) {
                Outcome::Passed { cases } if expect_fail.is_empty() => {
                    assert_eq!(*ending, Ending::Kernel(KERNEL_SUCCESS));
                    assert!(cases > 0);
                    assert!(
                        serial.contains(&format!("[gort-test] result: {cases} passed, 0 failed"))
                    );
                }
                Outcome::Passed { cases } => {
                    assert_eq!((ending, cases), (&Ending::Kernel(KERNEL_FAILURE), 0));
                    assert!(expect_fail.iter().all(|t| printed(serial, t)));
                }
                Outcome::Failed { reason } => {
                    assert!(!reason.is_empty());
                    if expect_fail.is_empty() {
                        assert!(
                            !reason.contains('\n'),
                            "a reason on several lines: {reason:?}"
                        );
                    }
                }
                Outcome::Skipped { .. } => panic!("judge never skips"),
            }
        }
    }
    // Any piece of the output, cut into parts joined by ` ... `, is printed.
    let bounds: Vec<usize> = (0..=serial.len())
        .filter(|&i| serial.is_char_boundary(i))
        .collect();
    if bounds.len() > 2 {
        let pick = |k: usize| bounds[data.get(k).map_or(0, |&b| b as usize) % bounds.len()];
        let (a, b) = (pick(0).min(pick(1)), pick(0).max(pick(1)));
        let piece = &serial[a..b];
        assert!(
            printed(serial, piece),
            "{piece:?} not found in its own source"
        );
        if let Some(m) = piece.char_indices().map(|(i, _)| i).nth(piece.len() / 2) {
            let (x, y) = piece.split_at(m);
            // No separator inside the piece, nor one made with the junction's neighbours: the
            // parts are exactly x and y.
            let plain = |c: Option<char>| c.is_some_and(|c| c != ' ' && c != '.');
            if !piece.contains(" ... ") && plain(x.chars().last()) && plain(y.chars().next()) {
                let joined = format!("{x} ... {y}");
                assert!(printed(serial, &joined), "{joined:?}");
            }
        }
    }
});
