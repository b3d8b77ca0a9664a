package cproxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap/zaptest"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
	"github.com/ddmq-go/carrera/internal/cproxy"
	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/mq/kafka"
	"github.com/ddmq-go/carrera/internal/testenv"
	"github.com/ddmq-go/carrera/internal/testenv/thrifttest"
	"github.com/ddmq-go/carrera/internal/zkconf"
)

// Shared helpers of the end-to-end tests: real ZooKeeper, kfake over TCP,
// cproxy in-process (cproxy.Run) or as a child process (cmd/cproxy).

const (
	instance = "127.0.0.1:9713"
	chroot   = "/carrera/v4/config"
)

// fastTimings shorten the broker group protocol for in-process instances.
var fastTimings = cproxy.GroupTimings{SessionTimeout: time.Second, HeartbeatInterval: 100 * time.Millisecond,
	RebalanceTimeout: time.Second, CommitInterval: 100 * time.Millisecond, FetchMaxWait: 50 * time.Millisecond}

// cproxyNodeFor is the /cproxy/<inst> node serving groups.
func cproxyNodeFor(inst string, brokers []string, groups []string) []byte {
	port := 9713
	if i := strings.LastIndexByte(inst, ':'); i >= 0 {
		port, _ = strconv.Atoi(inst[i+1:])
	}
	b, _ := json.Marshal(map[string]any{
		"instance": inst, "proxyCluster": "C_e2e", "brokerClusters": []string{"K_e2e"},
		"kafkaConfigs": map[string]any{"K_e2e": map[string]any{"clusterName": "K_e2e", "zookeeperAddr": "127.0.0.1:1/kafka",
			"autoCommitInterval": 5000, "rebalanceMaxRetries": 8, "partitionAssignmentStrategy": "range",
			"extra": map[string]any{"bootstrap.servers": strings.Join(brokers, ",")}}},
		"thriftServer": map[string]any{"port": port, "selectorThreads": 1, "workerThreads": 4,
			"acceptQueueSizePerThread": 10, "maxReadBufferBytes": 5000000, "backlog": 50, "workerQueueSize": 100},
		"groups": groups,
	})
	return b
}

func cproxyNode(brokers []string, groups []string) []byte {
	return cproxyNodeFor(instance, brokers, groups)
}

// proxies is the "proxies" value of a subscription bound to the instances.
func proxies(insts ...string) map[string][]string {
	return map[string][]string{"C_e2e": insts}
}

func groupJSON(name, topic string, extra map[string]any) []byte {
	sub := map[string]any{"brokerCluster": "K_e2e", "proxies": proxies(instance),
		"enabled": true, "topic": topic, "actions": []string{"Async", "PullServer"},
		"maxTps": 100000.0, "totalMaxTps": 100000.0, "concurrency": 1000, "timeout": 2000,
		"maxRetry": 3, "retryIntervals": []int{50, 100}, "maxPullBatchSize": 16}
	for k, v := range extra {
		sub[k] = v
	}
	b, _ := json.Marshal(map[string]any{"group": name, "asyncThreads": 4, "topics": []any{sub}})
	return b
}

type stack struct {
	zk    *testenv.ZooKeeper
	kafka *testenv.Kafka
	addr  string
	stop  func()
}

// startStack starts ZooKeeper, kfake and one in-process cproxy (instance)
// serving groups.
func startStack(t *testing.T, groups map[string][]byte) *stack {
	t.Helper()
	s := &stack{zk: testenv.StartZooKeeper(t), kafka: startKafka(t)}
	names := []string{}
	nodes := map[string][]byte{}
	for g, data := range groups {
		names = append(names, g)
		nodes["/group/"+g] = data
	}
	nodes["/cproxy/"+instance] = cproxyNode(s.kafka.Addrs(), names)
	testenv.SeedZK(t, s.zk.Addr, chroot, nodes)
	s.addr, s.stop = startInProc(t, s.zk, 9713)
	return s
}

// startStack2 starts a second in-process cproxy (same instance name)
// against the same ZooKeeper and broker.
func startStack2(t *testing.T, s *stack) string {
	t.Helper()
	addr, _ := startInProc(t, s.zk, 9713)
	return addr
}

