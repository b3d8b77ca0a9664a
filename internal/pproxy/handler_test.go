package pproxy

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/gen-go/carrera/producer"
	"github.com/ddmq-go/carrera/internal/config"
	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/mq/memory"
)

const testInstance = "127.0.0.1:9613"

// staticProducers is a ProducerSet over fixed producers.
type staticProducers map[string]mq.Producer

func (s staticProducers) Acquire(c string) (mq.Producer, *Lease) { return s[c], nil }

func pproxyNode(t *testing.T, topics []string, limiter bool, nodeTps int, delay bool) *config.PProxyConfig {
	t.Helper()
	node := map[string]any{
		"instance": testInstance, "proxyCluster": "P_test",
		"brokerClusters": []string{"K_a", "K_b", "K_none"},
		"topics":         topics,
		"carreraConfiguration": map[string]any{
			"useKafka": true, "kafkaProducers": 1, "useRequestLimiter": limiter,
			"maxTps": nodeTps, "tpsWarningRatio": 0.8, "limiterFailureRetryQueueSize": 4,
			"thriftServer": map[string]any{"selectorThreads": 1, "acceptQueueSizePerThread": 1,
				"maxReadBufferBytes": 5000000, "backlog": 50, "timeoutCheckerThreads": 1},
			"kafkaConfigurationMap": map[string]any{
				"K_a": kafkaConf(), "K_b": kafkaConf(), "K_none": kafkaConf(),
			},
		},
	}
	if delay {
		node["carreraConfiguration"].(map[string]any)["delay"] = map[string]any{
			"innerTopicNum": 2, "chronosInnerTopicPrefix": "inner_"}
	}
	b, _ := json.Marshal(node)
	n, err := config.ParsePProxyConfig(b)
	if err != nil {
		t.Fatalf("pproxy node: %v", err)
	}
	return n
}

func kafkaConf() map[string]any {
	return map[string]any{"bootstrapServers": []string{"127.0.0.1:1"}, "acks": "all", "retries": 0,
		"batchSize": 16384, "clientId": "t", "retryBackoff": 100, "metadataMaxAge": 300000,
		"metadataFetchTimeout": 5000, "ackTimeout": 3000, "bufferMemory": 33554432}
}

func topicConf(t *testing.T, name string, clusters []string, maxTps float64, extra map[string]any) *config.TopicConfig {
	t.Helper()
	var units []map[string]any
	for _, c := range clusters {
		units = append(units, map[string]any{"brokerCluster": c,
			"proxies": map[string][]string{"P_test": {testInstance}}, "totalMaxTps": maxTps, "maxTps": maxTps})
	}
	m := map[string]any{"topic": name, "topicUnits": units}
	for k, v := range extra {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	tc, err := config.ParseTopicConfig(b)
	if err != nil {
		t.Fatalf("topic %s: %v", name, err)
	}
	return tc
}

type fixture struct {
	h    *Handler
	a, b *memory.Producer
}

type fixtureOpts struct {
	limiter  bool
	nodeTps  int
	topicTps float64
	delay    bool
}

func newFixture(t *testing.T, o fixtureOpts) *fixture {
	t.Helper()
	if o.nodeTps == 0 {
		o.nodeTps = 100000
	}
	if o.topicTps == 0 {
		o.topicTps = 100000
	}
	topicsOnA := map[string]int{"t": 4, "delayed": 4, "ordered": 4, "inner_0": 2, "inner_1": 2, "two": 4}
	a := memory.New(memory.Options{Topics: topicsOnA, Brokers: 2})
	b := memory.New(memory.Options{Topics: map[string]int{"two": 4}, Brokers: 2})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		a.Close(ctx)
		b.Close(ctx)
	})
	topics := map[string]*config.TopicConfig{
		"t":         topicConf(t, "t", []string{"K_a"}, o.topicTps, nil),
		"delayed":   topicConf(t, "delayed", []string{"K_a"}, o.topicTps, map[string]any{"delayTopic": true}),
		"ordered":   topicConf(t, "ordered", []string{"K_a"}, o.topicTps, map[string]any{"strongOrder": true}),
		"nocluster": topicConf(t, "nocluster", []string{"K_none"}, o.topicTps, nil),
		"missing":   topicConf(t, "missing", []string{"K_a"}, o.topicTps, nil),
		"two":       topicConf(t, "two", []string{"K_b", "K_a"}, o.topicTps, nil),
		"inner_0":   topicConf(t, "inner_0", []string{"K_a"}, o.topicTps, nil),
		"inner_1":   topicConf(t, "inner_1", []string{"K_a"}, o.topicTps, nil),
		"unbound":   topicConf(t, "unbound", []string{"K_a"}, 1, nil),
	}
	topics["unbound"].TopicUnits[0].Proxies = map[string][]string{"P_test": {"10.9.9.9:9613"}}
	names := []string{"t", "delayed", "ordered", "nocluster", "missing", "two", "inner_0", "inner_1", "unbound"}
	node := pproxyNode(t, names, o.limiter, o.nodeTps, o.delay)
	snap, err := config.BuildPProxySnapshot(testInstance, node, topics, nil)
	if err != nil {
		t.Fatal(err)
	}
	ps := staticProducers{"K_a": a, "K_b": b}
	h := NewHandler(zap.NewNop(), ps, newMetrics(nil), snap)
	return &fixture{h: h, a: a, b: b}
}

