package rocketmq_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/admin"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	rm "github.com/ddmq-go/carrera/internal/rocketmq/remoting"
	rmqtb "github.com/ddmq-go/carrera/internal/testbroker/rocketmq"
	"github.com/ddmq-go/carrera/internal/testenv"
)

var instanceSeq atomic.Int64

// instance returns a process-unique client instance name: the library
// shares one client (and its NameServer list) per instance name.
func instance(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano(), instanceSeq.Add(1))
}

func newProducer(t *testing.T, ns string, opts ...producer.Option) rocketmq.Producer {
	t.Helper()
	all := append([]producer.Option{
		producer.WithNsResolver(primitive.NewPassthroughResolver([]string{ns})),
		producer.WithGroupName("pg"), producer.WithInstanceName(instance("p")), producer.WithRetry(1),
		producer.WithSendMsgTimeout(5 * time.Second),
	}, opts...)
	p, err := rocketmq.NewProducer(all...)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { p.Shutdown() }) })
	return p
}

type consumed struct {
	member string
	msg    *primitive.MessageExt
}

// pushMember is one push consumer of a group, recording what it consumed.
type pushMember struct {
	name string
	c    rocketmq.PushConsumer
	once sync.Once
}

func (m *pushMember) stop() { m.once.Do(func() { m.c.Shutdown() }) }

func newPushMember(t *testing.T, ns, group, topic, name string, out chan<- consumed,
	handle func(*primitive.MessageExt) consumer.ConsumeResult, opts ...consumer.Option) *pushMember {
	t.Helper()
	all := append([]consumer.Option{
		consumer.WithNsResolver(primitive.NewPassthroughResolver([]string{ns})),
		consumer.WithGroupName(group), consumer.WithInstance(instance(name)),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
		consumer.WithConsumerModel(consumer.Clustering),
	}, opts...)
	c, err := rocketmq.NewPushConsumer(all...)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Subscribe(topic, consumer.MessageSelector{}, func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		for _, msg := range msgs {
			if handle != nil {
				if r := handle(msg); r != consumer.ConsumeSuccess {
					return r, nil
				}
			}
		}
		for _, msg := range msgs {
			out <- consumed{member: name, msg: msg}
		}
		return consumer.ConsumeSuccess, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	m := &pushMember{name: name, c: c}
	t.Cleanup(m.stop)
	return m
}

// collect reads n deliveries from ch (failing after within).
func collect(t *testing.T, ch <-chan consumed, n int, within time.Duration) []consumed {
	t.Helper()
	var out []consumed
	deadline := time.After(within)
	for len(out) < n {
		select {
		case c := <-ch:
			out = append(out, c)
		case <-deadline:
			t.Fatalf("got %d of %d messages within %v", len(out), n, within)
		}
	}
	return out
}

// readQueue pulls every message of one queue with the project's own client.
func readQueue(t *testing.T, addr, topic string, queueID int) []rm.StoredMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := rm.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out []rm.StoredMessage
	for off := int64(0); ; {
		resp, err := c.Invoke(ctx, rm.NewRequest(rm.PullMessage, map[string]string{
			"consumerGroup": "reader", "topic": topic, "queueId": strconv.Itoa(queueID),
			"queueOffset": strconv.FormatInt(off, 10), "maxMsgNums": "32", "sysFlag": "0",
		}, nil))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Code != rm.Success {
			return out
		}
		msgs, err := rm.DecodeStoredMessages(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, msgs...)
		off, _ = strconv.ParseInt(resp.Ext("nextBeginOffset"), 10, 64)
	}
}

func readAll(t *testing.T, b *testenv.RocketMQ, topic string, queues int) map[string][]rm.StoredMessage {
	t.Helper()
	out := map[string][]rm.StoredMessage{}
	for name, addr := range b.Brokers {
		for q := range queues {
			out[name] = append(out[name], readQueue(t, addr, topic, q)...)
		}
	}
	return out
}

