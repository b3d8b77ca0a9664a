package cproxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
	"github.com/ddmq-go/carrera/internal/cproxy"
	testbroker "github.com/ddmq-go/carrera/internal/testbroker/rocketmq"
	"github.com/ddmq-go/carrera/internal/testenv"
)

// End-to-end tests of cproxy on RocketMQ: real ZooKeeper, the project's
// RocketMQ test broker (two broker names, four queues each) over TCP, cproxy
// in-process, a real Thrift client. Messages are seeded with raw
// SEND_MESSAGE requests (no rocketmq-client-go consumer runs here, so the
// package keeps -race).

const rmqCluster = "R_e2e"

// rmqStack is ZooKeeper + test broker + one cproxy.
type rmqStack struct {
	zk     *testenv.ZooKeeper
	broker *testenv.RocketMQ
	addr   string
	stop   func()
}

// rmqNode is the /cproxy/<inst> node of a cproxy consuming from the test
// broker; model is "" (clustering) or "BROADCASTING".
func rmqNode(inst, nameServer, model string, groups []string) []byte {
	port := 9713
	if i := strings.LastIndexByte(inst, ':'); i >= 0 {
		port, _ = strconv.Atoi(inst[i+1:])
	}
	rc := map[string]any{"clusterName": rmqCluster, "namesrvAddrs": []string{nameServer},
		"groupPrefix": "carrera_rocketmq_consumer_", "pollNameServerInterval": 500, "heartbeatBrokerInterval": 1000,
		"persistConsumerOffsetInterval": 100, "consumeConcurrentlyMaxSpan": 2000, "consumeMessageBatchMaxSize": 1,
		"pullBatchSize": 32, "pullThresholdForQueue": 1000, "consumeFromWhere": "CONSUME_FROM_LAST_OFFSET"}
	if model != "" {
		rc["messageModel"] = model
	}
	b, _ := json.Marshal(map[string]any{
		"instance": inst, "proxyCluster": "C_e2e", "brokerClusters": []string{rmqCluster},
		"rocketmqConfigs": map[string]any{rmqCluster: rc},
		"thriftServer": map[string]any{"port": port, "selectorThreads": 1, "workerThreads": 4,
			"acceptQueueSizePerThread": 10, "maxReadBufferBytes": 5000000, "backlog": 50, "workerQueueSize": 100},
		"groups": groups,
	})
	return b
}

// rmqGroupJSON is a pull group on the RocketMQ cluster served by insts
// (default: the standard instance).
func rmqGroupJSON(name, topic string, extra map[string]any, insts ...string) []byte {
	if len(insts) == 0 {
		insts = []string{instance}
	}
	sub := map[string]any{"brokerCluster": rmqCluster, "proxies": proxies(insts...),
		"enabled": true, "topic": topic, "actions": []string{"Async", "PullServer"},
		"maxTps": 100000.0, "totalMaxTps": 100000.0, "concurrency": 1000, "timeout": 2000,
		"maxRetry": 3, "retryIntervals": []int{50, 100}, "maxPullBatchSize": 16}
	for k, v := range extra {
		sub[k] = v
	}
	b, _ := json.Marshal(map[string]any{"group": name, "asyncThreads": 4, "topics": []any{sub}})
	return b
}

// startRMQBroker starts the test broker with broker-a and broker-b.
func startRMQBroker(t *testing.T) *testenv.RocketMQ {
	t.Helper()
	return testenv.StartRocketMQ(t, testenv.RocketMQBrokers("broker-a", "broker-b"),
		func(o *testbroker.Options) { o.MaxPullHold = 500 * time.Millisecond })
}