func msg(topic, body string) *producer.Message {
	return &producer.Message{Topic: topic, Body: []byte(body), PartitionId: -1}
}

func expect(t *testing.T, r *producer.Result_, want Code) {
	t.Helper()
	if r.Code != int32(want) || r.Msg != want.Msg() {
		t.Fatalf("result %d %q, want %d %q", r.Code, r.Msg, want, want.Msg())
	}
}

func TestSendSyncCodes(t *testing.T) {
	f := newFixture(t, fixtureOpts{delay: true})
	ctx := context.Background()
	withProps := func(m *producer.Message, p map[string]string) *producer.Message { m.Properties = p; return m }
	cases := []struct {
		name string
		m    *producer.Message
		want Code
	}{
		{"ok", msg("t", "hello"), OK},
		{"heartbeat skips validation", &producer.Message{Topic: "carrera_heartbeat"}, OK},
		{"nil topic", &producer.Message{Body: []byte("x")}, FailIllegalMsg},
		{"empty body", msg("t", ""), FailIllegalMsg},
		{"oversize body on unknown topic is 11 not 13", msg("nope", strings.Repeat("x", config.DefaultMaxBodyBytes+1)), FailIllegalMsg},
		{"inner prefix", msg("inner_0", "x"), FailIllegalMsg},
		{"reserved property", withProps(msg("t", "x"), map[string]string{"TAGS": "a"}), FailIllegalMsg},
		{"unknown topic", msg("nope", "x"), FailTopicNotAllowed},
		{"white-listed but not bound", msg("unbound", "x"), FailTopicNotAllowed},
		{"delay topic without from_chronos", msg("delayed", "x"), FailTopicIsDelay},
		{"delay topic with from_chronos", withProps(msg("delayed", "x"), map[string]string{"from_chronos": "from_chronos"}), OK},
		{"no producer for cluster", msg("nocluster", "x"), FailNoProducerForCluster},
		{"broker: topic does not exist", msg("missing", "x"), FailTopicNotExist},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := f.h.SendSync(ctx, c.m, 1000)
			if err != nil {
				t.Fatal(err)
			}
			expect(t, r, c.want)
		})
	}
	if n := len(f.a.Messages("t")); n != 1 {
		t.Fatalf("topic t holds %d messages, want 1", n)
	}
}

func TestBackendErrorsMapped(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	for _, c := range []struct {
		err  error
		want Code
	}{
		{fmt.Errorf("%w: x", mq.ErrMessageTooLarge), FailIllegalMsg},
		{fmt.Errorf("%w: x", mq.ErrTimeout), FailTimeout},
		{fmt.Errorf("%w: x", mq.ErrTopicNotExist), FailTopicNotExist},
		{fmt.Errorf("%w: x", mq.ErrClosed), FailServerShutdown},
		{errors.New("disk on fire"), FailUnknown},
	} {
		f.a.SetFault(func(*mq.Record) error { return c.err })
		r, _ := f.h.SendSync(context.Background(), msg("t", "x"), 1000)
		expect(t, r, c.want)
	}
}

