package contract_test

import (
	"context"
	"encoding/json"
	"maps"
	"net"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
	"github.com/ddmq-go/carrera/gen-go/carrera/producer"
	"github.com/ddmq-go/carrera/internal/cproxy"
	"github.com/ddmq-go/carrera/internal/pproxy"
	"github.com/ddmq-go/carrera/internal/testenv"
	"github.com/ddmq-go/carrera/internal/testenv/thrifttest"
	"github.com/ddmq-go/carrera/internal/zkconf"
)

const (
	pproxyInstance = "127.0.0.1:9613"
	cproxyInstance = "127.0.0.1:9713"
	proxyCluster   = "P_ct"
	consumeCluster = "C_ct"
	// nq is the number of qids of every topic the suite creates.
	nq = 4
)

// topicSpec is one /topic node (and, if onBroker, a broker topic of nq
// qids).
type topicSpec struct {
	name     string
	onBroker bool
	maxTps   float64
	delay    bool
}

// groupSpec is one /group node with a single subscription; extra
// overrides the subscription defaults.
type groupSpec struct {
	name, topic string
	extra       map[string]any
}

// The suite's topics and groups: each case has its own, so cases never see
// each other's messages.
var (
	suiteTopics = []topicSpec{
		{name: "ct_send", onBroker: true}, {name: "ct_async", onBroker: true}, {name: "ct_batch", onBroker: true},
		{name: "ct_codes", onBroker: true}, {name: "ct_limited", onBroker: true, maxTps: 1},
		{name: "ct_retry", onBroker: true}, {name: "ct_chain", onBroker: true}, {name: "ct_okey", onBroker: true}, {name: "ct_oqid", onBroker: true},
		{name: "ct_low", onBroker: true}, {name: "ct_stats", onBroker: true},
		{name: "ct_press", onBroker: true}, {name: "ct_lowpress", onBroker: true},
		// Served by pproxy but not created at the broker.
		{name: "ct_ghost"},
		{name: "ct_delayed", delay: true},
	}
	lowLevel    = map[string]any{"actions": []string{"LowLevel", "PullServer"}, "maxPullBatchSize": 4}
	suiteGroups = []groupSpec{
		{name: "cg_send", topic: "ct_send"},
		{name: "cg_async", topic: "ct_async"},
		{name: "cg_batch", topic: "ct_batch"},
		{name: "cg_retry", topic: "ct_retry", extra: map[string]any{"timeout": 500, "maxRetry": 1, "retryIntervals": []int{150}}},
		{name: "cg_chain", topic: "ct_chain"},
		{name: "cg_okey", topic: "ct_okey", extra: map[string]any{"orderKey": "KEY", "retryIntervals": []int{30, -1},
			"maxRetry": -1, "timeout": 10000}},
		{name: "cg_oqid", topic: "ct_oqid", extra: map[string]any{"orderKey": "QID", "retryIntervals": []int{30, -1},
			"maxRetry": -1, "timeout": 10000, "maxPullBatchSize": 4}},
		{name: "cg_low", topic: "ct_low", extra: lowLevel},
		{name: "cg_stats", topic: "ct_stats"},
		{name: "cg_press", topic: "ct_press"},
		{name: "cg_pressok", topic: "ct_press", extra: map[string]any{"pressureTraffic": true}},
		{name: "cg_lowpress", topic: "ct_lowpress", extra: lowLevel},
	}
)

// stack is one backend's broker + pproxy + cproxy, configured through its
// own ZooKeeper chroot.
type stack struct {
	b      *broker
	pproxy string // Thrift address
	cproxy string // Thrift address
}

func topicNode(cluster string, s topicSpec) []byte {
	tps := s.maxTps
	if tps == 0 {
		tps = 100000
	}
	b, _ := json.Marshal(map[string]any{
		"topic": s.name,
		"topicUnits": []map[string]any{{"brokerCluster": cluster,
			"proxies": map[string][]string{proxyCluster: {pproxyInstance}}, "totalMaxTps": tps, "maxTps": tps}},
		"delayTopic": s.delay, "limiterFailureRetryInterval": 0,
	})
	return b
}

func pproxyNode(b *broker, topics []string) []byte {
	cc := map[string]any{
		"retryDelays": []int{200}, "useRequestLimiter": true, "maxTps": 100000, "tpsWarningRatio": 0.9,
		"thriftServer": map[string]any{"selectorThreads": 1, "workerThreads": 0, "acceptQueueSizePerThread": 100,
			"maxReadBufferBytes": 5000000, "backlog": 50, "clientTimeout": 0, "workerQueueSize": 100,
			"timeoutCheckerThreads": 1, "port": 9613},
		"delay": map[string]any{"innerTopicNum": 1, "chronosInnerTopicPrefix": "ct_inner_"},
	}
	maps.Copy(cc, b.pproxyConf)
	out, _ := json.Marshal(map[string]any{
		"instance": pproxyInstance, "proxyCluster": proxyCluster, "brokerClusters": []string{b.cluster},
		"topics": topics, "carreraConfiguration": cc,
	})
	return out
}

