package engine

import (
	"container/heap"
	"time"
)

// timerKind says what a due timer does (see Engine.fireLocked).
type timerKind uint8

const (
	tHandoutDeadline timerKind = iota + 1 // the jobs of one pull timed out
	tJobRetry                             // a nacked job's retry delay elapsed
	tJobDeadLetter                        // retry a failed dead-letter publish
	tWaiter                               // a long-poll's linger elapsed
	tCommit                               // a partition's commit interval elapsed
	tLimiter                              // a partition's rate-limiter reservation is due
)

// timer is an entry of the engine's timer heap. It is embedded in the
// object it belongs to (job, waiter, part), so scheduling allocates
// nothing. idx is its heap index, -1 when not scheduled.
type timer struct {
	when time.Time
	kind timerKind
	idx  int
	job  *job
	h    *handout
	w    *waiter
	p    *part
}

func (t *timer) scheduled() bool { return t.idx >= 0 }

// timerHeap is a min-heap on when (container/heap).
type timerHeap []*timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].when.Before(h[j].when) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = i
	h[j].idx = j
}
func (h *timerHeap) Push(x any) {
	t := x.(*timer)
	t.idx = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	n := len(old)
	t := old[n-1]
	old[n-1] = nil
	t.idx = -1
	*h = old[:n-1]
	return t
}

// set schedules t at when, or moves it there.
func (h *timerHeap) set(t *timer, when time.Time) {
	t.when = when
	if t.idx >= 0 {
		heap.Fix(h, t.idx)
		return
	}
	heap.Push(h, t)
}

// cancel unschedules t (no-op when not scheduled).
func (h *timerHeap) cancel(t *timer) {
	if t.idx >= 0 {
		heap.Remove(h, t.idx)
	}
}

// peek returns the earliest timer or nil.
func (h timerHeap) peek() *timer {
	if len(h) == 0 {
		return nil
	}
	return h[0]
}

// popDue removes and returns the earliest timer if it is due at now.
func (h *timerHeap) popDue(now time.Time) *timer {
	if len(*h) == 0 || (*h)[0].when.After(now) {
		return nil
	}
	return heap.Pop(h).(*timer)
}
