//! Asynchronous preemption on the host (host/signal.rs): a loop with no safe point is stopped by
//! sysmon's signal, every register it holds survives, and code in the C library is never
//! stopped. Host only: the kernel's timer-interrupt preemption has its own tests in QEMU
//! (tests/src/bin/preempt*.rs).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rt_core::host::signal_stats;
use rt_core::time::sleep;
use rt_core::{spawn, Runtime};

/// At GOMAXPROCS 1, a goroutine spins on a flag with no safe point while main sleeps 1 ms
/// `wanted` times. Returns how many of main's wake-ups came before a watchdog thread (which
/// fires after `watchdog`) stopped the spinner: the wake-ups that preemption made possible.
fn wakeups_beside_a_spinner(async_on: bool, wanted: usize, watchdog: Duration) -> usize {
    let stop = Arc::new(AtomicBool::new(false));
    let fired = Arc::new(AtomicBool::new(false));
    let (s, f) = (stop.clone(), fired.clone());
    let dog = std::thread::spawn(move || {
        let t0 = std::time::Instant::now();
        while t0.elapsed() < watchdog && !s.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
        f.store(true, Ordering::SeqCst);
        s.store(true, Ordering::SeqCst);
    });
    let n = Runtime::new(1).async_preempt(async_on).block_on(move || {
        let s = stop.clone();
        spawn(move || {
            // `loop {}` with a way out: no call, no safe point.
            while !s.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        });
        let mut n = 0;
        for _ in 0..wanted {
            sleep(Duration::from_millis(1));
            if fired.load(Ordering::SeqCst) {
                break;
            }
            n += 1;
        }
        stop.store(true, Ordering::SeqCst);
        n
    });
    dog.join().unwrap();
    n
}

#[test]
fn a_sleeper_keeps_waking_beside_a_tight_loop() {
    let n = wakeups_beside_a_spinner(true, 20, Duration::from_secs(30));
    assert_eq!(
        n, 20,
        "only {n} of 20 wake-ups before the watchdog: the spinner was not preempted"
    );
}

#[test]
fn without_async_preemption_the_sleeper_starves() {
    let n = wakeups_beside_a_spinner(false, 20, Duration::from_millis(300));
    assert_eq!(
        n, 0,
        "{n} wake-ups with async preemption off: something else preempted the spinner"
    );
}

/// `GODEBUG=asyncpreemptoff=1` (Go's spelling) turns it off: run the starvation probe in a
/// child process with the variable set.
#[test]
fn godebug_asyncpreemptoff_turns_it_off() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "starvation_probe",
            "--include-ignored",
            "--nocapture",
        ])
        .env("GODEBUG", "madvdontneed=1,asyncpreemptoff=1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let n: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("probe wake-ups: "))
        .unwrap_or_else(|| panic!("the probe printed no count:\n{text}"))
        .trim()
        .parse()
        .unwrap();
    assert_eq!(n, 0, "GODEBUG=asyncpreemptoff=1 left preemption on");
}

/// Run by `godebug_asyncpreemptoff_turns_it_off` in a child process.
#[test]
#[ignore]
fn starvation_probe() {
    let n = wakeups_beside_a_spinner(true, 20, Duration::from_millis(300));
    println!("probe wake-ups: {n}");
}

/// 15 general registers then ymm0–15 (4 words each).
const WORDS: usize = 15 + 16 * 4;

