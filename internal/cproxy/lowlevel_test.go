package cproxy

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
	"github.com/ddmq-go/carrera/internal/config"
	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/mq/memory"
	"github.com/ddmq-go/carrera/internal/testenv"
)

// fakeLLReader serves the memory consumer's partitions: offsets in
// [low, high watermark) hold a message "<partition>-<offset>".
type fakeLLReader struct {
	mc  *memory.Consumer
	low int64

	mu    sync.Mutex
	waits []time.Duration
}

func (r *fakeLLReader) Partitions(_ context.Context, topic string) (int32, error) {
	return int32(r.mc.Partitions(topic)), nil
}

func (r *fakeLLReader) HighWatermarks(_ context.Context, topic string) (map[int32]int64, error) {
	out := map[int32]int64{}
	for p := range int32(r.mc.Partitions(topic)) {
		out[p] = r.mc.HighWatermark(topic, p)
	}
	return out, nil
}

func (r *fakeLLReader) LowWatermarks(_ context.Context, topic string) (map[int32]int64, error) {
	out := map[int32]int64{}
	for p := range int32(r.mc.Partitions(topic)) {
		out[p] = r.low
	}
	return out, nil
}

func (r *fakeLLReader) Committed(context.Context, string, string) (map[int32]mq.CommittedOffset, error) {
	return nil, nil
}

func (r *fakeLLReader) Commit(context.Context, string, string, map[int32]mq.CommittedOffset) error {
	return nil
}

func (r *fakeLLReader) Fetch(_ context.Context, topic string, p int32, offset int64, max int, wait time.Duration) ([]*mq.Delivery, int64, error) {
	r.mu.Lock()
	r.waits = append(r.waits, wait)
	r.mu.Unlock()
	hw := r.mc.HighWatermark(topic, p)
	if offset < r.low || offset > hw {
		return nil, offset, mq.ErrOffsetOutOfRange
	}
	var out []*mq.Delivery
	for o := offset; o < hw && len(out) < max; o++ {
		out = append(out, &mq.Delivery{Topic: topic, Partition: p, Offset: o, Body: fmt.Appendf(nil, "%d-%d", p, o)})
	}
	return out, offset + int64(len(out)), nil
}

// llSnapshot: group "ll" (LowLevel) and "hl" (pull) on cluster K, topic t.
func llSnapshot(asyncThreads int, maxTps float64) *config.CProxySnapshot {
	snap := &config.CProxySnapshot{Groups: map[string]*config.GroupView{}, Units: map[config.UnitKey]*config.UnitView{}}
	for name, kind := range map[string]config.ConsumeKind{"ll": config.KindLowLevel, "hl": config.KindPull} {
		k := config.UnitKey{Group: name, Cluster: "K"}
		gv := &config.GroupView{Name: name, Config: &config.GroupConfig{Group: name, AsyncThreads: asyncThreads}, Kind: kind, Units: []config.UnitKey{k}}
		snap.Groups[name] = gv
		snap.Units[k] = &config.UnitView{Key: k, Group: gv, ClusterKind: config.ClusterKafka,
			Subscriptions: []*config.Subscription{{Topic: "t", Kind: kind,
				Config: &config.UpstreamTopic{Topic: "t", MaxPullBatchSize: 4, MaxTps: maxTps}}}}
	}
	return snap
}

type llRig struct {
	l       *LowLevel
	mc      *memory.Consumer
	reader  *fakeLLReader
	created atomic.Int32
}

func newLLRig(t *testing.T, snap *config.CProxySnapshot, idle time.Duration) *llRig {
	t.Helper()
	r := &llRig{mc: memory.NewConsumer(memory.ConsumerOptions{Topics: map[string]int{"t": 2}})}
	r.reader = &fakeLLReader{mc: r.mc}
	r.l = NewLowLevel(LowLevelOptions{Log: zaptest.NewLogger(t), Snapshot: func() *config.CProxySnapshot { return snap },
		Consumer: func(*config.UnitView) (mq.GroupConsumer, error) {
			if r.created.Add(1) == 1 {
				return r.mc, nil
			}
			return memory.NewConsumer(memory.ConsumerOptions{Topics: map[string]int{"t": 2}}), nil
		},
		Reader:      func(string) mq.OffsetReader { return r.reader },
		IdleTimeout: idle})
	t.Cleanup(r.l.Close)
	return r
}

