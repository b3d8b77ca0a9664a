package cproxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap/zaptest"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
	"github.com/ddmq-go/carrera/internal/config"
	"github.com/ddmq-go/carrera/internal/cproxy"
	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/mq/kafka"
	"github.com/ddmq-go/carrera/internal/testenv"
	"github.com/ddmq-go/carrera/internal/zkconf"
)

const (
	instance = "127.0.0.1:9713"
	chroot   = "/carrera/v4/config"
)

func cproxyNode(brokers []string, groups []string) []byte {
	b, _ := json.Marshal(map[string]any{
		"instance": instance, "proxyCluster": "C_e2e", "brokerClusters": []string{"K_e2e"},
		"kafkaConfigs": map[string]any{"K_e2e": map[string]any{"clusterName": "K_e2e", "zookeeperAddr": "127.0.0.1:1/kafka",
			"autoCommitInterval": 5000, "rebalanceMaxRetries": 8, "partitionAssignmentStrategy": "range",
			"extra": map[string]any{"bootstrap.servers": strings.Join(brokers, ",")}}},
		"thriftServer": map[string]any{"port": 9713, "selectorThreads": 1, "workerThreads": 4,
			"acceptQueueSizePerThread": 10, "maxReadBufferBytes": 5000000, "backlog": 50, "workerQueueSize": 100},
		"groups": groups,
	})
	return b
}

func groupJSON(name, topic string, extra map[string]any) []byte {
	sub := map[string]any{"brokerCluster": "K_e2e", "proxies": map[string][]string{"C_e2e": {instance}},
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

func startStack(t *testing.T, groups map[string][]byte) *stack {
	t.Helper()
	s := &stack{zk: testenv.StartZooKeeper(t),
		kafka: testenv.StartKafka(t, kfake.GroupMinSessionTimeout(100*time.Millisecond))}
	names := []string{}
	nodes := map[string][]byte{}
	for g, data := range groups {
		names = append(names, g)
		nodes["/group/"+g] = data
	}
	nodes["/cproxy/"+instance] = cproxyNode(s.kafka.Addrs(), names)
	testenv.SeedZK(t, s.zk.Addr, chroot, nodes)
	y := fmt.Sprintf("zookeeperAddr: %s\nhost: 127.0.0.1\nport: 9713\nadminAddr: 127.0.0.1:0\nconfigCacheDir: %s\nzkStartTimeout: 2s\nshutdownTimeout: 5s\n",
		s.zk.ConnectString(chroot), t.TempDir())
	boot, err := config.ParseBootstrap([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- cproxy.Run(ctx, cproxy.Options{Bootstrap: boot, Logger: zaptest.NewLogger(t), ListenAddr: "127.0.0.1:0",
			Ready:   func(th, _ net.Addr) { ready <- th.String() },
			Watcher: func(c *zkconf.Config) { c.RetryInterval = 100 * time.Millisecond },
			Timings: cproxy.GroupTimings{SessionTimeout: time.Second, HeartbeatInterval: 100 * time.Millisecond,
				RebalanceTimeout: time.Second, CommitInterval: 100 * time.Millisecond, FetchMaxWait: 50 * time.Millisecond},
		})
	}()
	select {
	case s.addr = <-ready:
	case err := <-done:
		t.Fatalf("cproxy exited: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("cproxy did not start")
	}
	stopped := false
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("cproxy shutdown: %v", err)
		}
	}
	t.Cleanup(s.stop)
	return s
}

func dial(t *testing.T, addr string) *consumer.ConsumerServiceClient {
	t.Helper()
	cfg := &thrift.TConfiguration{ConnectTimeout: 2 * time.Second, SocketTimeout: 30 * time.Second}
	trans := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(addr, cfg), cfg)
	if err := trans.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { trans.Close() })
	p := thrift.NewTCompactProtocolConf(trans, cfg)
	return consumer.NewConsumerServiceClient(thrift.NewTStandardClient(p, p))
}