// startRMQStack starts ZooKeeper, the test broker with topic (4 queues on
// each broker) and one in-process cproxy serving groups.
func startRMQStack(t *testing.T, topic, model string, groups map[string][]byte) *rmqStack {
	t.Helper()
	s := &rmqStack{zk: testenv.StartZooKeeper(t), broker: startRMQBroker(t)}
	s.broker.CreateTopic(topic, 4)
	names := []string{}
	nodes := map[string][]byte{}
	for g, data := range groups {
		names = append(names, g)
		nodes["/group/"+g] = data
	}
	nodes["/cproxy/"+instance] = rmqNode(instance, s.broker.NameServer, model, names)
	testenv.SeedZK(t, s.zk.Addr, chroot, nodes)
	s.addr, s.stop = startInProc(t, s.zk, 9713)
	return s
}

// rmqMsg is one message to seed.
type rmqMsg struct {
	broker     string
	queue      int
	key, tags  string
	body       string
	properties map[string]string
}

// sendRMQ stores messages with SEND_MESSAGE (code 10).
func sendRMQ(t *testing.T, b *testenv.RocketMQ, topic string, msgs []rmqMsg) {
	t.Helper()
	out := make([]testenv.RocketMQMessage, len(msgs))
	for i, m := range msgs {
		props := map[string]string{"traceId": "x"}
		maps.Copy(props, m.properties)
		out[i] = testenv.RocketMQMessage{Broker: m.broker, Queue: m.queue, Keys: m.key, Tags: m.tags, Properties: props, Body: m.body}
	}
	b.Send(t, topic, "e2e", "E", out...)
}

// rmqSpread returns n messages "<prefix>-<i>" over the 8 queues.
func rmqSpread(n int, prefix string) []rmqMsg {
	out := make([]rmqMsg, n)
	for i := range n {
		out[i] = rmqMsg{broker: []string{"broker-a", "broker-b"}[i%2], queue: (i / 2) % 4,
			key: "k" + strconv.Itoa(i), tags: "T", body: fmt.Sprintf("%s-%d", prefix, i)}
	}
	return out
}

// allQIDs are the 8 QIDs of a topic on the test broker.
func allQIDs() []string {
	var out []string
	for _, b := range []string{"broker-a", "broker-b"} {
		for q := range 4 {
			out = append(out, fmt.Sprintf("%s_%s_%d", rmqCluster, b, q))
		}
	}
	return out
}

// startedAt waits until the group's start positions are stored for every
// queue of topic (a new group pins its consume-from-where position at
// once), so messages sent afterwards are consumed.
func startedAt(t *testing.T, c *consumer.ConsumerServiceClient, group, topic string) {
	t.Helper()
	bs, ml := int32(1), int32(20)
	testenv.Eventually(t, 20*time.Second, "start offsets of "+group, func() bool {
		// The first pull starts a lazy pull group; acks nothing.
		if _, err := c.Pull(context.Background(), &consumer.PullRequest{GroupId: group, MaxBatchSize: &bs, MaxLingerTime: &ml}); err != nil {
			t.Fatal(err)
		}
		st, err := c.GetConsumeStats(context.Background(), &consumer.ConsumeStatsRequest{Group: group, Topic: &topic})
		return err == nil && len(st) == 1 && len(st[0].ConsumeOffsets) == 8
	})
}

// rmqStatsCaughtUp reports whether every qid of topic is committed up to
// its max offset.
func rmqStatsCaughtUp(c *consumer.ConsumerServiceClient, group, topic string) (bool, string) {
	st, err := c.GetConsumeStats(context.Background(), &consumer.ConsumeStatsRequest{Group: group, Topic: &topic})
	if err != nil {
		return false, err.Error()
	}
	if len(st) != 1 || len(st[0].ProduceOffsets) != 8 {
		return false, fmt.Sprintf("%+v", st)
	}
	for _, q := range allQIDs() {
		hw, ok := st[0].ProduceOffsets[q]
		if !ok || st[0].ConsumeOffsets[q] != hw {
			return false, fmt.Sprintf("%+v", st[0])
		}
	}
	return true, ""
}