func TestPropertiesTagsKeyCarried(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	m := msg("t", "body")
	m.Key, m.Tags, m.Properties = "k1", "tagA", map[string]string{"traceId": "abc", "Mixed.Case-name": "v"}
	r, _ := f.h.SendSync(context.Background(), m, 1000)
	expect(t, r, OK)
	got := f.a.Messages("t")[0]
	if got.Key != "k1" || got.Tags != "tagA" || got.Properties["Mixed.Case-name"] != "v" || got.Properties["traceId"] != "abc" {
		t.Fatalf("stored %+v", got)
	}
}

func TestPartitionChoice(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := context.Background()
	for _, c := range []struct {
		pid  int32
		hash int64
		want int32
	}{
		{2, 0, 2}, {-1, 7, 3}, {-1, -7, 3}, {-1, -1 << 63, 0},
	} {
		m := msg("t", fmt.Sprint(c.pid, c.hash))
		m.PartitionId, m.HashId = c.pid, c.hash
		r, _ := f.h.SendSync(ctx, m, 1000)
		expect(t, r, OK)
		found := false
		for _, s := range f.a.Partition("t", c.want) {
			if string(s.Body) == string(m.Body) {
				found = true
			}
		}
		if !found {
			t.Fatalf("pid %d hash %d not in partition %d", c.pid, c.hash, c.want)
		}
	}
}

func TestClusterChoiceIsStable(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	// Candidates sorted: [K_a, K_b]. partitionId 1 → index 1 → K_b; 2 → K_a.
	for pid, want := range map[int32]*memory.Producer{1: f.b, 2: f.a} {
		m := msg("two", fmt.Sprint("p", pid))
		m.PartitionId = pid
		r, _ := f.h.SendSync(context.Background(), m, 1000)
		expect(t, r, OK)
		if len(want.Partition("two", pid)) == 0 {
			t.Fatalf("partitionId %d went to the wrong cluster", pid)
		}
	}
}

// blockFirst makes the first record block until released; later records pass.
func blockFirst(p *memory.Producer) (release func()) {
	var n atomic.Int32
	ch := make(chan struct{})
	p.SetDelay(func(ctx context.Context, _ *mq.Record) {
		if n.Add(1) == 1 {
			select {
			case <-ch:
			case <-ctx.Done():
			}
		}
	})
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

func TestTimeoutRetrySucceedsOnAnotherBroker(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	release := blockFirst(f.a)
	defer release()
	m := msg("t", "x")
	m.PartitionId, m.HashId = -1, 0 // partition 0 on broker memory-0
	r, _ := f.h.SendSync(context.Background(), m, 20)
	expect(t, r, OK)
	if len(f.a.Partition("t", 1))+len(f.a.Partition("t", 3)) != 1 {
		t.Fatal("retry did not land on the other broker's partition")
	}
}

func TestTimeoutWithoutRetry(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.a.SetDelay(func(ctx context.Context, _ *mq.Record) { <-ctx.Done() })
	r, _ := f.h.SendSync(context.Background(), msg("t", "x"), 20)
	expect(t, r, FailTimeout)
	// strongOrder: no retry, so exactly one record was attempted.
	r, _ = f.h.SendSync(context.Background(), msg("ordered", "x"), 20)
	expect(t, r, FailTimeout)
}

func TestStrongOrderNoRetry(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	var attempts atomic.Int32
	f.a.SetDelay(func(ctx context.Context, r *mq.Record) {
		attempts.Add(1)
		<-ctx.Done()
	})
	r, _ := f.h.SendSync(context.Background(), msg("ordered", "x"), 10)
	expect(t, r, FailTimeout)
	f.a.SetDelay(nil)
	cctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	f.a.Close(cctx) // gives up and releases the blocked record
	if n := attempts.Load(); n != 1 {
		t.Fatalf("strongOrder topic attempted %d times, want 1", n)
	}
}

func TestRateLimiter(t *testing.T) {
	// Topic limit 5/s (4 normal + 1 warning); limiterFailureRetryInterval 0 = no retry.
	f := newFixture(t, fixtureOpts{limiter: true, topicTps: 5})
	ctx := context.Background()
	ok, refused := 0, 0
	for range 10 {
		r, _ := f.h.SendSync(ctx, msg("t", "x"), 0) // timeout 0 → no limiter retry
		switch Code(r.Code) {
		case OK:
			ok++
		case FailRefusedByRateLimiter:
			expect(t, r, FailRefusedByRateLimiter)
			refused++
		default:
			t.Fatalf("code %d", r.Code)
		}
	}
	if ok != 5 || refused != 5 {
		t.Fatalf("ok %d refused %d, want 5/5", ok, refused)
	}
}

func TestLimiterRetryDelay(t *testing.T) {
	cases := []struct {
		interval, timeout int64
		want              time.Duration
	}{
		{0, 1000, 0}, {25, 1000, 25 * time.Millisecond}, {-1, 50, 40 * time.Millisecond},
		{-1, 20, 0}, {-1, 10000, 100 * time.Millisecond}, {-1, 0, 0},
	}
	for _, c := range cases {
		if got := limiterRetryDelay(c.interval, c.timeout); got != c.want {
			t.Errorf("limiterRetryDelay(%d, %d) = %v, want %v", c.interval, c.timeout, got, c.want)
		}
	}
}

func TestDrainRefusesNewCallsAndWaitsForInFlight(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	release := blockFirst(f.a)
	res := make(chan *producer.Result_)
	go func() {
		r, _ := f.h.SendSync(context.Background(), msg("ordered", "x"), 0)
		res <- r
	}()
	// Wait until the call is in flight.
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.h.gate.Lock()
		n := f.h.gate.active
		f.h.gate.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("call never became in-flight")
		}
		time.Sleep(time.Millisecond)
	}
	drained := make(chan error)
	go func() { drained <- f.h.Drain(context.Background()) }()
	// New calls are refused while the old one is still running.
	for {
		r, _ := f.h.SendSync(context.Background(), msg("t", "y"), 0)
		if Code(r.Code) == FailServerShutdown {
			break
		}
		expect(t, r, OK) // the drain has not started yet
	}
	select {
	case <-drained:
		t.Fatal("drain finished with a call in flight")
	default:
	}
	release()
	expect(t, <-res, OK)
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
}