func produce(t *testing.T, k *testenv.Kafka, topic string, n int, prefix string) {
	t.Helper()
	p, err := kafka.NewProducer(kafka.Options{Cluster: "K_e2e", Brokers: k.Addrs()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	for i := range n {
		ctx := context.Background()
		target, err := p.Resolve(ctx, topic, mq.Selector{PartitionID: int32(i % 4)})
		if err != nil {
			t.Fatal(err)
		}
		if err := mq.ProduceSync(ctx, p, &mq.Record{Topic: topic, Target: target, Key: fmt.Sprint("k", i),
			Body: fmt.Appendf(nil, "%s-%d", prefix, i), Properties: map[string]string{"traceId": "x"}}); err != nil {
			t.Fatal(err)
		}
	}
}

// pullUntil pulls (acking every batch with the next pull, as the SDKs do)
// until n distinct bodies were seen or the deadline passes.
func pullAll(t *testing.T, c *consumer.ConsumerServiceClient, group string, n int, nackFirst bool) map[string]int {
	t.Helper()
	seen := map[string]int{}
	var ack *consumer.ConsumeResult_
	deadline := time.Now().Add(30 * time.Second)
	nacked := map[string]bool{}
	for len(seen) < n {
		if time.Now().After(deadline) {
			t.Fatalf("received %d of %d", len(seen), n)
		}
		bs, ml := int32(8), int32(200)
		resp, err := c.Pull(context.Background(), &consumer.PullRequest{GroupId: group, MaxBatchSize: &bs, MaxLingerTime: &ml, Result_: ack})
		if err != nil {
			t.Fatal(err)
		}
		ack = nil
		if len(resp.Messages) == 0 {
			continue
		}
		if len(resp.Messages) > 8 {
			t.Fatalf("batch of %d > maxBatchSize 8", len(resp.Messages))
		}
		ack = &consumer.ConsumeResult_{Context: resp.Context}
		for _, m := range resp.Messages {
			body := string(m.Value)
			if m.Properties["traceId"] != "x" {
				t.Fatalf("properties lost: %v", m.Properties)
			}
			if nackFirst && !nacked[body] {
				nacked[body] = true
				ack.FailOffsets = append(ack.FailOffsets, m.Offset)
				continue
			}
			seen[body]++
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

func TestE2EPullSubmitAndStats(t *testing.T) {
	s := startStack(t, map[string][]byte{"cg_pull": groupJSON("cg_pull", "orders", nil)})
	s.kafka.CreateTopic("orders", 4)
	c := dial(t, s.addr)
	// The group starts on the first pull and consumes from the newest offset.
	bs, ml := int32(8), int32(50)
	if resp, err := c.Pull(context.Background(), &consumer.PullRequest{GroupId: "cg_pull", MaxBatchSize: &bs, MaxLingerTime: &ml}); err != nil || len(resp.Messages) != 0 {
		t.Fatalf("first pull: %v %v", resp, err)
	}
	produce(t, s.kafka, "orders", 40, "a")
	seen := pullAll(t, c, "cg_pull", 40, true)
	for body, n := range seen {
		if n != 1 {
			t.Fatalf("%s delivered %d times after success", body, n)
		}
	}
	// getConsumeStats: committed offsets reach the high watermarks.
	topic := "orders"
	deadline := time.Now().Add(10 * time.Second)
	for {
		stats, err := c.GetConsumeStats(context.Background(), &consumer.ConsumeStatsRequest{Group: "cg_pull", Topic: &topic})
		if err != nil {
			t.Fatal(err)
		}
		if len(stats) == 1 && len(stats[0].ProduceOffsets) == 4 {
			done := true
			for q, hw := range stats[0].ProduceOffsets {
				if !strings.HasPrefix(q, "K_e2e_") || stats[0].ConsumeOffsets[q] != hw {
					done = false
				}
			}
			if done {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats never caught up: %+v", stats)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Unknown group and unknown topic: empty list.
	if st, _ := c.GetConsumeStats(context.Background(), &consumer.ConsumeStatsRequest{Group: "nope"}); len(st) != 0 {
		t.Fatalf("unknown group stats %v", st)
	}
	other := "other"
	if st, _ := c.GetConsumeStats(context.Background(), &consumer.ConsumeStatsRequest{Group: "cg_pull", Topic: &other}); len(st) != 0 {
		t.Fatalf("unknown topic stats %v", st)
	}
}

func TestE2ERestartDoesNotRedeliverAcked(t *testing.T) {
	groups := map[string][]byte{"cg_r": groupJSON("cg_r", "events", nil)}
	s := startStack(t, groups)
	s.kafka.CreateTopic("events", 4)
	c := dial(t, s.addr)
	bs, ml := int32(8), int32(50)
	if _, err := c.Pull(context.Background(), &consumer.PullRequest{GroupId: "cg_r", MaxBatchSize: &bs, MaxLingerTime: &ml}); err != nil {
		t.Fatal(err)
	}
	produce(t, s.kafka, "events", 20, "b")
	first := pullAll(t, c, "cg_r", 20, false)
	if len(first) != 20 {
		t.Fatalf("first run got %d", len(first))
	}
	s.stop() // clean shutdown commits what is committable
	s2 := startStack2(t, s)
	c2 := dial(t, s2)
	produce(t, s.kafka, "events", 8, "c")
	second := pullAll(t, c2, "cg_r", 8, false)
	for body := range second {
		if strings.HasPrefix(body, "b-") {
			t.Fatalf("acknowledged message %s redelivered after a clean restart", body)
		}
	}
}

// startStack2 starts a second cproxy against the same ZooKeeper and broker.
func startStack2(t *testing.T, s *stack) string {
	t.Helper()
	y := fmt.Sprintf("zookeeperAddr: %s\nhost: 127.0.0.1\nport: 9713\nadminAddr: 127.0.0.1:0\nconfigCacheDir: %s\nzkStartTimeout: 2s\nshutdownTimeout: 5s\n",
		s.zk.ConnectString(chroot), t.TempDir())
	boot, _ := config.ParseBootstrap([]byte(y))
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- cproxy.Run(ctx, cproxy.Options{Bootstrap: boot, Logger: zaptest.NewLogger(t), ListenAddr: "127.0.0.1:0",
			Ready: func(th, _ net.Addr) { ready <- th.String() },
			Timings: cproxy.GroupTimings{SessionTimeout: time.Second, HeartbeatInterval: 100 * time.Millisecond,
				RebalanceTimeout: time.Second, CommitInterval: 100 * time.Millisecond, FetchMaxWait: 50 * time.Millisecond},
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case a := <-ready:
		return a
	case err := <-done:
		t.Fatalf("second cproxy: %v", err)
	}
	return ""
}
