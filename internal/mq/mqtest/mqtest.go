// Package mqtest is the contract suite every mq.Producer must pass. Each
// backend's tests call Run with a factory for a fresh producer and a Reader
// onto the same backend; the suite then checks produce/ack, per-partition
// ordering, the selector rules of behaviour.md §1.5, the sentinel errors and
// the Close contract.
package mqtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ddmq-go/carrera/internal/mq"
)

// Record is a record read back from the backend.
type Record struct {
	Partition  int32
	Offset     int64
	Key        string // "" for no key
	Tags       string
	Body       []byte
	Properties map[string]string // nil or empty when none
}

// Reader gives the suite access to the backend behind a producer.
type Reader interface {
	// CreateTopic creates topic with the given number of partitions. The
	// producer may already exist; it must pick the topic up on Resolve.
	CreateTopic(t testing.TB, topic string, partitions int)
	// ReadAll returns every record stored in topic, ordered by partition and
	// then offset.
	ReadAll(t testing.TB, topic string) []Record
	// MaxMessageBytes is the producer's size limit: a body of
	// MaxMessageBytes()+1 bytes must fail with mq.ErrMessageTooLarge.
	MaxMessageBytes() int
}

// Blocker is optionally implemented by a Reader whose backend can hold
// acknowledgements; the Close-gives-up case is skipped without it.
type Blocker interface {
	// Block makes the backend withhold acknowledgements of records produced
	// from now on until release is called. release is idempotent.
	Block(t testing.TB) (release func())
}

// ExplicitWrapper is optionally implemented by a Reader whose backend maps
// an explicit partition id at or beyond the partition count to id mod
// count (RocketMQ, behaviour.md §1.5) instead of failing with
// mq.ErrTopicNotExist (Kafka).
type ExplicitWrapper interface {
	ExplicitWraps() bool
}

// Timeout bounds every wait of the suite.
const Timeout = 20 * time.Second

// Run runs the contract suite. newProducer is called once per subtest and
// must register the producer's cleanup itself (Close is idempotent, so the
// suite may close it too).
func Run(t *testing.T, newProducer func(t *testing.T) (mq.Producer, Reader)) {
	cases := []struct {
		name string
		fn   func(t *testing.T, p mq.Producer, r Reader)
	}{
		{"ProduceAndReadBack", testProduceAndReadBack},
		{"EmptyFields", testEmptyFields},
		{"OrderWithinPartition", testOrder},
		{"SelectorExplicit", testSelectorExplicit},
		{"SelectorHash", testSelectorHash},
		{"SelectorRandom", testSelectorRandom},
		{"AvoidBroker", testAvoidBroker},
		{"UnknownTopic", testUnknownTopic},
		{"TooLarge", testTooLarge},
		{"Concurrent", testConcurrent},
		{"CloseFlushes", testCloseFlushes},
		{"CloseWhileProducing", testCloseWhileProducing},
		{"CloseGivesUp", testCloseGivesUp},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, r := newProducer(t)
			c.fn(t, p, r)
		})
	}
}

// topicName returns a topic name unique to the test.
func topicName(t testing.TB, suffix string) string {
	n := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	return "mqtest-" + n + "-" + suffix
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	return ctx
}

// callbacks records the outcome of each done and how often it was called.
type callbacks struct {
	mu    sync.Mutex
	calls []int
	errs  []error
	wg    sync.WaitGroup
}

// done returns the callback of record i (0-based, dense).
func (c *callbacks) done(i int) func(error) {
	c.mu.Lock()
	for len(c.calls) <= i {
		c.calls = append(c.calls, 0)
		c.errs = append(c.errs, nil)
	}
	c.mu.Unlock()
	c.wg.Add(1)
	return func(err error) {
		c.mu.Lock()
		c.calls[i]++
		first := c.calls[i] == 1
		if first {
			c.errs[i] = err
		}
		c.mu.Unlock()
		if first {
			c.wg.Done()
		}
	}
}

