package pproxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"go.uber.org/zap/zaptest"

	"github.com/ddmq-go/carrera/gen-go/carrera/producer"
	"github.com/ddmq-go/carrera/internal/config"
	"github.com/ddmq-go/carrera/internal/pproxy"
	"github.com/ddmq-go/carrera/internal/testenv"
	"github.com/ddmq-go/carrera/internal/zkconf"
)

const (
	e2eInstance = "127.0.0.1:9613"
	chroot      = "/carrera/v4/config"
)

// rig is a real ZooKeeper + kfake + pproxy (in-process) stack.
type rig struct {
	t        *testing.T
	zk       *testenv.ZooKeeper
	kafka    *testenv.Kafka
	cacheDir string
	addr     string
	admin    string
	stopMu   sync.Mutex // stop may run from a test goroutine and from Cleanup
	cancel   context.CancelFunc
	done     chan error
}

func pproxyNodeJSON(brokers []string, topics []string, limiter bool) []byte {
	node := map[string]any{
		"instance": e2eInstance, "proxyCluster": "P_e2e", "brokerClusters": []string{"K_e2e"},
		"topics": topics,
		"carreraConfiguration": map[string]any{
			"retryDelays": []int{200}, "useKafka": true, "kafkaProducers": 1,
			"useRequestLimiter": limiter, "maxTps": 100000, "tpsWarningRatio": 0.9,
			"thriftServer": map[string]any{"selectorThreads": 1, "workerThreads": 0, "acceptQueueSizePerThread": 100,
				"maxReadBufferBytes": 5000000, "backlog": 50, "clientTimeout": 0, "workerQueueSize": 100,
				"timeoutCheckerThreads": 1, "port": 9613},
			"kafkaConfigurationMap": map[string]any{"K_e2e": map[string]any{
				"bootstrapServers": brokers, "acks": "all", "retries": 0, "batchSize": 16384,
				"clientId": "pproxy-e2e", "retryBackoff": 100, "metadataMaxAge": 300000,
				"metadataFetchTimeout": 5000, "ackTimeout": 3000, "bufferMemory": 33554432}},
			"delay": map[string]any{"innerTopicNum": 1, "chronosInnerTopicPrefix": "inner_"},
		},
	}
	b, _ := json.Marshal(node)
	return b
}

func topicJSON(name string, instances []string, maxTps float64) []byte {
	b, _ := json.Marshal(map[string]any{
		"topic": name,
		"topicUnits": []map[string]any{{"brokerCluster": "K_e2e",
			"proxies": map[string][]string{"P_e2e": instances}, "totalMaxTps": maxTps, "maxTps": maxTps}},
		"delayTopic": false, "limiterFailureRetryInterval": 0,
	})
	return b
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{t: t, zk: testenv.StartZooKeeper(t), kafka: testenv.StartKafka(t), cacheDir: t.TempDir()}
	r.kafka.CreateTopic("orders", 3)
	r.kafka.CreateTopic("clicks", 1)
	testenv.SeedZK(t, r.zk.Addr, chroot, map[string][]byte{
		"/pproxy/" + e2eInstance: pproxyNodeJSON(r.kafka.Addrs(), []string{"orders", "clicks"}, true),
		"/topic/orders":          topicJSON("orders", []string{e2eInstance}, 100000),
		"/topic/clicks":          topicJSON("clicks", []string{e2eInstance}, 100000),
	})
	return r
}