// TestRMQPullSubmitNackAndStats: a pull group on RocketMQ delivers every
// message (nacked ones again), with RocketMQ QIDs, key, tags and
// properties; getConsumeStats shows committed = max offset per queue.
func TestRMQPullSubmitNackAndStats(t *testing.T) {
	const group, topic = "cg_rpull", "rorders"
	s := startRMQStack(t, topic, "", map[string][]byte{group: rmqGroupJSON(group, topic, nil)})
	c := dial(t, s.addr)
	startedAt(t, c, group, topic)
	sendRMQ(t, s.broker, topic, rmqSpread(40, "a"))
	qids := map[string]bool{}
	var ack *consumer.ConsumeResult_
	seen, nacked := map[string]int{}, map[string]bool{}
	deadline := time.Now().Add(30 * time.Second)
	bs, ml := int32(8), int32(200)
	for len(seen) < 40 {
		if time.Now().After(deadline) {
			t.Fatalf("received %d of 40", len(seen))
		}
		resp, err := c.Pull(context.Background(), &consumer.PullRequest{GroupId: group, MaxBatchSize: &bs, MaxLingerTime: &ml, Result_: ack})
		if err != nil {
			t.Fatal(err)
		}
		ack = nil
		if len(resp.Messages) == 0 {
			continue
		}
		if resp.Context.Topic != topic || !slices.Contains(allQIDs(), resp.Context.Qid) {
			t.Fatalf("context %+v", resp.Context)
		}
		qids[resp.Context.Qid] = true
		ack = &consumer.ConsumeResult_{Context: resp.Context}
		for _, m := range resp.Messages {
			body := string(m.Value)
			if m.Properties["traceId"] != "x" || len(m.Properties) != 1 || m.Tag != "T" || !strings.HasPrefix(m.Key, "k") {
				t.Fatalf("message %+v", m)
			}
			if !nacked[body] {
				nacked[body] = true
				ack.FailOffsets = append(ack.FailOffsets, m.Offset)
				continue
			}
			seen[body]++
			ack.SuccessOffsets = append(ack.SuccessOffsets, m.Offset)
		}
	}
	if ok, err := c.Submit(context.Background(), ack); !ok || err != nil {
		t.Fatalf("submit %v %v", ok, err)
	}
	for body, n := range seen {
		if n != 1 {
			t.Fatalf("%s acknowledged %d times", body, n)
		}
	}
	if len(qids) != 8 {
		t.Fatalf("messages came from %d qids: %v", len(qids), qids)
	}
	testenv.Eventually(t, 10*time.Second, "committed offsets reach the max offsets", func() bool {
		ok, _ := rmqStatsCaughtUp(c, group, topic)
		return ok
	})
	// Unknown topic of the group, unknown group: empty lists.
	other := "other"
	if st, err := c.GetConsumeStats(context.Background(), &consumer.ConsumeStatsRequest{Group: group, Topic: &other}); err != nil || len(st) != 0 {
		t.Fatalf("stats of a foreign topic: %v %v", st, err)
	}
}