func TestProducerSendModes(t *testing.T) {
	b := testenv.StartRocketMQ(t, testenv.RocketMQBrokers("broker-a", "broker-b"))
	b.CreateTopic("modes", 4)
	p := newProducer(t, b.NameServer)
	ctx := context.Background()
	binary := []byte{0, 1, 2, 0xff, 0xfe, 0x80, '\n', 0}

	// sync single with tags, keys and user properties
	m := primitive.NewMessage("modes", binary)
	m.WithTag("tagA")
	m.WithKeys([]string{"k1", "k2"})
	m.WithProperty("user-prop", "välue with spaces=1")
	m.WithProperty("empty", "")
	res, err := p.SendSync(ctx, m)
	if err != nil || res.Status != primitive.SendOK || res.MsgID == "" || res.OffsetMsgID == "" {
		t.Fatalf("sync send: %v %v", res, err)
	}
	// batch
	var batch []*primitive.Message
	for i := range 3 {
		bm := primitive.NewMessage("modes", []byte("batch-"+strconv.Itoa(i)))
		bm.WithTag("batch")
		batch = append(batch, bm)
	}
	bres, err := p.SendSync(ctx, batch...)
	if err != nil || bres.Status != primitive.SendOK {
		t.Fatalf("batch send: %v %v", bres, err)
	}
	// async
	asyncDone := make(chan error, 1)
	err = p.SendAsync(ctx, func(_ context.Context, r *primitive.SendResult, err error) {
		if err == nil && r.Status != primitive.SendOK {
			err = fmt.Errorf("status %v", r.Status)
		}
		asyncDone <- err
	}, primitive.NewMessage("modes", []byte("async")))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-asyncDone:
		if err != nil {
			t.Fatalf("async send: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("async send not completed")
	}
	// oneway
	if err := p.SendOneWay(ctx, primitive.NewMessage("modes", []byte("oneway"))); err != nil {
		t.Fatal(err)
	}
	// spread: sync sends round-robin over both brokers' queues
	for i := range 16 {
		if _, err := p.SendSync(ctx, primitive.NewMessage("modes", []byte("spread-"+strconv.Itoa(i)))); err != nil {
			t.Fatal(err)
		}
	}

	var all []rm.StoredMessage
	testenv.Eventually(t, 5*time.Second, "every message stored", func() bool {
		perBroker := readAll(t, b, "modes", 4)
		all = append(perBroker["broker-a"], perBroker["broker-b"]...)
		return len(all) == 1+3+1+1+16
	})
	perBroker := readAll(t, b, "modes", 4)
	if len(perBroker["broker-a"]) == 0 || len(perBroker["broker-b"]) == 0 {
		t.Fatalf("messages not spread over both brokers: a=%d b=%d", len(perBroker["broker-a"]), len(perBroker["broker-b"]))
	}
	byBody := map[string]rm.StoredMessage{}
	for _, sm := range all {
		byBody[string(sm.Body)] = sm
	}
	got, ok := byBody[string(binary)]
	if !ok {
		t.Fatal("binary message not found byte-exact")
	}
	props := rm.DecodeProperties(got.Properties)
	if props["TAGS"] != "tagA" || props["KEYS"] != "k1 k2" || props["user-prop"] != "välue with spaces=1" ||
		props["empty"] != "" || props["UNIQ_KEY"] != res.MsgID {
		t.Fatalf("properties %q", got.Properties)
	}
	if res.OffsetMsgID != rm.OffsetMsgID(got.StoreHost, got.CommitLogOffset) || res.QueueOffset != got.QueueOffset {
		t.Fatalf("send result %v does not match stored %+v", res, got)
	}
	for i := range 3 {
		bm, ok := byBody["batch-"+strconv.Itoa(i)]
		if !ok || rm.DecodeProperties(bm.Properties)["TAGS"] != "batch" {
			t.Fatalf("batch message %d: %+v", i, bm)
		}
	}
	for _, body := range []string{"async", "oneway"} {
		if _, ok := byBody[body]; !ok {
			t.Fatalf("%s message missing", body)
		}
	}
}

func TestPushConsumerRebalanceWithCode40(t *testing.T) {
	b := testenv.StartRocketMQ(t)
	const topic, group = "rebal", "g-rebal"
	b.CreateTopic(topic, 4)
	p := newProducer(t, b.NameServer)
	send := func(prefix string, n int) {
		for i := range n {
			if _, err := p.SendSync(context.Background(), primitive.NewMessage(topic, []byte(prefix+strconv.Itoa(i)))); err != nil {
				t.Fatal(err)
			}
		}
	}
	out := make(chan consumed, 1000)
	m1 := newPushMember(t, b.NameServer, group, topic, "m1", out, nil)
	send("first-", 20)
	first := collect(t, out, 20, 15*time.Second)
	for _, c := range first {
		if c.member != "m1" {
			t.Fatalf("delivered to %s", c.member)
		}
	}
	// m1 commits every 5 s; wait until all four queues are committed so the
	// second member starts exactly where m1 stopped.
	testenv.Eventually(t, 15*time.Second, "m1's offsets committed", func() bool {
		for q := range 4 {
			off, ok := b.Server.ConsumerOffset("broker-a", group, topic, q)
			if !ok || off != b.Server.MaxOffset("broker-a", topic, q) {
				return false
			}
		}
		return true
	})

	start := time.Now()
	m2 := newPushMember(t, b.NameServer, group, topic, "m2", out, nil)
	// Settled: every queue long-polled by exactly one member, both members
	// polling. Code 40 makes this happen at once (the periodic rebalance
	// would take up to 20 s).
	testenv.Eventually(t, 10*time.Second, "rebalance onto two members", func() bool {
		held := b.Server.HeldPulls("broker-a", topic)
		holders := map[string]bool{}
		for q := range 4 {
			if len(held[q]) != 1 {
				return false
			}
			holders[held[q][0]] = true
		}
		return len(holders) == 2
	})
	t.Logf("rebalanced %v after the second member started", time.Since(start))
	if ids := b.Server.ConsumerIDs("broker-a", group); len(ids) != 2 {
		t.Fatalf("members %v", ids)
	}

	send("second-", 40)
	second := collect(t, out, 40, 15*time.Second)
	perMember := map[string]int{}
	seen := map[string]bool{}
	for _, c := range second {
		body := string(c.msg.Body)
		if seen[body] {
			t.Fatalf("%s consumed twice", body)
		}
		seen[body] = true
		perMember[c.member]++
	}
	if perMember["m1"] == 0 || perMember["m2"] == 0 {
		t.Fatalf("not shared: %v", perMember)
	}
	select {
	case c := <-out:
		t.Fatalf("extra delivery %q to %s", c.msg.Body, c.member)
	case <-time.After(300 * time.Millisecond):
	}

	// m1 leaves: its connection closes, m2 is told (code 40) and takes over.
	m1.stop()
	testenv.Eventually(t, 10*time.Second, "m2 owning every queue", func() bool {
		held := b.Server.HeldPulls("broker-a", topic)
		for q := range 4 {
			if len(held[q]) != 1 {
				return false
			}
		}
		return len(b.Server.ConsumerIDs("broker-a", group)) == 1
	})
	send("third-", 8)
	for _, c := range collect(t, out, 8, 15*time.Second) {
		if c.member != "m2" {
			t.Fatalf("third batch delivered to %s", c.member)
		}
	}
	m2.stop()
}

func TestPushConsumerRetryLater(t *testing.T) {
	b := testenv.StartRocketMQ(t)
	const topic, group = "retry", "g-retry"
	b.CreateTopic(topic, 2)
	p := newProducer(t, b.NameServer)
	msg := primitive.NewMessage(topic, []byte("try again"))
	msg.WithTag("t1")
	msg.WithProperty("u", "v")
	res, err := p.SendSync(context.Background(), msg)
	if err != nil {
		t.Fatal(err)
	}
	var attempts atomic.Int32
	out := make(chan consumed, 10)
	newPushMember(t, b.NameServer, group, topic, "r", out, func(m *primitive.MessageExt) consumer.ConsumeResult {
		if attempts.Add(1) == 1 {
			return consumer.ConsumeRetryLater
		}
		return consumer.ConsumeSuccess
	})
	got := collect(t, out, 1, 20*time.Second)[0].msg
	if attempts.Load() != 2 || got.ReconsumeTimes != 1 || got.Topic != topic || string(got.Body) != "try again" ||
		got.GetTags() != "t1" || got.GetProperty("u") != "v" || got.MsgId != res.MsgID ||
		got.GetProperty("RETRY_TOPIC") != topic {
		t.Fatalf("redelivery after %d attempts: %v", attempts.Load(), got)
	}
	if off := b.Server.MaxOffset("broker-a", "%RETRY%"+group, 0); off != 1 {
		t.Fatalf("retry queue holds %d messages", off)
	}
}

func TestPullConsumerPullFrom(t *testing.T) {
	b := testenv.StartRocketMQ(t)
	const topic = "pulled"
	b.CreateTopic(topic, 1)
	p := newProducer(t, b.NameServer)
	for i := range 10 {
		if _, err := p.SendSync(context.Background(), primitive.NewMessage(topic, []byte("p-"+strconv.Itoa(i)))); err != nil {
			t.Fatal(err)
		}
	}
	pc, err := rocketmq.NewPullConsumer(
		consumer.WithNsResolver(primitive.NewPassthroughResolver([]string{b.NameServer})),
		consumer.WithGroupName("g-pull"), consumer.WithInstance(instance("pull")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Subscribe(topic, consumer.MessageSelector{}); err != nil {
		t.Fatal(err)
	}
	if err := pc.Start(); err != nil {
		t.Fatal(err)
	}
	defer pc.Shutdown()
	mq := &primitive.MessageQueue{Topic: topic, BrokerName: "broker-a", QueueId: 0}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var bodies []string
	for off := int64(0); off < 10; {
		r, err := pc.PullFrom(ctx, mq, off, 4)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != primitive.PullFound {
			t.Fatalf("status %v at %d", r.Status, off)
		}
		for _, m := range r.GetMessageExts() {
			bodies = append(bodies, string(m.Body))
		}
		off = r.NextBeginOffset
	}
	want := make([]string, 10)
	for i := range want {
		want[i] = "p-" + strconv.Itoa(i)
	}
	if !slices.Equal(bodies, want) {
		t.Fatalf("pulled %v", bodies)
	}
	r, err := pc.PullFrom(ctx, mq, 10, 4)
	if err != nil || r.Status != primitive.PullNoNewMsg || r.NextBeginOffset != 10 {
		t.Fatalf("pull at the end: %v %v", r, err)
	}
	r, err = pc.PullFrom(ctx, mq, 50, 4)
	if err != nil || r.Status != primitive.PullOffsetIllegal {
		t.Fatalf("pull beyond the end: %v %v", r, err)
	}
}

func TestAdminTopics(t *testing.T) {
	b := testenv.StartRocketMQ(t, testenv.RocketMQBrokers("broker-a", "broker-b"))
	adm, err := admin.NewAdmin(admin.WithResolver(primitive.NewPassthroughResolver([]string{b.NameServer})))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, name := range []string{"broker-a", "broker-b"} {
		err := adm.CreateTopic(ctx, admin.WithTopicCreate("admin-t"), admin.WithBrokerAddrCreate(b.BrokerAddr(name)),
			admin.WithReadQueueNums(3), admin.WithWriteQueueNums(3))
		if err != nil {
			t.Fatal(err)
		}
	}
	list, err := adm.FetchAllTopicList(ctx)
	if err != nil || !slices.Contains(list.TopicList, "admin-t") {
		t.Fatalf("topic list %v %v", list, err)
	}
	queues, err := adm.FetchPublishMessageQueues(ctx, "admin-t")
	if err != nil || len(queues) != 6 {
		t.Fatalf("publish queues %v %v", queues, err)
	}
	brokers := map[string]int{}
	for _, q := range queues {
		brokers[q.BrokerName]++
	}
	if !maps.Equal(brokers, map[string]int{"broker-a": 3, "broker-b": 3}) {
		t.Fatalf("queues per broker %v", brokers)
	}
	if err := adm.DeleteTopic(ctx, admin.WithTopicDelete("admin-t"), admin.WithBrokerAddrDelete(b.BrokerAddr("broker-a"))); err != nil {
		t.Fatal(err)
	}
	list, err = adm.FetchAllTopicList(ctx)
	if err != nil || slices.Contains(list.TopicList, "admin-t") {
		t.Fatalf("topic list after delete %v %v", list, err)
	}
}

func TestOffsetsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	b := testenv.StartRocketMQ(t, testenv.RocketMQDataDir(dir))
	const topic, group = "durable", "g-durable"
	b.CreateTopic(topic, 2)
	p := newProducer(t, b.NameServer)
	for i := range 10 {
		if _, err := p.SendSync(context.Background(), primitive.NewMessage(topic, []byte("d-"+strconv.Itoa(i)))); err != nil {
			t.Fatal(err)
		}
	}
	out := make(chan consumed, 100)
	m := newPushMember(t, b.NameServer, group, topic, "d", out, nil)
	collect(t, out, 10, 15*time.Second)
	m.stop() // persists the consumed offsets (oneway requests: wait for the broker to apply them)
	var committed [2]int64
	testenv.Eventually(t, 5*time.Second, "offsets committed on shutdown", func() bool {
		for q := range 2 {
			off, ok := b.Server.ConsumerOffset("broker-a", group, topic, q)
			if !ok || off != b.Server.MaxOffset("broker-a", topic, q) {
				return false
			}
			committed[q] = off
		}
		return true
	})

	b.Restart()
	for q := range 2 {
		if off, ok := b.Server.ConsumerOffset("broker-a", group, topic, q); !ok || off != committed[q] {
			t.Fatalf("queue %d after restart: %d %v, want %d", q, off, ok, committed[q])
		}
	}
	// the stored messages are still there, and a new member of the group
	// resumes after them
	stored := readAll(t, b, topic, 2)["broker-a"]
	if len(stored) != 10 {
		t.Fatalf("%d messages after restart", len(stored))
	}
	p2 := newProducer(t, b.NameServer)
	if _, err := p2.SendSync(context.Background(), primitive.NewMessage(topic, []byte("after-restart"))); err != nil {
		t.Fatal(err)
	}
	newPushMember(t, b.NameServer, group, topic, "d2", out, nil)
	got := collect(t, out, 1, 15*time.Second)
	if string(got[0].msg.Body) != "after-restart" {
		t.Fatalf("resumed with %q", got[0].msg.Body)
	}
	select {
	case c := <-out:
		t.Fatalf("old message %q redelivered", c.msg.Body)
	case <-time.After(500 * time.Millisecond):
	}
}

func TestLongPollWakesPushConsumer(t *testing.T) {
	b := testenv.StartRocketMQ(t, func(o *rmqtb.Options) { o.MaxPullHold = 20 * time.Second })
	const topic = "lp"
	b.CreateTopic(topic, 1)
	p := newProducer(t, b.NameServer)
	out := make(chan consumed, 10)
	newPushMember(t, b.NameServer, "g-lp", topic, "lp", out, nil)
	testenv.Eventually(t, 10*time.Second, "the consumer's pull to be held", func() bool {
		return len(b.Server.HeldPulls("broker-a", topic)[0]) == 1
	})
	sent := time.Now()
	if _, err := p.SendSync(context.Background(), primitive.NewMessage(topic, []byte("now"))); err != nil {
		t.Fatal(err)
	}
	got := collect(t, out, 1, 10*time.Second)
	lat := time.Since(sent)
	if string(got[0].msg.Body) != "now" || lat > 500*time.Millisecond {
		t.Fatalf("delivered %q after %v", got[0].msg.Body, lat)
	}
	t.Logf("send → push delivery through a held pull: %v", lat)
}

func TestClientExpiryNotifiesOthers(t *testing.T) {
	b := testenv.StartRocketMQ(t, testenv.RocketMQClientExpiry(3*time.Second),
		func(o *rmqtb.Options) { o.MaxPullHold = 500 * time.Millisecond })
	const topic, group = "exp", "g-exp"
	b.CreateTopic(topic, 4)
	out := make(chan consumed, 10)
	newPushMember(t, b.NameServer, group, topic, "live", out, nil)
	testenv.Eventually(t, 10*time.Second, "the live member to hold all queues", func() bool {
		held := b.Server.HeldPulls("broker-a", topic)
		return len(held) == 4
	})
	// A silent member: one heartbeat over the project's client, kept connected.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ghost, err := rm.Dial(ctx, b.BrokerAddr("broker-a"))
	if err != nil {
		t.Fatal(err)
	}
	defer ghost.Close()
	body := []byte(`{"clientID":"ghost@1","producerDataSet":[],"consumerDataSet":[{"groupName":"` + group +
		`","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","subscriptionDataSet":[{"topic":"` + topic + `","subString":"*"}]}]}`)
	if resp, err := ghost.Invoke(ctx, rm.NewRequest(rm.HeartBeat, nil, body)); err != nil || resp.Code != rm.Success {
		t.Fatalf("ghost heartbeat: %v %v", resp, err)
	}
	// The live member rebalances (code 40) and gives two queues to the ghost,
	// which never pulls them; after the ghost expires (code 40 again) the
	// live member takes all four back.
	testenv.Eventually(t, 10*time.Second, "the live member to release the ghost's queues", func() bool {
		return len(b.Server.HeldPulls("broker-a", topic)) == 2
	})
	testenv.Eventually(t, 10*time.Second, "the ghost to expire and its queues to return", func() bool {
		return len(b.Server.ConsumerIDs("broker-a", group)) == 1 && len(b.Server.HeldPulls("broker-a", topic)) == 4
	})
	p := newProducer(t, b.NameServer)
	for i := range 8 {
		if _, err := p.SendSync(context.Background(), primitive.NewMessage(topic, []byte{byte(i)})); err != nil {
			t.Fatal(err)
		}
	}
	got := collect(t, out, 8, 10*time.Second)
	seen := map[byte]bool{}
	for _, c := range got {
		seen[c.msg.Body[0]] = true
	}
	if len(seen) != 8 {
		t.Fatalf("consumed %v", seen)
	}
}

func TestPushConsumerDeadLetter(t *testing.T) {
	b := testenv.StartRocketMQ(t)
	const topic, group = "dead", "g-dead"
	b.CreateTopic(topic, 1)
	p := newProducer(t, b.NameServer)
	if _, err := p.SendSync(context.Background(), primitive.NewMessage(topic, []byte("poison"))); err != nil {
		t.Fatal(err)
	}
	var attempts atomic.Int32
	out := make(chan consumed, 10)
	newPushMember(t, b.NameServer, group, topic, "dlq", out, func(*primitive.MessageExt) consumer.ConsumeResult {
		attempts.Add(1)
		return consumer.ConsumeRetryLater
	}, consumer.WithMaxReconsumeTimes(2))
	// first delivery + 2 redeliveries, then the broker moves it to %DLQ%
	testenv.Eventually(t, 20*time.Second, "the message in the dead-letter queue", func() bool {
		return b.Server.MaxOffset("broker-a", "%DLQ%"+group, 0) == 1
	})
	dl := readQueue(t, b.BrokerAddr("broker-a"), "%DLQ%"+group, 0)
	if len(dl) != 1 || string(dl[0].Body) != "poison" || dl[0].ReconsumeTimes != 3 ||
		rm.DecodeProperties(dl[0].Properties)["RETRY_TOPIC"] != topic {
		t.Fatalf("dead letter %+v", dl)
	}
	if n := attempts.Load(); n != 3 {
		t.Fatalf("%d delivery attempts, want 3", n)
	}
}
