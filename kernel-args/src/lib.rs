//! The kernel's arguments: `key=value` pairs, one a line, that xtask passes to the kernel
//! through QEMU's fw_cfg (kernel/src/args.rs reads them at boot and stops the boot on an
//! error). This crate is the pure half, the parser, kept apart from the kernel so that it
//! builds and is tested on the host too (its unit tests here, and the `kernel_args` fuzz
//! target in fuzz/); `no_std` + `alloc`, like the kernel.
//!
//! Every key the kernel understands is listed in [`KNOWN`], with its type and help text. An
//! unknown key, a missing `=`, a value of the wrong type or a key given twice is a named
//! [`ArgError`] that the kernel prints with the known keys: a typo is never silently ignored.
//!
//! Invariants: [`parse`] never panics, whatever the text; an `Ok` holds in `given` exactly the
//! trimmed non-blank lines, in order, and parsing them again gives the same arguments. Go's
//! counterpart is the runtime's GODEBUG parsing (runtime/runtime1.go `parsedebugvars`),
//! which, unlike this, ignores what it does not know.
#![no_std]

extern crate alloc;

use alloc::string::{String, ToString};
use alloc::vec::Vec;

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Bool,
    Text,
    Count,
    /// Bytes, with an optional `K`, `M` or `G` suffix (powers of 1024).
    Size,
    /// One of these words.
    Choice(&'static [&'static str]),
}

impl Kind {
    /// The value's shape in the kernel's list of known arguments (`0|1`, `n`, ...).
    pub fn shape(self) -> String {
        match self {
            Kind::Bool => String::from("0|1"),
            Kind::Text => String::from("text"),
            Kind::Count => String::from("n"),
            Kind::Size => String::from("bytes[K|M|G]"),
            Kind::Choice(words) => words.join("|"),
        }
    }
}

/// One key the kernel understands.
pub struct Known {
    pub key: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

pub const KNOWN: &[Known] = &[
    Known {
        key: "test",
        kind: Kind::Text,
        help: "run only the in-kernel test cases whose name contains this text",
    },
    Known {
        key: "memmap",
        kind: Kind::Bool,
        help: "print the bootloader's memory map at boot (0 or 1)",
    },
    Known {
        key: "gomaxprocs",
        kind: Kind::Count,
        help: "number of Ps (1..=256; default: one per online CPU)",
    },
    Known {
        key: "schedtrace",
        kind: Kind::Count,
        help: "print Go's SCHED line every this many ms while the scheduler runs",
    },
    Known {
        key: "scheddetail",
        kind: Kind::Bool,
        help: "with schedtrace: add Go's per-P, per-M and per-G lines (0 or 1)",
    },
    Known {
        key: "tick",
        kind: Kind::Count,
        help: "period of every CPU's LAPIC timer tick (the sysmon tick) in ms (1..=100; default 1)",
    },
    Known {
        key: "timeslice",
        kind: Kind::Count,
        help: "ms a goroutine may run before it is asked to yield (1..=10000; default 10, Go's forcePreemptNS)",
    },
    Known {
        key: "preempt",
        kind: Kind::Bool,
        help: "preempt goroutines that overrun their time slice (default 1; 0 shows starvation)",
    },
    Known {
        key: "asyncpreemptoff",
        kind: Kind::Bool,
        help: "1: preempt only at safe points, never from the interrupt (Go's GODEBUG name)",
    },
    Known {
        key: "maxstack",
        kind: Kind::Size,
        help: "a goroutine stack's virtual slot: its maximum size, guard page included (64K..=1G, a multiple of 4K; default 1M)",
    },
    Known {
        key: "stackcache",
        kind: Kind::Bool,
        help: "reuse exited goroutines' stacks through per-P caches (default 1; 0 measures without)",
    },
    Known {
        key: "parked",
        kind: Kind::Count,
        help: "showcase: park this many goroutines and print what each holds (1..=10000000; default 20000)",
    },
    Known {
        key: "traceback",
        kind: Kind::Choice(&["none", "single", "all", "system"]),
        help: "how much a failure prints, Go's GOTRACEBACK: none, single (default: the failing goroutine; every goroutine after a fatal error), all, system (adds runtime frames, fp= sp= pc=)",
    },
    Known {
        key: "trace",
        kind: Kind::Bool,
        help: "record an execution trace of every CPU and write it to QEMU's debug console (0 or 1; cargo xtask trace sets it)",
    },
    Known {
        key: "x2apic",
        kind: Kind::Bool,
        help: "use x2APIC mode when the CPU has it (default 1; 0 forces xAPIC)",
    },
    Known {
        key: "soak",
        kind: Kind::Count,
        help: "the soak test kernel: minutes to run (1..=10000; cargo xtask soak sets it)",
    },
    Known {
        key: "seed",
        kind: Kind::Count,
        help: "the seed of a test kernel's random choices (the soak's; default: from the TSC, printed)",
    },
];

/// The parsed arguments.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Args {
    /// The arguments as given, in order (for the banner).
    pub given: Vec<String>,
    pub test_filter: Option<String>,
    pub memmap: bool,
    /// 0: one P per online CPU.
    pub gomaxprocs: usize,
    /// Milliseconds between schedtrace lines; 0: off.
    pub schedtrace: u64,
    /// Go's `scheddetail=1`: schedtrace prints every P, M and G.
    pub scheddetail: bool,
    /// `x2apic=0`: drive the local APIC in xAPIC mode even if the CPU has x2APIC.
    pub xapic_only: bool,
    /// `tick=MS` (0: the default, 1 ms).
    pub tick: u64,
    /// `timeslice=MS` (0: the default, 10 ms).
    pub timeslice: u64,
    /// `preempt=0`.
    pub preempt_off: bool,
    /// `asyncpreemptoff=1`.
    pub async_preempt_off: bool,
    /// `maxstack=SIZE` in bytes (0: the default, 1 MiB).
    pub maxstack: u64,
    /// `stackcache=0`.
    pub stack_cache_off: bool,
    /// `parked=N` (0: the default, 100000).
    pub parked: u64,
    /// `soak=`: minutes the soak test kernel runs (0: not given).
    pub soak_minutes: u64,
    /// `seed=`: a test kernel's random seed (0: not given).
    pub seed: u64,
    /// `traceback=` (Go's GOTRACEBACK).
    pub traceback: rt_core::traceback::Level,
    /// `trace=1`: record an execution trace (dev/debugcon.rs is its way out).
    pub trace: bool,
}

