// Package memory is an in-memory mq.Producer for unit tests of the proxies.
//
// Records are stored per (topic, partition) with offsets starting at 0.
// Topics and their partition counts are configured up front or added with
// CreateTopic; producing to anything else fails with mq.ErrTopicNotExist,
// as a broker without auto-creation would.
//
// Each (topic, partition) has a lane: a FIFO queue drained by one goroutine
// that exists only while the queue is non-empty. The lane runs the optional
// Delay hook (which may block, e.g. to let a caller's timeout fire), then the
// optional Fault hook, then stores the record and calls done. Records of one
// partition are therefore stored in call order, and a blocked record holds up
// the records behind it in its partition, like a broker's in-flight request.
//
// Goroutines: lane goroutines and the short-lived goroutines that report
// immediate rejections are counted; Close waits for the count to reach zero
// (bounded by its ctx) and fails whatever is still queued with mq.ErrClosed.
//
// Lock order: Producer.mu before lane.mu.
package memory

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/ddmq-go/carrera/internal/mq"
)

var _ mq.Producer = (*Producer)(nil)

// Options configures a Producer. The zero value is usable.
type Options struct {
	// Topics maps topic names to partition counts (> 0).
	Topics map[string]int
	// Brokers is the number of fake brokers partitions are spread over
	// (partition p is led by "memory-<p mod Brokers>"). Default 1.
	Brokers int
	// MaxMessageBytes: a body longer than this fails with
	// mq.ErrMessageTooLarge. 0 means 1 MiB (sarama's default limit).
	MaxMessageBytes int
	// Fault, when set, is called for every record on its partition's lane
	// after Delay. A non-nil result fails the record with that error (it is
	// not stored). Return a wrapped mq sentinel to simulate a backend error.
	Fault func(rec *mq.Record) error
	// Delay, when set, is called for every record on its partition's lane
	// before Fault and may block. ctx is cancelled when Close gives up
	// waiting, so a blocked hook should return on <-ctx.Done().
	Delay func(ctx context.Context, rec *mq.Record)
}

// Message is a stored record.
type Message struct {
	Topic      string
	Partition  int32
	Offset     int64
	Key        string
	Tags       string
	Body       []byte
	Properties map[string]string
}

// Producer is an in-memory mq.Producer. Create it with New.
type Producer struct {
	maxBytes int
	brokers  int

	fault atomic.Pointer[func(*mq.Record) error]
	delay atomic.Pointer[func(context.Context, *mq.Record)]

	// hookCtx is passed to Delay; cancelled when Close gives up.
	hookCtx    context.Context
	hookCancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	topics map[string][]*lane // index = partition
	// active counts lane goroutines and rejection reporters; idle, when
	// set by Close, is closed when active drops to 0.
	active  int
	idle    chan struct{}
	closing atomic.Bool // Close has been called

	produced atomic.Int64 // Produce calls, for tests
}

type lane struct {
	p         *Producer
	topic     string
	partition int32

	mu      sync.Mutex
	queue   []*item
	running bool
	stored  []Message
}

type item struct {
	rec  *mq.Record
	done func(error)
	fin  atomic.Bool
}

// complete calls done with err unless the item was completed before; it
// reports whether this call completed it.
func (it *item) complete(err error) bool {
	if !it.fin.CompareAndSwap(false, true) {
		return false
	}
	it.done(err)
	return true
}

// New returns a Producer with the topics of opts. It starts no goroutine.
func New(opts Options) *Producer {
	p := &Producer{
		maxBytes: opts.MaxMessageBytes,
		brokers:  opts.Brokers,
		topics:   make(map[string][]*lane),
	}
	if p.maxBytes <= 0 {
		p.maxBytes = 1 << 20
	}
	if p.brokers <= 0 {
		p.brokers = 1
	}
	p.hookCtx, p.hookCancel = context.WithCancel(context.Background())
	for t, n := range opts.Topics {
		p.CreateTopic(t, n)
	}
	if opts.Fault != nil {
		p.SetFault(opts.Fault)
	}
	if opts.Delay != nil {
		p.SetDelay(opts.Delay)
	}
	return p
}

