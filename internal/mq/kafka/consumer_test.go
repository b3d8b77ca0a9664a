package kafka

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap/zaptest"

	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/testenv"
)

// waitFor bounds every wait of these tests.
const waitFor = 15 * time.Second

// startGroupKafka starts kfake with group session bounds that allow the
// fast timings of consumerOptions.
func startGroupKafka(t *testing.T, opts ...kfake.Opt) *testenv.Kafka {
	t.Helper()
	return testenv.StartKafka(t, append([]kfake.Opt{kfake.GroupMinSessionTimeout(500 * time.Millisecond)}, opts...)...)
}

func consumerOptions(k *testenv.Kafka, group string, topics ...string) ConsumerOptions {
	return ConsumerOptions{
		Cluster:           "K_test",
		Brokers:           k.Addrs(),
		Group:             group,
		Topics:            topics,
		InitialOffset:     "oldest",
		SessionTimeout:    time.Second,
		HeartbeatInterval: 100 * time.Millisecond,
		RebalanceTimeout:  2 * time.Second,
		CommitInterval:    100 * time.Millisecond,
		FetchMaxWait:      50 * time.Millisecond,
		RetryBackoff:      50 * time.Millisecond,
	}
}

// produceN produces n records with bodies "<partition>-<i>" to partition.
func produceN(t *testing.T, p *Producer, topic string, partition int32, n int) {
	t.Helper()
	for i := range n {
		rec := &mq.Record{Topic: topic, Target: mq.Target{Partition: partition}, Body: fmt.Appendf(nil, "%d-%d", partition, i)}
		if err := mq.ProduceSync(ctxT(t), p, rec); err != nil {
			t.Fatalf("produce to %s/%d: %v", topic, partition, err)
		}
	}
}

// testHandler records what a member sees. Its Claim reads messages until
// the claim ends; onMessage (if set) runs for each before it is recorded.
type testHandler struct {
	setups    chan map[string][]int32
	claims    chan mq.Claim
	msgs      chan *mq.Delivery
	cleanups  chan struct{}
	onMessage func(c mq.Claim, d *mq.Delivery)
}

func newTestHandler() *testHandler {
	return &testHandler{
		setups:   make(chan map[string][]int32, 100),
		claims:   make(chan mq.Claim, 100),
		msgs:     make(chan *mq.Delivery, 1000),
		cleanups: make(chan struct{}, 100),
	}
}

func (h *testHandler) Setup(assigned map[string][]int32) { h.setups <- assigned }
func (h *testHandler) Cleanup()                          { h.cleanups <- struct{}{} }

func (h *testHandler) Claim(c mq.Claim) {
	h.claims <- c
	for {
		select {
		case d, ok := <-c.Messages():
			if !ok {
				return
			}
			if h.onMessage != nil {
				h.onMessage(c, d)
			}
			h.msgs <- d
		case <-c.Context().Done():
			return
		}
	}
}

// commitEach commits offset+1 with metadata "m<offset+1>" for every message.
func commitEach(c mq.Claim, d *mq.Delivery) {
	c.Commit(mq.CommittedOffset{Offset: d.Offset + 1, Metadata: fmt.Sprintf("m%d", d.Offset+1)})
}

// nextSetup waits for the handler's next generation.
func (h *testHandler) nextSetup(t *testing.T) map[string][]int32 {
	t.Helper()
	select {
	case a := <-h.setups:
		return a
	case <-time.After(waitFor):
		t.Fatal("no generation joined")
		return nil
	}
}

// setupWith waits for a generation that assigns exactly n partitions.
func (h *testHandler) setupWith(t *testing.T, topic string, n int) []int32 {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case a := <-h.setups:
			if len(a[topic]) == n {
				return a[topic]
			}
		case <-deadline:
			t.Fatalf("no generation with %d partitions of %q", n, topic)
		}
	}
}

