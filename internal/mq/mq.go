// Package mq is the storage-adapter contract shared by pproxy, cproxy and the
// delay service. It imports no broker client library: each backend lives in
// its own sub-package (internal/mq/kafka, later internal/mq/rocketmq) and is
// the only importer of its client library.
//
// Backends translate their library's errors into the sentinel errors below
// (wrapping the cause); the proxies map sentinels to wire result codes in one
// table (internal/pproxy/codes.go).
package mq

import (
	"context"
	"errors"
	"net"
)

// Sentinel errors. Adapters wrap them: fmt.Errorf("%w: %w", mq.ErrTimeout, cause).
var (
	// ErrTimeout: the client or broker timed out; the message may or may not be stored.
	ErrTimeout = errors.New("mq: timeout")
	// ErrTopicNotExist: the broker does not know the topic (or partition).
	ErrTopicNotExist = errors.New("mq: topic does not exist")
	// ErrMessageTooLarge: the broker or client refused the message for its size.
	ErrMessageTooLarge = errors.New("mq: message too large")
	// ErrMessageIllegal: the broker refused the message as illegal.
	ErrMessageIllegal = errors.New("mq: message illegal")
	// ErrClosed: the producer is closed or closing.
	ErrClosed = errors.New("mq: producer closed")
	// ErrBufferFull: the adapter's in-flight byte budget is exhausted (fail fast).
	ErrBufferFull = errors.New("mq: producer buffer full")
	// ErrOffsetOutOfRange: a fetch offset outside [log start, log end].
	ErrOffsetOutOfRange = errors.New("mq: offset out of range")
)

// IsSentinel reports whether err already wraps one of the producer
// sentinels (every sentinel above but ErrOffsetOutOfRange), i.e. an adapter
// has translated it and must not translate it again.
func IsSentinel(err error) bool {
	for _, s := range []error{
		ErrTimeout, ErrTopicNotExist, ErrMessageTooLarge,
		ErrMessageIllegal, ErrClosed, ErrBufferFull,
	} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// IsNetTimeout reports whether err is or wraps a net.Error that timed out
// (a dial, read or write deadline on a broker socket); adapters translate it
// to ErrTimeout.
func IsNetTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Selector says how a record's partition/queue is chosen, in the terms of the
// producer wire Message (behaviour.md §1.5).
type Selector struct {
	// PartitionID >= 0: explicit partition; -1: by HashID; < -1: random.
	PartitionID int32
	// HashID is used when PartitionID == -1.
	HashID int64
	// AvoidBroker, when non-empty, asks for a partition whose leader/broker
	// differs from this one if there is any (the proxy-side retry).
	AvoidBroker string
}

// Target is a resolved placement: a partition (Kafka) or queue (RocketMQ).
type Target struct {
	// Partition is the Kafka partition or the index of the queue in the
	// sorted writable-queue list (RocketMQ).
	Partition int32
	// Broker identifies the broker that leads the partition / owns the queue
	// ("" if unknown). Used only to prefer another broker on retry.
	Broker string
}

// Record is one message to produce, already validated by the proxy.
type Record struct {
	Topic      string
	Target     Target
	Key        string // "" = no key
	Tags       string // "" = no tags
	Body       []byte
	Properties map[string]string
}

// Producer is one backend cluster's producer.
//
// Produce and Resolve are safe for concurrent use. Close is idempotent.
type Producer interface {
	// Resolve chooses a target for topic according to sel. It may block to
	// fetch metadata (bounded by ctx). Unknown topic → ErrTopicNotExist.
	Resolve(ctx context.Context, topic string, sel Selector) (Target, error)
	// Produce hands rec to the backend. done is called exactly once, from a
	// backend goroutine, with nil when the broker acknowledged the record
	// (per the cluster's acks setting) or a wrapped sentinel. done must not
	// block. Records produced to one (topic, partition) by one caller are
	// stored in call order. ctx bounds the wait for buffer space only.
	Produce(ctx context.Context, rec *Record, done func(error))
	// Close stops accepting records, waits (bounded by ctx) for in-flight
	// records to complete, and fails whatever remains with ErrClosed.
	Close(ctx context.Context) error
}

// ProduceSync produces rec and waits for its completion or ctx.
// Written once on top of the callback form, as kgo's ProduceSync.
func ProduceSync(ctx context.Context, p Producer, rec *Record) error {
	ch := make(chan error, 1)
	p.Produce(ctx, rec, func(err error) { ch <- err })
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// NonNegMod returns |x| mod n for n > 0, mapping math.MinInt64 to 0
// (behaviour.md §1.4). The result is always in [0, n).
func NonNegMod(x int64, n int) int {
	if n <= 0 {
		return 0
	}
	if x == -1<<63 {
		return 0
	}
	if x < 0 {
		x = -x
	}
	return int(x % int64(n))
}
