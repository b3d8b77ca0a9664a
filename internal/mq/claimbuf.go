package mq

import (
	"bytes"
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// ClaimBufferBytes bounds the body bytes a broker backend keeps in one
// claim's Messages channel (converted, not yet read by the claim reader), on
// top of the count bound ClaimBuffer; one delivery is always let through
// when the channel is empty, whatever its size.
//
// The buffer is what keeps a claim reader busy while the backend fetches
// the partition's next chunk: sarama starts its next fetch only once every
// partition of the broker has handed on its current response, so with 64
// messages the readers ran dry during each fetch round trip (bench-consume,
// Kafka, C=16: 278–317 k msgs/s with 64, 351–378 k with 1 024, same runs
// interleaved). Bytes rather than count bound the memory: 1 024 messages of
// 1 MiB would be 1 GiB per partition.
const ClaimBufferBytes = 1 << 20

// BoundedSender sends one partition's deliveries into a claim's Messages
// channel (capacity ClaimBuffer) while the channel holds at most
// ClaimBufferBytes of bodies. It belongs to the one goroutine that sends on
// the channel. The channel is FIFO and only that goroutine sends, so the
// bytes still queued are the sizes of the last len(out) deliveries sent; a
// ring of those sizes gives the exact figure without any cooperation from
// the reader.
type BoundedSender struct {
	out   chan<- *Delivery
	sizes []int // ring of the sizes of the deliveries possibly still queued
	head  int   // index of the oldest
	n     int   // entries in the ring
	bytes int   // sum of the ring
	timer *time.Timer

	gate *ShareGate // nil: deliveries are sent as they are
	smu  sync.Mutex // guards shared and sent (the gate's scans read them)
	// shared are the shared deliveries possibly still queued (or being
	// sent), oldest first.
	shared []sharedEntry
	sent   int64 // deliveries whose channel send completed
}

type sharedEntry struct{ seq, stamp int64 }

// boundedPoll bounds the wait between two looks at the channel while it
// holds more than ClaimBufferBytes (the reader gives no signal when it
// takes a delivery; the channel's length is the signal).
const (
	boundedPollMin = 200 * time.Microsecond
	boundedPollMax = 20 * time.Millisecond
)

// NewBoundedSender returns a sender for out, which must have capacity
// ClaimBuffer (or less).
func NewBoundedSender(out chan<- *Delivery) *BoundedSender {
	return &BoundedSender{out: out, sizes: make([]int, max(cap(out), 1))}
}

// trimTo drops the oldest ring entries (deliveries the reader has taken)
// until q are left.
func (s *BoundedSender) trimTo(q int) {
	for ; s.n > q; s.n-- {
		s.bytes -= s.sizes[s.head]
		s.head = (s.head + 1) % len(s.sizes)
	}
}

// Send delivers d once the channel has room for it, by count and by bytes.
// It returns false when ctx ended first (d was not sent).
func (s *BoundedSender) Send(ctx context.Context, d *Delivery) bool {
	size := len(d.Body)
	wait := boundedPollMin
	for {
		s.trimTo(len(s.out))
		if s.n == 0 || s.bytes+size <= ClaimBufferBytes {
			break
		}
		if s.timer == nil {
			s.timer = time.NewTimer(wait)
		} else {
			s.timer.Reset(wait)
		}
		select {
		case <-s.timer.C:
		case <-ctx.Done():
			return false
		}
		wait = min(2*wait, boundedPollMax)
	}
	if d.Shared && s.gate != nil {
		if stamp, ok := s.gate.admit(size); ok {
			s.smu.Lock()
			s.shared = append(s.shared, sharedEntry{seq: s.sent, stamp: stamp})
			s.smu.Unlock()
		} else {
			// d is not handed on yet: it can still be changed in place.
			d.Body, d.Shared = bytes.Clone(d.Body), false
			if s.gate.onCopy != nil {
				s.gate.onCopy()
			}
		}
	}
	select { // a send that does not block first (see kafka's pump)
	case s.out <- d:
	default:
		select {
		case s.out <- d:
		case <-ctx.Done():
			return false
		}
	}
	if s.gate != nil {
		s.smu.Lock()
		s.sent++
		s.smu.Unlock()
	}
	// Only this goroutine sends, so the channel now holds d and at most
	// len−1 older deliveries; the ring keeps those, which leaves room for d.
	s.trimTo(max(len(s.out)-1, 0))
	s.sizes[(s.head+s.n)%len(s.sizes)] = size
	s.n++
	s.bytes += size
	return true
}

// ShareWindow bounds the fetch responses that one consumer member's claim
// channels keep alive through shared deliveries (Delivery.Shared): a
// delivery is sent shared only while every shared delivery still queued in
// any claim channel of the member was sent less than ShareWindow bytes ago
// on the member's ShareGate clock; otherwise its body is copied. The
// responses they reference were therefore read within ShareWindow (plus one
// scan interval) of member traffic: at most that much plus the response in
// progress. The bench's claim channels hold about one response per member
// (16 partitions × 1 024 messages of 1 KiB with one member), so their
// deliveries stay shared; a claim whose reader stops (a limit, a paused
// unit) closes the gate after ShareWindow more bytes, and the member then
// copies as if it had no gate until that reader drains its channel.
const ShareWindow = 16 << 20

// ShareCost is what a message with a body of size bytes adds to a clock
// of shared bodies (a ShareGate's, the engine's): its body plus 64, so that
// messages with empty bodies advance it too.
func ShareCost(size int) int64 { return int64(size) + 64 }

// shareScanEvery is the clock distance between two computations of the
// oldest queued shared delivery; in between the gate uses the last one,
// which can only be older than the truth (queued deliveries only leave,
// and new ones are newer), so the gate errs towards copying.
const shareScanEvery = 256 << 10

// ShareGate is one consumer member's clock and its bound on shared
// deliveries in claim channels (ShareWindow). Create its senders with
// Sender; a gate is safe for concurrent use by them.
type ShareGate struct {
	clock  atomic.Int64 // ShareCost of every delivery sent shared or gated
	oldest atomic.Int64 // stamp of the oldest queued shared delivery at the last scan
	scanAt atomic.Int64 // clock value from which the next admit rescans
	onCopy func()       // nil, or called for each copy

	mu      sync.Mutex // guards senders; taken before a sender's smu
	senders map[*BoundedSender]struct{}
}

// NewShareGate returns a gate with no senders; onCopy, if not nil, is
// called for every delivery the gate makes copy its body (a metric).
func NewShareGate(onCopy func()) *ShareGate {
	g := &ShareGate{senders: map[*BoundedSender]struct{}{}, onCopy: onCopy}
	g.oldest.Store(math.MaxInt64)
	return g
}

// Sender returns a BoundedSender for out (capacity ClaimBuffer or less)
// that sends shared deliveries through g. Close it when its sending ends.
func (g *ShareGate) Sender(out chan<- *Delivery) *BoundedSender {
	s := NewBoundedSender(out)
	s.gate = g
	g.mu.Lock()
	g.senders[s] = struct{}{}
	g.mu.Unlock()
	return s
}

// admit advances the clock by one delivery of size body bytes and reports
// its stamp and whether it may be sent shared.
func (g *ShareGate) admit(size int) (stamp int64, ok bool) {
	stamp = g.clock.Add(ShareCost(size))
	if stamp >= g.scanAt.Load() {
		g.mu.Lock()
		if stamp >= g.scanAt.Load() {
			oldest := int64(math.MaxInt64)
			for s := range g.senders {
				oldest = min(oldest, s.oldestShared())
			}
			g.oldest.Store(oldest)
			g.scanAt.Store(stamp + shareScanEvery)
		}
		g.mu.Unlock()
	}
	return stamp, stamp-g.oldest.Load() <= ShareWindow
}

// Close detaches s from its gate (a no-op without one).
func (s *BoundedSender) Close() {
	if g := s.gate; g != nil {
		g.mu.Lock()
		delete(g.senders, s)
		g.mu.Unlock()
	}
}

// oldestShared is the stamp of the oldest shared delivery s may still have
// queued (MaxInt64 if none). The channel is FIFO and s its only sender, so
// the last len(out) completed sends, and one being sent, are what it may
// hold.
func (s *BoundedSender) oldestShared() int64 {
	s.smu.Lock()
	defer s.smu.Unlock()
	first := s.sent - int64(len(s.out))
	i := 0
	for i < len(s.shared) && s.shared[i].seq < first {
		i++
	}
	s.shared = s.shared[i:]
	if len(s.shared) == 0 {
		s.shared = nil
		return math.MaxInt64
	}
	return s.shared[0].stamp
}