// TestRMQTimeoutRedeliveryAndSendBack: an unacknowledged message is
// redelivered after the subscription's timeout; once its budget is spent,
// a group with the dead-letter policy sends it back to the broker
// (CONSUMER_SEND_MSG_BACK), and it returns through %RETRY%<group>.
func TestRMQTimeoutRedeliveryAndSendBack(t *testing.T) {
	const group, topic = "cg_rto", "rtimeout"
	s := startRMQStack(t, topic, "", map[string][]byte{group: rmqGroupJSON(group, topic, map[string]any{
		"timeout": 300, "maxRetry": 1, "retryIntervals": []int{}, "deadLetterPolicy": "dlq", "deadLetterTopic": "ignored_on_rocketmq"})})
	c := dial(t, s.addr)
	startedAt(t, c, group, topic)
	sendRMQ(t, s.broker, topic, []rmqMsg{{broker: "broker-b", queue: 2, key: "K1", body: "slow"}})
	bs, ml := int32(8), int32(200)
	type delivery struct {
		at    time.Time
		ctx   *consumer.Context
		off   int64
		topic string
	}
	var got []delivery
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("deliveries %+v", got)
		}
		resp, err := c.Pull(context.Background(), &consumer.PullRequest{GroupId: group, MaxBatchSize: &bs, MaxLingerTime: &ml})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range resp.Messages {
			if string(m.Value) != "slow" || m.Key != "K1" {
				t.Fatalf("message %+v", m)
			}
			got = append(got, delivery{time.Now(), resp.Context, m.Offset, resp.Context.Topic})
		}
	}
	// 1st delivery, its timeout redelivery (maxRetry 1), then — after the
	// second timeout exhausted it — the broker's redelivery through the
	// retry topic.
	if got[0].topic != topic || got[1].topic != topic || got[1].off != got[0].off || got[1].at.Sub(got[0].at) < 250*time.Millisecond {
		t.Fatalf("timeout redelivery %+v", got[:2])
	}
	if got[2].topic != "%RETRY%"+group || !strings.HasPrefix(got[2].ctx.Qid, rmqCluster+"_broker-b_") {
		t.Fatalf("send-back redelivery %+v", got[2])
	}
	// Acknowledge the retry copy: nothing more arrives.
	ack := &consumer.ConsumeResult_{Context: got[2].ctx, SuccessOffsets: []int64{got[2].off}}
	if ok, err := c.Submit(context.Background(), ack); !ok || err != nil {
		t.Fatal(ok, err)
	}
	ml = 800
	resp, err := c.Pull(context.Background(), &consumer.PullRequest{GroupId: group, MaxBatchSize: &bs, MaxLingerTime: &ml})
	if err != nil || len(resp.Messages) != 0 {
		t.Fatalf("after the ack: %+v %v", resp, err)
	}
}

// TestRMQKeyOrdering: with orderKey KEY and nacks, messages of one key are
// never in flight together and are acknowledged in offset order.
func TestRMQKeyOrdering(t *testing.T) {
	const group, topic, n = "cg_rorder", "rordered", 60
	s := startRMQStack(t, topic, "", map[string][]byte{group: rmqGroupJSON(group, topic, map[string]any{
		"orderKey": "KEY", "retryIntervals": []int{30, -1}, "maxRetry": -1, "timeout": 10000})})
	c0 := dial(t, s.addr)
	startedAt(t, c0, group, topic)
	msgs := make([]rmqMsg, n)
	for i := range msgs {
		k := i % 4
		msgs[i] = rmqMsg{broker: []string{"broker-a", "broker-b"}[k%2], queue: k, key: fmt.Sprint("key", k), body: fmt.Sprint("o-", i)}
	}
	sendRMQ(t, s.broker, topic, msgs)
	var (
		mu       sync.Mutex
		inFlight = map[string]string{}
		ackSeq   = map[string][]int64{}
		acked    = map[string]bool{}
		nacked   = map[string]bool{}
		failures []string
		wg       sync.WaitGroup
		done     = make(chan struct{})
	)
	for w := range 3 {
		c := dial(t, s.addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			bs, ml := int32(8), int32(50)
			var ack *consumer.ConsumeResult_
			var answered []string
			for i := 0; ; i++ {
				select {
				case <-done:
					if ack != nil {
						_, _ = c.Submit(context.Background(), ack)
					}
					return
				default:
				}
				mu.Lock()
				for _, k := range answered {
					delete(inFlight, k)
				}
				mu.Unlock()
				answered = answered[:0]
				resp, err := c.Pull(context.Background(), &consumer.PullRequest{GroupId: group, MaxBatchSize: &bs, MaxLingerTime: &ml, Result_: ack})
				if err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					return
				}
				ack = nil
				if len(resp.Messages) == 0 {
					continue
				}
				ack = &consumer.ConsumeResult_{Context: resp.Context}
				mu.Lock()
				for j, m := range resp.Messages {
					body := string(m.Value)
					if other, busy := inFlight[m.Key]; busy {
						failures = append(failures, fmt.Sprintf("%s handed out while %s of %s in flight", body, other, m.Key))
					}
					inFlight[m.Key] = body
					answered = append(answered, m.Key)
					if (i+j+w)%3 == 0 && !nacked[body] {
						nacked[body] = true
						ack.FailOffsets = append(ack.FailOffsets, m.Offset)
						continue
					}
					acked[body] = true
					ackSeq[m.Key] = append(ackSeq[m.Key], m.Offset)
					ack.SuccessOffsets = append(ack.SuccessOffsets, m.Offset)
				}
				mu.Unlock()
			}
		}()
	}
	testenv.Eventually(t, 30*time.Second, "every ordered message acknowledged", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) == n || len(failures) > 0
	})
	close(done)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d violations, first: %v", len(failures), failures[0])
	}
	if len(nacked) == 0 {
		t.Fatal("no message was nacked")
	}
	for key, seq := range ackSeq {
		if len(seq) != n/4 || !slices.IsSorted(seq) {
			t.Fatalf("key %s acknowledged %v", key, seq)
		}
	}
}