// claimsOf collects the next n claims that have not ended (claims of
// earlier generations are skipped).
func (h *testHandler) claimsOf(t *testing.T, n int) map[int32]mq.Claim {
	t.Helper()
	out := map[int32]mq.Claim{}
	deadline := time.After(waitFor)
	for len(out) < n {
		select {
		case c := <-h.claims:
			if c.Context().Err() == nil {
				out[c.Partition()] = c
			}
		case <-deadline:
			t.Fatalf("%d of %d claims started", len(out), n)
		}
	}
	return out
}

// receive collects n messages.
func (h *testHandler) receive(t *testing.T, n int) []*mq.Delivery {
	t.Helper()
	var out []*mq.Delivery
	deadline := time.After(waitFor)
	for len(out) < n {
		select {
		case d := <-h.msgs:
			out = append(out, d)
		case <-deadline:
			t.Fatalf("received %d of %d messages", len(out), n)
		}
	}
	return out
}

// receiveUntil collects messages until done reports true for all seen.
func (h *testHandler) receiveUntil(t *testing.T, done func(seen []*mq.Delivery) bool) []*mq.Delivery {
	t.Helper()
	var out []*mq.Delivery
	deadline := time.After(waitFor)
	for !done(out) {
		select {
		case d := <-h.msgs:
			out = append(out, d)
		case <-deadline:
			t.Fatalf("condition not met after %d messages", len(out))
		}
	}
	return out
}