// CreateTopic adds topic with n partitions, or grows it to n partitions.
// It panics if n <= 0.
func (p *Producer) CreateTopic(topic string, n int) {
	if n <= 0 {
		panic(fmt.Sprintf("memory: topic %q: partitions must be > 0, got %d", topic, n))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	lanes := p.topics[topic]
	for i := len(lanes); i < n; i++ {
		lanes = append(lanes, &lane{p: p, topic: topic, partition: int32(i)})
	}
	p.topics[topic] = lanes
}

// SetFault replaces the Fault hook (nil removes it).
func (p *Producer) SetFault(fn func(rec *mq.Record) error) {
	if fn == nil {
		p.fault.Store(nil)
		return
	}
	p.fault.Store(&fn)
}

// SetDelay replaces the Delay hook (nil removes it).
func (p *Producer) SetDelay(fn func(ctx context.Context, rec *mq.Record)) {
	if fn == nil {
		p.delay.Store(nil)
		return
	}
	p.delay.Store(&fn)
}

// Broker returns the fake broker name leading partition.
func (p *Producer) Broker(partition int32) string {
	return fmt.Sprintf("memory-%d", int(partition)%p.brokers)
}

// Produced returns the number of Produce calls so far.
func (p *Producer) Produced() int64 { return p.produced.Load() }

// Messages returns a copy of the records stored in topic, ordered by
// partition, then offset.
func (p *Producer) Messages(topic string) []Message {
	p.mu.Lock()
	lanes := slices.Clone(p.topics[topic])
	p.mu.Unlock()
	var out []Message
	for _, l := range lanes {
		l.mu.Lock()
		out = append(out, l.stored...)
		l.mu.Unlock()
	}
	return out
}

// Partition returns a copy of the records stored in (topic, partition) in
// offset order.
func (p *Producer) Partition(topic string, partition int32) []Message {
	l := p.lane(topic, partition)
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.stored)
}

func (p *Producer) lane(topic string, partition int32) *lane {
	p.mu.Lock()
	defer p.mu.Unlock()
	lanes := p.topics[topic]
	if partition < 0 || int(partition) >= len(lanes) {
		return nil
	}
	return lanes[partition]
}

// Resolve implements mq.Producer with the Kafka rules of behaviour.md §1.5.
func (p *Producer) Resolve(ctx context.Context, topic string, sel mq.Selector) (mq.Target, error) {
	if p.closing.Load() {
		return mq.Target{}, mq.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return mq.Target{}, fmt.Errorf("%w: %w", mq.ErrTimeout, err)
	}
	p.mu.Lock()
	n := len(p.topics[topic])
	p.mu.Unlock()
	if n == 0 {
		return mq.Target{}, fmt.Errorf("%w: %q", mq.ErrTopicNotExist, topic)
	}
	var part int32
	switch {
	case sel.AvoidBroker != "":
		start := rand.IntN(n)
		part = int32(start)
		for i := range n {
			c := int32((start + i) % n)
			if p.Broker(c) != sel.AvoidBroker {
				part = c
				break
			}
		}
	case sel.PartitionID >= 0:
		if int(sel.PartitionID) >= n {
			return mq.Target{}, fmt.Errorf("%w: %q has %d partitions, asked for %d",
				mq.ErrTopicNotExist, topic, n, sel.PartitionID)
		}
		part = sel.PartitionID
	case sel.PartitionID == -1:
		part = int32(mq.NonNegMod(sel.HashID, n))
	default:
		part = int32(rand.IntN(n))
	}
	return mq.Target{Partition: part, Broker: p.Broker(part)}, nil
}

