package pproxy_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ddmq-go/carrera/gen-go/carrera/producer"
	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/mq/rocketmq"
	"github.com/ddmq-go/carrera/internal/mq/rocketmq/rmqfault"
	"github.com/ddmq-go/carrera/internal/rocketmq/remoting"
	rmqtb "github.com/ddmq-go/carrera/internal/testbroker/rocketmq"
	"github.com/ddmq-go/carrera/internal/testenv"
)

// rmqRig is a real ZooKeeper + RocketMQ test broker (two broker names,
// behind a fault proxy) + pproxy (in-process) stack.
type rmqRig struct {
	*rig
	rmq   *testenv.RocketMQ
	proxy *rmqfault.Proxy
}

// rmqCluster is the pproxy's cluster configuration of the rig.
type rmqCluster struct {
	namesrv        string
	maxMessageSize int
	producers      int
	autoBatch      bool
	sendTimeoutMs  int
}

func rmqNodeJSON(c rmqCluster, topics []string) []byte {
	cc := map[string]any{
		"retryDelays": []int{200}, "useRocketmq": true, "rocketmqProducers": c.producers,
		"useRequestLimiter": false,
		"thriftServer": map[string]any{"selectorThreads": 1, "workerThreads": 0, "acceptQueueSizePerThread": 100,
			"maxReadBufferBytes": 5000000, "backlog": 50, "clientTimeout": 0, "workerQueueSize": 100,
			"timeoutCheckerThreads": 1, "port": 9613},
		"rocketmqConfigurationMap": map[string]any{"R_e2e": map[string]any{
			"namesrvAddrs": []string{c.namesrv}, "groupPrefix": "carrera_e2e_", "sendMsgTimeout": c.sendTimeoutMs,
			"compressMsgBodyOverHowmuch": 4096, "retryTimesWhenSendFailed": 0, "retryAnotherBrokerWhenNotStoreOK": false,
			"maxMessageSize": c.maxMessageSize, "clientCallbackExecutorThreads": 4, "pollNameServerInterval": 2000,
			"heartbeatBrokerInterval": 10000, "persistConsumerOffsetInterval": 5000}},
		"delay": map[string]any{"innerTopicNum": 1, "chronosInnerTopicPrefix": "inner_"},
	}
	if c.autoBatch {
		cc["useAutoBatch"] = true
		cc["autoBatch"] = map[string]any{"maxBathBytes": 65536, "doBatchThresholdBytes": 1024, "maxBatchMessagesNumber": 32,
			"encodeWorkerThreads": 4, "maxEncodeWorkerForEachBroker": 1, "batchWaitMills": 2, "maxContinuouslyRunningMills": 50}
	}
	b, _ := json.Marshal(map[string]any{
		"instance": e2eInstance, "proxyCluster": "P_e2e", "brokerClusters": []string{"R_e2e"},
		"topics": topics, "carreraConfiguration": cc,
	})
	return b
}

func rmqTopicJSON(name string, autoBatch bool) []byte {
	b, _ := json.Marshal(map[string]any{
		"topic": name,
		"topicUnits": []map[string]any{{"brokerCluster": "R_e2e",
			"proxies": map[string][]string{"P_e2e": {e2eInstance}}, "totalMaxTps": 100000, "maxTps": 100000}},
		"delayTopic": false, "autoBatch": autoBatch, "limiterFailureRetryInterval": 0,
	})
	return b
}

