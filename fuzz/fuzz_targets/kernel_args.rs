//! The kernel's argument parser (kernel-args, what the kernel reads from fw_cfg at boot).
//! Input: the argument text, one `key=value` a line (seeds: the `@args` of the test kernels).
//!
//! Properties: `parse` never panics; an error is one of `ArgError`'s variants and names the
//! key or the line it is about; an `Ok` keeps exactly the non-blank lines, trimmed, in
//! `given`, each a known key given once, and parsing `given` again gives the same arguments.
#![no_main]

use kernel_args::{parse, ArgError, KNOWN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse(text) {
        Ok(args) => {
            let lines: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            assert_eq!(args.given, lines, "given is not the non-blank lines");
            let mut keys: Vec<&str> = args
                .given
                .iter()
                .map(|a| a.split_once('=').expect("a given argument has `=`").0)
                .collect();
            assert!(keys.iter().all(|k| KNOWN.iter().any(|n| n.key == *k)));
            keys.sort_unstable();
            let n = keys.len();
            keys.dedup();
            assert_eq!(keys.len(), n, "a key was taken twice");
            assert_eq!(
                parse(&args.given.join("\n")).as_ref(),
                Ok(&args),
                "given does not parse back to the same arguments"
            );
        }
        Err(e) => {
            let about = match &e {
                ArgError::Malformed(line) => line,
                ArgError::Unknown(key) | ArgError::Repeated(key) => key,
                ArgError::BadValue { key, .. } => key,
            };
            assert!(!about.is_empty(), "{e:?} names nothing");
            assert!(text.contains(about.as_str()) || about == "scheddetail");
            let shown = e.to_string();
            assert!(!shown.is_empty());
        }
    }
});