// wait waits for every callback to have been called once and checks that
// none was called twice.
func (c *callbacks) wait(t testing.TB) []error {
	t.Helper()
	ch := make(chan struct{})
	go func() { c.wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(Timeout):
		t.Fatalf("not every done callback was called within %v", Timeout)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, n := range c.calls {
		if n != 1 {
			t.Errorf("done of record %d called %d times, want 1", i, n)
		}
	}
	return append([]error(nil), c.errs...)
}

func resolve(t testing.TB, p mq.Producer, topic string, sel mq.Selector) mq.Target {
	t.Helper()
	tg, err := p.Resolve(ctxT(t), topic, sel)
	if err != nil {
		t.Fatalf("Resolve(%q, %+v): %v", topic, sel, err)
	}
	return tg
}

func wantIs(t testing.TB, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

func testProduceAndReadBack(t *testing.T, p mq.Producer, r Reader) {
	topic := topicName(t, "t")
	r.CreateTopic(t, topic, 3)
	props := map[string]string{
		"plain":            "v",
		"Mixed-Case_Name":  "V2",
		"with space":       "a b",
		"a=b":              "c=d",
		"ключ":             "значение",
		"carrera_msg_key0": strings.Repeat("x", 300),
	}
	var sent []*mq.Record
	for part := range int32(3) {
		tg := resolve(t, p, topic, mq.Selector{PartitionID: part})
		if tg.Partition != part {
			t.Fatalf("explicit partition %d resolved to %d", part, tg.Partition)
		}
		rec := &mq.Record{
			Topic:      topic,
			Target:     tg,
			Key:        "key-" + strconv.Itoa(int(part)),
			Tags:       "tagA||tagB",
			Body:       []byte{0, 1, 2, 0xff, byte(part)},
			Properties: props,
		}
		if err := mq.ProduceSync(ctxT(t), p, rec); err != nil {
			t.Fatalf("ProduceSync to partition %d: %v", part, err)
		}
		sent = append(sent, rec)
	}
	got := r.ReadAll(t, topic)
	if len(got) != len(sent) {
		t.Fatalf("read %d records, want %d: %+v", len(got), len(sent), got)
	}
	for i, g := range got {
		w := sent[i]
		if g.Partition != w.Target.Partition || g.Key != w.Key || g.Tags != w.Tags ||
			string(g.Body) != string(w.Body) || !maps.Equal(g.Properties, w.Properties) {
			t.Errorf("record %d: got %+v, want partition %d key %q tags %q body %v props %v",
				i, g, w.Target.Partition, w.Key, w.Tags, w.Body, w.Properties)
		}
	}
}

func testEmptyFields(t *testing.T, p mq.Producer, r Reader) {
	topic := topicName(t, "t")
	r.CreateTopic(t, topic, 1)
	tg := resolve(t, p, topic, mq.Selector{PartitionID: 0})
	if err := mq.ProduceSync(ctxT(t), p, &mq.Record{Topic: topic, Target: tg, Body: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	got := r.ReadAll(t, topic)
	if len(got) != 1 {
		t.Fatalf("read %d records, want 1", len(got))
	}
	if g := got[0]; g.Key != "" || g.Tags != "" || len(g.Properties) != 0 || string(g.Body) != "b" {
		t.Errorf("got %+v, want only body \"b\"", g)
	}
}

func testOrder(t *testing.T, p mq.Producer, r Reader) {
	topic := topicName(t, "t")
	r.CreateTopic(t, topic, 2)
	const n = 300
	ctx := ctxT(t)
	var cbs callbacks
	tg := [2]mq.Target{
		resolve(t, p, topic, mq.Selector{PartitionID: 0}),
		resolve(t, p, topic, mq.Selector{PartitionID: 1}),
	}
	var want [2][]string
	for i := range n {
		part := 1
		if i%3 == 0 {
			part = 0
		}
		body := strconv.Itoa(i)
		want[part] = append(want[part], body)
		p.Produce(ctx, &mq.Record{Topic: topic, Target: tg[part], Body: []byte(body)}, cbs.done(i))
	}
	for i, err := range cbs.wait(t) {
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	var got [2][]string
	for _, g := range r.ReadAll(t, topic) {
		got[g.Partition] = append(got[g.Partition], string(g.Body))
	}
	for part := range 2 {
		if !slices.Equal(got[part], want[part]) {
			t.Errorf("partition %d stored %v,\nwant %v", part, got[part], want[part])
		}
	}
}

func testSelectorExplicit(t *testing.T, p mq.Producer, r Reader) {
	topic := topicName(t, "t")
	const n = 4
	r.CreateTopic(t, topic, n)
	for part := range int32(n) {
		for _, hash := range []int64{0, 99} {
			if tg := resolve(t, p, topic, mq.Selector{PartitionID: part, HashID: hash}); tg.Partition != part {
				t.Errorf("PartitionID %d resolved to %d", part, tg.Partition)
			}
		}
	}
	w, ok := r.(ExplicitWrapper)
	wraps := ok && w.ExplicitWraps()
	for _, part := range []int32{n, n + 1, math.MaxInt32} {
		if wraps {
			if tg := resolve(t, p, topic, mq.Selector{PartitionID: part}); tg.Partition != part%n {
				t.Errorf("PartitionID %d of %d resolved to %d, want %d", part, n, tg.Partition, part%n)
			}
			continue
		}
		_, err := p.Resolve(ctxT(t), topic, mq.Selector{PartitionID: part})
		wantIs(t, fmt.Sprintf("PartitionID %d of %d", part, n), err, mq.ErrTopicNotExist)
	}
}

func testSelectorHash(t *testing.T, p mq.Producer, r Reader) {
	topic := topicName(t, "t")
	const n = 5
	r.CreateTopic(t, topic, n)
	for _, h := range []int64{0, 1, 4, 5, 7, -1, -7, 123456789, -123456789, math.MaxInt64, math.MinInt64, math.MinInt64 + 1} {
		want := int32(mq.NonNegMod(h, n))
		for range 2 {
			if tg := resolve(t, p, topic, mq.Selector{PartitionID: -1, HashID: h}); tg.Partition != want {
				t.Errorf("HashID %d: partition %d, want %d", h, tg.Partition, want)
			}
		}
	}
}

func testSelectorRandom(t *testing.T, p mq.Producer, r Reader) {
	topic := topicName(t, "t")
	const n = 4
	r.CreateTopic(t, topic, n)
	seen := map[int32]int{}
	for i := range 400 {
		id := int32(-2)
		if i%2 == 1 {
			id = math.MinInt32
		}
		tg := resolve(t, p, topic, mq.Selector{PartitionID: id, HashID: 3})
		if tg.Partition < 0 || tg.Partition >= n {
			t.Fatalf("random partition %d out of [0,%d)", tg.Partition, n)
		}
		seen[tg.Partition]++
	}
	if len(seen) < 2 {
		t.Errorf("400 random choices hit only partitions %v", seen)
	}
}

func testAvoidBroker(t *testing.T, p mq.Producer, r Reader) {
	topic := topicName(t, "t")
	const n = 12
	r.CreateTopic(t, topic, n)
	brokers := map[string]bool{}
	for part := range int32(n) {
		tg := resolve(t, p, topic, mq.Selector{PartitionID: part})
		if tg.Broker == "" {
			t.Fatalf("partition %d: empty Target.Broker", part)
		}
		brokers[tg.Broker] = true
	}
	for b := range brokers {
		for i := range 50 {
			sel := mq.Selector{PartitionID: int32(i%3) - 2, HashID: int64(i), AvoidBroker: b}
			tg := resolve(t, p, topic, sel)
			if tg.Partition < 0 || tg.Partition >= n {
				t.Fatalf("AvoidBroker %q: partition %d out of range", b, tg.Partition)
			}
			if len(brokers) > 1 && tg.Broker == b {
				t.Fatalf("AvoidBroker %q chose partition %d on that broker; brokers %v", b, tg.Partition, brokers)
			}
		}
	}
	t.Logf("partitions spread over %d broker(s)", len(brokers))
}

func testUnknownTopic(t *testing.T, p mq.Producer, _ Reader) {
	topic := topicName(t, "missing")
	_, err := p.Resolve(ctxT(t), topic, mq.Selector{PartitionID: -1})
	wantIs(t, "Resolve of an unknown topic", err, mq.ErrTopicNotExist)
	err = mq.ProduceSync(ctxT(t), p, &mq.Record{Topic: topic, Body: []byte("x")})
	wantIs(t, "Produce to an unknown topic", err, mq.ErrTopicNotExist)
}

func testTooLarge(t *testing.T, p mq.Producer, r Reader) {
	topic := topicName(t, "t")
	r.CreateTopic(t, topic, 1)
	tg := resolve(t, p, topic, mq.Selector{PartitionID: 0})
	big := make([]byte, r.MaxMessageBytes()+1)
	err := mq.ProduceSync(ctxT(t), p, &mq.Record{Topic: topic, Target: tg, Body: big})
	wantIs(t, fmt.Sprintf("Produce of %d bytes", len(big)), err, mq.ErrMessageTooLarge)
	// The producer stays usable.
	if err := mq.ProduceSync(ctxT(t), p, &mq.Record{Topic: topic, Target: tg, Body: []byte("small")}); err != nil {
		t.Fatalf("small record after a too-large one: %v", err)
	}
	if got := r.ReadAll(t, topic); len(got) != 1 || string(got[0].Body) != "small" {
		t.Fatalf("read back %d records, want only the small one", len(got))
	}
}

func testConcurrent(t *testing.T, p mq.Producer, r Reader) {
	topic := topicName(t, "t")
	r.CreateTopic(t, topic, 3)
	const workers, each = 8, 50
	var cbs callbacks
	dones := make([]func(error), workers*each)
	for i := range dones {
		dones[i] = cbs.done(i)
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for j := range each {
				i := w*each + j
				tg, err := p.Resolve(ctxT(t), topic, mq.Selector{PartitionID: -2})
				if err != nil {
					t.Errorf("Resolve: %v", err)
					dones[i](nil)
					continue
				}
				p.Produce(ctxT(t), &mq.Record{Topic: topic, Target: tg, Key: strconv.Itoa(i), Body: []byte("c")}, dones[i])
			}
		})
	}
	wg.Wait()
	for i, err := range cbs.wait(t) {
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	got := r.ReadAll(t, topic)
	keys := map[string]bool{}
	for _, g := range got {
		keys[g.Key] = true
	}
	if len(got) != workers*each || len(keys) != workers*each {
		t.Fatalf("read %d records with %d distinct keys, want %d", len(got), len(keys), workers*each)
	}
}

func testCloseFlushes(t *testing.T, p mq.Producer, r Reader) {
	topic := topicName(t, "t")
	r.CreateTopic(t, topic, 2)
	tg := resolve(t, p, topic, mq.Selector{PartitionID: 1})
	const n = 100
	var cbs callbacks
	for i := range n {
		p.Produce(ctxT(t), &mq.Record{Topic: topic, Target: tg, Body: []byte(strconv.Itoa(i))}, cbs.done(i))
	}
	if err := p.Close(ctxT(t)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for i, err := range cbs.wait(t) {
		if err != nil {
			t.Fatalf("record %d handed over before Close: %v", i, err)
		}
	}
	if got := r.ReadAll(t, topic); len(got) != n {
		t.Fatalf("read %d records after Close, want %d", len(got), n)
	}

	var after callbacks
	p.Produce(ctxT(t), &mq.Record{Topic: topic, Target: tg, Body: []byte("late")}, after.done(0))
	wantIs(t, "Produce after Close", after.wait(t)[0], mq.ErrClosed)
	_, err := p.Resolve(ctxT(t), topic, mq.Selector{PartitionID: -1})
	wantIs(t, "Resolve after Close", err, mq.ErrClosed)
	if err := p.Close(ctxT(t)); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func testCloseWhileProducing(t *testing.T, p mq.Producer, r Reader) {
	topic := topicName(t, "t")
	r.CreateTopic(t, topic, 2)
	tg := resolve(t, p, topic, mq.Selector{PartitionID: 0})
	const workers, each = 4, 100
	var cbs callbacks
	dones := make([]func(error), workers*each)
	for i := range dones {
		dones[i] = cbs.done(i)
	}
	var started sync.WaitGroup
	var wg sync.WaitGroup
	started.Add(workers)
	for w := range workers {
		wg.Go(func() {
			started.Done()
			for j := range each {
				p.Produce(ctxT(t), &mq.Record{Topic: topic, Target: tg, Body: []byte("x")}, dones[w*each+j])
			}
		})
	}
	started.Wait()
	closeErr := p.Close(ctxT(t))
	wg.Wait()
	var ok, closed int
	for i, err := range cbs.wait(t) {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, mq.ErrClosed):
			closed++
		default:
			t.Errorf("record %d: %v, want nil or ErrClosed", i, err)
		}
	}
	if closeErr != nil {
		t.Errorf("Close: %v", closeErr)
	}
	if got := len(r.ReadAll(t, topic)); got < ok {
		t.Errorf("%d records acknowledged but only %d stored", ok, got)
	}
	t.Logf("acknowledged %d, closed %d", ok, closed)
}

func testCloseGivesUp(t *testing.T, p mq.Producer, r Reader) {
	b, ok := r.(Blocker)
	if !ok {
		t.Skip("backend cannot withhold acknowledgements (Reader is not a Blocker)")
	}
	topic := topicName(t, "t")
	r.CreateTopic(t, topic, 2)
	tg := resolve(t, p, topic, mq.Selector{PartitionID: 0})
	release := b.Block(t)
	defer release()
	const n = 20
	var cbs callbacks
	var calls atomic.Int32
	for i := range n {
		d := cbs.done(i)
		p.Produce(ctxT(t), &mq.Record{Topic: topic, Target: tg, Body: []byte("held")}, func(err error) {
			calls.Add(1)
			d(err)
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_ = p.Close(ctx) // may report that it gave up; the callbacks are what matter
	for i, err := range cbs.wait(t) {
		wantIs(t, fmt.Sprintf("held record %d after Close gave up", i), err, mq.ErrClosed)
	}
	release()
	if c := calls.Load(); c != n {
		t.Fatalf("%d done calls for %d records", c, n)
	}
}