func cproxyNode(b *broker, groups []string) []byte {
	node := map[string]any{
		"instance": cproxyInstance, "proxyCluster": consumeCluster, "brokerClusters": []string{b.cluster},
		"thriftServer": map[string]any{"port": 9713, "selectorThreads": 1, "workerThreads": 4,
			"acceptQueueSizePerThread": 10, "maxReadBufferBytes": 5000000, "backlog": 50, "workerQueueSize": 100},
		"groups": groups,
	}
	maps.Copy(node, b.cproxyConf)
	out, _ := json.Marshal(node)
	return out
}

func groupNode(cluster string, g groupSpec) []byte {
	sub := map[string]any{"brokerCluster": cluster, "proxies": map[string][]string{consumeCluster: {cproxyInstance}},
		"enabled": true, "topic": g.topic, "actions": []string{"Async", "PullServer"},
		"maxTps": 100000.0, "totalMaxTps": 100000.0, "concurrency": 1000, "timeout": 5000,
		"maxRetry": 3, "retryIntervals": []int{50, 100}, "maxPullBatchSize": 16}
	maps.Copy(sub, g.extra)
	b, _ := json.Marshal(map[string]any{"group": g.name, "asyncThreads": 4, "topics": []any{sub}})
	return b
}

// startStack starts be's broker, creates the suite's topics, writes the
// nodes under chroot and starts pproxy and cproxy in-process.
func startStack(t *testing.T, zk *testenv.ZooKeeper, be backend) *stack {
	t.Helper()
	b := be.start(t)
	chroot := "/contract_" + be.name + "/carrera/v4/config"
	nodes := map[string][]byte{}
	var topics, groups []string
	for _, s := range suiteTopics {
		if s.onBroker {
			b.createTopic(s.name, nq)
		}
		topics = append(topics, s.name)
		nodes["/topic/"+s.name] = topicNode(b.cluster, s)
	}
	for _, g := range suiteGroups {
		groups = append(groups, g.name)
		nodes["/group/"+g.name] = groupNode(b.cluster, g)
	}
	nodes["/pproxy/"+pproxyInstance] = pproxyNode(b, topics)
	nodes["/cproxy/"+cproxyInstance] = cproxyNode(b, groups)
	testenv.SeedZK(t, zk.Addr, chroot, nodes)

	s := &stack{b: b}
	pboot := testenv.ProxyBootstrap(t, zk, chroot, 9613)
	s.pproxy, _ = testenv.RunInProc(t, "pproxy", func(ctx context.Context, ready func(string)) error {
		return pproxy.Run(ctx, pproxy.Options{Bootstrap: pboot, Logger: daemonLogger(t), ListenAddr: "127.0.0.1:0",
			Ready: func(th, _ net.Addr) { ready(th.String()) }, Watcher: fastWatcher})
	})
	cboot := testenv.ProxyBootstrap(t, zk, chroot, 9713)
	s.cproxy, _ = testenv.RunInProc(t, "cproxy", func(ctx context.Context, ready func(string)) error {
		return cproxy.Run(ctx, cproxy.Options{Bootstrap: cboot, Logger: daemonLogger(t), ListenAddr: "127.0.0.1:0",
			Ready: func(th, _ net.Addr) { ready(th.String()) }, Watcher: fastWatcher, Timings: fastTimings})
	})
	return s
}

// fastTimings shorten the broker group protocols (the same for every
// backend; each backend's adapter uses the fields of its technology).
var fastTimings = cproxy.GroupTimings{SessionTimeout: time.Second, HeartbeatInterval: 100 * time.Millisecond,
	RebalanceTimeout: time.Second, CommitInterval: 100 * time.Millisecond, FetchMaxWait: 50 * time.Millisecond}

func fastWatcher(c *zkconf.Config) { c.RetryInterval = 100 * time.Millisecond }

func daemonLogger(t *testing.T) *zap.Logger {
	return zaptest.NewLogger(t, zaptest.Level(zapcore.InfoLevel))
}

// producerClient dials pproxy (closed when t ends). Not safe for
// concurrent use: one per goroutine.
func producerClient(t testing.TB, addr string) *producer.ProducerServiceClient {
	t.Helper()
	return thrifttest.Producer(t, addr, 30*time.Second)
}

// consumerClient dials cproxy (closed when t ends). One per goroutine.
func consumerClient(t testing.TB, addr string) *consumer.ConsumerServiceClient {
	t.Helper()
	return thrifttest.Consumer(t, addr, 30*time.Second)
}
