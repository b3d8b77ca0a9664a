package cproxy

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
	"github.com/ddmq-go/carrera/internal/mq"
)

type submitCall struct {
	group, topic, qid string
	success, fail     []int64
}

type fakeRuntime struct {
	group string
	batch Batch
	err   error
	pulls []struct {
		topic  string
		max    int
		linger time.Duration
	}
	submits *[]submitCall
}

func (f *fakeRuntime) Pull(_ context.Context, topic string, max int, linger time.Duration) (Batch, error) {
	f.pulls = append(f.pulls, struct {
		topic  string
		max    int
		linger time.Duration
	}{topic, max, linger})
	return f.batch, f.err
}

func (f *fakeRuntime) Submit(topic, qid string, s, fl []int64) {
	*f.submits = append(*f.submits, submitCall{f.group, topic, qid, s, fl})
}

type fakeRuntimes map[string]*fakeRuntime

func (f fakeRuntimes) ForPull(g string) (Runtime, bool)   { r, ok := f[g]; return r, ok }
func (f fakeRuntimes) ForSubmit(g string) (Runtime, bool) { r, ok := f[g]; return r, ok }

type fakeStats struct {
	gotGroup, gotTopic string
	err                error
}

func (f *fakeStats) ConsumeStats(_ context.Context, g, t string) ([]*consumer.ConsumeStats, error) {
	f.gotGroup, f.gotTopic = g, t
	return []*consumer.ConsumeStats{{Group: g, Topic: "t"}}, f.err
}

func newTestHandler() (*Handler, fakeRuntimes, *[]submitCall, *fakeStats) {
	var calls []submitCall
	rts := fakeRuntimes{
		"g1": {group: "g1", submits: &calls},
		"g2": {group: "g2", submits: &calls},
	}
	st := &fakeStats{}
	return NewHandler(zap.NewNop(), rts, st), rts, &calls, st
}