func (r *rig) bootstrap() *config.Bootstrap {
	y := fmt.Sprintf("zookeeperAddr: %s\nhost: 127.0.0.1\nport: 9613\nadminAddr: 127.0.0.1:0\nconfigCacheDir: %s\nzkStartTimeout: 1s\nshutdownTimeout: 5s\n",
		r.zk.ConnectString(chroot), r.cacheDir)
	b, err := config.ParseBootstrap([]byte(y))
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

// start runs pproxy in-process and waits until it listens.
func (r *rig) start() {
	r.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan [2]string, 1)
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() {
		r.done <- pproxy.Run(ctx, pproxy.Options{
			Bootstrap: r.bootstrap(), Logger: zaptest.NewLogger(r.t), ListenAddr: "127.0.0.1:0",
			Ready: func(th, ad net.Addr) { ready <- [2]string{th.String(), ad.String()} },
			Watcher: func(c *zkconf.Config) {
				c.CacheInterval = 200 * time.Millisecond
				c.RetryInterval = 100 * time.Millisecond
				c.SessionTimeout = 4 * time.Second
			},
		})
	}()
	select {
	case a := <-ready:
		r.addr, r.admin = a[0], a[1]
	case err := <-r.done:
		r.t.Fatalf("pproxy exited: %v", err)
	case <-time.After(20 * time.Second):
		r.t.Fatal("pproxy did not start")
	}
	r.t.Cleanup(r.stop)
}

func (r *rig) stop() {
	r.stopMu.Lock()
	defer r.stopMu.Unlock()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	if err := <-r.done; err != nil {
		r.t.Errorf("pproxy shutdown: %v", err)
	}
}

type client struct {
	*producer.ProducerServiceClient
	trans thrift.TTransport
}

// dial opens a framed Thrift client, compact (as DDMQ SDKs) or binary.
func dial(t testing.TB, addr string, binary bool) *client {
	t.Helper()
	cfg := &thrift.TConfiguration{ConnectTimeout: 2 * time.Second, SocketTimeout: 10 * time.Second}
	sock := thrift.NewTSocketConf(addr, cfg)
	trans := thrift.NewTFramedTransportConf(sock, cfg)
	if err := trans.Open(); err != nil {
		t.Fatal(err)
	}
	var proto thrift.TProtocol = thrift.NewTCompactProtocolConf(trans, cfg)
	if binary {
		proto = thrift.NewTBinaryProtocolConf(trans, cfg)
	}
	t.Cleanup(func() { trans.Close() })
	return &client{producer.NewProducerServiceClient(thrift.NewTStandardClient(proto, proto)), trans}
}

func send(t testing.TB, c *client, m *producer.Message) *producer.Result_ {
	t.Helper()
	r, err := c.SendSync(context.Background(), m, 1000)
	if err != nil {
		t.Fatalf("sendSync: %v", err)
	}
	return r
}

func TestE2ESendAndReadBack(t *testing.T) {
	r := newRig(t)
	r.start()
	for _, binary := range []bool{false, true} {
		c := dial(t, r.addr, binary)
		for i := range 5 {
			m := &producer.Message{Topic: "orders", Key: fmt.Sprintf("k%d", i), Tags: "tagA",
				Body: fmt.Appendf(nil, "body-%v-%d", binary, i), PartitionId: -1, HashId: int64(-i),
				Properties: map[string]string{"traceId": "t1", "CamelCase.key": "v"}}
			if res := send(t, c, m); res.Code != 0 || res.Msg != "OK" {
				t.Fatalf("send %d: %d %q", i, res.Code, res.Msg)
			}
		}
		// Wire codes from the real server, exact strings.
		res := send(t, c, &producer.Message{Topic: "unknown", Body: []byte("x"), PartitionId: -1})
		if res.Code != 13 || res.Msg != "FAILED: Topic is not in the proxy white list" {
			t.Fatalf("unknown topic: %d %q", res.Code, res.Msg)
		}
		res = send(t, c, &producer.Message{Topic: "orders", PartitionId: -1})
		if res.Code != 11 {
			t.Fatalf("empty body: %d", res.Code)
		}
		res, err := c.SendSync(context.Background(), &producer.Message{Topic: "carrera_heartbeat"}, 50)
		if err != nil || res.Code != 0 {
			t.Fatalf("heartbeat: %v %v", res, err)
		}
	}
	recs := r.kafka.ReadAll("orders")
	if len(recs) != 10 {
		t.Fatalf("broker holds %d records, want 10", len(recs))
	}
	for _, rec := range recs {
		var i int
		var bin bool
		if _, err := fmt.Sscanf(string(rec.Value), "body-%t-%d", &bin, &i); err != nil {
			t.Fatalf("value %q", rec.Value)
		}
		if want := int32(i % 3); rec.Partition != want { // nonNegMod(-i, 3)
			t.Errorf("record %q in partition %d, want %d", rec.Value, rec.Partition, want)
		}
		if string(rec.Key) != fmt.Sprintf("k%d", i) {
			t.Errorf("key %q", rec.Key)
		}
		h := map[string]string{}
		for _, kv := range rec.Headers {
			h[kv.Key] = string(kv.Value)
		}
		if h["traceId"] != "t1" || h["CamelCase.key"] != "v" || h["TAGS"] != "tagA" {
			t.Errorf("headers %v", h)
		}
	}
}