// TestRMQLowLevelFetchAck: a LowLevel group on RocketMQ starts at the max
// offsets, fetches at the client's offsets, acks, and getConsumeStats shows
// the acked offsets.
func TestRMQLowLevelFetchAck(t *testing.T) {
	const group, topic = "cg_rlow", "rlow"
	s := startRMQStack(t, topic, "", map[string][]byte{group: rmqGroupJSON(group, topic,
		map[string]any{"actions": []string{"LowLevel", "PullServer"}, "maxPullBatchSize": 4})})
	c := dial(t, s.addr)
	ctx := context.Background()
	fetch := func(offsets map[string]map[string]int64) map[string]*consumer.QidResponse {
		t.Helper()
		bs, ml := int32(100), int32(50)
		resp, err := c.Fetch(ctx, &consumer.FetchRequest{ConsumerId: "1@host#0", GroupId: group, Cluster: rmqCluster,
			FetchOffset: offsets, MaxBatchSize: &bs, MaxLingerTime: &ml})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]*consumer.QidResponse{}
		for _, q := range resp.Results {
			if q.Topic != topic || !q.IsSetNextRequestOffset() || !slices.Contains(allQIDs(), q.Qid) {
				t.Fatalf("bad qid response %+v", q)
			}
			out[q.Qid] = q
		}
		return out
	}
	sendRMQ(t, s.broker, topic, rmqSpread(8, "before"))
	var got map[string]*consumer.QidResponse
	testenv.Eventually(t, 15*time.Second, "all 8 qids assigned", func() bool { got = fetch(nil); return len(got) == 8 })
	next := map[string]int64{}
	for q, r := range got {
		if len(r.Messages) != 0 || r.GetNextRequestOffset() != 1 {
			t.Fatalf("%s: first fetch %+v (want the max offset 1)", q, r)
		}
		next[q] = 1
	}
	sendRMQ(t, s.broker, topic, rmqSpread(40, "m"))
	seen := map[string]bool{}
	testenv.Eventually(t, 10*time.Second, "all messages fetched", func() bool {
		for q, r := range fetch(map[string]map[string]int64{topic: next}) {
			if len(r.Messages) > 4 {
				t.Fatalf("batch of %d > maxPullBatchSize", len(r.Messages))
			}
			for i, m := range r.Messages {
				if m.Offset != next[q]+int64(i) || m.Properties["traceId"] != "x" {
					t.Fatalf("%s: message %+v at %d", q, m, next[q])
				}
				seen[string(m.Value)] = true
			}
			next[q] = r.GetNextRequestOffset()
		}
		return len(seen) == 40
	})
	acked := map[string]int64{}
	for q, n := range next {
		acked[q] = n - 1
	}
	if ok, err := c.Ack(ctx, &consumer.AckResult_{ConsumerId: "1@host#0", GroupId: group, Cluster: rmqCluster,
		Offsets: map[string]map[string]int64{topic: acked}}); !ok || err != nil {
		t.Fatalf("ack: %v %v", ok, err)
	}
	tp := topic
	testenv.Eventually(t, 10*time.Second, "committed offsets", func() bool {
		st, err := c.GetConsumeStats(ctx, &consumer.ConsumeStatsRequest{Group: group, Topic: &tp})
		if err != nil || len(st) != 1 {
			return false
		}
		for q, off := range acked {
			if st[0].ConsumeOffsets[q] != off || st[0].ProduceOffsets[q] != off+1 {
				return false
			}
		}
		return true
	})
	// Far beyond the end: the broker's correction is returned (RocketMQ:
	// the min offset, 0 here).
	q0 := allQIDs()[0]
	got = fetch(map[string]map[string]int64{topic: {q0: 1 << 40}})
	if r := got[q0]; r == nil || len(r.Messages) != 0 || r.GetNextRequestOffset() != 0 {
		t.Fatalf("bogus offset: %+v", r)
	}
}

