package rocketmq

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/rocketmq/remoting"
	rmqtb "github.com/ddmq-go/carrera/internal/testbroker/rocketmq"
)

// sends counts the single and batch send requests brokers received
// through the proxy.
func (r *rig) sends() (single, batch int) {
	for _, b := range []string{"broker-a", "broker-b"} {
		single += r.proxy.Requests(b, remoting.SendMessage)
		batch += r.proxy.Requests(b, remoting.SendBatchMessage)
	}
	return single, batch
}

// results collects done outcomes.
type results struct {
	mu   sync.Mutex
	errs []error
	wg   sync.WaitGroup
}

func (rs *results) done() func(error) {
	rs.wg.Add(1)
	var once sync.Once
	return func(err error) {
		first := false
		once.Do(func() { first = true })
		if !first {
			panic("done called twice")
		}
		rs.mu.Lock()
		rs.errs = append(rs.errs, err)
		rs.mu.Unlock()
		rs.wg.Done()
	}
}

func (rs *results) wait(t testing.TB) []error {
	t.Helper()
	ch := make(chan struct{})
	go func() { rs.wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(20 * time.Second):
		t.Fatal("not every done was called")
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]error(nil), rs.errs...)
}

// The message layout on the broker: tags, key (with spaces, not split),
// user properties and the body byte-exact; a UNIQ_KEY; bodies of at least
// CompressOver bytes travel compressed and inflate to the same bytes.
func TestRecordLayout(t *testing.T) {
	r := newRig(t)
	r.createTopic(t, "layout", 2)
	opts := r.options()
	opts.CompressOver = 1000
	p := newTestProducer(t, opts)
	big := bytes.Repeat([]byte{0, 1, 2, 0xfe, 0xff}, 400) // 2000 bytes
	recs := []*mq.Record{
		{Topic: "layout", Body: []byte("plain")},
		{Topic: "layout", Key: "order 42 a", Tags: "TagA||TagB", Body: []byte{0, 0xff, 0x80, '\n'},
			Properties: map[string]string{"traceId": "t-1", "ключ": "значение", "a=b": "c d", "empty": "x"}},
		{Topic: "layout", Key: "big", Body: big},
	}
	for i, rec := range recs {
		tg, err := p.Resolve(ctxT(t), "layout", mq.Selector{PartitionID: int32(i % 2)})
		if err != nil {
			t.Fatal(err)
		}
		rec.Target = tg
		if err := mq.ProduceSync(ctxT(t), p, rec); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	got := r.readAll(t, "layout")
	if len(got) != len(recs) {
		t.Fatalf("stored %d, want %d", len(got), len(recs))
	}
	byBody := map[string]stored{}
	for _, s := range got {
		byBody[string(s.Plain)] = s
	}
	for i, rec := range recs {
		s, ok := byBody[string(rec.Body)]
		if !ok {
			t.Fatalf("record %d: body not stored byte-exactly", i)
		}
		if s.Index != int(rec.Target.Partition) {
			t.Errorf("record %d in queue index %d, want %d", i, s.Index, rec.Target.Partition)
		}
		if s.Props["TAGS"] != rec.Tags || s.Props["KEYS"] != rec.Key {
			t.Errorf("record %d: TAGS %q KEYS %q, want %q %q", i, s.Props["TAGS"], s.Props["KEYS"], rec.Tags, rec.Key)
		}
		if s.Props["UNIQ_KEY"] == "" {
			t.Errorf("record %d without UNIQ_KEY", i)
		}
		user := map[string]string{}
		for k, v := range s.Props {
			if !systemProps[k] {
				user[k] = v
			}
		}
		if len(rec.Properties) > 0 && !maps.Equal(user, rec.Properties) || len(rec.Properties) == 0 && len(user) != 0 {
			t.Errorf("record %d: user properties %v, want %v", i, user, rec.Properties)
		}
		compressed := s.SysFlag&remoting.FlagCompressed != 0
		if compressed != (len(rec.Body) >= opts.CompressOver) {
			t.Errorf("record %d of %d bytes: compressed %v", i, len(rec.Body), compressed)
		}
	}
}

// Texts that cannot travel byte-exactly are refused, not altered.
func TestRefusesUnsafeTexts(t *testing.T) {
	r := newRig(t)
	r.createTopic(t, "texts", 1)
	p := newTestProducer(t, r.options())
	for _, rec := range []*mq.Record{
		{Topic: "texts", Key: "a\x01b", Body: []byte("x")},
		{Topic: "texts", Tags: "t\x02", Body: []byte("x")},
		{Topic: "texts", Body: []byte("x"), Properties: map[string]string{"k": "bad \xff utf8"}},
		{Topic: "texts", Body: []byte("x"), Properties: map[string]string{"k\x01": "v"}},
		{Topic: "texts", Body: []byte("x"), Properties: map[string]string{"k": strings.Repeat("v", 40000)}},
	} {
		if err := mq.ProduceSync(ctxT(t), p, rec); !errors.Is(err, mq.ErrMessageIllegal) {
			t.Errorf("%+v: %v, want ErrMessageIllegal", rec, err)
		}
	}
	if got := r.readAll(t, "texts"); len(got) != 0 {
		t.Fatalf("%d refused records stored", len(got))
	}
}

// ProduceBatch sends one queue's records as one SEND_BATCH_MESSAGE, in
// order; limits split it into several requests, each after the previous.
func TestProduceBatch(t *testing.T) {
	for _, c := range []struct {
		name          string
		n, maxMsgs    int
		maxSize       int
		wantBatchReqs int
	}{
		{"one request", 50, 0, 0, 1},
		{"split by count", 50, 16, 0, 4},
		{"split by size", 20, 0, 5 * (batchOverhead + 1000 + 120), 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			r.createTopic(t, "batch", 3)
			opts := r.options()
			opts.MaxBatchMessages = c.maxMsgs
			if c.maxSize > 0 {
				opts.MaxMessageSize = c.maxSize
			}
			p := newTestProducer(t, opts)
			tg, err := p.Resolve(ctxT(t), "batch", mq.Selector{PartitionID: 2})
			if err != nil {
				t.Fatal(err)
			}
			var recs []*mq.Record
			for i := range c.n {
				body := fmt.Appendf(nil, "%04d-", i)
				body = append(body, bytes.Repeat([]byte("x"), 995)...)
				recs = append(recs, &mq.Record{Topic: "batch", Target: tg, Key: "k" + strconv.Itoa(i), Tags: "T",
					Body: body, Properties: map[string]string{"i": strconv.Itoa(i)}})
			}
			var rs results
			p.ProduceBatch(ctxT(t), recs, rs.done())
			if errs := rs.wait(t); errs[0] != nil {
				t.Fatal(errs[0])
			}
			single, batch := r.sends()
			if batch != c.wantBatchReqs || single != 0 {
				t.Fatalf("%d batch and %d single requests, want %d and 0", batch, single, c.wantBatchReqs)
			}
			got := r.readAll(t, "batch")
			if len(got) != c.n {
				t.Fatalf("stored %d, want %d", len(got), c.n)
			}
			for i, s := range got {
				if s.Index != 2 || !bytes.Equal(s.Plain, recs[i].Body) || s.Props["KEYS"] != recs[i].Key ||
					s.Props["i"] != strconv.Itoa(i) || s.Props["TAGS"] != "T" || s.Props["UNIQ_KEY"] == "" {
					t.Fatalf("message %d: queue %d props %v body %.8q", i, s.Index, s.Props, s.Plain)
				}
			}
		})
	}
}

