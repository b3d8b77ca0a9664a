package offset

import (
	"fmt"
	"math"
)

// Tracker is the offset state of one partition or queue. See the package
// documentation for the semantics. The zero value is not usable; create one
// with [New] or [Decode]. A Tracker must be used by one goroutine at a time.
type Tracker struct {
	// base is the committable offset: every offset below it is finished, and
	// base itself is not (it is the oldest unfinished started offset, or
	// next when nothing is in flight).
	base int64
	// next is one past the highest started offset; base <= next.
	next int64

	// ring holds the started offsets in [base, next) in ascending order,
	// finished or not, starting at index head; ring[head] is always
	// unfinished (finished heads are popped at once), so base ==
	// ring[head].off whenever n > 0. Offsets in [base, next) missing from
	// the ring are gaps or restored acknowledgements and count as finished.
	ring     []entry
	head, n  int
	inFlight int // unfinished entries in ring

	// acked holds the offsets >= next that were finished according to the
	// metadata this tracker was restored from: sorted, disjoint,
	// non-adjacent spans, consumed from index ackedHead on as Start moves
	// next past them. When n == 0, acked[ackedHead].lo > next.
	acked     []span
	ackedHead int

	limit int // maximum metadata length
}

type entry struct {
	off  int64
	done bool
}

// span is the half-open offset range [lo, hi).
type span struct{ lo, hi int64 }

const (
	minRing = 16
	// maxIdleRing is the ring capacity the tracker keeps when it shrinks.
	maxIdleRing = 256
)

// Option configures a Tracker.
type Option func(*Tracker)

// WithMaxMetadataLen sets the maximum length of [Tracker.Metadata] (and of
// the metadata [Decode] accepts). Values below [MinMetadataLen] are raised to
// it. The default is [DefaultMaxMetadataLen], Kafka's default
// offset.metadata.max.bytes.
func WithMaxMetadataLen(n int) Option {
	return func(t *Tracker) { t.limit = max(n, MinMetadataLen) }
}

// New returns a tracker for a partition whose committed offset (next offset
// to read) is committed, with no knowledge of finished offsets above it.
// committed must be a real offset: resolve "nothing committed yet" to the
// starting position first. New panics if committed is negative.
func New(committed int64, opts ...Option) *Tracker {
	if committed < 0 {
		panic(fmt.Sprintf("offset.New: negative committed offset %d", committed))
	}
	t := &Tracker{base: committed, next: committed, limit: DefaultMaxMetadataLen}
	for _, o := range opts {
		o(t)
	}
	return t
}

// Committable returns the offset to commit: the lowest offset that is not
// finished. It never decreases.
func (t *Tracker) Committable() int64 { return t.base }

// Next returns the next offset the tracker expects to be started: one past
// the highest started offset, and never below Committable.
func (t *Tracker) Next() int64 { return t.next }

// InFlight returns the number of started offsets that are not finished.
func (t *Tracker) InFlight() int { return t.inFlight }

// String describes the tracker for logs.
func (t *Tracker) String() string {
	return fmt.Sprintf("offset.Tracker{committable: %d, next: %d, inFlight: %d}", t.base, t.next, t.inFlight)
}

// Start records that the message at offset entered processing and reports
// whether it should be processed. It reports false, changing nothing else,
// for an offset below Next() (already started, already finished, or a gap
// that was skipped) and for an invalid offset (negative or math.MaxInt64).
// For an offset that the restored metadata lists as finished it reports
// false and moves Next() past it. Offsets between Next() and offset that
// were never started become gaps and count as finished.
func (t *Tracker) Start(offset int64) bool {
	if offset < t.next || offset == math.MaxInt64 {
		return false // also rejects negative offsets: t.next >= 0
	}
	skip := false
	if t.ackedHead < len(t.acked) {
		skip = t.consumeAcked(offset)
	}
	t.next = offset + 1
	if skip {
		if t.n == 0 {
			t.base = t.next
			t.foldAcked()
		}
		return false
	}
	t.push(offset)
	t.inFlight++
	if t.n == 1 {
		t.base = offset
	}
	return true
}

// consumeAcked drops the restored spans that end at or below offset and
// reports whether offset itself is in a restored span, which it then
// removes from the span.
func (t *Tracker) consumeAcked(offset int64) bool {
	for t.ackedHead < len(t.acked) && t.acked[t.ackedHead].hi <= offset {
		t.ackedHead++
	}
	if t.ackedHead == len(t.acked) {
		t.acked, t.ackedHead = nil, 0
		return false
	}
	s := &t.acked[t.ackedHead]
	if s.lo > offset {
		return false
	}
	s.lo = offset + 1
	if s.lo == s.hi {
		t.ackedHead++
	}
	return true
}