// newRMQRig starts ZooKeeper and the test broker (broker-a and broker-b;
// topic "orders" with 2 queues on each, "solo" with 1 on broker-a) and
// seeds the pproxy node and topics; brokerOpts adjust the broker.
func newRMQRig(t *testing.T, c rmqCluster, brokerOpts ...testenv.RocketMQOption) *rmqRig {
	t.Helper()
	opts := append([]testenv.RocketMQOption{testenv.RocketMQBrokers("broker-a", "broker-b"), testenv.RocketMQNoAutoCreate()}, brokerOpts...)
	r := &rmqRig{rig: &rig{t: t, zk: testenv.StartZooKeeper(t), cacheDir: t.TempDir()}, rmq: testenv.StartRocketMQ(t, opts...)}
	p, err := rmqfault.Start(r.rmq.NameServer, r.rmq.Brokers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	r.proxy = p
	r.rmq.CreateTopic("orders", 2)
	r.rmq.CreateTopic("solo", 1, "broker-a")
	if c.namesrv == "" {
		c.namesrv = p.NameServer()
	}
	if c.maxMessageSize == 0 {
		c.maxMessageSize = 1 << 20
	}
	if c.producers == 0 {
		c.producers = 2
	}
	if c.sendTimeoutMs == 0 {
		c.sendTimeoutMs = 3000
	}
	testenv.SeedZK(t, r.zk.Addr, chroot, map[string][]byte{
		"/pproxy/" + e2eInstance: rmqNodeJSON(c, []string{"orders", "solo", "ghost"}),
		"/topic/orders":          rmqTopicJSON("orders", c.autoBatch),
		"/topic/solo":            rmqTopicJSON("solo", c.autoBatch),
		"/topic/ghost":           rmqTopicJSON("ghost", false), // bound, not on the broker
	})
	return r
}

// rmqStored is a message read back from a broker.
type rmqStored struct {
	queue int // index in the topic's sorted queue list
	qid   rocketmq.Queue
	body  []byte
	props map[string]string
}

// readRMQ pulls every message of topic from srv's brokers, in sorted queue
// order, then offset order.
func readRMQ(t testing.TB, rmq *testenv.RocketMQ, topic string) []rmqStored {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ns, err := remoting.Dial(ctx, rmq.NameServer)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ns.Invoke(ctx, remoting.NewRequest(remoting.GetRouteInfoByTopic, map[string]string{"topic": topic}, nil))
	_ = ns.Close()
	if err != nil || resp.Code != remoting.Success {
		t.Fatalf("route of %s: %v %v", topic, resp, err)
	}
	route, err := rocketmq.ParseRoute(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out []rmqStored
	for i, q := range route.Queues {
		c, err := remoting.Dial(ctx, rmq.BrokerAddr(q.Broker))
		if err != nil {
			t.Fatal(err)
		}
		var off int64
		for {
			resp, err := c.Invoke(ctx, remoting.NewRequest(remoting.PullMessage, map[string]string{
				"consumerGroup": "e2e-reader", "topic": topic, "queueId": strconv.Itoa(q.ID),
				"queueOffset": strconv.FormatInt(off, 10), "maxMsgNums": "32", "sysFlag": "0",
				"commitOffset": "0", "suspendTimeoutMillis": "0", "subscription": "*", "subVersion": "0",
			}, nil))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Code != remoting.Success {
				break
			}
			msgs, err := remoting.DecodeStoredMessages(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				body := m.Body
				if m.SysFlag&remoting.FlagCompressed != 0 {
					zr, err := zlib.NewReader(bytes.NewReader(m.Body))
					if err == nil {
						body, err = io.ReadAll(zr)
					}
					if err != nil {
						t.Fatalf("inflate: %v", err)
					}
				}
				out = append(out, rmqStored{queue: i, qid: q, body: body, props: remoting.DecodeProperties(m.Properties)})
			}
			next, _ := strconv.ParseInt(resp.Ext("nextBeginOffset"), 10, 64)
			if next <= off {
				break
			}
			off = next
		}
		_ = c.Close()
	}
	return out
}

// incompressible returns n random bytes (bodies above
// compressMsgBodyOverHowmuch travel compressed).
func incompressible(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// userProps drops the properties the client adds itself.
func userProps(p map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range p {
		switch k {
		case "TAGS", "KEYS", "UNIQ_KEY", "WAIT":
		default:
			out[k] = v
		}
	}
	return out
}

// metric scrapes one sample value from pproxy's /metrics (-1 if absent).
func metric(t testing.TB, admin, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(b), "\n") {
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != '{' && line[len(name)] != ' ') {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		return v
	}
	return -1
}

func TestE2ERocketMQSendAndReadBack(t *testing.T) {
	r := newRMQRig(t, rmqCluster{})
	r.start()
	c := dial(t, r.addr, false)
	big := bytes.Repeat([]byte{0, 0xff, 7, 0x80}, 2000) // 8000 bytes: sent compressed
	props := map[string]string{"traceId": "t1", "CamelCase.key": "v", "ключ": "значение", "sp ace": "a b"}
	var sent []*producer.Message
	for i := range 8 {
		m := &producer.Message{Topic: "orders", Key: fmt.Sprintf("k %d", i), Tags: "tagA",
			Body: fmt.Appendf(nil, "body-%d-\x00\xff", i), PartitionId: -1, HashId: int64(-i), Properties: props}
		if i == 7 {
			m.Body = big
		}
		if res := send(t, c, m); res.Code != 0 || res.Msg != "OK" {
			t.Fatalf("send %d: %d %q", i, res.Code, res.Msg)
		}
		sent = append(sent, m)
	}
	// Explicit partition ids wrap modulo the queue count (4).
	if res := send(t, c, &producer.Message{Topic: "orders", Body: []byte("p6"), PartitionId: 6}); res.Code != 0 {
		t.Fatalf("partitionId 6: %d", res.Code)
	}
	got := readRMQ(t, r.rmq, "orders")
	if len(got) != len(sent)+1 {
		t.Fatalf("broker holds %d messages, want %d", len(got), len(sent)+1)
	}
	found := 0
	for _, s := range got {
		if string(s.body) == "p6" {
			if s.queue != 2 || s.qid != (rocketmq.Queue{Broker: "broker-b", ID: 0}) {
				t.Errorf("partitionId 6 stored in queue %d %v, want index 2 (broker-b/0)", s.queue, s.qid)
			}
			continue
		}
		for i, m := range sent {
			if !bytes.Equal(s.body, m.Body) {
				continue
			}
			found++
			if want := mq.NonNegMod(m.HashId, 4); s.queue != want {
				t.Errorf("message %d in queue index %d, want %d", i, s.queue, want)
			}
			if s.props["KEYS"] != m.Key || s.props["TAGS"] != m.Tags || !maps.Equal(userProps(s.props), props) {
				t.Errorf("message %d: properties %v", i, s.props)
			}
		}
	}
	if found != len(sent) {
		t.Fatalf("%d of %d bodies found byte-exact", found, len(sent))
	}
}

func TestE2ERocketMQBatch(t *testing.T) {
	r := newRMQRig(t, rmqCluster{})
	r.start()
	c := dial(t, r.addr, false)
	var msgs []*producer.Message
	for i := range 100 {
		msgs = append(msgs, &producer.Message{Topic: "orders", Key: "k" + strconv.Itoa(i), Tags: "T",
			Body: fmt.Appendf(nil, "%03d", i), PartitionId: int32(i % 4), Properties: map[string]string{"i": strconv.Itoa(i)}})
	}
	res, err := c.SendBatchSync(context.Background(), msgs)
	if err != nil || res.Code != 0 {
		t.Fatalf("batch: %v %v", res, err)
	}
	batchReqs := r.proxy.Requests("broker-a", remoting.SendBatchMessage) + r.proxy.Requests("broker-b", remoting.SendBatchMessage)
	single := r.proxy.Requests("broker-a", remoting.SendMessage) + r.proxy.Requests("broker-b", remoting.SendMessage)
	if batchReqs != 4 || single != 0 {
		t.Fatalf("%d SEND_BATCH_MESSAGE and %d SEND_MESSAGE requests, want 4 (one per queue) and 0", batchReqs, single)
	}
	last := map[int]string{}
	n := 0
	for _, s := range readRMQ(t, r.rmq, "orders") {
		i, _ := strconv.Atoi(string(s.body))
		if s.queue != i%4 {
			t.Errorf("message %d in queue %d", i, s.queue)
		}
		if string(s.body) <= last[s.queue] {
			t.Fatalf("queue %d out of order: %s after %s", s.queue, s.body, last[s.queue])
		}
		if s.props["KEYS"] != "k"+strconv.Itoa(i) || s.props["i"] != strconv.Itoa(i) || s.props["TAGS"] != "T" {
			t.Errorf("message %d: properties %v", i, s.props)
		}
		last[s.queue] = string(s.body)
		n++
	}
	if n != 100 {
		t.Fatalf("stored %d", n)
	}
	// Random partition ids of one topic share one queue per request.
	msgs = msgs[:0]
	for i := range 10 {
		msgs = append(msgs, &producer.Message{Topic: "solo", Body: []byte{byte(i)}, PartitionId: -2})
	}
	if res, err := c.SendBatchSync(context.Background(), msgs); err != nil || res.Code != 0 {
		t.Fatalf("random batch: %v %v", res, err)
	}
	if got := len(readRMQ(t, r.rmq, "solo")); got != 10 {
		t.Fatalf("solo holds %d", got)
	}
	// A batch with an unknown topic sends nothing (13) and one the broker
	// does not know fails (14).
	if res, _ := c.SendBatchSync(context.Background(), []*producer.Message{
		{Topic: "solo", Body: []byte("x"), PartitionId: 0}, {Topic: "nope", Body: []byte("y"), PartitionId: 0}}); res.Code != 13 {
		t.Fatalf("batch with an unserved topic: %d", res.Code)
	}
	if res, _ := c.SendBatchSync(context.Background(), []*producer.Message{{Topic: "ghost", Body: []byte("y"), PartitionId: 0}}); res.Code != 14 {
		t.Fatalf("batch to a topic the broker does not know: %d", res.Code)
	}
}

// Result codes of the RocketMQ path over the wire: 13, 14, 11 (proxy and
// broker refusals), 12 (slow brokers, after the one retry).
func TestE2ERocketMQCodes(t *testing.T) {
	r := newRMQRig(t, rmqCluster{maxMessageSize: 64 << 10}, func(o *rmqtb.Options) { o.MaxMessageSize = 32 << 10 })
	r.start()
	c := dial(t, r.addr, false)
	cases := []struct {
		name string
		m    *producer.Message
		code int32
		msg  string
	}{
		{"not white-listed", &producer.Message{Topic: "unknown", Body: []byte("x"), PartitionId: -1}, 13, "FAILED: Topic is not in the proxy white list"},
		{"topic not on the broker", &producer.Message{Topic: "ghost", Body: []byte("x"), PartitionId: -1}, 14, "FAILED: Topic do not exist!"},
		{"body over the cluster's maxMessageSize", &producer.Message{Topic: "orders", Body: make([]byte, 64<<10+1), PartitionId: -1}, 11,
			"FAILED: Message is too large or illegal or the length is 0"},
		{"broker refuses the size (13)", &producer.Message{Topic: "orders", Body: incompressible(40 << 10), PartitionId: -1}, 11,
			"FAILED: Message is too large or illegal or the length is 0"},
		{"reserved property", &producer.Message{Topic: "orders", Body: []byte("x"), PartitionId: -1,
			Properties: map[string]string{"KEYS": "k"}}, 11, "FAILED: Message is too large or illegal or the length is 0"},
	}
	for _, cs := range cases {
		t.Run(cs.name, func(t *testing.T) {
			res := send(t, c, cs.m)
			if res.Code != cs.code || res.Msg != cs.msg {
				t.Fatalf("got %d %q, want %d %q", res.Code, res.Msg, cs.code, cs.msg)
			}
		})
	}
	// Warm both brokers' connections, then hold both: the first attempt
	// and the retry time out → 12 after about timeout + 30 ms.
	for p := range int32(4) {
		if res := send(t, c, &producer.Message{Topic: "orders", Body: []byte("warm"), PartitionId: p}); res.Code != 0 {
			t.Fatalf("warm-up send: %d", res.Code)
		}
	}
	ra, rb := r.proxy.Hold("broker-a"), r.proxy.Hold("broker-b")
	start := time.Now()
	res, err := c.SendSync(context.Background(), &producer.Message{Topic: "orders", Body: []byte("slow"), PartitionId: -1}, 50)
	d := time.Since(start)
	ra()
	rb()
	if err != nil || res.Code != 12 || res.Msg != "FAILED: Send timeout" {
		t.Fatalf("slow brokers: %v %v", res, err)
	}
	if d < 75*time.Millisecond || d > time.Second {
		t.Fatalf("timeout answered after %v, want about 80ms", d)
	}
	t.Logf("12 answered after %v (timeout 50ms + retry 30ms)", d)
	if v := metric(t, r.admin, "pproxy_timeout_retries_total", `topic="orders"`); v != 1 {
		t.Fatalf("timeout retries %v, want 1", v)
	}
}

// The proxy-side retry prefers another broker: broker-a withholds its
// answers, the message to a broker-a queue is re-sent to broker-b and the
// call answers OK in about timeout + the retry's round trip.
func TestE2ERocketMQRetryPrefersAnotherBroker(t *testing.T) {
	r := newRMQRig(t, rmqCluster{})
	r.start()
	c := dial(t, r.addr, false)
	for p := range int32(4) {
		if res := send(t, c, &producer.Message{Topic: "orders", Body: []byte("warm"), PartitionId: p}); res.Code != 0 {
			t.Fatalf("warm-up send: %d", res.Code)
		}
	}
	release := r.proxy.Hold("broker-a")
	defer release()
	for i := range 5 {
		body := fmt.Appendf(nil, "retried-%d", i)
		start := time.Now()
		res, err := c.SendSync(context.Background(), &producer.Message{Topic: "orders", Body: body, PartitionId: int32(i % 2)}, 50)
		d := time.Since(start)
		if err != nil || res.Code != 0 {
			t.Fatalf("send %d to a held broker-a queue: %v %v", i, res, err)
		}
		if d < 50*time.Millisecond || d > time.Second {
			t.Fatalf("send %d answered after %v, want about 50ms + a round trip", i, d)
		}
		if i == 0 {
			t.Logf("retried send answered after %v", d)
		}
	}
	onB := 0
	for _, s := range readRMQ(t, r.rmq, "orders") {
		if strings.HasPrefix(string(s.body), "retried-") && s.qid.Broker == "broker-b" {
			onB++
		}
	}
	if onB != 5 {
		t.Fatalf("%d retried messages on broker-b, want 5", onB)
	}
	if v := metric(t, r.admin, "pproxy_timeout_retries_total", `topic="orders"`); v != 5 {
		t.Fatalf("timeout retries %v, want 5", v)
	}
	// The first attempts were stored on broker-a too (at-least-once).
	release()
	deadline := time.Now().Add(5 * time.Second)
	for {
		onA := 0
		for _, s := range readRMQ(t, r.rmq, "orders") {
			if strings.HasPrefix(string(s.body), "retried-") && s.qid.Broker == "broker-a" {
				onA++
			}
		}
		if onA == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d first attempts on broker-a, want 5", onA)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Hot reload of a RocketMQ cluster: a changed configuration rebuilds the
// producer without a failed call; pointing the cluster at another
// NameServer moves new messages there.
func TestE2ERocketMQHotReload(t *testing.T) {
	r := newRMQRig(t, rmqCluster{})
	r.start()
	other := testenv.StartRocketMQ(t, testenv.RocketMQBrokers("broker-x"), testenv.RocketMQNoAutoCreate())
	other.CreateTopic("orders", 1)

	var stop sync.WaitGroup
	done := make(chan struct{})
	var mu sync.Mutex
	codes := map[int32]int{}
	for g := range 4 {
		c := dial(t, r.addr, false)
		stop.Add(1)
		go func() {
			defer stop.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				res, err := c.SendSync(context.Background(), &producer.Message{Topic: "orders", Body: fmt.Appendf(nil, "g%d-%d", g, i), PartitionId: -2}, 3000)
				if err != nil {
					t.Errorf("sendSync: %v", err)
					return
				}
				mu.Lock()
				codes[res.Code]++
				mu.Unlock()
			}
		}()
	}
	c := dial(t, r.addr, false)
	awaitOn := func(rmq *testenv.RocketMQ, body string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			if res := send(t, c, &producer.Message{Topic: "orders", Body: []byte(body), PartitionId: -2}); res.Code != 0 {
				t.Fatalf("probe: %d", res.Code)
			}
			for _, s := range readRMQ(t, rmq, "orders") {
				if string(s.body) == body {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never reached the expected cluster", body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// 1: more producer instances and a smaller message size (rebuild).
	testenv.SeedZK(t, r.zk.Addr, chroot, map[string][]byte{
		"/pproxy/" + e2eInstance: rmqNodeJSON(rmqCluster{namesrv: r.proxy.NameServer(), maxMessageSize: 1000, producers: 3, sendTimeoutMs: 3000},
			[]string{"orders", "solo", "ghost"})})
	deadline := time.Now().Add(10 * time.Second)
	for send(t, c, &producer.Message{Topic: "orders", Body: make([]byte, 1001), PartitionId: -2}).Code != 11 {
		if time.Now().After(deadline) {
			t.Fatal("new maxMessageSize never applied")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// 2: another NameServer.
	testenv.SeedZK(t, r.zk.Addr, chroot, map[string][]byte{
		"/pproxy/" + e2eInstance: rmqNodeJSON(rmqCluster{namesrv: other.NameServer, maxMessageSize: 1 << 20, producers: 1, sendTimeoutMs: 3000},
			[]string{"orders", "solo", "ghost"})})
	awaitOn(other, "moved")
	close(done)
	stop.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(codes) != 1 || codes[0] == 0 {
		t.Fatalf("codes during the reloads: %v, want only OK", codes)
	}
	t.Logf("%d sends OK during two reloads", codes[0])
}

// Auto-batch: concurrent single sends of an autoBatch topic to one queue
// leave in fewer requests, as SEND_BATCH_MESSAGE.
func TestE2ERocketMQAutoBatch(t *testing.T) {
	r := newRMQRig(t, rmqCluster{autoBatch: true})
	r.start()
	const conns, each = 16, 20
	clients := make([]*client, conns)
	for i := range clients {
		clients[i] = dial(t, r.addr, false)
	}
	if res := send(t, clients[0], &producer.Message{Topic: "solo", Body: []byte("warm"), PartitionId: 0}); res.Code != 0 {
		t.Fatalf("warm-up: %d", res.Code)
	}
	var wg sync.WaitGroup
	for g, c := range clients {
		wg.Go(func() {
			for i := range each {
				res, err := c.SendSync(context.Background(), &producer.Message{Topic: "solo", Body: fmt.Appendf(nil, "g%02d-%02d", g, i), PartitionId: 0}, 3000)
				if err != nil || res.Code != 0 {
					t.Errorf("send: %v %v", res, err)
					return
				}
			}
		})
	}
	wg.Wait()
	batch := r.proxy.Requests("broker-a", remoting.SendBatchMessage)
	single := r.proxy.Requests("broker-a", remoting.SendMessage)
	t.Logf("%d messages in %d SEND_BATCH_MESSAGE and %d SEND_MESSAGE requests", conns*each+1, batch, single)
	if batch == 0 || batch+single >= conns*each+1 {
		t.Fatalf("not coalesced: %d batch, %d single requests", batch, single)
	}
	if got := len(readRMQ(t, r.rmq, "solo")); got != conns*each+1 {
		t.Fatalf("stored %d, want %d", got, conns*each+1)
	}
	if v := metric(t, r.admin, "carrera_rocketmq_producer_requests_total", `kind="auto"`, `result="ok"`); v <= 0 {
		t.Fatalf("auto-batch requests metric %v", v)
	}
}