func TestSendAsync(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	r, _ := f.h.SendAsync(context.Background(), msg("t", "x"))
	expect(t, r, OK)
	r, _ = f.h.SendAsync(context.Background(), &producer.Message{Topic: "carrera_heartbeat"})
	expect(t, r, FailIllegalMsg) // no heartbeat shortcut for sendAsync
}

func TestSendBatchSync(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := context.Background()
	r, _ := f.h.SendBatchSync(ctx, nil)
	expect(t, r, OK)

	var batch []*producer.Message
	for i := range 50 {
		m := msg("t", fmt.Sprint(i))
		m.PartitionId = int32(i % 2)
		batch = append(batch, m)
	}
	r, _ = f.h.SendBatchSync(ctx, batch)
	expect(t, r, OK)
	for p := int32(0); p < 2; p++ {
		got := f.a.Partition("t", p)
		if len(got) != 25 {
			t.Fatalf("partition %d holds %d", p, len(got))
		}
		for i, s := range got {
			if want := fmt.Sprint(2*i + int(p)); string(s.Body) != want {
				t.Fatalf("partition %d position %d = %s, want %s (order lost)", p, i, s.Body, want)
			}
		}
	}

	before := f.a.Produced()
	for name, c := range map[string]struct {
		bad  *producer.Message
		want Code
	}{
		"one illegal": {msg("t", ""), FailIllegalMsg},
		"one unknown": {msg("nope", "x"), FailTopicNotAllowed},
		"delay topic": {msg("delayed", "x"), FailTopicIsDelay},
		"no producer": {msg("nocluster", "x"), FailNoProducerForCluster},
	} {
		r, _ := f.h.SendBatchSync(ctx, []*producer.Message{msg("t", "ok"), c.bad})
		if r.Code != int32(c.want) {
			t.Fatalf("%s: code %d, want %d", name, r.Code, c.want)
		}
	}
	if f.a.Produced() != before {
		t.Fatal("a refused batch stored messages")
	}

	// Random partitions of one topic share one partition per request.
	batch = nil
	for i := range 10 {
		m := msg("t", fmt.Sprint("r", i))
		m.PartitionId = -2
		batch = append(batch, m)
	}
	r, _ = f.h.SendBatchSync(ctx, batch)
	expect(t, r, OK)
	parts := map[int32]bool{}
	for _, s := range f.a.Messages("t") {
		if strings.HasPrefix(string(s.Body), "r") {
			parts[s.Partition] = true
		}
	}
	if len(parts) != 1 {
		t.Fatalf("random-partition batch spread over %d partitions", len(parts))
	}
}

