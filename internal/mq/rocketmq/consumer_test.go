package rocketmq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/testenv"
)

// TestGroupConsumerDeliversAndStoresOffsets: one member claims all 8 queues
// (4 on each broker) of a topic plus its group's retry queues, delivers
// every message once with key, tags, properties and body intact, and the
// offsets it was given end up stored at the brokers when it stops.
func TestGroupConsumerDeliversAndStoresOffsets(t *testing.T) {
	leakCheck(t)
	s := startTestBroker(t)
	s.CreateTopic("orders", 4)
	sendMsgs(t, s, "orders", spread(40, "m")...)
	rec := newRecorder(true)
	g, stop := runMember(t, fastOptions(s, "cg1", "orders"), rec)
	if !slices.Contains(g.Topics(), "%RETRY%cg1") {
		t.Fatalf("topics %v: a clustering member must claim the retry topic", g.Topics())
	}
	testenv.Eventually(t, 10*time.Second, "40 deliveries", func() bool { return len(rec.bodies()) == 40 })
	for body, n := range rec.bodies() {
		if n != 1 {
			t.Fatalf("%s delivered %d times", body, n)
		}
	}
	for _, d := range rec.deliveries() {
		var i int
		if _, err := fmt.Sscanf(string(d.Body), "m-%d", &i); err != nil {
			t.Fatal(err)
		}
		want := spread(40, "m")[i]
		b, q, ok := PartitionQueue(d.Partition)
		if !ok || b != want.broker || int(q) != want.queue || d.Topic != "orders" || d.Key != want.keys ||
			d.Tags != "tagA" || len(d.Properties) != 1 || d.Properties["traceId"] != "x" || d.Timestamp.IsZero() {
			t.Fatalf("delivery %+v (queue %s_%d), want %+v", d, b, q, want)
		}
	}
	if got := rec.claimed(); len(got) != 8+2 { // orders, and %RETRY%cg1 (one queue per broker)
		t.Fatalf("claims %v", got)
	}
	stop()
	for _, b := range []string{"broker-a", "broker-b"} {
		for q := range 4 {
			off, ok := s.Server.ConsumerOffset(b, "cg1", "orders", q)
			if !ok || off != 5 {
				t.Fatalf("%s queue %d: stored offset %d %v, want 5", b, q, off, ok)
			}
		}
	}
	if len(s.Server.ConsumerIDs("broker-a", "cg1")) != 0 {
		t.Fatalf("member still registered after stop: %v", s.Server.ConsumerIDs("broker-a", "cg1"))
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.cleanup != 1 || len(rec.setups) == 0 {
		t.Fatalf("setups %d cleanups %d", len(rec.setups), rec.cleanup)
	}
}

// TestGroupConsumerTwoMembersShareQueues: a second member joins, the broker
// notifies the first, and both settle on disjoint halves that cover every
// queue; messages sent after that are delivered exactly once in total; when
// one leaves, the other takes every queue.
func TestGroupConsumerTwoMembersShareQueues(t *testing.T) {
	leakCheck(t)
	s := startTestBroker(t)
	s.CreateTopic("orders", 4)
	o := fastOptions(s, "cg2", "orders")
	o.RebalanceInterval = time.Minute // membership changes must come from the broker's notification
	o.SkipRetryTopic = true
	a, b := newRecorder(true), newRecorder(true)
	o.InstanceName = "a"
	_, stopA := runMember(t, o, a)
	testenv.Eventually(t, 10*time.Second, "member a claims all 8 queues", func() bool { return len(a.claimed()) == 8 })
	o.InstanceName = "b"
	_, stopB := runMember(t, o, b)
	testenv.Eventually(t, 10*time.Second, "4 + 4 queues", func() bool { return len(a.claimed()) == 4 && len(b.claimed()) == 4 })
	all := append(a.claimed(), b.claimed()...)
	slices.Sort(all)
	if len(slices.Compact(all)) != 8 {
		t.Fatalf("queues overlap: a %v b %v", a.claimed(), b.claimed())
	}
	sendMsgs(t, s, "orders", spread(80, "x")...)
	testenv.Eventually(t, 10*time.Second, "80 deliveries", func() bool { return len(a.bodies())+len(b.bodies()) == 80 })
	for body := range a.bodies() {
		if b.bodies()[body] > 0 || a.bodies()[body] != 1 {
			t.Fatalf("%s delivered by a %d and b %d times", body, a.bodies()[body], b.bodies()[body])
		}
	}
	stopB()
	testenv.Eventually(t, 10*time.Second, "a takes every queue after b left", func() bool { return len(a.claimed()) == 8 })
	sendMsgs(t, s, "orders", spread(8, "y")...)
	testenv.Eventually(t, 10*time.Second, "8 more deliveries to a", func() bool {
		n := 0
		for body := range a.bodies() {
			if strings.HasPrefix(body, "y-") {
				n++
			}
		}
		return n == 8
	})
	stopA()
}

// TestGroupConsumerStartsAtLastAndPinsIt: a new group with
// CONSUME_FROM_LAST_OFFSET skips what was stored before it joined, and its
// start position is stored at once (before any commit).
func TestGroupConsumerStartsAtLastAndPinsIt(t *testing.T) {
	leakCheck(t)
	s := startTestBroker(t, testenv.RocketMQBrokers("broker-a"))
	s.CreateTopic("t", 2)
	sendMsgs(t, s, "t", testMsg{broker: "broker-a", queue: 0, body: "old"}, testMsg{broker: "broker-a", queue: 1, body: "old"})
	o := fastOptions(s, "cg3", "t")
	o.ConsumeFrom = ConsumeFromLastOffset
	o.CommitInterval = time.Hour // only the pinned start can be stored
	rec := newRecorder(false)
	_, stop := runMember(t, o, rec)
	testenv.Eventually(t, 10*time.Second, "claims", func() bool { return len(rec.claimed()) == 2+1 })
	for q := range 2 {
		if off, ok := s.Server.ConsumerOffset("broker-a", "cg3", "t", q); !ok || off != 1 {
			t.Fatalf("queue %d: start offset %d %v not stored", q, off, ok)
		}
	}
	sendMsgs(t, s, "t", testMsg{broker: "broker-a", queue: 1, body: "new"})
	testenv.Eventually(t, 10*time.Second, "the new message", func() bool { return rec.bodies()["new"] == 1 })
	if rec.bodies()["old"] != 0 {
		t.Fatal("a message stored before the group existed was delivered")
	}
	stop()
}

// TestGroupConsumerTagFilter: only messages whose tag matches the
// expression are delivered, and the stored offset moves past the filtered
// ones once everything delivered is committed.
func TestGroupConsumerTagFilter(t *testing.T) {
	leakCheck(t)
	s := startTestBroker(t, testenv.RocketMQBrokers("broker-a"))
	s.CreateTopic("t", 1)
	o := fastOptions(s, "cg4", "t")
	o.Subscriptions[0].Expression = "a || b"
	o.SkipRetryTopic = true
	rec := newRecorder(true)
	_, stop := runMember(t, o, rec)
	sendMsgs(t, s, "t",
		testMsg{broker: "broker-a", tags: "a", body: "1"}, testMsg{broker: "broker-a", tags: "c", body: "2"},
		testMsg{broker: "broker-a", body: "3"}, testMsg{broker: "broker-a", tags: "b", body: "4"},
		testMsg{broker: "broker-a", tags: "c", body: "5"}, testMsg{broker: "broker-a", tags: "c", body: "6"})
	testenv.Eventually(t, 10*time.Second, "offset stored past the filtered tail", func() bool {
		off, _ := s.Server.ConsumerOffset("broker-a", "cg4", "t", 0)
		return off == 6
	})
	stop()
	if got := rec.bodies(); len(got) != 2 || got["1"] != 1 || got["4"] != 1 {
		t.Fatalf("delivered %v, want 1 and 4", got)
	}
}

// TestGroupConsumerBroadcasting: two broadcasting members each get every
// message and store offsets under their own offset group.
func TestGroupConsumerBroadcasting(t *testing.T) {
	leakCheck(t)
	s := startTestBroker(t)
	s.CreateTopic("news", 2)
	var recs []*recorder
	for _, inst := range []string{"one", "two"} {
		o := fastOptions(s, "cg5", "news")
		o.Broadcasting, o.OffsetGroup, o.InstanceName = true, "cg5_BROADCAST_"+inst, inst
		r := newRecorder(true)
		g, _ := runMember(t, o, r)
		if slices.Contains(g.Topics(), "%RETRY%cg5") {
			t.Fatal("a broadcasting member must not claim the retry topic")
		}
		recs = append(recs, r)
	}
	for _, r := range recs {
		testenv.Eventually(t, 10*time.Second, "every queue claimed", func() bool { return len(r.claimed()) == 4 })
	}
	msgs := []testMsg{{broker: "broker-a", queue: 0, body: "p"}, {broker: "broker-b", queue: 1, body: "q"}}
	sendMsgs(t, s, "news", msgs...)
	for _, r := range recs {
		testenv.Eventually(t, 10*time.Second, "both messages", func() bool { return len(r.bodies()) == 2 })
	}
	for _, inst := range []string{"one", "two"} {
		testenv.Eventually(t, 5*time.Second, "offsets of "+inst, func() bool {
			oa, _ := s.Server.ConsumerOffset("broker-a", "cg5_BROADCAST_"+inst, "news", 0)
			ob, _ := s.Server.ConsumerOffset("broker-b", "cg5_BROADCAST_"+inst, "news", 1)
			return oa == 1 && ob == 1
		})
	}
	if _, ok := s.Server.ConsumerOffset("broker-a", "cg5", "news", 0); ok {
		t.Fatal("broadcast offsets stored under the shared group name")
	}
}

// TestGroupConsumerSendBackRedelivers: a message sent back with
// CONSUMER_SEND_MSG_BACK comes back through the group's retry topic, body
// and key intact, and can be sent back again.
func TestGroupConsumerSendBackRedelivers(t *testing.T) {
	leakCheck(t)
	s := startTestBroker(t)
	s.CreateTopic("orders", 1)
	r := newReader(t, s)
	rec := newRecorder(true)
	_, stop := runMember(t, fastOptions(s, "cg6", "orders"), rec)
	testenv.Eventually(t, 10*time.Second, "claims", func() bool { return len(rec.claimed()) == 2+2 }) // orders and the retry topic
	sendMsgs(t, s, "orders", testMsg{broker: "broker-b", keys: "K", props: map[string]string{"p": "v"}, body: "again"})
	testenv.Eventually(t, 10*time.Second, "first delivery", func() bool { return rec.bodies()["again"] == 1 })
	first := rec.deliveries()[0]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.SendBack(ctx, "cg6", first); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "redelivery through the retry topic", func() bool { return rec.bodies()["again"] == 2 })
	second := rec.deliveries()[1]
	if second.Topic != "%RETRY%cg6" || second.Key != "K" || second.Properties["p"] != "v" {
		t.Fatalf("redelivery %+v", second)
	}
	if err := r.SendBack(ctx, "cg6", second); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "second redelivery", func() bool { return rec.bodies()["again"] == 3 })
	stop()
	if err := r.SendBack(ctx, "cg6", &mq.Delivery{Topic: "orders"}); err == nil {
		t.Fatal("send-back of a foreign delivery accepted")
	}
}