impl Args {
    /// The tick period in ms.
    pub fn tick_ms(&self) -> u64 {
        if self.tick == 0 {
            1
        } else {
            self.tick
        }
    }

    /// A goroutine stack slot's size in bytes.
    pub fn maxstack_bytes(&self) -> u64 {
        if self.maxstack == 0 {
            1 << 20
        } else {
            self.maxstack
        }
    }

    /// The time slice in ms.
    pub fn timeslice_ms(&self) -> u64 {
        if self.timeslice == 0 {
            10
        } else {
            self.timeslice
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgError {
    Malformed(String),
    Unknown(String),
    BadValue {
        key: String,
        value: String,
        expected: &'static str,
    },
    Repeated(String),
}

impl core::fmt::Display for ArgError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ArgError::Malformed(a) => {
                write!(f, "malformed kernel argument `{a}`: expected key=value")
            }
            ArgError::Unknown(k) => write!(f, "unknown kernel argument `{k}`"),
            ArgError::BadValue {
                key,
                value,
                expected,
            } => {
                write!(
                    f,
                    "bad value `{value}` for kernel argument `{key}`: expected {expected}"
                )
            }
            ArgError::Repeated(k) => write!(f, "kernel argument `{k}` given more than once"),
        }
    }
}

/// Parses the argument text (one `key=value` per line; blank lines are skipped).
pub fn parse(text: &str) -> Result<Args, ArgError> {
    let mut args = Args::default();
    let mut seen: Vec<&str> = Vec::new();
    for raw in text.lines() {
        let arg = raw.trim();
        if arg.is_empty() {
            continue;
        }
        let Some((key, value)) = arg.split_once('=') else {
            return Err(ArgError::Malformed(arg.to_string()));
        };
        if key.is_empty() {
            return Err(ArgError::Malformed(arg.to_string()));
        }
        let Some(known) = KNOWN.iter().find(|k| k.key == key) else {
            return Err(ArgError::Unknown(key.to_string()));
        };
        if seen.contains(&key) {
            return Err(ArgError::Repeated(key.to_string()));
        }
        seen.push(key);
        let bad = |expected| ArgError::BadValue {
            key: key.to_string(),
            value: value.to_string(),
            expected,
        };
        match (known.key, known.kind) {
            ("test", Kind::Text) => {
                if value.is_empty() {
                    return Err(bad("a non-empty name filter"));
                }
                args.test_filter = Some(value.to_string());
            }
            ("memmap", Kind::Bool) => {
                args.memmap = parse_bool(value).ok_or_else(|| bad("0 or 1"))?
            }
            ("gomaxprocs", Kind::Count) => {
                args.gomaxprocs = parse_count(value, 1, 256)
                    .ok_or_else(|| bad("a number from 1 to 256"))?
                    as usize
            }
            ("schedtrace", Kind::Count) => {
                args.schedtrace = parse_count(value, 1, 3_600_000)
                    .ok_or_else(|| bad("milliseconds from 1 to 3600000"))?
            }
            ("tick", Kind::Count) => {
                args.tick =
                    parse_count(value, 1, 100).ok_or_else(|| bad("milliseconds from 1 to 100"))?
            }
            ("timeslice", Kind::Count) => {
                args.timeslice = parse_count(value, 1, 10_000)
                    .ok_or_else(|| bad("milliseconds from 1 to 10000"))?
            }
            ("preempt", Kind::Bool) => {
                args.preempt_off = !parse_bool(value).ok_or_else(|| bad("0 or 1"))?
            }
            ("asyncpreemptoff", Kind::Bool) => {
                args.async_preempt_off = parse_bool(value).ok_or_else(|| bad("0 or 1"))?
            }
            ("x2apic", Kind::Bool) => {
                args.xapic_only = !parse_bool(value).ok_or_else(|| bad("0 or 1"))?
            }
            ("maxstack", Kind::Size) => {
                args.maxstack = parse_size(value)
                    .filter(|n| (64 << 10..=1 << 30).contains(n) && n % 4096 == 0)
                    .ok_or_else(|| bad("a size from 64K to 1G, a multiple of 4K (e.g. 256K, 1M)"))?
            }
            ("parked", Kind::Count) => {
                args.parked = parse_count(value, 1, 10_000_000)
                    .ok_or_else(|| bad("a number from 1 to 10000000"))?
            }
            ("soak", Kind::Count) => {
                args.soak_minutes = parse_count(value, 1, 10_000)
                    .ok_or_else(|| bad("a number of minutes from 1 to 10000"))?
            }
            ("seed", Kind::Count) => {
                args.seed = parse_count(value, 1, u64::MAX)
                    .ok_or_else(|| bad("a number from 1 to 18446744073709551615"))?
            }
            ("stackcache", Kind::Bool) => {
                args.stack_cache_off = !parse_bool(value).ok_or_else(|| bad("0 or 1"))?
            }
            ("traceback", Kind::Choice(_)) => {
                args.traceback = rt_core::traceback::Level::parse(value)
                    .filter(|_| !value.is_empty())
                    .ok_or_else(|| bad("none, single, all or system"))?
            }
            ("trace", Kind::Bool) => args.trace = parse_bool(value).ok_or_else(|| bad("0 or 1"))?,
            ("scheddetail", Kind::Bool) => {
                args.scheddetail = parse_bool(value).ok_or_else(|| bad("0 or 1"))?
            }
            _ => unreachable!("KNOWN and parse disagree about `{key}`"),
        }
        args.given.push(arg.to_string());
    }
    if args.scheddetail && args.schedtrace == 0 {
        // Go ignores scheddetail alone; a user who asked for detail expects to see some.
        return Err(ArgError::BadValue {
            key: "scheddetail".into(),
            value: "1".into(),
            expected: "schedtrace=MS as well (scheddetail adds lines to schedtrace's)",
        });
    }
    Ok(args)
}

