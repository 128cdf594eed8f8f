// S1-S3 and S7c of benches/README.md on Go's scheduler, to compare with
// bench_sched in one sitting (benches/peers/run).
//
//	WEFT_WORKERS=2 peer-go S1|S2|S3|S7c-k2|S7c-k10|S7c-k16
//
// As in bench_sched: the driver is a goroutine, the timed interval starts
// right before the first spawn and ends when the driver sees the
// completion signal (a channel closed by the goroutine that brings the
// shared counter to its target; S7c: the root's result), and the output
// is one RESULT line. GOMAXPROCS is the worker count.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"
)

var (
	counter, target int64
	done            = make(chan struct{})
)

func countOne() {
	if atomic.AddInt64(&counter, 1) == target {
		close(done)
	}
}

func s1() int {
	for i := int64(0); i < target; i++ {
		go countOne()
	}
	return 100000
}

func s2() int {
	for i := int64(0); i < target; i++ {
		go func() {
			for j := 0; j < 1000; j++ {
				runtime.Gosched()
			}
			countOne()
		}()
	}
	return 200000
}

func s3() int {
	for i := int64(0); i < target; i++ {
		ping, pong := make(chan int, 1), make(chan int, 1)
		go func() {
			for v := range ping {
				pong <- v
			}
		}()
		go func() {
			for j := 0; j < 1000; j++ {
				ping <- j
				if <-pong != j {
					panic("S3: wrong echo")
				}
			}
			close(ping)
			countOne()
		}()
	}
	return 1000000
}

// S7c: leaves return their number, parents the sum of their children's.
func tree(k, depth, first int64, out chan<- int64) {
	if depth == 0 {
		out <- first
		return
	}
	span := int64(1)
	for d := int64(1); d < depth; d++ {
		span *= k
	}
	kids := make(chan int64, k)
	for i := int64(0); i < k; i++ {
		go tree(k, depth-1, first+i*span, kids)
	}
	sum := int64(0)
	for i := int64(0); i < k; i++ {
		sum += <-kids
	}
	out <- sum
}

func s7c(k, depth int64) int {
	leaves, tasks := int64(1), int64(1)
	for d := int64(0); d < depth; d++ {
		leaves *= k
		tasks += leaves
	}
	out := make(chan int64, 1)
	go tree(k, depth, 0, out)
	if <-out != leaves*(leaves-1)/2 {
		panic("S7c tree: wrong result")
	}
	countOne()
	return int(tasks)
}

func main() {
	wl := ""
	if len(os.Args) > 1 {
		wl = os.Args[1]
	}
	workers, err := strconv.Atoi(os.Getenv("WEFT_WORKERS"))
	if err != nil {
		workers = 2
	}
	runtime.GOMAXPROCS(workers)
	run := map[string]func() int{
		"S1": s1, "S2": s2, "S3": s3,
		"S7c-k2":  func() int { return s7c(2, 19) },
		"S7c-k10": func() int { return s7c(10, 6) },
		"S7c-k16": func() int { return s7c(16, 5) },
	}[wl]
	switch {
	case run == nil:
		fmt.Fprintln(os.Stderr, "usage: peer-go S1|S2|S3|S7c-k2|S7c-k10|S7c-k16")
		os.Exit(2)
	case wl == "S1":
		target = 100000
	case wl == "S2":
		target = 200
	case wl == "S3":
		target = 1000
	default:
		target = 1
	}
	res := make(chan [2]float64)
	go func() {
		t0 := time.Now()
		ops := run()
		<-done
		res <- [2]float64{float64(ops), time.Since(t0).Seconds()}
	}()
	r := <-res
	fmt.Printf("RESULT workload=%s workers=%d ops=%.0f secs=%.6f rate=%.0f\n",
		wl, workers, r[0], r[1], r[0]/r[1])
}
