package mq

import (
	"bytes"
	"context"
	"strings"
	"time"
)

// Delivery is one consumed message, as the backend stored it.
type Delivery struct {
	Topic     string
	Partition int32 // Kafka partition / RocketMQ queue index
	Offset    int64 // Kafka partition offset / RocketMQ queue offset
	Key       string
	Tags      string // RocketMQ tags; Kafka: the TAGS header if present
	Body      []byte
	// Properties are the user properties (RocketMQ: minus the reserved
	// names; Kafka: the record headers except TAGS). Nil when none.
	Properties map[string]string
	Timestamp  time.Time
	// Shared reports that Body is a window into a buffer of the backend
	// that holds other messages too (Kafka: sarama's whole fetch
	// response), which the delivery keeps alive. A holder that may keep
	// the delivery for long replaces it with Owned() (see ShareGate).
	Shared bool
	// Handle is backend-private state that the backend's own later
	// operations on this message need (RocketMQ: what SendBack needs — the
	// broker, commit-log offset and message id); nil for Kafka. Callers
	// pass it through unchanged.
	Handle any
}

// Owned returns d when its body is its own, else a copy of d whose body
// is copied out of the shared buffer. d itself is never modified:
// deliveries are immutable once handed on, so holders of d (a pull reply
// being written) keep reading it safely.
func (d *Delivery) Owned() *Delivery {
	if !d.Shared {
		return d
	}
	c := *d
	c.Body = bytes.Clone(d.Body)
	c.Shared = false
	return &c
}

// SendBacker is implemented by backends with a broker-side retry path
// (RocketMQ's CONSUMER_SEND_MSG_BACK: the broker re-queues the message to
// the group's retry topic "%RETRY%<group>" and, after its maximum number of
// reconsumptions, to "%DLQ%<group>"). It is an optional interface of an
// OffsetReader.
type SendBacker interface {
	// SendBack returns d, delivered to group, to the broker for
	// redelivery. nil means the broker stored it; the caller may then
	// finish d's offset.
	SendBack(ctx context.Context, group string, d *Delivery) error
}

// PressureTrafficProperty is the message property that marks load-test
// traffic (wire-contract.md §8.1); a subscription with pressureTraffic
// false skips such messages.
const PressureTrafficProperty = "isPressureTraffic"

// IsPressureTraffic reports whether d carries isPressureTraffic=true (any
// case).
func (d *Delivery) IsPressureTraffic() bool {
	v, ok := d.Properties[PressureTrafficProperty]
	return ok && strings.EqualFold(v, "true")
}

// CommittedOffset is a group's stored position in one partition: Offset is
// the next offset to read (the lowest unfinished one); Metadata carries the
// finished offsets above it (internal/offset's encoding). Offset < 0 means
// the group has no committed offset for the partition.
type CommittedOffset struct {
	Offset   int64
	Metadata string
}

// ClaimBuffer is the capacity of a claim's Messages channel in the broker
// backends; ClaimBufferBytes (BoundedSender) bounds the bodies in it. A
// buffer lets the backend's converter run ahead of the reader and the
// reader take a batch without a goroutine switch per message (with an
// unbuffered channel every message cost a hand-off between the two).
const ClaimBuffer = 1024

// Claim is this member's ownership of one partition during one generation of
// the group. It is valid until its Context is done (the partition was
// revoked, the member is stopping, or the session was lost).
//
// Messages, Commit and HighWatermark are safe for concurrent use.
type Claim interface {
	Topic() string
	Partition() int32
	// Context is cancelled when the claim ends.
	Context() context.Context
	// Initial is the committed state the claim started from.
	Initial() CommittedOffset
	// Messages delivers the partition's messages in offset order, starting
	// at Initial().Offset (or at the consume-from-where policy's position
	// when there is none). It is closed when the claim ends.
	Messages() <-chan *Delivery
	// Commit stores the position; it takes effect at the next commit flush
	// of the member (and always before the claim is released). Commits
	// after the claim ended are ignored.
	Commit(c CommittedOffset)
	// HighWatermark is the partition's log end offset as last seen.
	HighWatermark() int64
}

// ClaimHandler receives claims. Claim is called on its own goroutine for each
// claimed partition and must return promptly once c.Context() is done (after
// its final Commit). Setup/Cleanup bracket one generation.
//
// Backends with incremental rebalancing (RocketMQ) have no generations:
// Setup is called with the complete new assignment whenever it changes —
// while the claims of queues kept across the change continue — and Cleanup
// once when the member stops.
type ClaimHandler interface {
	Setup(assigned map[string][]int32)
	Claim(c Claim)
	Cleanup()
}

// GroupConsumer is one member of a consumer group on one broker cluster,
// subscribed to a fixed set of topics. Offsets are committed only through
// Claim.Commit, never automatically.
type GroupConsumer interface {
	// Run joins the group and serves claims to h until ctx is done or a
	// fatal error occurs; it rejoins after rebalances. Before returning it
	// flushes commits and leaves the group.
	Run(ctx context.Context, h ClaimHandler) error
}

// OffsetReader answers getConsumeStats and the low-level API without joining
// a group.
type OffsetReader interface {
	// Partitions returns the partition count of topic (ErrTopicNotExist).
	Partitions(ctx context.Context, topic string) (int32, error)
	// HighWatermarks returns the log end offset of every partition.
	HighWatermarks(ctx context.Context, topic string) (map[int32]int64, error)
	// Committed returns the group's committed offsets of topic (absent
	// partitions have none). A group unknown to the broker has none.
	Committed(ctx context.Context, group, topic string) (map[int32]CommittedOffset, error)
	// Commit stores offsets for a group without membership (low-level ack).
	Commit(ctx context.Context, group, topic string, offsets map[int32]CommittedOffset) error
	// Fetch reads up to max messages of one partition from offset, waiting
	// at most wait when none is available. next is the offset to fetch next.
	// An offset out of range yields ErrOffsetOutOfRange.
	Fetch(ctx context.Context, topic string, partition int32, offset int64, max int, wait time.Duration) (msgs []*Delivery, next int64, err error)
}
