package server

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// parallel runs work(0) … work(n-1), taking them in order, on GOMAXPROCS-1
// goroutines and on the caller's: wait(i) runs item i itself if no
// goroutine has taken it yet, and the next items while another goroutine
// runs it. A caller that uses the outcomes in order, such as a unit's
// writes, thus never waits while there is work to do, and with one core, or
// one item, everything runs on the caller's goroutine.
type parallel struct {
	work    func(i int)
	taken   []atomic.Bool
	done    []chan struct{} // closed once the item has run
	panics  []any           // what an item panicked with, panicked again by wait
	next    atomic.Int64    // the next item to take in order
	stopped atomic.Bool
	wg      sync.WaitGroup
}

func startParallel(n int, work func(i int)) *parallel {
	p := &parallel{work: work, taken: make([]atomic.Bool, n), done: make([]chan struct{}, n), panics: make([]any, n)}
	for i := range p.done {
		p.done[i] = make(chan struct{})
	}
	for range min(runtime.GOMAXPROCS(0), n) - 1 {
		p.wg.Go(func() {
			for !p.stopped.Load() && p.runNext() {
			}
		})
	}
	return p
}

// runNext runs the next item not taken, and returns false if there is
// none.
func (p *parallel) runNext() bool {
	for {
		i := p.next.Add(1) - 1
		if i >= int64(len(p.done)) {
			return false
		}
		if p.run(int(i)) {
			return true
		}
	}
}

// run runs item i unless it was taken, keeping its panic: a panic on a
// goroutine of its own would end the process, not just the request. It
// returns false if the item was taken.
func (p *parallel) run(i int) bool {
	if p.taken[i].Swap(true) {
		return false
	}
	defer close(p.done[i])
	defer func() { p.panics[i] = recover() }()
	p.work(i)
	return true
}

// wait returns once item i has run, running it, or the items after it
// while another goroutine runs it, and panics if the item did.
func (p *parallel) wait(i int) {
	p.run(i)
	for waiting := true; waiting; {
		select {
		case <-p.done[i]:
			waiting = false
		default:
			waiting = p.runNext()
		}
	}
	<-p.done[i]
	if v := p.panics[i]; v != nil {
		panic(v)
	}
}

// stop lets no more items start on the goroutines and waits for those
// running to end.
func (p *parallel) stop() {
	p.stopped.Store(true)
	p.wg.Wait()
}