// The first failing request of a batch ends it: earlier requests are
// stored, later ones are not sent.
func TestProduceBatchStopsAtFirstFailure(t *testing.T) {
	r := newRig(t, func(o *rmqtb.Options) { o.MaxMessageSize = 1000 })
	r.createTopic(t, "stop", 1)
	opts := r.options()
	opts.MaxBatchMessages = 2
	p := newTestProducer(t, opts)
	tg, err := p.Resolve(ctxT(t), "stop", mq.Selector{PartitionID: 0})
	if err != nil {
		t.Fatal(err)
	}
	var recs []*mq.Record
	for i := range 6 {
		body := []byte(strconv.Itoa(i))
		if i == 2 {
			body = make([]byte, 2000) // the broker refuses it (13)
		}
		recs = append(recs, &mq.Record{Topic: "stop", Target: tg, Body: body})
	}
	var rs results
	p.ProduceBatch(ctxT(t), recs, rs.done())
	if err := rs.wait(t)[0]; !errors.Is(err, mq.ErrMessageIllegal) {
		t.Fatalf("batch: %v, want ErrMessageIllegal", err)
	}
	if _, batch := r.sends(); batch != 2 {
		t.Fatalf("%d batch requests, want 2 (the third is not sent)", batch)
	}
	got := r.readAll(t, "stop")
	if len(got) != 2 || string(got[0].Plain) != "0" || string(got[1].Plain) != "1" {
		t.Fatalf("stored %d messages, want the first request's two", len(got))
	}
	// A batch must have one topic and one queue.
	tg1 := tg
	tg1.Partition = 1
	p.ProduceBatch(ctxT(t), []*mq.Record{{Topic: "stop", Target: tg, Body: []byte("a")}, {Topic: "stop", Target: tg1, Body: []byte("b")}}, rs.done())
	if errs := rs.wait(t); !errors.Is(errs[1], mq.ErrMessageIllegal) {
		t.Fatalf("mixed batch: %v", errs[1])
	}
}

