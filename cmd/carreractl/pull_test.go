package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
)

// fakeConsumer serves one qid "K_0" of topic "orders" for group "g": pull
// hands out pending offsets (failed ones come back), acks are recorded.
type fakeConsumer struct {
	mu       sync.Mutex
	pending  []int64
	acked    []int64
	failed   []int64
	submits  int
	batches  []int32
	topics   []string
	statsReq []*consumer.ConsumeStatsRequest
}

func newFakeConsumer(n int) *fakeConsumer {
	f := &fakeConsumer{}
	for i := range n {
		f.pending = append(f.pending, int64(i))
	}
	return f
}

func (f *fakeConsumer) apply(r *consumer.ConsumeResult_) {
	for ; r != nil; r = r.NextResult_ {
		if r.GetContext().GetQid() != "K_0" {
			continue
		}
		f.acked = append(f.acked, r.SuccessOffsets...)
		f.failed = append(f.failed, r.FailOffsets...)
		f.pending = append(f.pending, r.FailOffsets...)
		slices.Sort(f.pending)
	}
}

func (f *fakeConsumer) Pull(_ context.Context, req *consumer.PullRequest) (*consumer.PullResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if req.GroupId == "bad" {
		return nil, &consumer.PullException{Code: 7, Message: "nope"}
	}
	f.apply(req.Result_)
	f.batches = append(f.batches, req.GetMaxBatchSize())
	f.topics = append(f.topics, req.GetTopic())
	k := min(int(req.GetMaxBatchSize()), len(f.pending))
	if req.GroupId != "g" || k == 0 {
		time.Sleep(time.Duration(req.GetMaxLingerTime()) * time.Millisecond)
		return &consumer.PullResponse{Context: &consumer.Context{}, Messages: []*consumer.Message{}}, nil
	}
	resp := &consumer.PullResponse{Context: &consumer.Context{GroupId: "g", Topic: "orders", Qid: "K_0"}}
	for _, o := range f.pending[:k] {
		resp.Messages = append(resp.Messages, &consumer.Message{Key: "k", Tag: "t", Offset: o,
			Value: fmt.Appendf(nil, "v%d", o), Properties: map[string]string{"traceId": "x", "a": "b"}})
	}
	f.pending = f.pending[k:]
	return resp, nil
}

func (f *fakeConsumer) Submit(_ context.Context, r *consumer.ConsumeResult_) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.submits++
	f.apply(r)
	return true, nil
}

func (f *fakeConsumer) GetConsumeStats(_ context.Context, req *consumer.ConsumeStatsRequest) ([]*consumer.ConsumeStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statsReq = append(f.statsReq, req)
	switch req.Group {
	case "bad":
		return nil, &consumer.PullException{Code: 3, Message: "broken"}
	case "g":
		return []*consumer.ConsumeStats{{Group: "g", Topic: "orders",
			ConsumeOffsets: map[string]int64{"K_0": 3, "K_10": 9},
			ProduceOffsets: map[string]int64{"K_0": 5, "K_10": 7, "K_2": 0}}}, nil
	case "new":
		return []*consumer.ConsumeStats{{Group: "new", Topic: "orders",
			ConsumeOffsets: map[string]int64{}, ProduceOffsets: map[string]int64{"K_0": 4, "K_1": 0}}}, nil
	}
	return []*consumer.ConsumeStats{}, nil
}

func (f *fakeConsumer) Fetch(context.Context, *consumer.FetchRequest) (*consumer.FetchResponse, error) {
	return nil, fmt.Errorf("not implemented")
}

func (f *fakeConsumer) Ack(context.Context, *consumer.AckResult_) (bool, error) {
	return false, fmt.Errorf("not implemented")
}

// startConsumerServer serves h over framed + compact Thrift, as cproxy does.
func startConsumerServer(t *testing.T, h consumer.ConsumerService) string {
	t.Helper()
	sock, err := thrift.NewTServerSocket("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := sock.Listen(); err != nil {
		t.Fatal(err)
	}
	conf := &thrift.TConfiguration{}
	srv := thrift.NewTSimpleServer4(consumer.NewConsumerServiceProcessor(h), sock,
		thrift.NewTFramedTransportFactoryConf(thrift.NewTTransportFactory(), conf),
		thrift.NewTCompactProtocolFactoryConf(conf))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve()
	}()
	t.Cleanup(func() {
		_ = srv.Stop()
		<-done
	})
	return sock.Addr().String()
}

