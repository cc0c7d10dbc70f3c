// The Go side of `cargo xtask bench`: the same measurements as rt-core/benches/sched.rs, on
// Go's own runtime, printed in the same JSON-lines format (median of 7 runs).
//
// The command line is the one every benchmark program of `cargo xtask bench` takes:
// `[-quick] [-procs P] [-only skynet|ring|parked [-n N]]` (Go's flags take `--` as well).
// Without -only: the micro-benchmarks, at GOMAXPROCS P alone if given, else 1 and 2. With it:
// that one whole-program row, alone in this process (no goroutines left in the free list by
// earlier benchmarks, so parked_<n>'s memory is the goroutines' own):
//   - skynet: a tree of goroutines of fan-out 10 with 10^6 leaves; each leaf sends its number
//     up an unbuffered channel, each inner node sends the sum of its 10 children up, the root
//     checks 499999500000; ns per leaf.
//   - ring: 503 goroutines in a ring of unbuffered channels pass a token 10^6 hops (the
//     benchmark game's thread-ring); ns per hop.
//   - parked_<n>: n goroutines that each block receiving on one unbuffered channel; ns per
//     goroutine until all are parked, and "bytes_per_g", the growth of VmRSS
//     (/proc/self/status) per parked goroutine; then the channel is closed.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
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

// skynet: one node of size leaves numbered from num; sends their sum on up.
func skynet(up chan<- int, num, size int) {
	if size == 1 {
		up <- num
		return
	}
	rc := make(chan int)
	child := size / 10
	for i := 0; i < 10; i++ {
		go skynet(rc, num+i*child, child)
	}
	sum := 0
	for i := 0; i < 10; i++ {
		sum += <-rc
	}
	up <- sum
}

const skynetLeaves = 1000000

func benchSkynet() float64 {
	start := time.Now()
	c := make(chan int)
	go skynet(c, 0, skynetLeaves)
	sum := <-c
	ns := float64(time.Since(start).Nanoseconds()) / skynetLeaves
	if sum != skynetLeaves*(skynetLeaves-1)/2 {
		panic("skynet: wrong sum")
	}
	return ns
}

const ringSize, ringHops = 503, 1000000

// ring: the thread-ring; the member that receives 0 reports its index on done.
func benchRing() float64 {
	chans := make([]chan int, ringSize)
	for i := range chans {
		chans[i] = make(chan int)
	}
	done := make(chan int)
	for i := range chans {
		go func(i int, in <-chan int, next chan<- int) {
			for v := range in {
				if v == 0 {
					done <- i
				} else {
					next <- v - 1
				}
			}
		}(i, chans[i], chans[(i+1)%ringSize])
	}
	start := time.Now()
	chans[0] <- ringHops
	last := <-done
	ns := float64(time.Since(start).Nanoseconds()) / ringHops
	if last != ringHops%ringSize {
		panic("ring: the token ended at the wrong member")
	}
	for _, c := range chans {
		close(c)
	}
	return ns
}

// vmRSS: this process's resident memory in bytes, from /proc/self/status.
func vmRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		panic(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				panic(err)
			}
			return kb * 1024
		}
	}
	panic("no VmRSS in /proc/self/status")
}

// parked: n goroutines each park receiving on one unbuffered channel; returns ns per
// goroutine until all are parked and the resident bytes per parked goroutine.
func benchParked(n int) (float64, float64) {
	ch := make(chan struct{})
	var parked, released sync.WaitGroup
	rss := vmRSS()
	start := time.Now()
	parked.Add(n)
	released.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			parked.Done()
			<-ch
			released.Done()
		}()
	}
	parked.Wait()
	ns := float64(time.Since(start).Nanoseconds()) / float64(n)
	bytes := float64(vmRSS()-rss) / float64(n)
	close(ch)
	released.Wait()
	return ns, bytes
}

func parkedName(n int) string {
	switch {
	case n == 1000000:
		return "parked_1m"
	case n%1000 == 0:
		return fmt.Sprintf("parked_%dk", n/1000)
	}
	return fmt.Sprintf("parked_%d", n)
}

func measure(f func() float64) float64 {
	v := make([]float64, runs)
	for i := range v {
		v[i] = f()
	}
	return median(v)
}

func main() {
	quick := flag.Bool("quick", false, "a tenth of the iterations (whole-program rows: one run)")
	procsFlag := flag.Int("procs", 0, "only this GOMAXPROCS (default 1 and 2)")
	only := flag.String("only", "", "one whole-program row: skynet, ring or parked")
	n := flag.Int("n", 1000000, "parked: how many goroutines")
	flag.Parse()
	scale := 1
	if *quick {
		scale = 10
	}
	procsList := []int{1, 2}
	if *procsFlag != 0 {
		procsList = []int{*procsFlag}
	}
	if *only != "" {
		runs := 3
		if *quick {
			runs = 1
		}
		for _, procs := range procsList {
			runtime.GOMAXPROCS(procs)
			switch *only {
			case "skynet", "ring":
				f := benchSkynet
				if *only == "ring" {
					f = benchRing
				}
				v := make([]float64, runs)
				for i := range v {
					v[i] = f()
				}
				report(*only, procs, median(v))
			case "parked":
				ns, bytes := benchParked(*n)
				fmt.Printf("{\"name\": \"%s\", \"procs\": %d, \"ns_per_op\": %.2f, \"bytes_per_g\": %.2f}\n",
					parkedName(*n), procs, ns, bytes)
			default:
				panic("no whole-program row " + *only)
			}
		}
		return
	}
	for _, procs := range procsList {
		runtime.GOMAXPROCS(procs)
		report("gosched", procs, measure(func() float64 { return benchGosched(400000 / scale) }))
		report("gosched_pingpong", procs, measure(func() float64 { return benchGoschedPingpong(200000 / scale) }))
		report("chan_pingpong", procs, measure(func() float64 { return benchChanPingpong(200000 / scale) }))
		report("chan_buffered", procs, measure(func() float64 { return benchChanBuffered(1000000 / scale) }))
	}
	for _, procs := range procsList {
		runtime.GOMAXPROCS(procs)
		report("spawn", procs, measure(func() float64 { return benchSpawn(1000000 / scale) }))
	}
	if procsList[0] == 1 {
		med, max := benchPreemptLatency(100 / scale)
		report("preempt_latency", 1, med)
		report("preempt_latency_max", 1, max)
	}
	for _, procs := range procsList {
		runtime.GOMAXPROCS(procs)
		med, max := benchSleepLate(200 / scale)
		report("sleep_late", procs, med)
		report("sleep_late_max", procs, max)
		report("select_timeout", procs, measure(func() float64 { return benchSelectTimeout(1000 / scale) }))
	}
}