// runMember runs a GroupConsumer until the returned stop is called (or the
// test ends); stop waits for Run to return.
func runMember(t *testing.T, opts ConsumerOptions, h mq.ClaimHandler) (stop func()) {
	t.Helper()
	gc, err := NewGroupConsumer(opts, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("NewGroupConsumer: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gc.Run(ctx, h) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(waitFor):
				t.Errorf("Run did not return %v after cancel", waitFor)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func newTestReader(t *testing.T, k *testenv.Kafka) *OffsetReader {
	t.Helper()
	r, err := NewOffsetReader(consumerOptions(k, "", ""), zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("NewOffsetReader: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("reader Close: %v", err)
		}
	})
	return r
}

func offsetsOf(ds []*mq.Delivery) map[int32][]int64 {
	out := map[int32][]int64{}
	for _, d := range ds {
		out[d.Partition] = append(out[d.Partition], d.Offset)
	}
	return out
}

// A group without committed offsets starts at the log end ("newest") or at
// the log start ("oldest"); Initial reports no committed offset.
func TestConsumeFromNewestAndOldest(t *testing.T) {
	k := startGroupKafka(t)
	k.CreateTopic("from", 2)
	p := newTestProducer(t, testOptions(k))
	for part := range int32(2) {
		produceN(t, p, "from", part, 3)
	}

	newest, oldest := newTestHandler(), newTestHandler()
	optsN := consumerOptions(k, "g-newest", "from")
	optsN.InitialOffset = "newest"
	runMember(t, optsN, newest)
	runMember(t, consumerOptions(k, "g-oldest", "from"), oldest)

	// A partition without a committed offset gets its start position
	// committed before the claim starts (pinStart): newest = 3, oldest = 0.
	for h, want := range map[*testHandler]int64{newest: 3, oldest: 0} {
		for _, c := range h.claimsOf(t, 2) {
			if got := c.Initial(); got != (mq.CommittedOffset{Offset: want}) {
				t.Errorf("partition %d: Initial %+v, want pinned start %d", c.Partition(), got, want)
			}
			if c.Topic() != "from" {
				t.Errorf("claim topic %q", c.Topic())
			}
		}
	}
	for part := range int32(2) {
		produceN(t, p, "from", part, 1)
	}

	got := offsetsOf(newest.receive(t, 2))
	for part := range int32(2) {
		if !slices.Equal(got[part], []int64{3}) {
			t.Errorf("newest: partition %d offsets %v, want [3]", part, got[part])
		}
	}
	got = offsetsOf(oldest.receive(t, 8))
	for part := range int32(2) {
		if !slices.Equal(got[part], []int64{0, 1, 2, 3}) {
			t.Errorf("oldest: partition %d offsets %v, want [0 1 2 3]", part, got[part])
		}
	}
	select {
	case d := <-newest.msgs:
		t.Errorf("newest: unexpected message %s/%d@%d", d.Topic, d.Partition, d.Offset)
	default:
	}
}

// Commit stores exactly the last (offset, metadata) given, backwards and
// metadata-only changes included; the flush at the claim's end makes it
// durable, and the next member starts from it with its metadata.
func TestCommitMetadataHandedToNextMember(t *testing.T) {
	k := startGroupKafka(t)
	k.CreateTopic("meta", 2)
	p := newTestProducer(t, testOptions(k))
	produceN(t, p, "meta", 0, 10)
	r := newTestReader(t, k)

	opts := consumerOptions(k, "g-meta", "meta")
	opts.CommitInterval = time.Hour // only the flush at the claim's end
	first := newTestHandler()
	stop := runMember(t, opts, first)
	claims := first.claimsOf(t, 2)
	first.receive(t, 10)

	c := claims[0]
	c.Commit(mq.CommittedOffset{Offset: 6, Metadata: "m6"})
	c.Commit(mq.CommittedOffset{Offset: 4, Metadata: "m4"})    // backwards
	c.Commit(mq.CommittedOffset{Offset: 4, Metadata: "final"}) // metadata only
	c.Commit(mq.CommittedOffset{Offset: -1, Metadata: "x"})    // ignored

	// A simple commit is refused while the group has a member.
	err := r.Commit(ctxT(t), "g-meta", "meta", map[int32]mq.CommittedOffset{1: {Offset: 1}})
	if err == nil {
		t.Error("simple commit for a group with a member succeeded")
	}

	stop()
	c.Commit(mq.CommittedOffset{Offset: 9, Metadata: "late"}) // after the claim ended: ignored
	select {
	case <-c.Context().Done():
	default:
		t.Error("claim context not done after Run returned")
	}
	if _, ok := <-c.Messages(); ok {
		t.Error("Messages not closed after the claim ended")
	}

	got, err := r.Committed(ctxT(t), "g-meta", "meta")
	if err != nil {
		t.Fatal(err)
	}
	// Partition 1 never committed by the handler: its pinned start (0).
	want := map[int32]mq.CommittedOffset{0: {Offset: 4, Metadata: "final"}, 1: {Offset: 0}}
	if !maps.Equal(got, want) {
		t.Fatalf("Committed %v, want %v", got, want)
	}

	second := newTestHandler()
	runMember(t, opts, second)
	claims = second.claimsOf(t, 2)
	if got := claims[0].Initial(); got != (mq.CommittedOffset{Offset: 4, Metadata: "final"}) {
		t.Errorf("partition 0: Initial %+v, want {4 final}", got)
	}
	if got := claims[1].Initial(); got != (mq.CommittedOffset{Offset: 0}) {
		t.Errorf("partition 1: Initial %+v, want the start pinned by the first member (0)", got)
	}
	if got := offsetsOf(second.receive(t, 6))[0]; !slices.Equal(got, []int64{4, 5, 6, 7, 8, 9}) {
		t.Errorf("second member read offsets %v, want 4..9", got)
	}
	if hw := claims[0].HighWatermark(); hw != 10 {
		t.Errorf("HighWatermark %d, want 10", hw)
	}
}

// Two members split 8 partitions; when one leaves, the other takes its
// partitions over from the offsets (and metadata) it committed.
func TestMembersSplitAndHandOver(t *testing.T) {
	const topic, n = "split", 8
	k := startGroupKafka(t)
	k.CreateTopic(topic, n)
	p := newTestProducer(t, testOptions(k))
	for part := range int32(n) {
		produceN(t, p, topic, part, 2)
	}
	opts := consumerOptions(k, "g-split", topic)

	a := newTestHandler()
	a.onMessage = commitEach
	runMember(t, opts, a)
	a.setupWith(t, topic, n)
	// a reads offsets 0 and 1 of every partition and commits 2.
	a.receiveUntil(t, func(seen []*mq.Delivery) bool { return covers(seen, n, 1) })

	b := newTestHandler()
	b.onMessage = commitEach
	stopB := runMember(t, opts, b)
	partsB := b.setupWith(t, topic, n/2)
	partsA := a.setupWith(t, topic, n/2)
	if all := slices.Sorted(slices.Values(append(slices.Clone(partsA), partsB...))); !slices.Equal(all, []int32{0, 1, 2, 3, 4, 5, 6, 7}) {
		t.Fatalf("assignments overlap or miss partitions: a %v, b %v", partsA, partsB)
	}
	for part, c := range b.claimsOf(t, n/2) {
		if got := c.Initial(); got != (mq.CommittedOffset{Offset: 2, Metadata: "m2"}) {
			t.Errorf("b partition %d: Initial %+v, want {2 m2}", part, got)
		}
	}

	for part := range int32(n) {
		produceN(t, p, topic, part, 1)
	}
	// Offsets 2 of every partition, each read by its owner.
	seenA := map[int32]bool{}
	seenB := map[int32]bool{}
	deadline := time.After(waitFor)
	for len(seenA)+len(seenB) < n {
		select {
		case d := <-a.msgs:
			if d.Offset == 2 {
				seenA[d.Partition] = true
			}
		case d := <-b.msgs:
			if d.Offset == 2 {
				seenB[d.Partition] = true
			}
		case <-deadline:
			t.Fatalf("offset 2 read from a %v, b %v", seenA, seenB)
		}
	}
	for _, part := range partsB {
		if !seenB[part] {
			t.Errorf("partition %d of b was not read by b", part)
		}
	}

	stopB()
	a.setupWith(t, topic, n)
	claims := a.claimsOf(t, n)
	for _, part := range partsB {
		if got := claims[part].Initial(); got != (mq.CommittedOffset{Offset: 3, Metadata: "m3"}) {
			t.Errorf("partition %d handed over with Initial %+v, want {3 m3}", part, got)
		}
	}
}

// covers reports whether seen holds offsets 0..last of partitions 0..n-1.
func covers(seen []*mq.Delivery, n int, last int64) bool {
	got := offsetsOf(seen)
	for part := range int32(n) {
		for o := int64(0); o <= last; o++ {
			if !slices.Contains(got[part], o) {
				return false
			}
		}
	}
	return true
}

// Key, body, timestamp, TAGS → Tags and the other headers → Properties.
func TestConsumedRecordLayout(t *testing.T) {
	k := startGroupKafka(t)
	k.CreateTopic("layout-c", 1)
	p := newTestProducer(t, testOptions(k))
	before := time.Now().Add(-time.Second)
	recs := []*mq.Record{
		{Topic: "layout-c", Body: []byte("plain")},
		{Topic: "layout-c", Key: "k1", Tags: "TagA", Body: []byte("v"), Properties: map[string]string{"a": "1", "b": ""}},
		{Topic: "layout-c", Tags: "only-tags", Body: []byte("t")},
	}
	for _, rec := range recs {
		if err := mq.ProduceSync(ctxT(t), p, rec); err != nil {
			t.Fatal(err)
		}
	}
	// The group consumer hands bodies out as windows into the fetch
	// response (Shared; the engine and the member's ShareGate bound how
	// long); Fetch copies them (its caller keeps them as long as it likes).
	check := func(t *testing.T, got []*mq.Delivery, shared bool) {
		t.Helper()
		if len(got) != 3 {
			t.Fatalf("%d deliveries", len(got))
		}
		for i, d := range got {
			rec := recs[i]
			if d.Topic != "layout-c" || d.Partition != 0 || d.Offset != int64(i) || d.Key != rec.Key ||
				d.Tags != rec.Tags || string(d.Body) != string(rec.Body) || !maps.Equal(d.Properties, rec.Properties) ||
				(d.Properties == nil) != (rec.Properties == nil) {
				t.Errorf("delivery %d: %+v, want record %+v", i, d, rec)
			}
			if d.Shared != shared {
				t.Errorf("delivery %d: Shared %v, want %v", i, d.Shared, shared)
			}
			if d.Timestamp.Before(before) || d.Timestamp.After(time.Now().Add(time.Second)) {
				t.Errorf("delivery %d: timestamp %v", i, d.Timestamp)
			}
		}
	}
	t.Run("GroupConsumer", func(t *testing.T) {
		h := newTestHandler()
		runMember(t, consumerOptions(k, "g-layout", "layout-c"), h)
		check(t, h.receive(t, 3), true)
	})
	t.Run("Fetch", func(t *testing.T) {
		got, next, err := newTestReader(t, k).Fetch(ctxT(t), "layout-c", 0, 0, 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		if next != 3 {
			t.Errorf("next %d, want 3", next)
		}
		check(t, got, false)
	})
}

// Run keeps retrying an unreachable cluster and returns nil once ctx ends.
func TestRunUnreachableUntilCancelled(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there any more
	opts := ConsumerOptions{Brokers: []string{addr}, Group: "g-down", Topics: []string{"nowhere"}, RetryBackoff: 50 * time.Millisecond}
	gc, err := NewGroupConsumer(opts, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := gc.Run(ctx, newTestHandler()); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Run returned %v after its context ended", d)
	}
	if err := gc.Run(context.Background(), newTestHandler()); err == nil {
		t.Error("second Run succeeded")
	}
}

func TestNewGroupConsumerOptions(t *testing.T) {
	base := ConsumerOptions{Brokers: []string{"127.0.0.1:1"}, Group: "g", Topics: []string{"t"}}
	for name, mod := range map[string]func(o *ConsumerOptions){
		"NoBrokers":        func(o *ConsumerOptions) { o.Brokers = nil },
		"NoGroup":          func(o *ConsumerOptions) { o.Group = "" },
		"NoTopics":         func(o *ConsumerOptions) { o.Topics = nil },
		"BadInitialOffset": func(o *ConsumerOptions) { o.InitialOffset = "middle" },
		"HeartbeatTooSlow": func(o *ConsumerOptions) { o.HeartbeatInterval = 20 * time.Second },
	} {
		t.Run(name, func(t *testing.T) {
			o := base
			mod(&o)
			if _, err := NewGroupConsumer(o, nil); err == nil {
				t.Error("accepted")
			}
		})
	}
	gc, err := NewGroupConsumer(base, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := gc.cfg.Consumer
	if c.Offsets.AutoCommit.Enable || c.Offsets.Initial != sarama.OffsetNewest || gc.cfg.Metadata.AllowAutoTopicCreation {
		t.Errorf("auto-commit %v, initial %d, auto-create %v: want off, newest, off",
			c.Offsets.AutoCommit.Enable, c.Offsets.Initial, gc.cfg.Metadata.AllowAutoTopicCreation)
	}
	if gc.cfg.Net.ReadTimeout < DefaultRebalanceTimeout {
		t.Errorf("read timeout %v below the rebalance timeout", gc.cfg.Net.ReadTimeout)
	}
}

// fakeSession applies MarkOffset/ResetOffset with the semantics of sarama's
// partition offset manager.
type fakeSession struct {
	sarama.ConsumerGroupSession
	mu     sync.Mutex
	offset int64
	meta   string
	calls  int
}

func (s *fakeSession) MarkOffset(_ string, _ int32, o int64, md string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if o > s.offset {
		s.offset, s.meta = o, md
	}
}

func (s *fakeSession) ResetOffset(_ string, _ int32, o int64, md string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if o <= s.offset {
		s.offset, s.meta = o, md
	}
}

func TestClaimCommitSemantics(t *testing.T) {
	fs := &fakeSession{offset: 5, meta: "start"}
	c := &claim{topic: "t", sess: fs, initial: mq.CommittedOffset{Offset: 5, Metadata: "start"}}
	c.last = c.initial
	for _, co := range []mq.CommittedOffset{
		{Offset: 8, Metadata: "a"}, {Offset: 8, Metadata: "b"}, {Offset: 3, Metadata: ""},
		{Offset: 3, Metadata: "c"}, {Offset: 9, Metadata: "c"},
	} {
		c.Commit(co)
		if fs.offset != co.Offset || fs.meta != co.Metadata {
			t.Fatalf("after Commit(%+v): stored (%d, %q)", co, fs.offset, fs.meta)
		}
	}
	calls := fs.calls
	c.Commit(mq.CommittedOffset{Offset: 9, Metadata: "c"}) // unchanged
	c.Commit(mq.CommittedOffset{Offset: -1})               // no offset
	c.end()
	c.Commit(mq.CommittedOffset{Offset: 20, Metadata: "late"})
	if fs.calls != calls || fs.offset != 9 {
		t.Errorf("ignored commits reached the offset manager: %d calls, offset %d", fs.calls-calls, fs.offset)
	}
}

func TestHeaderFields(t *testing.T) {
	tags, props := headerFields(nil)
	if tags != "" || props != nil {
		t.Errorf("no headers: %q %v", tags, props)
	}
	tags, props = headerFields([]*sarama.RecordHeader{
		{Key: []byte("TAGS"), Value: []byte("T")}, {Key: []byte("a"), Value: []byte("1")},
		nil, {Key: []byte("a"), Value: []byte("2")},
	})
	if tags != "T" || !maps.Equal(props, map[string]string{"a": "2"}) {
		t.Errorf("got %q %v", tags, props)
	}
	tags, props = headerFields([]*sarama.RecordHeader{{Key: []byte("TAGS"), Value: []byte("T")}})
	if tags != "T" || props != nil {
		t.Errorf("tags only: %q %v", tags, props)
	}
}

// A member subscribed to a topic that does not exist yet keeps retrying and
// starts consuming once it is created.
func TestConsumeTopicCreatedLater(t *testing.T) {
	k := startGroupKafka(t)
	h := newTestHandler()
	runMember(t, consumerOptions(k, "g-later", "later"), h)
	time.Sleep(200 * time.Millisecond) // let a few joins fail; correctness does not depend on it
	select {
	case a := <-h.setups:
		t.Fatalf("joined %v before the topic existed", a)
	default:
	}
	k.CreateTopic("later", 1)
	produceN(t, newTestProducer(t, testOptions(k)), "later", 0, 1)
	if got := h.receive(t, 1)[0]; got.Topic != "later" || got.Offset != 0 {
		t.Errorf("received %s/%d@%d", got.Topic, got.Partition, got.Offset)
	}
}

// TestStartPinnedBeforeFirstCommit: a member of a new group that stops
// before committing anything must leave its start position committed, so the
// next owner does not jump to "newest" and skip what was produced meanwhile.
func TestStartPinnedBeforeFirstCommit(t *testing.T) {
	k := startGroupKafka(t)
	k.CreateTopic("pin", 1)
	p := newTestProducer(t, testOptions(k))
	produceN(t, p, "pin", 0, 3) // before the group exists: skipped by "newest"

	opts := consumerOptions(k, "g-pin", "pin")
	opts.InitialOffset = "newest"
	first := newTestHandler()
	stop := runMember(t, opts, first)
	first.claimsOf(t, 1)
	stop() // no Commit from the handler

	produceN(t, p, "pin", 0, 5) // offsets 3..7, produced while no member runs
	second := newTestHandler()
	runMember(t, opts, second)
	if got := offsetsOf(second.receive(t, 5))[0]; !slices.Equal(got, []int64{3, 4, 5, 6, 7}) {
		t.Fatalf("next owner read %v, want 3..7 (nothing skipped)", got)
	}
}
