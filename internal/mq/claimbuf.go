package mq

import (
	"context"
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
}

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
	select {
	case s.out <- d:
	case <-ctx.Done():
		return false
	}
	// Only this goroutine sends, so the channel now holds d and at most
	// len−1 older deliveries; the ring keeps those, which leaves room for d.
	s.trimTo(max(len(s.out)-1, 0))
	s.sizes[(s.head+s.n)%len(s.sizes)] = size
	s.n++
	s.bytes += size
	return true
}