/// Loads every general register but RSP, and ymm0–15, from `pattern`, spins `iters` times on a
/// counter in memory (no call, no safe point), and stores them all to `out`.
#[unsafe(naked)]
unsafe extern "C" fn reg_spin(pattern: *const u64, out: *mut u64, iters: u64) {
    core::arch::naked_asm!(
        "push rbx",
        "push rbp",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "push rsi", // out
        "push rdx", // the counter, at [rsp]
        "vmovdqu ymm0, [rdi + 120]",
        "vmovdqu ymm1, [rdi + 152]",
        "vmovdqu ymm2, [rdi + 184]",
        "vmovdqu ymm3, [rdi + 216]",
        "vmovdqu ymm4, [rdi + 248]",
        "vmovdqu ymm5, [rdi + 280]",
        "vmovdqu ymm6, [rdi + 312]",
        "vmovdqu ymm7, [rdi + 344]",
        "vmovdqu ymm8, [rdi + 376]",
        "vmovdqu ymm9, [rdi + 408]",
        "vmovdqu ymm10, [rdi + 440]",
        "vmovdqu ymm11, [rdi + 472]",
        "vmovdqu ymm12, [rdi + 504]",
        "vmovdqu ymm13, [rdi + 536]",
        "vmovdqu ymm14, [rdi + 568]",
        "vmovdqu ymm15, [rdi + 600]",
        "mov rax, [rdi]",
        "mov rbx, [rdi + 8]",
        "mov rcx, [rdi + 16]",
        "mov rdx, [rdi + 24]",
        "mov rsi, [rdi + 32]",
        "mov rbp, [rdi + 48]",
        "mov r8, [rdi + 56]",
        "mov r9, [rdi + 64]",
        "mov r10, [rdi + 72]",
        "mov r11, [rdi + 80]",
        "mov r12, [rdi + 88]",
        "mov r13, [rdi + 96]",
        "mov r14, [rdi + 104]",
        "mov r15, [rdi + 112]",
        "mov rdi, [rdi + 40]",
        "2:",
        "dec qword ptr [rsp]",
        "jnz 2b",
        "push rdi",
        "mov rdi, [rsp + 16]", // out
        "mov [rdi], rax",
        "mov [rdi + 8], rbx",
        "mov [rdi + 16], rcx",
        "mov [rdi + 24], rdx",
        "mov [rdi + 32], rsi",
        "mov [rdi + 48], rbp",
        "mov [rdi + 56], r8",
        "mov [rdi + 64], r9",
        "mov [rdi + 72], r10",
        "mov [rdi + 80], r11",
        "mov [rdi + 88], r12",
        "mov [rdi + 96], r13",
        "mov [rdi + 104], r14",
        "mov [rdi + 112], r15",
        "pop rax",
        "mov [rdi + 40], rax",
        "vmovdqu [rdi + 120], ymm0",
        "vmovdqu [rdi + 152], ymm1",
        "vmovdqu [rdi + 184], ymm2",
        "vmovdqu [rdi + 216], ymm3",
        "vmovdqu [rdi + 248], ymm4",
        "vmovdqu [rdi + 280], ymm5",
        "vmovdqu [rdi + 312], ymm6",
        "vmovdqu [rdi + 344], ymm7",
        "vmovdqu [rdi + 376], ymm8",
        "vmovdqu [rdi + 408], ymm9",
        "vmovdqu [rdi + 440], ymm10",
        "vmovdqu [rdi + 472], ymm11",
        "vmovdqu [rdi + 504], ymm12",
        "vmovdqu [rdi + 536], ymm13",
        "vmovdqu [rdi + 568], ymm14",
        "vmovdqu [rdi + 600], ymm15",
        "add rsp, 16",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbp",
        "pop rbx",
        "vzeroupper",
        "ret",
    )
}

