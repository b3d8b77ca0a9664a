package kafka

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/ddmq-go/carrera/internal/mq"
)

// fetchCall is one metadata fetch for a topic missing from the cache; the
// Resolve calls that need it meanwhile share it.
type fetchCall struct {
	done  chan struct{}
	parts []int32
	err   error
}

// Resolve implements mq.Producer with the Kafka rules of behaviour.md §1.5:
// PartitionID >= 0 is used as is (≥ the partition count →
// mq.ErrTopicNotExist), -1 is NonNegMod(HashID, n), < -1 is a random
// partition with a leader. A non-empty AvoidBroker overrides all three:
// from a random start, the first partition whose leader's address differs
// (any partition if there is no such one). Target.Broker is the leader's
// address, "" if the partition has no leader.
//
// A topic in the client's metadata cache resolves without blocking. For
// another, Resolve waits (bounded by ctx → mq.ErrTimeout) for one metadata
// refresh; a topic the cluster does not know → mq.ErrTopicNotExist.
func (p *Producer) Resolve(ctx context.Context, topic string, sel mq.Selector) (mq.Target, error) {
	if p.closing.Load() {
		return mq.Target{}, mq.ErrClosed
	}
	parts, err := p.partitions(ctx, topic)
	if err != nil {
		return mq.Target{}, err
	}
	n := len(parts)
	switch {
	case sel.AvoidBroker != "":
		return p.avoid(topic, n, sel.AvoidBroker), nil
	case sel.PartitionID >= 0:
		if int(sel.PartitionID) >= n {
			return mq.Target{}, fmt.Errorf("%w: topic %q has %d partitions, asked for partition %d",
				mq.ErrTopicNotExist, topic, n, sel.PartitionID)
		}
		return p.target(topic, sel.PartitionID), nil
	case sel.PartitionID == -1:
		return p.target(topic, int32(mq.NonNegMod(sel.HashID, n))), nil
	default:
		if w := p.writable(topic); len(w) > 0 {
			return p.target(topic, w[rand.IntN(len(w))]), nil
		}
		return p.target(topic, int32(rand.IntN(n))), nil
	}
}

// avoid picks a partition whose leader is not avoidAddr.
func (p *Producer) avoid(topic string, n int, avoidAddr string) mq.Target {
	start := rand.IntN(n)
	var fallback *mq.Target
	for i := range n {
		t := p.target(topic, int32((start+i)%n))
		if t.Broker != "" && t.Broker != avoidAddr {
			return t
		}
		if fallback == nil && t.Broker != "" {
			fallback = &t
		}
	}
	if fallback != nil {
		return *fallback
	}
	return mq.Target{Partition: int32(start)}
}

// target returns partition with its leader's address, if the cache has one.
func (p *Producer) target(topic string, partition int32) mq.Target {
	t := mq.Target{Partition: partition}
	// Leader refreshes metadata when the partition has no leader; asking
	// only for writable partitions keeps Resolve non-blocking.
	if _, ok := slices.BinarySearch(p.writable(topic), partition); ok {
		if b, err := p.meta.Leader(topic, partition); err == nil {
			t.Broker = b.Addr()
		}
	}
	return t
}

// writable returns the cached, sorted partitions of topic that have a
// leader. (sarama refreshes metadata if there is none.)
func (p *Producer) writable(topic string) []int32 {
	w, err := p.meta.WritablePartitions(topic)
	if err != nil {
		return nil
	}
	return w
}

// partitions returns the partition IDs of topic, fetching metadata (bounded
// by ctx) if the topic is not cached yet.
func (p *Producer) partitions(ctx context.Context, topic string) ([]int32, error) {
	if _, ok := p.known.Load(topic); ok {
		parts, err := p.meta.Partitions(topic)
		if err == nil && len(parts) > 0 {
			return parts, nil
		}
		p.known.Delete(topic) // gone from the cache: fetch again
	}
	p.fetchMu.Lock()
	c := p.fetches[topic]
	if c == nil {
		c = &fetchCall{done: make(chan struct{})}
		p.fetches[topic] = c
		p.bg.add()
		go p.fetch(topic, c)
	}
	p.fetchMu.Unlock()
	select {
	case <-c.done:
		return c.parts, c.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: metadata of topic %q: %w", mq.ErrTimeout, topic, ctx.Err())
	case <-p.stopping:
		return nil, mq.ErrClosed
	}
}

// fetch runs one metadata lookup for topic. sarama's Partitions refreshes
// the topic's metadata once when it is not cached (retrying
// UNKNOWN_TOPIC_OR_PARTITION within Metadata.Retry.Max and
// MetadataTimeout).
func (p *Producer) fetch(topic string, c *fetchCall) {
	defer p.bg.exit()
	parts, err := p.meta.Partitions(topic)
	switch {
	case err != nil:
		c.err = translate(err)
	case len(parts) == 0:
		c.err = fmt.Errorf("%w: topic %q has no partitions", mq.ErrTopicNotExist, topic)
	default:
		c.parts = parts
		p.known.Store(topic, struct{}{})
	}
	p.fetchMu.Lock()
	delete(p.fetches, topic)
	p.fetchMu.Unlock()
	close(c.done)
}