func TestPullAppliesChainPerElementGroupFirst(t *testing.T) {
	h, rts, calls, _ := newTestHandler()
	rts["g1"].batch = Batch{Topic: "t", QID: "K_0", Messages: []*mq.Delivery{{Offset: 5, Key: "k", Body: []byte("v"), Properties: map[string]string{"a": "b"}}}}
	i32 := func(v int32) *int32 { return &v }
	req := &consumer.PullRequest{GroupId: "g1", MaxBatchSize: i32(8), MaxLingerTime: i32(5),
		Result_: &consumer.ConsumeResult_{
			Context: &consumer.Context{GroupId: "g1", Topic: "t", Qid: "K_0"}, SuccessOffsets: []int64{1},
			NextResult_: &consumer.ConsumeResult_{
				Context: &consumer.Context{GroupId: "g2", Topic: "u", Qid: "K_1"}, FailOffsets: []int64{2},
				NextResult_: &consumer.ConsumeResult_{Context: &consumer.Context{GroupId: "unknown", Qid: "x"}},
			},
		}}
	resp, err := h.Pull(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(*calls) != 2 || (*calls)[0].group != "g1" || (*calls)[1].group != "g2" || (*calls)[1].fail[0] != 2 {
		t.Fatalf("chain applied as %+v", *calls)
	}
	p := rts["g1"].pulls
	if len(p) != 1 || p[0].max != 8 || p[0].linger != minLinger {
		t.Fatalf("pull args %+v (linger must be at least 20 ms)", p)
	}
	if resp.Context.GroupId != "g1" || resp.Context.Qid != "K_0" || resp.Context.Topic != "t" || len(resp.Messages) != 1 {
		t.Fatalf("response %+v", resp)
	}
	m := resp.Messages[0]
	if m.Offset != 5 || m.Key != "k" || string(m.Value) != "v" || m.Properties["a"] != "b" {
		t.Fatalf("message %+v", m)
	}
}

func TestPullEmptyAndUnknown(t *testing.T) {
	h, rts, _, _ := newTestHandler()
	resp, _ := h.Pull(context.Background(), &consumer.PullRequest{GroupId: "g1"})
	if resp.Context == nil || resp.Context.Qid != "" || resp.Messages == nil || len(resp.Messages) != 0 {
		t.Fatalf("empty response %+v", resp)
	}
	rts["g1"].err = errors.New("boom")
	resp, _ = h.Pull(context.Background(), &consumer.PullRequest{GroupId: "g1"})
	if len(resp.Messages) != 0 {
		t.Fatal("error must answer empty")
	}
	start := time.Now()
	resp, _ = h.Pull(context.Background(), &consumer.PullRequest{GroupId: "nope"})
	if len(resp.Messages) != 0 || time.Since(start) < minLinger {
		t.Fatalf("unknown group: %+v after %v", resp, time.Since(start))
	}
	if resp, _ := h.Pull(context.Background(), nil); len(resp.Messages) != 0 {
		t.Fatal("nil request")
	}
}

func TestSubmitAlwaysTrue(t *testing.T) {
	h, _, calls, _ := newTestHandler()
	ok, err := h.Submit(context.Background(), &consumer.ConsumeResult_{Context: &consumer.Context{GroupId: "g2", Qid: "K_3"}, SuccessOffsets: []int64{9}})
	if !ok || err != nil || len(*calls) != 1 {
		t.Fatalf("submit %v %v %+v", ok, err, *calls)
	}
	if ok, _ := h.Submit(context.Background(), nil); !ok {
		t.Fatal("nil submit must be true")
	}
	if ok, _ := h.Submit(context.Background(), &consumer.ConsumeResult_{}); !ok {
		t.Fatal("context-less submit must be true")
	}
}

func TestGetConsumeStatsUsesRequestGroup(t *testing.T) {
	h, _, _, st := newTestHandler()
	topic := "t1"
	out, _ := h.GetConsumeStats(context.Background(), &consumer.ConsumeStatsRequest{Group: "g1", Topic: &topic})
	if st.gotGroup != "g1" || st.gotTopic != "t1" || len(out) != 1 {
		t.Fatalf("stats called with %q %q", st.gotGroup, st.gotTopic)
	}
	st.err = errors.New("broker down")
	if out, _ := h.GetConsumeStats(context.Background(), &consumer.ConsumeStatsRequest{Group: "g1"}); len(out) != 0 {
		t.Fatal("error must answer an empty list")
	}
}

func TestLowLevelNotServedYet(t *testing.T) {
	h, _, _, _ := newTestHandler()
	r, _ := h.Fetch(context.Background(), &consumer.FetchRequest{})
	if r.Results == nil || len(r.Results) != 0 {
		t.Fatal("fetch must list no qid")
	}
	if ok, _ := h.Ack(context.Background(), &consumer.AckResult_{}); !ok {
		t.Fatal("empty ack must be true")
	}
	if ok, _ := h.Ack(context.Background(), &consumer.AckResult_{Offsets: map[string]map[string]int64{"t": {"q": 1}}}); ok {
		t.Fatal("non-empty ack must be false while unserved")
	}
}

func FuzzSubmitChain(f *testing.F) {
	f.Add("g1", "t", "K_0", int64(1), int64(-1), 3)
	f.Add("", "", "", int64(0), int64(0), 0)
	f.Fuzz(func(t *testing.T, g, topic, qid string, s, fl int64, depth int) {
		h, _, calls, _ := newTestHandler()
		var chain *consumer.ConsumeResult_
		for range depth % 50 {
			chain = &consumer.ConsumeResult_{Context: &consumer.Context{GroupId: g, Topic: topic, Qid: qid},
				SuccessOffsets: []int64{s}, FailOffsets: []int64{fl}, NextResult_: chain}
		}
		ok, _ := h.Submit(context.Background(), chain)
		if !ok {
			t.Fatal("submit returned false")
		}
		for _, c := range *calls {
			if c.group != g || c.qid == "" {
				t.Fatalf("applied to %+v", c)
			}
		}
	})
}

func TestQID(t *testing.T) {
	if q := QID("K_main", 7); q != "K_main_7" {
		t.Fatal(q)
	}
	for qid, want := range map[string]int32{"K_main_7": 7, "K_main_0": 0} {
		if p, ok := ParseKafkaQID("K_main", qid); !ok || p != want {
			t.Fatalf("%s → %d %v", qid, p, ok)
		}
	}
	for _, bad := range []string{"", "K_main", "K_main_", "K_main_-1", "K_main_x", "K_other_1", "K_mainx1", "K_main_99999999999"} {
		if _, ok := ParseKafkaQID("K_main", bad); ok {
			t.Fatalf("accepted %q", bad)
		}
	}
}