// TestRMQTwoInstancesShareQueues: two cproxies serving one group split the
// 8 queues between them; once they settled, every message is delivered
// exactly once, each qid by one instance only.
func TestRMQTwoInstancesShareQueues(t *testing.T) {
	const group, topic = "cg_rshare", "rshare"
	s := startRMQStack(t, topic, "", map[string][]byte{group: rmqGroupJSON(group, topic, nil)})
	addr2, _ := startInProc(t, s.zk, 9713)
	cs := []*consumer.ConsumerServiceClient{dial(t, s.addr), dial(t, addr2)}
	for _, c := range cs {
		startedAt(t, c, group, topic)
	}
	testenv.Eventually(t, 20*time.Second, "both cproxies registered on both brokers", func() bool {
		return len(s.broker.Server.ConsumerIDs("broker-a", group)) == 2 && len(s.broker.Server.ConsumerIDs("broker-b", group)) == 2
	})
	// Settle: warm-up messages on every queue until each instance has
	// served some and both sets of qids are disjoint.
	type served struct {
		mu   sync.Mutex
		qids [2]map[string]bool
		seen map[string]int
	}
	run := func(msgs []rmqMsg, n int) *served {
		sv := &served{qids: [2]map[string]bool{{}, {}}, seen: map[string]int{}}
		sendRMQ(t, s.broker, topic, msgs)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for i, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				bs, ml := int32(8), int32(50)
				var ack *consumer.ConsumeResult_
				for {
					select {
					case <-stop:
						if ack != nil {
							_, _ = c.Submit(context.Background(), ack)
						}
						return
					default:
					}
					resp, err := c.Pull(context.Background(), &consumer.PullRequest{GroupId: group, MaxBatchSize: &bs, MaxLingerTime: &ml, Result_: ack})
					if err != nil {
						t.Error(err)
						return
					}
					ack = nil
					if len(resp.Messages) == 0 {
						continue
					}
					ack = &consumer.ConsumeResult_{Context: resp.Context}
					sv.mu.Lock()
					sv.qids[i][resp.Context.Qid] = true
					for _, m := range resp.Messages {
						sv.seen[string(m.Value)]++
						ack.SuccessOffsets = append(ack.SuccessOffsets, m.Offset)
					}
					sv.mu.Unlock()
				}
			}()
		}
		testenv.Eventually(t, 20*time.Second, "all messages delivered", func() bool {
			sv.mu.Lock()
			defer sv.mu.Unlock()
			return len(sv.seen) == n
		})
		close(stop)
		wg.Wait()
		return sv
	}
	run(rmqSpread(16, "warm"), 16)
	sv := run(rmqSpread(80, "real"), 80)
	for body, n := range sv.seen {
		if n != 1 {
			t.Fatalf("%s delivered %d times after the rebalance settled", body, n)
		}
	}
	if len(sv.qids[0]) == 0 || len(sv.qids[1]) == 0 || len(sv.qids[0])+len(sv.qids[1]) != 8 {
		t.Fatalf("qids per instance %v", sv.qids)
	}
	for q := range sv.qids[0] {
		if sv.qids[1][q] {
			t.Fatalf("qid %s served by both instances: %v", q, sv.qids)
		}
	}
}