/// A whole number in `lo..=hi`.
fn parse_count(v: &str, lo: u64, hi: u64) -> Option<u64> {
    v.parse().ok().filter(|n| (lo..=hi).contains(n))
}

/// Bytes: digits with an optional K, M or G suffix (upper or lower case).
fn parse_size(v: &str) -> Option<u64> {
    let (digits, shift) = match v.as_bytes().last()? {
        b'k' | b'K' => (&v[..v.len() - 1], 10),
        b'm' | b'M' => (&v[..v.len() - 1], 20),
        b'g' | b'G' => (&v[..v.len() - 1], 30),
        _ => (v, 0),
    };
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(1 << shift)
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "true" | "on" | "yes" => Some(true),
        "0" | "false" | "off" | "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn every_way_to_be_wrong_is_a_named_error() {
        assert!(matches!(parse("nokey"), Err(ArgError::Malformed(_))));
        assert!(matches!(parse("=1"), Err(ArgError::Malformed(_))));
        assert_eq!(parse("bogus=1"), Err(ArgError::Unknown("bogus".into())));
        assert_eq!(
            parse("memmap=1\nmemmap=0"),
            Err(ArgError::Repeated("memmap".into()))
        );
        assert!(
            matches!(parse("memmap=maybe"), Err(ArgError::BadValue { key, .. }) if key == "memmap")
        );
        assert!(matches!(
            parse("gomaxprocs=257"),
            Err(ArgError::BadValue { .. })
        ));
        assert!(matches!(
            parse("maxstack=16E"),
            Err(ArgError::BadValue { .. })
        ));
        assert!(
            matches!(parse("scheddetail=1"), Err(ArgError::BadValue { key, .. }) if key == "scheddetail")
        );
    }

    #[test]
    fn given_arguments_parse_again_to_the_same() {
        let text = " test=x \r\n\nmaxstack=256k\ntraceback=all\nschedtrace=5\nscheddetail=on\n";
        let a = parse(text).unwrap();
        assert_eq!(
            a.given,
            [
                "test=x",
                "maxstack=256k",
                "traceback=all",
                "schedtrace=5",
                "scheddetail=on"
            ]
        );
        assert_eq!(parse(&a.given.join("\n")), Ok(a.clone()));
        assert_eq!(
            (a.maxstack, a.traceback, a.scheddetail),
            (256 << 10, rt_core::traceback::Level::All, true)
        );
    }

    #[test]
    fn every_known_key_has_a_parser_arm() {
        for k in KNOWN {
            let value = match k.kind {
                Kind::Bool => "1",
                Kind::Text => "x",
                Kind::Count => "2",
                Kind::Size => "256K",
                Kind::Choice(words) => words[0],
            };
            let needs = if k.key == "scheddetail" {
                "schedtrace=2\n"
            } else {
                ""
            };
            let line = format!("{needs}{}={value}", k.key);
            assert!(parse(&line).is_ok(), "{line}");
        }
    }
}