// Produce implements mq.Producer. done is always called from a goroutine of
// the Producer, never from Produce itself.
func (p *Producer) Produce(_ context.Context, rec *mq.Record, done func(error)) {
	p.produced.Add(1)
	it := &item{rec: rec, done: done}
	if len(rec.Body) > p.maxBytes {
		p.reject(it, fmt.Errorf("%w: body %d > %d bytes", mq.ErrMessageTooLarge, len(rec.Body), p.maxBytes))
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.reject(it, mq.ErrClosed)
		return
	}
	lanes := p.topics[rec.Topic]
	part := rec.Target.Partition
	if part < 0 || int(part) >= len(lanes) {
		p.mu.Unlock()
		p.reject(it, fmt.Errorf("%w: %s/%d", mq.ErrTopicNotExist, rec.Topic, part))
		return
	}
	l := lanes[part]
	l.mu.Lock()
	l.queue = append(l.queue, it)
	start := !l.running
	if start {
		l.running = true
		p.active++
	}
	l.mu.Unlock()
	p.mu.Unlock()
	if start {
		go l.run()
	}
}

// reject reports err for it on a tracked goroutine.
func (p *Producer) reject(it *item, err error) {
	p.mu.Lock()
	p.active++
	p.mu.Unlock()
	go func() {
		defer p.exited()
		it.complete(err)
	}()
}

// exited ends one goroutine counted in active.
func (p *Producer) exited() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.active--
	if p.active == 0 && p.idle != nil {
		close(p.idle)
		p.idle = nil
	}
}

func (l *lane) run() {
	defer l.p.exited()
	for {
		l.mu.Lock()
		if len(l.queue) == 0 {
			l.running = false
			l.mu.Unlock()
			return
		}
		it := l.queue[0]
		l.mu.Unlock()

		l.process(it)

		l.mu.Lock()
		// Close may have emptied the queue meanwhile.
		if len(l.queue) > 0 && l.queue[0] == it {
			l.queue[0] = nil
			l.queue = l.queue[1:]
		}
		l.mu.Unlock()
	}
}

func (l *lane) process(it *item) {
	p := l.p
	if d := p.delay.Load(); d != nil {
		(*d)(p.hookCtx, it.rec)
	}
	if f := p.fault.Load(); f != nil {
		if err := (*f)(it.rec); err != nil {
			it.complete(err)
			return
		}
	}
	// Decide and store under l.mu so a record failed by Close is never
	// stored, and a stored record is never failed.
	l.mu.Lock()
	if !it.fin.CompareAndSwap(false, true) {
		l.mu.Unlock()
		return
	}
	l.stored = append(l.stored, Message{
		Topic:      l.topic,
		Partition:  l.partition,
		Offset:     int64(len(l.stored)),
		Key:        it.rec.Key,
		Tags:       it.rec.Tags,
		Body:       slices.Clone(it.rec.Body),
		Properties: maps.Clone(it.rec.Properties),
	})
	l.mu.Unlock()
	it.done(nil)
}

// Close implements mq.Producer: it refuses new records, waits for queued
// ones (bounded by ctx) and fails the rest with mq.ErrClosed. It returns
// ctx's error if it had to give up waiting. Idempotent.
func (p *Producer) Close(ctx context.Context) error {
	if !p.closing.CompareAndSwap(false, true) {
		return nil
	}
	p.mu.Lock()
	p.closed = true
	idle := make(chan struct{})
	if p.active == 0 {
		close(idle)
	} else {
		p.idle = idle
	}
	p.mu.Unlock()

	var err error
	select {
	case <-idle:
	case <-ctx.Done():
		err = ctx.Err()
	}
	// Fail whatever is left, then release blocked Delay hooks.
	p.mu.Lock()
	for _, lanes := range p.topics {
		for _, l := range lanes {
			l.mu.Lock()
			q := l.queue
			l.queue = nil
			l.mu.Unlock()
			for _, it := range q {
				it.complete(mq.ErrClosed)
			}
		}
	}
	p.mu.Unlock()
	// Lanes exit promptly once hooks return and queues are empty; Close
	// does not wait for that, so a hook ignoring ctx cannot hang it.
	p.hookCancel()
	if err != nil {
		return fmt.Errorf("memory: close: %w", err)
	}
	return nil
}