// A broker that does not answer within SendTimeout gives mq.ErrTimeout;
// the library's panic on that path is recovered.
func TestSendTimeout(t *testing.T) {
	r := newRig(t)
	r.createTopic(t, "slow", 2)
	opts := r.options()
	opts.SendTimeout = 150 * time.Millisecond
	p := newTestProducer(t, opts)
	tg, err := p.Resolve(ctxT(t), "slow", mq.Selector{PartitionID: 0})
	if err != nil {
		t.Fatal(err)
	}
	// Warm the library's route first, so the hold only delays the answer.
	if err := mq.ProduceSync(ctxT(t), p, &mq.Record{Topic: "slow", Target: tg, Body: []byte("warm")}); err != nil {
		t.Fatal(err)
	}
	panics := LibraryPanics()
	release := r.proxy.Hold(tg.Broker)
	defer release()
	start := time.Now()
	err = mq.ProduceSync(ctxT(t), p, &mq.Record{Topic: "slow", Target: tg, Body: []byte("held")})
	if !errors.Is(err, mq.ErrTimeout) {
		t.Fatalf("held send: %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d < 140*time.Millisecond || d > 2*time.Second {
		t.Fatalf("timeout after %v, want about 150ms", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for LibraryPanics() == panics && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("library panics recovered: %d", LibraryPanics()-panics)
	// The other broker is unaffected.
	tg2, err := p.Resolve(ctxT(t), "slow", mq.Selector{AvoidBroker: tg.Broker})
	if err != nil {
		t.Fatal(err)
	}
	if err := mq.ProduceSync(ctxT(t), p, &mq.Record{Topic: "slow", Target: tg2, Body: []byte("other")}); err != nil {
		t.Fatalf("send to the other broker: %v", err)
	}
}

// Routes follow the NameServer: new queues appear after a refresh, a
// deleted topic answers mq.ErrTopicNotExist.
func TestRouteRefresh(t *testing.T) {
	r := newRig(t)
	r.rmq.CreateTopic("grow", 2, "broker-a")
	opts := r.options()
	opts.RouteRefresh = 50 * time.Millisecond
	p := newTestProducer(t, opts)
	qs, err := p.Queues(ctxT(t), "grow")
	if err != nil || len(qs) != 2 {
		t.Fatalf("queues %v, %v", qs, err)
	}
	r.rmq.CreateTopic("grow", 3, "broker-b")
	deadline := time.Now().Add(10 * time.Second)
	for {
		qs, _ = p.Queues(ctxT(t), "grow")
		if len(qs) == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queues %v after adding 3 on broker-b", qs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := []Queue{{"broker-a", 0}, {"broker-a", 1}, {"broker-b", 0}, {"broker-b", 1}, {"broker-b", 2}}
	for i := range want {
		if qs[i] != want[i] {
			t.Fatalf("queues %v, want %v", qs, want)
		}
	}
	// Delete the topic on both brokers: sends fail with 14's sentinel and
	// the route goes.
	for _, b := range []string{"broker-a", "broker-b"} {
		c, err := remoting.Dial(ctxT(t), r.rmq.BrokerAddr(b))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Invoke(ctxT(t), remoting.NewRequest(remoting.DeleteTopicInBroker, map[string]string{"topic": "grow"}, nil))
		_ = c.Close()
		if err != nil || resp.Code != remoting.Success {
			t.Fatalf("delete on %s: %v %v", b, resp, err)
		}
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		_, err := p.Resolve(ctxT(t), "grow", mq.Selector{PartitionID: -1})
		if errors.Is(err, mq.ErrTopicNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Resolve after delete: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Auto-batch: while a (topic, queue)'s request is in flight, records
// accumulate and leave together; a lone record waits batchWaitMills and
// leaves as a plain SEND_MESSAGE.
func TestAutoBatch(t *testing.T) {
	r := newRig(t)
	r.createTopic(t, "auto", 2)
	opts := r.options()
	opts.AutoBatch = &AutoBatchOptions{MaxMessages: 32, MaxBytes: 1 << 20, ThresholdBytes: 1024, Wait: 20 * time.Millisecond, MaxInflight: 1}
	p := newTestProducer(t, opts)
	tg, err := p.Resolve(ctxT(t), "auto", mq.Selector{PartitionID: 1})
	if err != nil {
		t.Fatal(err)
	}
	// A lone record.
	start := time.Now()
	var rs results
	p.ProduceAutoBatch(ctxT(t), &mq.Record{Topic: "auto", Target: tg, Body: []byte("lone")}, rs.done())
	if err := rs.wait(t)[0]; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Errorf("lone record answered after %v, before batchWaitMills", d)
	}
	if single, batch := r.sends(); single != 1 || batch != 0 {
		t.Fatalf("lone record: %d single, %d batch requests", single, batch)
	}

	// Hold the broker: the first batch stays in flight, the rest queue.
	release := r.proxy.Hold(tg.Broker)
	var held results
	const n = 100
	for i := range n {
		p.ProduceAutoBatch(ctxT(t), &mq.Record{Topic: "auto", Target: tg, Body: fmt.Appendf(nil, "m%03d", i)}, held.done())
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, batch := r.sends(); batch >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("first batch never sent")
		}
		time.Sleep(2 * time.Millisecond)
	}
	release()
	for i, err := range held.wait(t) {
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	single, batch := r.sends()
	t.Logf("%d records in %d batch and %d single requests", n, batch, single-1)
	if batch+single-1 > 1+(n+31)/32 {
		t.Fatalf("%d requests for %d records: not coalesced", batch+single-1, n)
	}
	got := r.readAll(t, "auto")
	if len(got) != n+1 {
		t.Fatalf("stored %d, want %d", len(got), n+1)
	}
	// Large bodies bypass the batcher.
	p.ProduceAutoBatch(ctxT(t), &mq.Record{Topic: "auto", Target: tg, Body: make([]byte, 2000)}, rs.done())
	if errs := rs.wait(t); errs[1] != nil {
		t.Fatal(errs[1])
	}
	if s, _ := r.sends(); s != single+1 {
		t.Fatalf("large body: single requests %d, want %d", s, single+1)
	}
}

// Close sends what the auto-batcher holds; what the broker never answers
// fails with mq.ErrClosed.
func TestAutoBatchClose(t *testing.T) {
	r := newRig(t)
	r.createTopic(t, "autoclose", 1)
	opts := r.options()
	opts.AutoBatch = &AutoBatchOptions{MaxMessages: 4, Wait: time.Hour, MaxInflight: 1}
	p := newTestProducer(t, opts)
	tg, err := p.Resolve(ctxT(t), "autoclose", mq.Selector{PartitionID: 0})
	if err != nil {
		t.Fatal(err)
	}
	var rs results
	for i := range 3 { // below MaxMessages, Wait an hour: queued
		p.ProduceAutoBatch(ctxT(t), &mq.Record{Topic: "autoclose", Target: tg, Body: []byte{byte('a' + i)}}, rs.done())
	}
	if err := p.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	for i, err := range rs.wait(t) {
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if got := r.readAll(t, "autoclose"); len(got) != 3 {
		t.Fatalf("stored %d, want 3", len(got))
	}
	p.ProduceAutoBatch(ctxT(t), &mq.Record{Topic: "autoclose", Target: tg, Body: []byte("late")}, rs.done())
	if errs := rs.wait(t); !errors.Is(errs[3], mq.ErrClosed) {
		t.Fatalf("after Close: %v", errs[3])
	}
}

func TestMetrics(t *testing.T) {
	r := newRig(t)
	r.createTopic(t, "m", 1)
	reg := prometheus.NewRegistry()
	opts := r.options()
	opts.Registerer = reg
	p1 := newTestProducer(t, opts)
	p2 := newTestProducer(t, opts) // a hot reload's overlap shares the vectors
	for _, p := range []*Producer{p1, p2} {
		tg, err := p.Resolve(ctxT(t), "m", mq.Selector{PartitionID: 0})
		if err != nil {
			t.Fatal(err)
		}
		if err := mq.ProduceSync(ctxT(t), p, &mq.Record{Topic: "m", Target: tg, Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = p1.Resolve(ctxT(t), "missing", mq.Selector{})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	val := func(name string, labels map[string]string) float64 {
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				if matches(m, labels) {
					switch {
					case m.Counter != nil:
						return m.GetCounter().GetValue()
					case m.Gauge != nil:
						return m.GetGauge().GetValue()
					case m.Histogram != nil:
						return float64(m.GetHistogram().GetSampleCount())
					}
				}
			}
		}
		return -1
	}
	if v := val("carrera_rocketmq_producer_requests_total", map[string]string{"cluster": "R_test", "kind": "single", "result": "ok"}); v != 2 {
		t.Errorf("requests ok %v, want 2", v)
	}
	if v := val("carrera_rocketmq_producer_records_total", map[string]string{"cluster": "R_test", "result": "ok"}); v != 2 {
		t.Errorf("records ok %v, want 2", v)
	}
	if v := val("carrera_rocketmq_producer_route_lookups_total", map[string]string{"cluster": "R_test", "result": "not_exist"}); v != 1 {
		t.Errorf("route lookups not_exist %v, want 1", v)
	}
	if v := val("carrera_rocketmq_producer_records_in_flight", map[string]string{"cluster": "R_test"}); v != 0 {
		t.Errorf("in flight %v, want 0", v)
	}
	if v := val("carrera_rocketmq_producer_messages_per_request", map[string]string{"cluster": "R_test", "kind": "single"}); v != 2 {
		t.Errorf("messages per request samples %v, want 2", v)
	}
}

func matches(m *dto.Metric, labels map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := labels[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(labels)
}

func BenchmarkChunks(b *testing.B) {
	p := &Producer{opts: Options{MaxMessageSize: 4 << 20, MaxBatchMessages: 256}}
	msgs := make([]*mq.Record, 100)
	for i := range msgs {
		msgs[i] = &mq.Record{Topic: "t", Key: "k", Body: make([]byte, 1024), Properties: map[string]string{"a": "b"}}
	}
	b.ReportAllocs()
	for range b.N {
		ms := make([]*primitive.Message, len(msgs))
		for i, r := range msgs {
			ms[i] = toMessage(r)
		}
		_ = p.chunks(ms)
	}
}
