//! With `preempt=0` the same scenario as `preempt`'s first case must starve the sleeper (so
//! that test can fail): nothing stops a loop with no safe point.
//! @smp 2
//! @args preempt=0
//! @expect-fail the sleeper was starved: 0 of 20 wake-ups during 2000 ms of a tight loop

#![no_std]
#![no_main]

use tests::preempt::{assert_not_starved, tight_loop_beside_a_sleeper};

kernel::test_kernel!(tight_loop_starves_a_sleeper_without_preemption);

fn tight_loop_starves_a_sleeper_without_preemption() {
    let r = tight_loop_beside_a_sleeper(core::hint::spin_loop);
    let p = kernel::rt::stats::last_run_preemptions();
    assert_eq!(
        p,
        kernel::rt::stats::Preemptions::default(),
        "preempt=0 still preempted"
    );
    assert_not_starved(&r, "preemption off");
}
