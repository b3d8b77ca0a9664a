package chronos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
	"github.com/ddmq-go/carrera/internal/testenv"
)

// The same delay service over RocketMQ: the project's RocketMQ test broker
// behind pproxy (rocketmq-client-go producer) and cproxy (own remoting
// consumer). The user topic is read back through cproxy with a pull group,
// as an SDK consumer would; lateness is measured at receipt.

const (
	rmqName   = "R_e2e"
	userGroup = "cg_user"
)

func rmqTopicNode(name string, delay bool) []byte {
	b, _ := json.Marshal(map[string]any{"topic": name,
		"topicUnits": []map[string]any{{"brokerCluster": rmqName,
			"proxies": map[string][]string{"P_e2e": {pInstance}}, "totalMaxTps": 100000, "maxTps": 100000}},
		"delayTopic": delay, "limiterFailureRetryInterval": 0})
	return b
}

func rmqPProxyNode(namesrv string) []byte {
	b, _ := json.Marshal(map[string]any{
		"instance": pInstance, "proxyCluster": "P_e2e", "brokerClusters": []string{rmqName},
		"topics": []string{userTopic, innerName},
		"carreraConfiguration": map[string]any{
			"retryDelays": []int{200}, "useRocketmq": true, "rocketmqProducers": 1, "useRequestLimiter": false,
			"thriftServer": map[string]any{"selectorThreads": 1, "workerThreads": 0, "acceptQueueSizePerThread": 100,
				"maxReadBufferBytes": 5000000, "backlog": 50, "clientTimeout": 0, "workerQueueSize": 100,
				"timeoutCheckerThreads": 1, "port": 9613},
			"rocketmqConfigurationMap": map[string]any{rmqName: map[string]any{
				"namesrvAddrs": []string{namesrv}, "groupPrefix": "carrera_e2e_", "sendMsgTimeout": 3000,
				"compressMsgBodyOverHowmuch": 4096, "retryTimesWhenSendFailed": 0, "retryAnotherBrokerWhenNotStoreOK": false,
				"maxMessageSize": 1 << 20, "clientCallbackExecutorThreads": 4, "pollNameServerInterval": 2000,
				"heartbeatBrokerInterval": 10000, "persistConsumerOffsetInterval": 5000}},
			"delay": map[string]any{"innerTopicNum": 1, "chronosInnerTopicPrefix": "inner_"},
		},
	})
	return b
}

func rmqCProxyNode(namesrv string, groups []string) []byte {
	b, _ := json.Marshal(map[string]any{
		"instance": cInstance, "proxyCluster": "C_e2e", "brokerClusters": []string{rmqName},
		"rocketmqConfigs": map[string]any{rmqName: map[string]any{"clusterName": rmqName, "namesrvAddrs": []string{namesrv},
			"groupPrefix": "carrera_rocketmq_consumer_", "pollNameServerInterval": 500, "heartbeatBrokerInterval": 1000,
			"persistConsumerOffsetInterval": 100, "consumeConcurrentlyMaxSpan": 2000, "consumeMessageBatchMaxSize": 1,
			"pullBatchSize": 32, "pullThresholdForQueue": 1000, "consumeFromWhere": "CONSUME_FROM_FIRST_OFFSET"}},
		"thriftServer": map[string]any{"port": 9713, "selectorThreads": 1, "workerThreads": 4,
			"acceptQueueSizePerThread": 10, "maxReadBufferBytes": 5000000, "backlog": 50, "workerQueueSize": 100},
		"groups": groups,
	})
	return b
}

func rmqGroupNode(name, topic string) []byte {
	b, _ := json.Marshal(map[string]any{"group": name, "asyncThreads": 4, "topics": []any{map[string]any{
		"brokerCluster": rmqName, "proxies": map[string][]string{"C_e2e": {cInstance}},
		"enabled": true, "topic": topic, "actions": []string{"Async", "PullServer"},
		"maxTps": 100000.0, "totalMaxTps": 100000.0, "concurrency": 2000, "timeout": 1000,
		"maxRetry": -1, "retryIntervals": []int{100, -1}, "maxPullBatchSize": 200}}})
	return b
}

// startRMQStack starts ZooKeeper, the RocketMQ test broker (topics with two
// queues on broker-a), pproxy and cproxy serving the inner groups and the
// user-topic pull group.
func startRMQStack(t *testing.T, groups ...string) *stack {
	t.Helper()
	s := &stack{t: t, zk: testenv.StartZooKeeper(t, testenv.WithTickTime(500))}
	rmq := testenv.StartRocketMQ(t, testenv.RocketMQNoAutoCreate())
	rmq.CreateTopic(userTopic, 2)
	rmq.CreateTopic(innerName, 2)
	nodes := map[string][]byte{
		"/pproxy/" + pInstance: rmqPProxyNode(rmq.NameServer),
		"/topic/" + userTopic:  rmqTopicNode(userTopic, true),
		"/topic/" + innerName:  rmqTopicNode(innerName, false),
		"/cproxy/" + cInstance: rmqCProxyNode(rmq.NameServer, append(groups, userGroup)),
		"/group/" + userGroup:  rmqGroupNode(userGroup, userTopic),
	}
	for _, g := range groups {
		nodes["/group/"+g] = rmqGroupNode(g, innerName)
	}
	testenv.SeedZK(t, s.zk.Addr, chroot, nodes)
	s.paddr = s.runProxy("pproxy", 9613)
	s.caddr = s.runProxy("cproxy", 9713)
	return s
}