// foldAcked is called when nothing is in flight (base == next): a restored
// span starting at next is finished, so both move past it.
func (t *Tracker) foldAcked() {
	if t.ackedHead < len(t.acked) && t.acked[t.ackedHead].lo == t.next {
		t.next = t.acked[t.ackedHead].hi
		t.base = t.next
		t.ackedHead++
	}
	if t.ackedHead == len(t.acked) {
		t.acked, t.ackedHead = nil, 0
	}
}

// Done records that the started message at offset is finished and reports
// whether that changed anything. It reports false for an offset that is not
// in flight: below Committable, never started, or already finished.
func (t *Tracker) Done(offset int64) bool {
	if offset < t.base || offset >= t.next {
		return false
	}
	i := t.find(offset)
	if i < 0 {
		return false
	}
	e := &t.ring[(t.head+i)&(len(t.ring)-1)]
	if e.done {
		return false
	}
	e.done = true
	t.inFlight--
	if i == 0 {
		t.popFinished()
	}
	return true
}

// find returns the ring position (0 = head) of offset, or -1. The caller
// guarantees base <= offset < next.
func (t *Tracker) find(offset int64) int {
	if t.n == 0 {
		return -1
	}
	mask := len(t.ring) - 1
	// Offsets are distinct and ascending, so the entry at position i holds
	// an offset >= base+i: offset can only be at position <= offset-base,
	// and is exactly there when there are no gaps (the common case).
	d := offset - t.base
	hi := t.n - 1
	if d < int64(t.n) {
		if t.ring[(t.head+int(d))&mask].off == offset {
			return int(d)
		}
		hi = int(d)
	}
	lo := 0
	for lo <= hi {
		m := int(uint(lo+hi) >> 1)
		switch off := t.ring[(t.head+m)&mask].off; {
		case off == offset:
			return m
		case off < offset:
			lo = m + 1
		default:
			hi = m - 1
		}
	}
	return -1
}

// popFinished removes finished entries from the head and moves base.
func (t *Tracker) popFinished() {
	mask := len(t.ring) - 1
	for t.n > 0 && t.ring[t.head].done {
		t.head = (t.head + 1) & mask
		t.n--
	}
	if t.n > 0 {
		t.base = t.ring[t.head].off
		if len(t.ring) > maxIdleRing && t.n < len(t.ring)/8 {
			// Shrink after a burst, keeping room to grow 4x again.
			c := len(t.ring)
			for c > maxIdleRing && t.n < c/4 {
				c /= 2
			}
			t.resize(c)
		}
		return
	}
	t.head = 0
	if len(t.ring) > maxIdleRing {
		t.ring = nil
	}
	t.base = t.next
	t.foldAcked()
}

func (t *Tracker) push(offset int64) {
	if t.n == len(t.ring) {
		t.resize(max(minRing, 2*len(t.ring)))
	}
	t.ring[(t.head+t.n)&(len(t.ring)-1)] = entry{off: offset}
	t.n++
}

// resize moves the ring to a new power-of-two capacity >= n.
func (t *Tracker) resize(capacity int) {
	r := make([]entry, capacity)
	mask := len(t.ring) - 1
	for i := range t.n {
		r[i] = t.ring[(t.head+i)&mask]
	}
	t.ring, t.head = r, 0
}

// finishedSpans calls yield for the maximal runs of finished offsets at or
// above Committable in ascending order, until yield returns false.
func (t *Tracker) finishedSpans(yield func(lo, hi int64) bool) {
	var p span // pending run, merged with an adjacent successor
	have := false
	emit := func(lo, hi int64) bool {
		if have && p.hi == lo {
			p.hi = hi
			return true
		}
		if have && !yield(p.lo, p.hi) {
			return false
		}
		p, have = span{lo, hi}, true
		return true
	}
	cur := t.base // first offset not yet classified
	mask := len(t.ring) - 1
	for i := range t.n {
		e := t.ring[(t.head+i)&mask]
		if e.done {
			continue
		}
		if e.off > cur && !emit(cur, e.off) {
			return
		}
		cur = e.off + 1
	}
	if t.next > cur && !emit(cur, t.next) {
		return
	}
	for _, s := range t.acked[t.ackedHead:] {
		if !emit(s.lo, s.hi) {
			return
		}
	}
	if have {
		yield(p.lo, p.hi)
	}
}
