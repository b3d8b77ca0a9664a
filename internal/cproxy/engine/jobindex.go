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

// add inserts j. Its offset is above every offset added before (the
// tracker starts offsets in ascending order), so it is appended; an offset
// out of order is inserted in its place the slow way rather than breaking
// the order, and an offset already present is replaced.
func (x *jobIndex) add(j *job) {
	n := x.q.len()
	if n == 0 || x.q.at(n-1).off < j.off {
		x.q.pushBack(jobSlot{off: j.off, j: j})
		x.live++
		return
	}
	i := x.search(j.off)
	if x.q.at(i).off == j.off {
		if x.q.at(i).j == nil {
			x.live++
		}
		x.q.set(i, jobSlot{off: j.off, j: j})
		return
	}
	slots := make([]jobSlot, 0, n+1)
	for k := range n {
		if k == i {
			slots = append(slots, jobSlot{off: j.off, j: j})
		}
		slots = append(slots, x.q.at(k))
	}
	x.q.clear()
	for _, s := range slots {
		x.q.pushBack(s)
	}
	x.live++
}

// search returns the ring index of the first slot whose offset is not
// below off (len when there is none).
func (x *jobIndex) search(off int64) int {
	lo, hi := 0, x.q.len()
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if x.q.at(m).off < off {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// find returns the ring index of off, or -1.
func (x *jobIndex) find(off int64) int {
	if i := x.search(off); i < x.q.len() && x.q.at(i).off == off {
		return i
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