func TestSendDelaySync(t *testing.T) {
	f := newFixture(t, fixtureOpts{delay: true})
	ctx := context.Background()
	now := time.Now().Unix()
	const uuid = "3f0c1a2e-5b7d-4c1e-9a2b-7d1e0f9c8b6a"
	add := func(mod func(d *producer.DelayMessage)) *producer.DelayMessage {
		ts, typ, u := now+60, int32(2), uuid
		d := &producer.DelayMessage{Topic: "delayed", Body: []byte("payload"), Action: 1, Timestamp: &ts,
			Dmsgtype: &typ, UUID: &u, Tags: "tg"}
		if mod != nil {
			mod(d)
		}
		return d
	}
	i64 := func(v int64) *int64 { return &v }
	i32 := func(v int32) *int32 { return &v }
	str := func(v string) *string { return &v }
	cases := []struct {
		name string
		d    *producer.DelayMessage
		want Code
	}{
		{"ok", add(nil), OK},
		{"empty body", add(func(d *producer.DelayMessage) { d.Body = nil }), FailIllegalMsg},
		{"unknown topic", add(func(d *producer.DelayMessage) { d.Topic = "nope" }), FailTopicNotAllowed},
		{"not delay", add(func(d *producer.DelayMessage) { d.Topic = "t" }), FailTopicIsNotDelay},
		{"inner prefix", add(func(d *producer.DelayMessage) { d.Topic = "inner_0" }), FailIllegalMsg},
		{"bad action", add(func(d *producer.DelayMessage) { d.Action = 7 }), FailIllegalDelayAction},
		{"timestamp low", add(func(d *producer.DelayMessage) { d.Timestamp = i64(999999999) }), FailIllegalDelayTimestamp},
		{"timestamp far", add(func(d *producer.DelayMessage) { d.Timestamp = i64(now + 63*86400) }), FailIllegalDelayTimestamp},
		{"type", add(func(d *producer.DelayMessage) { d.Dmsgtype = i32(1) }), FailIllegalDelayMsgType},
		{"delay times", add(func(d *producer.DelayMessage) { d.Times = i64(1) }), FailIllegalDelayLoopTimes},
		{"loop times", add(func(d *producer.DelayMessage) { d.Dmsgtype = i32(3) }), FailIllegalDelayLoopTimes},
		{"loop expire", add(func(d *producer.DelayMessage) { d.Dmsgtype, d.Times, d.Expire = i32(3), i64(2), i64(now) }), FailIllegalDelayLoopExpire},
		{"loop interval", add(func(d *producer.DelayMessage) {
			d.Dmsgtype, d.Times, d.Expire, d.Interval = i32(3), i64(2), i64(now+600), i64(2)
		}), FailIllegalDelayInterval},
		{"exp base", add(func(d *producer.DelayMessage) {
			d.Dmsgtype, d.Times, d.Expire, d.Interval = i32(4), i64(2), i64(now+600), i64(1)
		}), FailIllegalDelayExpBase},
		{"loop ok", add(func(d *producer.DelayMessage) {
			d.Dmsgtype, d.Times, d.Expire, d.Interval = i32(3), i64(2), i64(now+600), i64(3)
		}), OK},
		{"bad uuid", add(func(d *producer.DelayMessage) { d.UUID = str("NOT-A-UUID") }), FailIllegalUniqDelayMsgID},
		{"cancel blank", &producer.DelayMessage{Topic: "delayed", Body: []byte("c"), Action: 2}, FailIllegalUniqDelayMsgID},
		{"cancel bad type", &producer.DelayMessage{Topic: "delayed", Body: []byte("c"), Action: 2,
			UniqDelayMsgId: str("1700000000-1-1700172800-0-0-0-0-" + uuid)}, FailIllegalDelayMsgType},
		{"cancel bad seq", &producer.DelayMessage{Topic: "delayed", Body: []byte("c"), Action: 2,
			UniqDelayMsgId: str("1700000000-2-1700172800-0-0-0-2-" + uuid)}, FailIllegalDelayInnerSeq},
		{"cancel ok", &producer.DelayMessage{Topic: "delayed", Body: []byte("c"), Action: 2,
			UniqDelayMsgId: str("1700000000-2-1700172800-0-0-0-1-" + uuid)}, OK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, _ := f.h.SendDelaySync(ctx, c.d, 1000)
			if r.Code != int32(c.want) || r.Msg != c.want.Msg() {
				t.Fatalf("code %d %q, want %d", r.Code, r.Msg, c.want)
			}
			switch {
			case c.want == OK && r.UniqDelayMsgId == "":
				t.Fatal("no id on success")
			case c.want == FailIllegalUniqDelayMsgID || c.want == FailIllegalDelayMsgType || c.want == FailIllegalDelayInnerSeq:
				if r.UniqDelayMsgId != c.d.GetUniqDelayMsgId() {
					t.Fatalf("id %q not echoed", r.UniqDelayMsgId)
				}
			case c.want != OK && r.UniqDelayMsgId != "":
				t.Fatalf("failure carries id %q", r.UniqDelayMsgId)
			}
		})
	}
}

