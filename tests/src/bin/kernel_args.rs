//! Kernel arguments reach the kernel through fw_cfg, and `test=` filters the cases.
//! @args test=selected memmap=1

#![no_std]
#![no_main]

kernel::test_kernel!(
    selected_args_arrive,
    selected_parser_rejects_bad_input,
    filtered_out_case
);

fn selected_args_arrive() {
    let args = kernel::args::get();
    assert_eq!(args.test_filter.as_deref(), Some("selected"));
    assert!(args.memmap);
    assert_eq!(args.given, ["test=selected", "memmap=1"]);
}

fn selected_parser_rejects_bad_input() {
    use kernel::args::{parse, ArgError};
    assert!(matches!(parse("nokey"), Err(ArgError::Malformed(_))));
    assert!(matches!(parse("=1"), Err(ArgError::Malformed(_))));
    assert!(matches!(parse("bogus=1"), Err(ArgError::Unknown(k)) if k == "bogus"));
    assert!(matches!(
        parse("memmap=maybe"),
        Err(ArgError::BadValue { .. })
    ));
    assert!(matches!(
        parse("memmap=1\nmemmap=0"),
        Err(ArgError::Repeated(_))
    ));
    assert!(matches!(parse("test="), Err(ArgError::BadValue { .. })));
    assert!(
        matches!(parse("traceback=x"), Err(ArgError::BadValue { ref key, .. }) if key == "traceback")
    );
    assert!(parse("traceback=system").is_ok());
    assert!(parse("\n\n").unwrap().given.is_empty());
    assert!(!parse("memmap=off").unwrap().memmap);
    assert_eq!(parse("gomaxprocs=3").unwrap().gomaxprocs, 3);
    assert!(matches!(
        parse("gomaxprocs=0"),
        Err(ArgError::BadValue { .. })
    ));
    assert!(matches!(
        parse("gomaxprocs=many"),
        Err(ArgError::BadValue { .. })
    ));
    assert!(matches!(
        parse("scheddetail=1"),
        Err(ArgError::BadValue { key, .. }) if key == "scheddetail"
    ));
    assert_eq!(parse("maxstack=256K").unwrap().maxstack, 256 << 10);
    assert_eq!(parse("maxstack=1m").unwrap().maxstack_bytes(), 1 << 20);
    assert_eq!(parse("maxstack=65536").unwrap().maxstack, 65536);
    assert_eq!(parse("").unwrap().maxstack_bytes(), 1 << 20);
    for bad in [
        "maxstack=32K",
        "maxstack=2G",
        "maxstack=100000",
        "maxstack=1X",
        "maxstack=K",
    ] {
        assert!(
            matches!(parse(bad), Err(ArgError::BadValue { ref key, .. }) if key == "maxstack"),
            "{bad}"
        );
    }
    assert!(parse("stackcache=0").unwrap().stack_cache_off);
    let both = parse("schedtrace=7\nscheddetail=1").unwrap();
    assert!(both.scheddetail && both.schedtrace == 7);
    // Every key the kernel lists must parse with a valid value of its kind (a key listed
    // without a parser arm would panic here).
    for k in kernel::args::KNOWN {
        let value = match k.kind {
            kernel::args::Kind::Bool => "1",
            kernel::args::Kind::Text => "x",
            kernel::args::Kind::Count => "2",
            kernel::args::Kind::Size => "256K",
            kernel::args::Kind::Choice(words) => words[0],
        };
        // scheddetail adds to schedtrace and is refused without it.
        let needs = if k.key == "scheddetail" {
            "schedtrace=2\n"
        } else {
            ""
        };
        let line = alloc::format!("{needs}{}={value}", k.key);
        assert!(parse(&line).is_ok(), "{line}");
    }
}

extern crate alloc;

fn filtered_out_case() {
    panic!("`test=selected` should have filtered this case out");
}