// startInProc runs cproxy.Run for instance 127.0.0.1:<port> (listening on
// an ephemeral port) with fast group timings; stop shuts it down cleanly
// (idempotent, also registered as cleanup).
func startInProc(t *testing.T, z *testenv.ZooKeeper, port int) (addr string, stop func()) {
	t.Helper()
	boot := testenv.ProxyBootstrap(t, z, chroot, port)
	return testenv.RunInProc(t, "cproxy", func(ctx context.Context, ready func(string)) error {
		return cproxy.Run(ctx, cproxy.Options{Bootstrap: boot, Logger: zaptest.NewLogger(t), ListenAddr: "127.0.0.1:0",
			Ready:   func(th, _ net.Addr) { ready(th.String()) },
			Watcher: func(c *zkconf.Config) { c.RetryInterval = 100 * time.Millisecond },
			Timings: fastTimings,
		})
	})
}

// child is a cproxy daemon run as a child process (default group timings).
type child struct {
	*testenv.Daemon
	port int
}

func newChild(t *testing.T, bin string, z *testenv.ZooKeeper) *child {
	t.Helper()
	port, adminPort := testenv.FreePort(t), testenv.FreePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "cproxy.yaml")
	y := fmt.Sprintf("zookeeperAddr: %s\nhost: 127.0.0.1\nport: %d\nadminAddr: 127.0.0.1:%d\nconfigCacheDir: %s\nlogLevel: info\nzkStartTimeout: 2s\nshutdownTimeout: 5s\n",
		z.ConnectString(chroot), port, adminPort, filepath.Join(dir, "cache"))
	if err := os.WriteFile(conf, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	d := testenv.NewDaemon(t, "cproxy", bin, conf, filepath.Join(dir, "cproxy.log"), "127.0.0.1:"+strconv.Itoa(adminPort))
	return &child{Daemon: d, port: port}
}

func (c *child) instance() string { return "127.0.0.1:" + strconv.Itoa(c.port) }
func (c *child) addr() string     { return c.instance() }

// dialE opens a Thrift consumer client; close releases the connection.
func dialE(addr string) (*consumer.ConsumerServiceClient, func(), error) {
	return thrifttest.DialConsumer(addr, 30*time.Second)
}

func dial(t *testing.T, addr string) *consumer.ConsumerServiceClient {
	t.Helper()
	return thrifttest.Consumer(t, addr, 30*time.Second)
}

type kmsgSpec struct {
	partition int32
	key, body string
}

// produceSpecs writes messages to explicit partitions.
func produceSpecs(t *testing.T, k *testenv.Kafka, topic string, specs []kmsgSpec) {
	t.Helper()
	p, err := kafka.NewProducer(kafka.Options{Cluster: "K_e2e", Brokers: k.Addrs()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx := context.Background()
	for _, s := range specs {
		target, err := p.Resolve(ctx, topic, mq.Selector{PartitionID: s.partition})
		if err != nil {
			t.Fatal(err)
		}
		if err := mq.ProduceSync(ctx, p, &mq.Record{Topic: topic, Target: target, Key: s.key,
			Body: []byte(s.body), Properties: map[string]string{"traceId": "x"}}); err != nil {
			t.Fatal(err)
		}
	}
}

// produce writes n messages "<prefix>-<i>" round-robin over 4 partitions.
func produce(t *testing.T, k *testenv.Kafka, topic string, n int, prefix string) {
	t.Helper()
	specs := make([]kmsgSpec, n)
	for i := range n {
		specs[i] = kmsgSpec{partition: int32(i % 4), key: fmt.Sprint("k", i), body: fmt.Sprintf("%s-%d", prefix, i)}
	}
	produceSpecs(t, k, topic, specs)
}

// statsCaughtUp reports whether every qid of the topic has committed ==
// high watermark (and parts qids are listed).
func statsCaughtUp(c *consumer.ConsumerServiceClient, group, topic string, parts int) (bool, string) {
	stats, err := c.GetConsumeStats(context.Background(), &consumer.ConsumeStatsRequest{Group: group, Topic: &topic})
	if err != nil {
		return false, err.Error()
	}
	if len(stats) != 1 || len(stats[0].ProduceOffsets) != parts {
		return false, fmt.Sprintf("%+v", stats)
	}
	for q, hw := range stats[0].ProduceOffsets {
		if !strings.HasPrefix(q, "K_e2e_") || stats[0].ConsumeOffsets[q] != hw {
			return false, fmt.Sprintf("%+v", stats[0])
		}
	}
	return true, ""
}

// startKafka starts kfake accepting the short session timeouts of the
// in-process instances.
func startKafka(t *testing.T) *testenv.Kafka {
	return testenv.StartKafka(t, kfake.GroupMinSessionTimeout(100*time.Millisecond))
}
