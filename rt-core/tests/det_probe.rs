use rt_core::{chan, spawn, Runtime, WaitGroup};
use std::sync::{Arc, Mutex};
fn body() -> Vec<u64> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let ch = chan::make::<u64>(2);
    let wg = Arc::new(WaitGroup::new());
    for i in 0..4u64 {
        let (ch, wg, log) = (ch.clone(), wg.clone(), log.clone());
        wg.add(1);
        spawn(move || { for j in 0..50 { ch.send(i*100+j); } log.lock().unwrap().push(1000+i); wg.done(); });
    }
    let mut got = Vec::new();
    for _ in 0..200 { got.push(ch.recv().unwrap()); }
    wg.wait();
    got.extend(log.lock().unwrap().iter());
    got
}
#[test]
fn probe() {
    let t = std::time::Instant::now();
    let mut runs = Vec::new();
    for seed in [1u64, 1, 2, 2, 3] {
        let r = Runtime::new(3).deterministic(seed).block_on(body);
        let d = rt_core::host::det::last_run().unwrap();
        println!("seed {seed}: {:?} first {:?}", d, &r[..10]);
        runs.push((r, d));
    }
    assert_eq!(runs[0], runs[1]);
    assert_eq!(runs[2], runs[3]);
    assert_ne!(runs[0], runs[2]);
    println!("{:?}", t.elapsed());
}