// TestRMQBroadcast: a broadcasting cluster gives every cproxy instance
// every message; each instance's offsets are its own.
// TestRMQBroadcast: broadcasting set on the cluster (rocketmqConfigs
// messageModel, every group of the cluster) or on the group alone (the
// group's messageModel extension over a clustering cluster).
func TestRMQBroadcast(t *testing.T) {
	t.Run("cluster", func(t *testing.T) { testRMQBroadcast(t, "BROADCASTING", "") })
	t.Run("group", func(t *testing.T) { testRMQBroadcast(t, "CLUSTERING", "BROADCASTING") })
}

func testRMQBroadcast(t *testing.T, clusterModel, groupModel string) {
	const group, topic = "cg_rbc", "rbc"
	inst2 := "127.0.0.1:9714"
	zk, broker := testenv.StartZooKeeper(t), startRMQBroker(t)
	broker.CreateTopic(topic, 4)
	groupNode := rmqGroupJSON(group, topic, nil, instance, inst2)
	if groupModel != "" {
		var g map[string]any
		if err := json.Unmarshal(groupNode, &g); err != nil {
			t.Fatal(err)
		}
		g["messageModel"] = groupModel
		groupNode, _ = json.Marshal(g)
	}
	testenv.SeedZK(t, zk.Addr, chroot, map[string][]byte{
		"/group/" + group:     groupNode,
		"/cproxy/" + instance: rmqNode(instance, broker.NameServer, clusterModel, []string{group}),
		"/cproxy/" + inst2:    rmqNode(inst2, broker.NameServer, clusterModel, []string{group}),
	})
	a1, _ := startInProc(t, zk, 9713)
	a2, _ := startInProc(t, zk, 9714)
	cs := []*consumer.ConsumerServiceClient{dial(t, a1), dial(t, a2)}
	for _, c := range cs {
		startedAt(t, c, group, topic)
	}
	sendRMQ(t, broker, topic, rmqSpread(24, "b"))
	for i, c := range cs {
		seen := pullAllRMQ(t, c, group, 24)
		for body, n := range seen {
			if n != 1 {
				t.Fatalf("instance %d: %s delivered %d times", i, body, n)
			}
		}
	}
	for i, c := range cs {
		testenv.Eventually(t, 10*time.Second, fmt.Sprintf("instance %d caught up", i), func() bool { ok, _ := rmqStatsCaughtUp(c, group, topic); return ok })
	}
	og := cproxy.BroadcastOffsetGroup(group, inst2)
	if off, ok := broker.Server.ConsumerOffset("broker-a", og, topic, 0); !ok || off != 3 {
		t.Fatalf("offset of %s: %d %v", og, off, ok)
	}
	if _, ok := broker.Server.ConsumerOffset("broker-a", group, topic, 0); ok {
		t.Fatal("broadcast offsets stored under the group name")
	}
}

// pullAllRMQ pulls and acknowledges until n distinct bodies were seen.
func pullAllRMQ(t *testing.T, c *consumer.ConsumerServiceClient, group string, n int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	var ack *consumer.ConsumeResult_
	deadline := time.Now().Add(30 * time.Second)
	bs, ml := int32(8), int32(100)
	for len(seen) < n {
		if time.Now().After(deadline) {
			t.Fatalf("received %d of %d", len(seen), n)
		}
		resp, err := c.Pull(context.Background(), &consumer.PullRequest{GroupId: group, MaxBatchSize: &bs, MaxLingerTime: &ml, Result_: ack})
		if err != nil {
			t.Fatal(err)
		}
		ack = nil
		if len(resp.Messages) == 0 {
			continue
		}
		ack = &consumer.ConsumeResult_{Context: resp.Context}
		for _, m := range resp.Messages {
			seen[string(m.Value)]++
			ack.SuccessOffsets = append(ack.SuccessOffsets, m.Offset)
		}
	}
	if ack != nil {
		if ok, err := c.Submit(context.Background(), ack); !ok || err != nil {
			t.Fatalf("submit %v %v", ok, err)
		}
	}
	return seen
}