func TestDelayAddCancelSamePartitionAndBody(t *testing.T) {
	f := newFixture(t, fixtureOpts{delay: true})
	ctx := context.Background()
	ts, typ := time.Now().Unix()+30, int32(2)
	u := "9e7952e0-b709-11e8-a709-aafb4bfc0bc5"
	body := []byte{0xff, 0x00, 0xfe, 'x'} // not UTF-8
	r, _ := f.h.SendDelaySync(ctx, &producer.DelayMessage{Topic: "delayed", Body: body, Action: 1,
		Timestamp: &ts, Dmsgtype: &typ, UUID: &u, Properties: map[string]string{"a": "b"}}, 1000)
	if r.Code != 0 {
		t.Fatalf("add: %d", r.Code)
	}
	id := r.UniqDelayMsgId
	want := fmt.Sprintf("%d-2-%d-0-0-0-", ts, ts+172800)
	if !strings.HasPrefix(id, want) || !strings.HasSuffix(id, u) {
		t.Fatalf("id %q", id)
	}
	r, _ = f.h.SendDelaySync(ctx, &producer.DelayMessage{Topic: "delayed", Body: []byte("c"), Action: 2, UniqDelayMsgId: &id}, 1000)
	if r.Code != 0 || r.UniqDelayMsgId != id {
		t.Fatalf("cancel: %d %q", r.Code, r.UniqDelayMsgId)
	}
	var stored []memory.Message
	for _, tp := range []string{"inner_0", "inner_1"} {
		stored = append(stored, f.a.Messages(tp)...)
	}
	if len(stored) != 2 || stored[0].Topic != stored[1].Topic || stored[0].Partition != stored[1].Partition {
		t.Fatalf("add and cancel not in one partition: %+v", stored)
	}
	var ext map[string]any
	if err := json.Unmarshal(stored[0].Body, &ext); err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(ext["bodyBase64"].(string))
	if string(raw) != string(body) || ext["topic"] != "delayed" || ext["uniqDelayMsgId"] != id || stored[0].Key != id {
		t.Fatalf("inner message %+v / %s", ext, stored[0].Key)
	}
	if _, has := ext["body"]; has {
		t.Fatal("non-UTF-8 body written as text")
	}
}

func TestDelayDisabled(t *testing.T) {
	f := newFixture(t, fixtureOpts{delay: false})
	ts, typ, u := time.Now().Unix()+30, int32(2), "9e7952e0-b709-11e8-a709-aafb4bfc0bc5"
	r, _ := f.h.SendDelaySync(context.Background(), &producer.DelayMessage{Topic: "delayed", Body: []byte("x"),
		Action: 1, Timestamp: &ts, Dmsgtype: &typ, UUID: &u}, 1000)
	if r.Code != int32(FailTopicNotAllowed) {
		t.Fatalf("code %d", r.Code)
	}
}