/// Four goroutines on two Ps, each holding distinct values in every general and vector
/// register through spins that sysmon stops by signal (a 100 µs time slice), until thousands of
/// preemptions have happened; every register must come back intact every time.
#[test]
fn every_register_survives_thousands_of_preemptions() {
    assert!(
        std::arch::is_x86_feature_detected!("avx"),
        "this test needs AVX"
    );
    const WANT: u64 = 3000;
    let spins = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let (sp, bd) = (spins.clone(), bad.clone());
    let mut preempts = 0;
    Runtime::new(2)
        .timeslice(Duration::from_micros(100))
        .block_on_with(
            |s| preempts = s.counters().async_preempts,
            move || {
                let first = signal_stats().injected;
                let t0 = std::time::Instant::now();
                let wg = Arc::new(rt_core::WaitGroup::new());
                for gid in 0..4u64 {
                    let (wg, sp, bd) = (wg.clone(), sp.clone(), bd.clone());
                    wg.add(1);
                    spawn(move || {
                        let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (gid << 56);
                        let mut round = 0u64;
                        while signal_stats().injected - first < WANT
                            && t0.elapsed() < Duration::from_secs(60)
                        {
                            let pattern: Vec<u64> = (0..WORDS)
                                .map(|_| {
                                    x ^= x << 13;
                                    x ^= x >> 7;
                                    x ^= x << 17;
                                    x
                                })
                                .collect();
                            let mut out = vec![0u64; WORDS];
                            // SAFETY: both buffers have WORDS words; reg_spin saves and
                            // restores every callee-saved register it uses.
                            unsafe { reg_spin(pattern.as_ptr(), out.as_mut_ptr(), 2_000_000) };
                            if out != pattern {
                                let i = (0..WORDS).find(|&i| out[i] != pattern[i]).unwrap();
                                eprintln!(
                                    "goroutine {gid} round {round}: word {i} is {:#x}, was {:#x}",
                                    out[i], pattern[i]
                                );
                                bd.fetch_add(1, Ordering::Relaxed);
                            }
                            sp.fetch_add(1, Ordering::Relaxed);
                            round += 1;
                        }
                        wg.done();
                    });
                }
                wg.wait();
            },
        );
    let (spins, bad) = (spins.load(Ordering::Relaxed), bad.load(Ordering::Relaxed));
    println!(
        "{preempts} asynchronous preemptions over {spins} register-checked spins, {bad} corrupted"
    );
    assert_eq!(bad, 0, "registers corrupted in {bad} of {spins} spins");
    assert!(
        preempts >= WANT / 2,
        "only {preempts} asynchronous preemptions: the check proves little"
    );
}

/// A goroutine that spends its time in the C library (`memchr` over 16 MiB) is flagged by
/// sysmon again and again, but never stopped inside libc: signals that land there are declined
/// (`foreign_pc`), and every PC at which one was taken lies in this executable.
#[test]
fn never_preempted_inside_the_c_library() {
    let before = signal_stats();
    let found = Runtime::new(1)
        .timeslice(Duration::from_micros(200))
        .block_on(move || {
            let mut buf = vec![0u8; 16 << 20];
            let last = buf.len() - 1;
            buf[last] = 1;
            let t0 = std::time::Instant::now();
            let mut found = 0u64;
            while (signal_stats().foreign_pc - before.foreign_pc < 20
                || signal_stats().injected == before.injected)
                && t0.elapsed() < Duration::from_secs(30)
            {
                // SAFETY: buf is a live buffer of buf.len() bytes.
                let p = unsafe { libc::memchr(buf.as_ptr().cast(), 1, buf.len()) };
                if p as usize == buf.as_ptr() as usize + last {
                    found += 1;
                }
            }
            found
        });
    let after = signal_stats();
    let declined = after.foreign_pc - before.foreign_pc;
    assert!(found > 0, "memchr never found the byte");
    let me = exe_base(reg_spin as *const () as usize);
    for &pc in &after.last_pcs {
        assert_eq!(
            exe_base(pc),
            me,
            "a goroutine was preempted at {pc:#x}, outside the executable"
        );
    }
    assert!(
        declined > 0,
        "no signal found the goroutine in libc: the test did not exercise the check"
    );
    println!(
        "{declined} signals declined in libc; {} injections, all in the executable",
        after.last_pcs.len()
    );
}

/// The load address of the object holding `pc` (dladdr), 0 if none.
fn exe_base(pc: usize) -> usize {
    // SAFETY: a zeroed Dl_info (null pointers and zeros) is a valid value.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the loader's maps and writes `info`.
    if unsafe { libc::dladdr(pc as *const libc::c_void, &mut info) } == 0 {
        return 0;
    }
    info.dli_fbase as usize
}