// pullCollector pulls the user topic through cproxy (acking with the next
// pull, as the SDKs do) and records every delivery with its receipt time.
type pullCollector struct {
	mu  sync.Mutex
	got []delivered
}

func (s *stack) collectUser(ctx context.Context) (*pullCollector, func()) {
	c := s.consumer()
	pc := &pullCollector{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ack *consumer.ConsumeResult_
		topic := userTopic
		for ctx.Err() == nil {
			bs, ml := int32(32), int32(100)
			resp, err := c.Pull(context.Background(), &consumer.PullRequest{GroupId: userGroup, Topic: &topic,
				MaxBatchSize: &bs, MaxLingerTime: &ml, Result_: ack})
			if err != nil {
				return
			}
			now := time.Now()
			ack = nil
			if len(resp.Messages) == 0 {
				continue
			}
			ack = &consumer.ConsumeResult_{Context: resp.Context}
			pc.mu.Lock()
			for _, m := range resp.Messages {
				pc.got = append(pc.got, delivered{key: m.Key, body: m.Value, tags: m.Tag, props: m.Properties, at: now})
				ack.SuccessOffsets = append(ack.SuccessOffsets, m.Offset)
			}
			pc.mu.Unlock()
		}
	}()
	return pc, func() { <-done }
}

func (pc *pullCollector) byKey() map[string][]delivered {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return byKey(pc.got)
}

// TestE2ERocketMQDelayLoopCancel: delay, loop and cancel fire (or not) at
// the right second over RocketMQ, binary bodies byte-exact.
func TestE2ERocketMQDelayLoopCancel(t *testing.T) {
	const group = "cg_inner_r"
	s := startRMQStack(t, group)
	s.runChronos(s.chronosConfig(group, true))
	ctx, cancel := context.WithCancel(context.Background())
	pc, wait := s.collectUser(ctx)
	defer func() { cancel(); wait() }()
	p := s.producer()

	now := time.Now().Unix()
	base := now + 3
	bin := []byte{0, 0xff, 0xfe, 0x80, 'r', 0xc3}
	d1 := addDelay(t, p, base, bin, "tagR", map[string]string{"k": "v"})
	d2 := addDelay(t, p, base+1, []byte("cancel me"), "", nil)
	cancelDelay(t, p, d2)
	l1 := addLoop(t, p, 3, base, 3, 3, base+100, "loop")           // base, +3, +6
	l2 := addLoop(t, p, 3, base+1, 3, 10, base+100, "loop-cancel") // base+1 only
	e1 := addLoop(t, p, 4, base+1, 2, 3, base+1000, "exponent")    // +1, +3, +7
	late := addDelay(t, p, now-30, []byte("already due"), "", nil) // sent at once

	testenv.Eventually(t, 15*time.Second, "l2's first occurrence", func() bool { return len(pc.byKey()[l2]) > 0 })
	cancelDelay(t, p, l2)
	time.Sleep(time.Until(time.Unix(base+7, 0).Add(2 * time.Second)))
	got := pc.byKey()

	want := map[string]bool{}
	var maxLate time.Duration
	expect := func(id string, body []byte, tags string, props map[string]string, limit time.Duration) {
		t.Helper()
		want[id] = true
		ds := got[id]
		if len(ds) == 0 {
			t.Fatalf("%s not delivered", id)
		}
		d := earliest(ds)
		if !bytes.Equal(d.body, body) || d.tags != tags || d.props["from_chronos"] != "from_chronos" {
			t.Fatalf("%s delivered as body %x tags %q props %v", id, d.body, d.tags, d.props)
		}
		for k, v := range props {
			if d.props[k] != v {
				t.Fatalf("%s property %s = %q", id, k, d.props[k])
			}
		}
		if limit > 0 {
			maxLate = max(maxLate, checkLateness(t, d, limit))
		}
	}
	const limit = 1500 * time.Millisecond
	expect(d1, bin, "tagR", map[string]string{"k": "v"}, limit)
	for _, id := range occurrences(t, l1) {
		expect(id, []byte("loop"), "", nil, limit)
	}
	expect(l2, []byte("loop-cancel"), "", nil, limit)
	for _, id := range occurrences(t, e1) {
		expect(id, []byte("exponent"), "", nil, limit)
	}
	expect(late, []byte("already due"), "", nil, 0)
	for key := range got {
		if !want[key] {
			t.Fatalf("unexpected delivery %s (cancelled d2 = %s, l2 = %s)", key, d2, l2)
		}
	}
	t.Logf("%d keys delivered over RocketMQ; max lateness at receipt %v", len(got), maxLate)
}