// TestGroupConsumerMissingTopicRetries: a member whose topic does not
// exist yet keeps retrying and starts consuming once it is created.
func TestGroupConsumerMissingTopicRetries(t *testing.T) {
	leakCheck(t)
	s := startTestBroker(t, testenv.RocketMQBrokers("broker-a"), testenv.RocketMQNoAutoCreate())
	o := fastOptions(s, "cg7", "later")
	o.SkipRetryTopic = true
	rec := newRecorder(true)
	_, stop := runMember(t, o, rec)
	// A negative check (no event to await): a few failed rebalances
	// (RetryBackoff 50 ms) claim nothing.
	time.Sleep(200 * time.Millisecond)
	if len(rec.claimed()) != 0 {
		t.Fatal("claims without a topic")
	}
	s.CreateTopic("later", 2)
	testenv.Eventually(t, 10*time.Second, "claims once the topic exists", func() bool { return len(rec.claimed()) == 2 })
	sendMsgs(t, s, "later", testMsg{broker: "broker-a", queue: 1, body: "z"})
	testenv.Eventually(t, 10*time.Second, "delivery", func() bool { return rec.bodies()["z"] == 1 })
	stop()
}

// TestGroupConsumerOptions covers validation.
func TestGroupConsumerOptions(t *testing.T) {
	for _, c := range []struct {
		name string
		o    ConsumerOptions
	}{
		{"NoNameServer", ConsumerOptions{Group: "g", Subscriptions: []Subscription{{Topic: "t"}}}},
		{"BadNameServer", ConsumerOptions{NameServers: []string{"x"}, Group: "g", Subscriptions: []Subscription{{Topic: "t"}}}},
		{"NoGroup", ConsumerOptions{NameServers: []string{"h:1"}, Subscriptions: []Subscription{{Topic: "t"}}}},
		{"NoTopics", ConsumerOptions{NameServers: []string{"h:1"}, Group: "g"}},
		{"DuplicateTopic", ConsumerOptions{NameServers: []string{"h:1"}, Group: "g", Subscriptions: []Subscription{{Topic: "t"}, {Topic: "t"}}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := NewGroupConsumer(c.o, nil); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	g, err := NewGroupConsumer(ConsumerOptions{NameServers: []string{"h:1"}, Group: "g", Subscriptions: []Subscription{{Topic: "t"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g2, _ := NewGroupConsumer(ConsumerOptions{NameServers: []string{"h:1"}, Group: "g", Subscriptions: []Subscription{{Topic: "t"}}}, nil)
	if g.ClientID() == g2.ClientID() || !strings.Contains(g.ClientID(), "@") {
		t.Fatalf("client ids %q %q must differ", g.ClientID(), g2.ClientID())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.Run(ctx, newRecorder(false)); err != nil {
		t.Fatal(err)
	}
	if err := g.Run(ctx, newRecorder(false)); err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("second Run: %v", err)
	}
}

// TestGroupConsumerSurvivesBrokerRestart: the broker restarts (same
// addresses, persisted data); the member reconnects, registers again and
// goes on from the stored offsets: every message is delivered, none twice.
func TestGroupConsumerSurvivesBrokerRestart(t *testing.T) {
	leakCheck(t)
	s := startTestBroker(t, testenv.RocketMQBrokers("broker-a"), testenv.RocketMQDataDir(t.TempDir()))
	s.CreateTopic("t", 2)
	o := fastOptions(s, "cg8", "t")
	o.SkipRetryTopic = true
	rec := newRecorder(true)
	g, stop := runMember(t, o, rec)
	rec.clientID = g.ClientID()
	testenv.Eventually(t, 10*time.Second, "claims", func() bool { return len(rec.claimed()) == 2 })
	sendMsgs(t, s, "t", testMsg{broker: "broker-a", queue: 0, body: "before-0"}, testMsg{broker: "broker-a", queue: 1, body: "before-1"})
	testenv.Eventually(t, 10*time.Second, "first messages", func() bool { return len(rec.bodies()) == 2 })
	testenv.Eventually(t, 10*time.Second, "offsets stored", func() bool {
		a, _ := s.Server.ConsumerOffset("broker-a", "cg8", "t", 0)
		b, _ := s.Server.ConsumerOffset("broker-a", "cg8", "t", 1)
		return a == 1 && b == 1
	})
	s.Restart()
	sendMsgs(t, s, "t", testMsg{broker: "broker-a", queue: 0, body: "after-0"}, testMsg{broker: "broker-a", queue: 1, body: "after-1"})
	testenv.Eventually(t, 20*time.Second, "messages sent after the restart", func() bool { return len(rec.bodies()) == 4 })
	testenv.Eventually(t, 20*time.Second, "member registered again", func() bool {
		return slices.Contains(s.Server.ConsumerIDs("broker-a", "cg8"), rec.clientID)
	})
	stop()
	for body, n := range rec.bodies() {
		if n != 1 {
			t.Fatalf("%s delivered %d times", body, n)
		}
	}
}