func TestE2EBatchKeepsOrder(t *testing.T) {
	r := newRig(t)
	r.start()
	c := dial(t, r.addr, false)
	var msgs []*producer.Message
	for i := range 100 {
		msgs = append(msgs, &producer.Message{Topic: "orders", Body: fmt.Appendf(nil, "%03d", i), PartitionId: int32(i % 3)})
	}
	res, err := c.SendBatchSync(context.Background(), msgs)
	if err != nil || res.Code != 0 {
		t.Fatalf("batch: %v %v", res, err)
	}
	last := map[int32]string{}
	n := 0
	for _, rec := range r.kafka.ReadAll("orders") {
		if string(rec.Value) <= last[rec.Partition] {
			t.Fatalf("partition %d out of order: %s after %s", rec.Partition, rec.Value, last[rec.Partition])
		}
		last[rec.Partition] = string(rec.Value)
		n++
	}
	if n != 100 {
		t.Fatalf("stored %d", n)
	}
}

func TestE2EHotReload(t *testing.T) {
	r := newRig(t)
	r.start()
	c := dial(t, r.addr, false)
	msg := func() *producer.Message {
		return &producer.Message{Topic: "clicks", Body: []byte("x"), PartitionId: -1}
	}
	if res := send(t, c, msg()); res.Code != 0 {
		t.Fatalf("before: %d", res.Code)
	}
	// awaitCode polls until the answer is want and returns how long it took.
	// start is taken before each ZooKeeper write, so the figure includes
	// the write, the watch notification and the snapshot rebuild.
	var start time.Time
	awaitCode := func(want int32) time.Duration {
		for time.Since(start) < 10*time.Second {
			if send(t, c, msg()).Code == want {
				return time.Since(start)
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("code %d never seen", want)
		return 0
	}
	// Unbind: the unit no longer lists this instance.
	start = time.Now()
	testenv.SeedZK(t, r.zk.Addr, chroot, map[string][]byte{"/topic/clicks": topicJSON("clicks", []string{"10.1.1.1:9613"}, 100000)})
	if d := awaitCode(13); d > time.Second {
		t.Errorf("unbind took %v, want ≤ 1 s", d)
	} else {
		t.Logf("unbind effective after %v", d)
	}
	// Rebind with a rate of 2/s: the limiter follows the reload.
	start = time.Now()
	testenv.SeedZK(t, r.zk.Addr, chroot, map[string][]byte{"/topic/clicks": topicJSON("clicks", []string{e2eInstance}, 2)})
	if d := awaitCode(0); d > time.Second {
		t.Errorf("bind took %v, want ≤ 1 s", d)
	} else {
		t.Logf("bind effective after %v", d)
	}
	refused := false
	for range 10 {
		if res := send(t, c, msg()); res.Code == 15 {
			refused = true
			if res.Msg != "FAILED: Refused by the rate limiter." {
				t.Fatalf("msg %q", res.Msg)
			}
			break
		}
	}
	if !refused {
		t.Fatal("limit of 2/s never refused")
	}
	// Remove from the white list: 13.
	start = time.Now()
	testenv.SeedZK(t, r.zk.Addr, chroot, map[string][]byte{
		"/pproxy/" + e2eInstance: pproxyNodeJSON(r.kafka.Addrs(), []string{"orders"}, true)})
	awaitCode(13)
	// An invalid node keeps the old snapshot.
	testenv.SeedZK(t, r.zk.Addr, chroot, map[string][]byte{"/pproxy/" + e2eInstance: []byte("{not json")})
	if res := send(t, c, &producer.Message{Topic: "orders", Body: []byte("x"), PartitionId: -1}); res.Code != 0 {
		t.Fatalf("invalid node broke serving: %d", res.Code)
	}
}

func TestE2EZooKeeperOutage(t *testing.T) {
	r := newRig(t)
	r.start()
	c := dial(t, r.addr, false)
	m := &producer.Message{Topic: "orders", Body: []byte("x"), PartitionId: -1}
	if res := send(t, c, m); res.Code != 0 {
		t.Fatalf("before outage: %d", res.Code)
	}
	r.zk.Stop()
	// Keeps serving mid-outage, across the session timeout.
	deadline := time.Now().Add(6 * time.Second)
	sent := 0
	for time.Now().Before(deadline) {
		if res := send(t, c, m); res.Code != 0 {
			t.Fatalf("during outage: %d", res.Code)
		}
		sent++
		time.Sleep(20 * time.Millisecond)
	}
	// A second pproxy started while ZooKeeper is down starts from the cache
	// the first one wrote.
	r2 := &rig{t: t, zk: r.zk, kafka: r.kafka, cacheDir: r.cacheDir}
	r2.start()
	c2 := dial(t, r2.addr, false)
	if res := send(t, c2, m); res.Code != 0 {
		t.Fatalf("pproxy started from cache: %d", res.Code)
	}
	// ZooKeeper back: a change made there is picked up again.
	r.zk.Restart()
	testenv.SeedZK(t, r.zk.Addr, chroot, map[string][]byte{"/topic/orders": topicJSON("orders", []string{"10.1.1.1:9613"}, 100000)})
	start := time.Now()
	for {
		code := send(t, c, m).Code
		if code == 13 {
			break
		}
		if code == 0 {
			sent++
		}
		if time.Since(start) > 20*time.Second {
			t.Fatal("change after ZooKeeper restart not applied")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := len(r.kafka.ReadAll("orders")); got != sent+2 {
		t.Fatalf("broker holds %d, want %d", got, sent+2)
	}
}

// TestE2EStartFailsWithoutNode: a pproxy with no /pproxy node exits with an error.
func TestE2EStartFailsWithoutNode(t *testing.T) {
	r := newRig(t)
	testenv.DeleteZK(t, r.zk.Addr, chroot, "/pproxy/"+e2eInstance)
	err := pproxy.Run(context.Background(), pproxy.Options{Bootstrap: r.bootstrap(), ListenAddr: "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), e2eInstance) {
		t.Fatalf("Run without node: %v", err)
	}
}

// TestE2EGracefulShutdown: calls in flight at SIGTERM-time finish; Run
// returns cleanly; everything answered OK is in the broker.
func TestE2EGracefulShutdown(t *testing.T) {
	r := newRig(t)
	r.start()
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := map[string]bool{}
	stop := make(chan struct{})
	for g := range 8 {
		c := dial(t, r.addr, false)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Sprintf("g%d-%d", g, i)
				res, err := c.SendSync(context.Background(), &producer.Message{Topic: "orders", Body: []byte(body), PartitionId: -2}, 1000)
				if err != nil {
					return // connection closed by shutdown
				}
				if res.Code == 0 {
					mu.Lock()
					ok[body] = true
					mu.Unlock()
				} else if res.Code != 20 {
					t.Errorf("code %d during shutdown", res.Code)
					return
				}
			}
		}()
	}
	// Stop once every connection has had calls answered OK, so the stop
	// lands under load.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(ok)
		mu.Unlock()
		if n >= 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d sends acknowledged before the stop", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.stop()
	close(stop)
	wg.Wait()
	stored := map[string]bool{}
	for _, rec := range r.kafka.ReadAll("orders") {
		stored[string(rec.Value)] = true
	}
	for body := range ok {
		if !stored[body] {
			t.Fatalf("acknowledged message %s not in the broker", body)
		}
	}
	if len(ok) == 0 {
		t.Fatal("no message acknowledged")
	}
	t.Logf("%d acknowledged, %d stored", len(ok), len(stored))
}