// TestRMQRestartResumesFromCommitted: after a clean restart the group
// resumes at the committed offsets: acknowledged messages are not
// delivered again, except those above an unacknowledged one on the same
// queue (RocketMQ stores no commit metadata: at-least-once).
func TestRMQRestartResumesFromCommitted(t *testing.T) {
	const group, topic = "cg_rrestart", "rrestart"
	s := startRMQStack(t, topic, "", map[string][]byte{group: rmqGroupJSON(group, topic, map[string]any{"timeout": 60000})})
	c := dial(t, s.addr)
	startedAt(t, c, group, topic)
	sendRMQ(t, s.broker, topic, rmqSpread(24, "a"))
	if got := pullAllRMQ(t, c, group, 24); len(got) != 24 {
		t.Fatalf("first run %v", got)
	}
	// Queue broker-a_1: g-0..g-4, g-2 never acknowledged.
	gs := make([]rmqMsg, 5)
	for i := range gs {
		gs[i] = rmqMsg{broker: "broker-a", queue: 1, body: fmt.Sprint("g-", i)}
	}
	sendRMQ(t, s.broker, topic, gs)
	acked := map[string]bool{}
	var ack *consumer.ConsumeResult_
	bs, ml := int32(8), int32(100)
	deadline := time.Now().Add(20 * time.Second)
	for len(acked) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("acked %v", acked)
		}
		resp, err := c.Pull(context.Background(), &consumer.PullRequest{GroupId: group, MaxBatchSize: &bs, MaxLingerTime: &ml, Result_: ack})
		if err != nil {
			t.Fatal(err)
		}
		ack = nil
		if len(resp.Messages) == 0 {
			continue
		}
		ack = &consumer.ConsumeResult_{Context: resp.Context}
		for _, m := range resp.Messages {
			if b := string(m.Value); b != "g-2" {
				acked[b] = true
				ack.SuccessOffsets = append(ack.SuccessOffsets, m.Offset)
			}
		}
	}
	if ok, err := c.Submit(context.Background(), ack); !ok || err != nil {
		t.Fatal(ok, err)
	}
	tp := topic
	testenv.Eventually(t, 10*time.Second, "offset of broker-a_1 committed up to g-2", func() bool {
		st, err := c.GetConsumeStats(context.Background(), &consumer.ConsumeStatsRequest{Group: group, Topic: &tp})
		return err == nil && len(st) == 1 && st[0].ConsumeOffsets[rmqCluster+"_broker-a_1"] == st[0].ProduceOffsets[rmqCluster+"_broker-a_1"]-3
	})
	s.stop()
	addr2, _ := startInProc(t, s.zk, 9713)
	c2 := dial(t, addr2)
	sendRMQ(t, s.broker, topic, rmqSpread(8, "c"))
	second := pullAllRMQ(t, c2, group, 8+3)
	for body := range second {
		if !strings.HasPrefix(body, "c-") && body != "g-2" && body != "g-3" && body != "g-4" {
			t.Fatalf("%s redelivered after a clean restart (got %v)", body, second)
		}
	}
	if second["g-2"] == 0 {
		t.Fatalf("unacknowledged g-2 not redelivered: %v", second)
	}
	ml = 300
	resp, err := c2.Pull(context.Background(), &consumer.PullRequest{GroupId: group, MaxBatchSize: &bs, MaxLingerTime: &ml})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range resp.Messages {
		t.Fatalf("unexpected delivery %s after the restart", m.Value)
	}
}
