//! Cooperative preemption alone (`asyncpreemptoff=1`, Go's GODEBUG name): a loop that passes a
//! safe point (`preempt_point()`, Go's function prologue) yields when sysmon flags it, and
//! nothing is preempted from the interrupt.
//! @smp 1 2
//! @cpu qemu64 qemu64,+x2apic
//! @args asyncpreemptoff=1

#![no_std]
#![no_main]

use tests::preempt::{assert_not_starved, tight_loop_beside_a_sleeper};

kernel::test_kernel!(safe_points_yield_when_flagged);

fn safe_points_yield_when_flagged() {
    let r = tight_loop_beside_a_sleeper(rt_core::preempt_point);
    assert_not_starved(&r, "safe points only");
    let p = kernel::rt::stats::last_run_preemptions();
    assert!(p.sync > 0, "no preemption at a safe point: {p:?}");
    assert_eq!(
        p.asynchronous, 0,
        "asyncpreemptoff=1 but preempted from the interrupt"
    );
}
