//! Go's canonical goroutine leak, found without a garbage collector: three workers send their
//! results on an unbuffered channel, and the receiver returns after the first. The other two
//! can never send; `block_on` reports them when it returns.
//!
//! `cargo run -p rt-core --example leak`

use rt_core::{chan, spawn, Runtime};

fn first_result(jobs: u64) -> u64 {
    let results = chan::make::<u64>(0);
    for job in 0..jobs {
        let tx = results.clone();
        spawn(move || tx.send(job * job));
    }
    // Returns after the first result: the other workers are left blocked in `send`.
    results.recv().unwrap()
}

fn main() {
    let r = Runtime::new(2).block_on(|| {
        let r = first_result(3);
        // Give the workers time to block.
        rt_core::time::sleep(std::time::Duration::from_millis(10));
        r
    });
    println!("first result: {r}");
}