func TestPull(t *testing.T) {
	f := newFakeConsumer(7)
	addr := startConsumerServer(t, f)

	r := mustRun(t, nil, "pull", "-addr", addr, "-group", "g", "-topic", "orders", "-n", "5", "-batch", "3", "-linger", "20")
	if got := strings.Count(r.stdout, "context group=g topic=orders qid=K_0"); got != 2 {
		t.Fatalf("want 2 batches (3 + 2):\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, `  offset=4 key="k" tag="t" properties={a="b" traceId="x"} value="v4"`) ||
		strings.Contains(r.stdout, "offset=5") || !strings.Contains(r.stderr, "5 message(s)") {
		t.Fatalf("%+v", r)
	}
	f.mu.Lock()
	// The second pull carried the first batch's ack; the final submit the second's.
	if !slices.Equal(f.acked, []int64{0, 1, 2, 3, 4}) || f.submits != 1 || !slices.Equal(f.batches, []int32{3, 2}) ||
		f.topics[0] != "orders" || !slices.Equal(f.pending, []int64{5, 6}) {
		t.Fatalf("acked %v submits %d batches %v topics %v pending %v", f.acked, f.submits, f.batches, f.topics, f.pending)
	}
	f.mu.Unlock()

	// -nack-first: every message fails once, comes back and is acknowledged.
	r = mustRun(t, nil, "pull", "-addr", addr, "-group", "g", "-n", "2", "-nack-first", "-linger", "20")
	if strings.Count(r.stdout, "  nack offset=") != 2 || !strings.Contains(r.stdout, "\n  offset=6 ") {
		t.Fatalf("%+v", r)
	}
	f.mu.Lock()
	if !slices.Equal(f.failed, []int64{5, 6}) || !slices.Equal(f.acked, []int64{0, 1, 2, 3, 4, 5, 6}) || len(f.pending) != 0 {
		t.Fatalf("failed %v acked %v pending %v", f.failed, f.acked, f.pending)
	}
	f.mu.Unlock()

	// Fewer than -n: the idle timeout stops it with exit status 1.
	start := time.Now()
	r = runCLI(t, nil, "pull", "-addr", addr, "-group", "g", "-n", "1", "-idle", "300ms", "-linger", "50")
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "idle for 300ms") ||
		!strings.Contains(r.stderr, "fewer messages than -n (0 of 1)") || time.Since(start) > 3*time.Second {
		t.Fatalf("%+v", r)
	}
	// -n 0 pulls until idle and succeeds (starts a group).
	r = mustRun(t, nil, "pull", "-addr", addr, "-group", "other", "-n", "0", "-idle", "200ms", "-linger", "50")
	if r.stdout != "" || !strings.Contains(r.stderr, "0 message(s); idle for 200ms") {
		t.Fatalf("%+v", r)
	}
	r = runCLI(t, nil, "pull", "-addr", addr, "-group", "bad")
	if r.code != 1 || !strings.Contains(r.stderr, "pull: PullException code=7: nope") {
		t.Fatalf("%+v", r)
	}
}

func TestStats(t *testing.T) {
	f := newFakeConsumer(0)
	addr := startConsumerServer(t, f)

	r := mustRun(t, nil, "stats", "-addr", addr, "-group", "g", "-topic", "orders")
	want := `group=g topic=orders qid=K_0 consumed=3 produced=5 lag=2
group=g topic=orders qid=K_2 consumed=- produced=0 lag=-
group=g topic=orders qid=K_10 consumed=9 produced=7 lag=0
total lag=2
`
	if r.stdout != want {
		t.Fatalf("got\n%s\nwant\n%s", r.stdout, want)
	}
	f.mu.Lock()
	if req := f.statsReq[0]; req.Group != "g" || req.GetTopic() != "orders" {
		t.Fatalf("request %+v", req)
	}
	f.mu.Unlock()

	r = mustRun(t, nil, "stats", "-addr", addr, "-group", "new")
	if !strings.HasSuffix(r.stdout, "total lag=? (1 qid(s) with messages have no committed offset yet)\n") {
		t.Fatalf("%+v", r)
	}
	r = runCLI(t, nil, "stats", "-addr", addr, "-group", "unknown")
	if r.code != 1 || !strings.Contains(r.stderr, `no consume stats for group "unknown"`) {
		t.Fatalf("%+v", r)
	}
	r = runCLI(t, nil, "stats", "-addr", addr, "-group", "bad")
	if r.code != 1 || !strings.Contains(r.stderr, "getConsumeStats: PullException code=3: broken") {
		t.Fatalf("%+v", r)
	}
}

func TestPullUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"pull"}, "flag -group is required"},
		{[]string{"pull", "-group", "g", "-n", "-1"}, "-n must be >= 0"},
		{[]string{"pull", "-group", "g", "-batch", "0"}, "-batch must be >= 1"},
		{[]string{"pull", "-group", "g", "-linger", "20000"}, "-linger must be shorter than -io-timeout"},
		{[]string{"pull", "-group", "g", "-idle", "0s"}, "-idle must be > 0"},
		{[]string{"stats"}, "flag -group is required"},
		{[]string{"stats", "-group", "g", "x"}, "want 0 argument(s), got 1"},
		{[]string{"group", "put"}, "want 1 argument(s), got 0"},
	}
	for _, tc := range tests {
		r := runCLI(t, nil, tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: code %d stderr %q, want %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
	r := runCLI(t, nil, "pull", "-addr", "127.0.0.1:1", "-group", "g", "-io-timeout", "1s")
	if r.code != 1 || !strings.Contains(r.stderr, "connect to 127.0.0.1:1") {
		t.Fatalf("%+v", r)
	}
}
