package engine

// jobIndex holds a partition's unfinished jobs by offset. A partition's jobs
// are admitted in ascending offset order (the tracker starts each offset
// once, in order), so they sit in a ring in that order and a lookup is a
// binary search; a finished job leaves a hole that leaves the ring when it
// reaches the front. This replaced a map[int64]*job whose insert, lookup
// and delete per message were 6–8 % of cproxy's CPU at C=16.
//
// The ring spans the offsets from the oldest unfinished job to the newest,
// like the tracker's own ring.
type jobIndex struct {
	q    deque[jobSlot]
	live int
}

type jobSlot struct {
	off int64
	j   *job // nil: finished
}

func (x *jobIndex) len() int { return x.live }

// add appends j, whose offset must be above every offset added before.
func (x *jobIndex) add(j *job) {
	if n := x.q.len(); n > 0 && x.q.at(n-1).off >= j.off {
		panic("engine: job offsets out of order")
	}
	x.q.pushBack(jobSlot{off: j.off, j: j})
	x.live++
}

// find returns the ring index of off, or -1.
func (x *jobIndex) find(off int64) int {
	lo, hi := 0, x.q.len()
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if x.q.at(m).off < off {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < x.q.len() && x.q.at(lo).off == off {
		return lo
	}
	return -1
}

// get returns the unfinished job at off, or nil.
func (x *jobIndex) get(off int64) *job {
	if i := x.find(off); i >= 0 {
		return x.q.at(i).j
	}
	return nil
}

// remove drops j (a no-op if it is not there).
func (x *jobIndex) remove(j *job) {
	i := x.find(j.off)
	if i < 0 || x.q.at(i).j != j {
		return
	}
	x.q.set(i, jobSlot{off: j.off})
	x.live--
	for x.q.len() > 0 && x.q.front().j == nil {
		x.q.popFront()
	}
}

// each calls f for every unfinished job, in offset order.
func (x *jobIndex) each(f func(*job)) {
	for i := range x.q.len() {
		if j := x.q.at(i).j; j != nil {
			f(j)
		}
	}
}