func fetchReq(id string, offsets map[string]map[string]int64) *consumer.FetchRequest {
	bs, ml := int32(100), int32(50)
	return &consumer.FetchRequest{ConsumerId: id, GroupId: "ll", Cluster: "K", FetchOffset: offsets, MaxBatchSize: &bs, MaxLingerTime: &ml}
}

// claimedQIDs is the number of qids the consumer's fetcher holds claims for.
func claimedQIDs(l *LowLevel, group, consumerID string) int {
	l.mu.Lock()
	f := l.fetchers[fetcherKey{group, consumerID}]
	l.mu.Unlock()
	if f == nil {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.claims)
}

// fetchOwned fetches until both qids are listed.
func fetchOwned(t *testing.T, l *LowLevel, req *consumer.FetchRequest) map[string]*consumer.QidResponse {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		res := l.Fetch(context.Background(), req)
		if len(res) == 2 {
			out := map[string]*consumer.QidResponse{}
			for _, q := range res {
				if q.Topic != "t" || q.NextRequestOffset == nil || q.Messages == nil {
					t.Fatalf("bad qid response %+v", q)
				}
				out[q.Qid] = q
			}
			return out
		}
		// Fewer than both: the member's claims arrive one at a time.
		if len(res) > 2 || time.Now().After(deadline) {
			t.Fatalf("fetch: %d results", len(res))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLowLevelFetchAck(t *testing.T) {
	r := newLLRig(t, llSnapshot(8, 0), time.Minute)
	r.mc.Append("t", 0, "", []byte("old"))
	r.mc.Append("t", 0, "", []byte("old"))
	// First fetch: nothing committed → latest; nextRequestOffset = hw.
	got := fetchOwned(t, r.l, fetchReq("c1", nil))
	if n := *got["K_0"].NextRequestOffset; n != 2 || len(got["K_0"].Messages) != 0 {
		t.Fatalf("K_0: next %d, %d msgs", n, len(got["K_0"].Messages))
	}
	if n := *got["K_1"].NextRequestOffset; n != 0 {
		t.Fatalf("K_1: next %d", n)
	}
	for range 6 {
		r.mc.Append("t", 0, "", nil)
	}
	r.mc.Append("t", 1, "", nil)
	// Explicit offsets: capped by maxPullBatchSize (4).
	got = fetchOwned(t, r.l, fetchReq("c1", map[string]map[string]int64{"t": {"K_0": 2, "K_1": 0}}))
	if q := got["K_0"]; len(q.Messages) != 4 || q.Messages[0].Offset != 2 || *q.NextRequestOffset != 6 || string(q.Messages[3].Value) != "0-5" {
		t.Fatalf("K_0: %+v", q)
	}
	if q := got["K_1"]; len(q.Messages) != 1 || *q.NextRequestOffset != 1 {
		t.Fatalf("K_1: %+v", q)
	}
	// Absent offsets continue from the last handed-out position.
	got = fetchOwned(t, r.l, fetchReq("c1", nil))
	if q := got["K_0"]; len(q.Messages) != 2 || q.Messages[0].Offset != 6 || *q.NextRequestOffset != 8 {
		t.Fatalf("K_0 continued: %+v", q)
	}
	// Ack commits through the claim.
	ack := &consumer.AckResult_{ConsumerId: "c1", GroupId: "ll", Cluster: "K",
		Offsets: map[string]map[string]int64{"t": {"K_0": 6, "K_1": 1}}}
	if !r.l.Ack(context.Background(), ack) {
		t.Fatal("ack refused")
	}
	if r.mc.Committed("t", 0).Offset != 6 || r.mc.Committed("t", 1).Offset != 1 {
		t.Fatalf("committed %v %v", r.mc.Committed("t", 0), r.mc.Committed("t", 1))
	}
	if r.l.Ack(context.Background(), &consumer.AckResult_{ConsumerId: "nobody", GroupId: "ll",
		Offsets: map[string]map[string]int64{"t": {"K_0": 1}}}) {
		t.Error("unknown consumer: ack must be false")
	}
	// Entries for qids the fetcher does not own are skipped (warning), the
	// answer stays true and nothing is committed (behaviour.md §2.11).
	for name, a := range map[string]*consumer.AckResult_{
		"unknown qid":   {ConsumerId: "c1", GroupId: "ll", Offsets: map[string]map[string]int64{"t": {"K_9": 1}}},
		"unknown topic": {ConsumerId: "c1", GroupId: "ll", Offsets: map[string]map[string]int64{"x": {"K_0": 1}}},
		"negative":      {ConsumerId: "c1", GroupId: "ll", Offsets: map[string]map[string]int64{"t": {"K_0": -1}}},
	} {
		if !r.l.Ack(context.Background(), a) {
			t.Errorf("%s: ack must be true (entry skipped)", name)
		}
		if r.mc.Committed("t", 0).Offset != 6 {
			t.Fatalf("%s: committed moved to %v", name, r.mc.Committed("t", 0))
		}
	}
	if !r.l.Ack(context.Background(), &consumer.AckResult_{ConsumerId: "nobody", GroupId: "ll"}) {
		t.Error("empty ack must be true")
	}
	// Bogus offsets: beyond the end → hw; below the log start → low.
	r.reader.low = 1
	got = fetchOwned(t, r.l, fetchReq("c1", map[string]map[string]int64{"t": {"K_0": 1000, "K_1": 0}}))
	if q := got["K_0"]; len(q.Messages) != 0 || *q.NextRequestOffset != 8 {
		t.Fatalf("beyond end: %+v", q)
	}
	if q := got["K_1"]; len(q.Messages) != 0 || *q.NextRequestOffset != 1 {
		t.Fatalf("below start: %+v", q)
	}
	// The broker wait is bounded and split across the qids.
	r.reader.mu.Lock()
	for _, w := range r.reader.waits {
		if w > maxFetchWait/2 {
			t.Errorf("wait %v", w)
		}
	}
	r.reader.mu.Unlock()
	// A restarted fetcher (after Close of the claim) starts from the committed offset.
	r.mc.Revoke("t", 0)
	res := r.l.Fetch(context.Background(), fetchReq("c1", nil))
	if len(res) != 1 || res[0].Qid != "K_1" {
		t.Fatalf("after revoke: %+v", res)
	}
	if !r.l.Ack(context.Background(), &consumer.AckResult_{ConsumerId: "c1", GroupId: "ll", Offsets: map[string]map[string]int64{"t": {"K_0": 7}}}) {
		t.Fatal("ack of a revoked qid must be skipped, answering true")
	}
	if r.mc.Committed("t", 0).Offset == 7 {
		t.Fatal("ack of a revoked qid was committed")
	}
	r.mc.Rebalance(nil)
	// The memory consumer hands out the new claims asynchronously: wait
	// until the fetcher holds both, so the fetch below sees K_0 afresh.
	testenv.Eventually(t, 5*time.Second, "both qids claimed again", func() bool { return claimedQIDs(r.l, "ll", "c1") == 2 })
	got = fetchOwned(t, r.l, fetchReq("c1", nil))
	if q := got["K_0"]; len(q.Messages) == 0 || q.Messages[0].Offset != 6 || *q.NextRequestOffset != 8 {
		t.Fatalf("from committed: %+v", q)
	}
}

func TestLowLevelRefusals(t *testing.T) {
	r := newLLRig(t, llSnapshot(1, 0), time.Minute)
	for name, req := range map[string]*consumer.FetchRequest{
		"high-level group": {ConsumerId: "c", GroupId: "hl"},
		"unknown group":    {ConsumerId: "c", GroupId: "nope"},
		"no group":         {ConsumerId: "c"},
	} {
		if res := r.l.Fetch(context.Background(), req); res == nil || len(res) != 0 {
			t.Errorf("%s: %+v", name, res)
		}
	}
	if r.created.Load() != 0 {
		t.Fatal("no fetcher may start for refused requests")
	}
	fetchOwned(t, r.l, fetchReq("c1", nil))
	// asyncThreads = 1: a second consumer id gets no fetcher.
	if res := r.l.Fetch(context.Background(), fetchReq("c2", nil)); len(res) != 0 || r.created.Load() != 1 {
		t.Fatalf("second fetcher: %+v (created %d)", res, r.created.Load())
	}
	r.l.Close()
	if res := r.l.Fetch(context.Background(), fetchReq("c1", nil)); len(res) != 0 {
		t.Fatal("fetch after close must be empty")
	}
	if r.l.Ack(context.Background(), &consumer.AckResult_{ConsumerId: "c1", GroupId: "ll", Offsets: map[string]map[string]int64{"t": {"K_0": 1}}}) {
		t.Fatal("ack after close must be false")
	}
}

func TestLowLevelIdleAndApply(t *testing.T) {
	snap := llSnapshot(8, 0)
	r := newLLRig(t, snap, 50*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.l.RunIdle(ctx, 10*time.Millisecond) }()
	defer func() { cancel(); <-done }()
	fetchOwned(t, r.l, fetchReq("c1", nil))
	ack := &consumer.AckResult_{ConsumerId: "c1", GroupId: "ll", Offsets: map[string]map[string]int64{"t": {"K_0": 0}}}
	deadline := time.Now().Add(5 * time.Second)
	for r.l.Ack(context.Background(), &consumer.AckResult_{ConsumerId: "c1", GroupId: "ll", Offsets: map[string]map[string]int64{}}) &&
		r.fetcherCount() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("idle fetcher not stopped")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r.l.Ack(context.Background(), ack) {
		t.Fatal("ack after idle stop must be false")
	}
	// A configuration change of the group stops its fetchers.
	fetchOwned(t, r.l, fetchReq("c2", nil))
	next := llSnapshot(8, 5)
	next.Units[config.UnitKey{Group: "ll", Cluster: "K"}].Subscriptions[0].Config.MaxPullBatchSize = 2
	r.l.Apply(snap, next)
	if n := r.fetcherCount(); n != 0 {
		t.Fatalf("%d fetchers after a config change", n)
	}
}

func (r *llRig) fetcherCount() int {
	r.l.mu.Lock()
	defer r.l.mu.Unlock()
	return len(r.l.fetchers)
}

func TestLowLevelMaxTps(t *testing.T) {
	r := newLLRig(t, llSnapshot(8, 20), time.Minute)
	fetchOwned(t, r.l, fetchReq("c1", nil))
	for range 8 {
		r.mc.Append("t", 0, "", nil)
	}
	// 20 tps, burst 20: 3 fetches × 4 messages fit the burst, then the next
	// 8 messages need ~0.4 s.
	start := time.Now()
	off := int64(0)
	total := 0
	for range 5 {
		got := fetchOwned(t, r.l, fetchReq("c1", map[string]map[string]int64{"t": {"K_0": off % 8, "K_1": 0}}))
		off += int64(len(got["K_0"].Messages))
		total += len(got["K_0"].Messages)
	}
	if total != 20 {
		t.Fatalf("total %d", total)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("throttled too long: %v", el)
	}
	got := fetchOwned(t, r.l, fetchReq("c1", map[string]map[string]int64{"t": {"K_0": 0, "K_1": 0}}))
	if el := time.Since(start); len(got["K_0"].Messages) != 4 || el < 100*time.Millisecond {
		t.Fatalf("not throttled: %d msgs after %v", len(got["K_0"].Messages), el)
	}
}
