//! Kernel arguments: `key=value` pairs that xtask passes through QEMU's fw_cfg (file
//! [`FW_CFG_FILE`], one argument per line; see [`crate::dev::fwcfg`]).
//!
//! The parser, the list of known keys and the errors are the `kernel-args` crate (re-exported
//! here), which builds on the host as well so that it is unit-tested and fuzzed there; this
//! module is the kernel's half: reading the file at boot, stopping the boot on a bad
//! argument, and keeping the result.

use alloc::string::String;
use alloc::vec::Vec;

pub use kernel_args::*;

/// The fw_cfg file xtask writes (`-fw_cfg name=opt/gort/args,file=...`). QEMU asks that
/// user-supplied names start with `opt/`.
pub const FW_CFG_FILE: &str = "opt/gort/args";

static ARGS: spin::Once<Args> = spin::Once::new();

/// Reads and checks the arguments. A bad argument ends the boot with a failure exit.
pub fn init() {
    let bytes = crate::dev::fwcfg::read_file(FW_CFG_FILE).unwrap_or_default();
    let text = match core::str::from_utf8(&bytes) {
        Ok(t) => t,
        Err(_) => fail(&ArgError::Malformed(String::from(
            "<arguments are not UTF-8>",
        ))),
    };
    match parse(text) {
        Ok(args) => {
            rt_core::traceback::set_level(args.traceback);
            ARGS.call_once(|| args);
        }
        Err(e) => fail(&e),
    }
}

fn fail(e: &ArgError) -> ! {
    crate::println!("kernel argument error: {e}");
    crate::println!("known kernel arguments:");
    for k in KNOWN {
        crate::println!("  {}=<{}>  {}", k.key, k.kind.shape(), k.help);
    }
    crate::dev::qemu::exit(crate::dev::qemu::ExitCode::Failure)
}

/// The arguments read at boot (empty before [`init`]).
pub fn get() -> &'static Args {
    static EMPTY: Args = Args {
        given: Vec::new(),
        test_filter: None,
        memmap: false,
        gomaxprocs: 0,
        schedtrace: 0,
        scheddetail: false,
        xapic_only: false,
        tick: 0,
        timeslice: 0,
        preempt_off: false,
        async_preempt_off: false,
        maxstack: 0,
        stack_cache_off: false,
        parked: 0,
        soak_minutes: 0,
        seed: 0,
        traceback: rt_core::traceback::Level::Single,
        trace: false,
    };
    ARGS.get().unwrap_or(&EMPTY)
}
