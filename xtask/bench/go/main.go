// The Go side of `cargo xtask bench`: the same measurements as rt-core/benches/sched.rs, on
// Go's own runtime, printed in the same JSON-lines format (median of 7 runs).
package main

import (
	"flag"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

func atomicLoad(p *int32) int32     { return atomic.LoadInt32(p) }
func atomicStore(p *int32, v int32) { atomic.StoreInt32(p, v) }

const runs = 7

func median(v []float64) float64 {
	sort.Float64s(v)
	return v[len(v)/2]
}

func report(name string, procs int, ns float64) {
	fmt.Printf("{\"name\": \"%s\", \"procs\": %d, \"ns_per_op\": %.2f}\n", name, procs, ns)
}

// The benchmarks' closures capture this global WaitGroup.
var wg sync.WaitGroup

// gosched: the round trip of one goroutine yielding and getting the processor back.
func benchGosched(iters int) float64 {
	start := time.Now()
	for j := 0; j < iters; j++ {
		runtime.Gosched()
	}
	return float64(time.Since(start).Nanoseconds()) / float64(iters)
}

// gosched_pingpong: two goroutines take turns with runtime.Gosched.
func benchGoschedPingpong(iters int) float64 {
	start := time.Now()
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			for j := 0; j < iters; j++ {
				runtime.Gosched()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	return float64(time.Since(start).Nanoseconds()) / float64(2*iters)
}

// chan_pingpong: two goroutines bounce a value over two unbuffered channels; per round trip.
func benchChanPingpong(iters int) float64 {
	ping := make(chan int)
	pong := make(chan int)
	wg.Add(1)
	go func() {
		for v := range ping {
			pong <- v + 1
		}
		wg.Done()
	}()
	start := time.Now()
	v := 0
	for j := 0; j < iters; j++ {
		ping <- v
		v = <-pong
	}
	ns := float64(time.Since(start).Nanoseconds()) / float64(iters)
	if v != iters {
		panic("chan_pingpong: lost a value")
	}
	close(ping)
	wg.Wait()
	return ns
}

// chan_buffered: one producer sends n values into a channel of capacity 128, one consumer
// receives them all; per message.
func benchChanBuffered(n int) float64 {
	ch := make(chan int, 128)
	start := time.Now()
	go func() {
		for i := 0; i < n; i++ {
			ch <- i
		}
		close(ch)
	}()
	sum := 0
	for v := range ch {
		sum += v
	}
	ns := float64(time.Since(start).Nanoseconds()) / float64(n)
	if sum != n*(n-1)/2 {
		panic("chan_buffered: lost a value")
	}
	return ns
}

// spawn: n goroutines that each just finish.
func benchSpawn(n int) float64 {
	start := time.Now()
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() { wg.Done() }()
	}
	wg.Wait()
	return float64(time.Since(start).Nanoseconds()) / float64(n)
}

// preempt_latency: at GOMAXPROCS=1 a goroutine spins in a loop with no function call (only
// asynchronous preemption can stop it) while the main goroutine sleeps 1 ms, rounds times;
// returns the median and the max of how late it woke, in ns.
func benchPreemptLatency(rounds int) (float64, float64) {
	runtime.GOMAXPROCS(1)
	var stop int32
	var sink uint64
	go func() {
		x := uint64(1)
		for atomicLoad(&stop) == 0 {
			x = x*6364136223846793005 + 1
		}
		sink = x
	}()
	runtime.Gosched()
	late := make([]float64, rounds)
	for i := range late {
		deadline := time.Now().Add(time.Millisecond)
		time.Sleep(time.Millisecond)
		late[i] = float64(time.Since(deadline).Nanoseconds())
	}
	atomicStore(&stop, 1)
	_ = sink
	sort.Float64s(late)
	return late[len(late)/2], late[len(late)-1]
}

// sleep_late: how late time.Sleep(1 ms) wakes with nothing else running, rounds times;
// returns the median and the max, in ns (time.Now carries the monotonic clock).
func benchSleepLate(rounds int) (float64, float64) {
	late := make([]float64, rounds)
	for i := range late {
		deadline := time.Now().Add(time.Millisecond)
		time.Sleep(time.Millisecond)
		late[i] = float64(time.Since(deadline).Nanoseconds())
	}
	sort.Float64s(late)
	return late[len(late)/2], late[len(late)-1]
}

// select_timeout: a select on a never-ready channel and time.After(100 us); per select,
// the wait included.
func benchSelectTimeout(iters int) float64 {
	never := make(chan int)
	timeouts := 0
	start := time.Now()
	for j := 0; j < iters; j++ {
		select {
		case <-never:
			panic("select_timeout: nothing sends on never")
		case <-time.After(100 * time.Microsecond):
			timeouts++
		}
	}
	ns := float64(time.Since(start).Nanoseconds()) / float64(iters)
	if timeouts != iters {
		panic("select_timeout: lost a timeout")
	}
	return ns
}

func measure(f func() float64) float64 {
	v := make([]float64, runs)
	for i := range v {
		v[i] = f()
	}
	return median(v)
}

func main() {
	quick := flag.Bool("quick", false, "a tenth of the iterations")
	flag.Parse()
	scale := 1
	if *quick {
		scale = 10
	}
	for _, procs := range []int{1, 2} {
		runtime.GOMAXPROCS(procs)
		report("gosched", procs, measure(func() float64 { return benchGosched(400000 / scale) }))
		report("gosched_pingpong", procs, measure(func() float64 { return benchGoschedPingpong(200000 / scale) }))
		report("chan_pingpong", procs, measure(func() float64 { return benchChanPingpong(200000 / scale) }))
		report("chan_buffered", procs, measure(func() float64 { return benchChanBuffered(1000000 / scale) }))
	}
	for _, procs := range []int{1, 2} {
		runtime.GOMAXPROCS(procs)
		report("spawn", procs, measure(func() float64 { return benchSpawn(1000000 / scale) }))
	}
	med, max := benchPreemptLatency(100 / scale)
	report("preempt_latency", 1, med)
	report("preempt_latency_max", 1, max)
	for _, procs := range []int{1, 2} {
		runtime.GOMAXPROCS(procs)
		med, max := benchSleepLate(200 / scale)
		report("sleep_late", procs, med)
		report("sleep_late_max", procs, max)
		report("select_timeout", procs, measure(func() float64 { return benchSelectTimeout(1000 / scale) }))
	}
}
