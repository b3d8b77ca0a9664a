package chronos_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
	"github.com/ddmq-go/carrera/gen-go/carrera/producer"
	"github.com/ddmq-go/carrera/internal/chronos"
	"github.com/ddmq-go/carrera/internal/cproxy"
	"github.com/ddmq-go/carrera/internal/pproxy"
	"github.com/ddmq-go/carrera/internal/testenv"
	"github.com/ddmq-go/carrera/internal/testenv/thrifttest"
	"github.com/ddmq-go/carrera/internal/zkconf"
)

// The end-to-end stack: a real ZooKeeper, kfake over TCP, pproxy and cproxy
// in-process (their Run functions, real Thrift servers), and the delay
// service in-process (chronos.Run) or as child processes (cmd/chronos).

const (
	chroot    = "/carrera/v4/config"
	pInstance = "127.0.0.1:9613"
	cInstance = "127.0.0.1:9713"
	userTopic = "delayed"
	plainName = "plain"
	innerName = "inner_0"
	cluster   = "K_e2e"
)

type stack struct {
	t     *testing.T
	zk    *testenv.ZooKeeper
	kafka *testenv.Kafka
	paddr string // pproxy Thrift address
	caddr string // cproxy Thrift address
}

func topicNode(name string, delay bool) []byte {
	b, _ := json.Marshal(map[string]any{
		"topic": name,
		"topicUnits": []map[string]any{{"brokerCluster": cluster,
			"proxies": map[string][]string{"P_e2e": {pInstance}}, "totalMaxTps": 100000, "maxTps": 100000}},
		"delayTopic": delay, "limiterFailureRetryInterval": 0,
	})
	return b
}

func pproxyNode(brokers []string) []byte {
	b, _ := json.Marshal(map[string]any{
		"instance": pInstance, "proxyCluster": "P_e2e", "brokerClusters": []string{cluster},
		"topics": []string{userTopic, plainName, innerName},
		"carreraConfiguration": map[string]any{
			"retryDelays": []int{200}, "useKafka": true, "kafkaProducers": 1,
			"useRequestLimiter": true, "maxTps": 100000, "tpsWarningRatio": 0.9,
			"thriftServer": map[string]any{"selectorThreads": 1, "workerThreads": 0, "acceptQueueSizePerThread": 100,
				"maxReadBufferBytes": 5000000, "backlog": 50, "clientTimeout": 0, "workerQueueSize": 100,
				"timeoutCheckerThreads": 1, "port": 9613},
			"kafkaConfigurationMap": map[string]any{cluster: map[string]any{
				"bootstrapServers": brokers, "acks": "all", "retries": 0, "batchSize": 16384,
				"clientId": "pproxy-chronos-e2e", "retryBackoff": 100, "metadataMaxAge": 300000,
				"metadataFetchTimeout": 5000, "ackTimeout": 3000, "bufferMemory": 33554432}},
			"delay": map[string]any{"innerTopicNum": 1, "chronosInnerTopicPrefix": "inner_"},
		},
	})
	return b
}

func cproxyNode(brokers []string, groups []string) []byte {
	b, _ := json.Marshal(map[string]any{
		"instance": cInstance, "proxyCluster": "C_e2e", "brokerClusters": []string{cluster},
		"kafkaConfigs": map[string]any{cluster: map[string]any{"clusterName": cluster, "zookeeperAddr": "127.0.0.1:1/kafka",
			"autoCommitInterval": 100, "rebalanceMaxRetries": 8, "partitionAssignmentStrategy": "range",
			"extra": map[string]any{"bootstrap.servers": strings.Join(brokers, ",")}}},
		"thriftServer": map[string]any{"port": 9713, "selectorThreads": 1, "workerThreads": 4,
			"acceptQueueSizePerThread": 10, "maxReadBufferBytes": 5000000, "backlog": 50, "workerQueueSize": 100},
		"groups": groups,
	})
	return b
}

// innerGroupNode is the delay service's inner group (zookeeper-layout.md
// §10.9) with a short redelivery timeout.
func innerGroupNode(name string) []byte {
	b, _ := json.Marshal(map[string]any{"group": name, "asyncThreads": 4, "topics": []any{map[string]any{
		"brokerCluster": cluster, "proxies": map[string][]string{"C_e2e": {cInstance}},
		"enabled": true, "topic": innerName, "actions": []string{"Async", "PullServer"},
		"maxTps": 100000.0, "totalMaxTps": 100000.0, "concurrency": 2000, "timeout": 1000,
		"maxRetry": -1, "retryIntervals": []int{100, -1}, "maxPullBatchSize": 200}}})
	return b
}

// startStack starts ZooKeeper, kfake, pproxy and cproxy serving inner groups.
func startStack(t *testing.T, groups ...string) *stack {
	t.Helper()
	s := &stack{t: t, zk: testenv.StartZooKeeper(t, testenv.WithTickTime(500)),
		kafka: testenv.StartKafka(t, kfake.GroupMinSessionTimeout(100*time.Millisecond))}
	s.kafka.SeedTopics(2, userTopic, plainName, innerName)
	nodes := map[string][]byte{
		"/pproxy/" + pInstance: pproxyNode(s.kafka.Addrs()),
		"/topic/" + userTopic:  topicNode(userTopic, true),
		"/topic/" + plainName:  topicNode(plainName, false),
		"/topic/" + innerName:  topicNode(innerName, false),
		"/cproxy/" + cInstance: cproxyNode(s.kafka.Addrs(), groups),
	}
	for _, g := range groups {
		nodes["/group/"+g] = innerGroupNode(g)
	}
	testenv.SeedZK(t, s.zk.Addr, chroot, nodes)
	s.paddr = s.runProxy("pproxy", 9613)
	s.caddr = s.runProxy("cproxy", 9713)
	return s
}

// runProxy runs pproxy or cproxy in-process on an ephemeral port; it is
// stopped in t.Cleanup.
func (s *stack) runProxy(kind string, port int) string {
	t := s.t
	t.Helper()
	boot := testenv.ProxyBootstrap(t, s.zk, chroot, port)
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)).Named(kind)
	watcher := func(c *zkconf.Config) { c.RetryInterval = 100 * time.Millisecond }
	addr, _ := testenv.RunInProc(t, kind, func(ctx context.Context, ready func(string)) error {
		onReady := func(th, _ net.Addr) { ready(th.String()) }
		if kind == "pproxy" {
			return pproxy.Run(ctx, pproxy.Options{Bootstrap: boot, Logger: log, ListenAddr: "127.0.0.1:0", Ready: onReady, Watcher: watcher})
		}
		return cproxy.Run(ctx, cproxy.Options{Bootstrap: boot, Logger: log, ListenAddr: "127.0.0.1:0", Ready: onReady, Watcher: watcher,
			Timings: cproxy.GroupTimings{SessionTimeout: time.Second, HeartbeatInterval: 100 * time.Millisecond,
				RebalanceTimeout: time.Second, CommitInterval: 100 * time.Millisecond, FetchMaxWait: 50 * time.Millisecond}})
	})
	return addr
}

// chronosConfig is a delay-service configuration for this stack.
func (s *stack) chronosConfig(group string, standAlone bool) *chronos.Config {
	c := chronos.DefaultConfig()
	c.StandAlone = standAlone
	c.ClusterName, c.GroupName = "e2e", "delay"
	c.AdminAddr = "127.0.0.1:0"
	c.ShutdownTimeout = 10 * time.Second
	c.DB.DBPath = filepath.Join(s.t.TempDir(), "db")
	c.Pull.InnerGroup, c.Pull.InnerTopic = group, innerName
	c.Pull.CproxyAddrs = chronos.AddrList{s.caddr}
	c.Pull.MaxLingerTimeMs = 100
	c.Pull.RetryIntervalMs = 100
	c.Push.PproxyAddrs = chronos.AddrList{s.paddr}
	c.Push.ProxyTimeoutMs = 1000
	c.Push.ClientTimeoutMs = 3000
	c.ZK.ZkAddrs = s.zk.Addr
	c.ZK.ZkSessionTimeoutMs = 2000
	c.ZK.PublishIntervalMs = 200
	if err := c.Validate(); err != nil {
		s.t.Fatal(err)
	}
	return c
}

// runChronos runs the delay service in-process; stop ends it (also at
// cleanup) and reports a shutdown error.
func (s *stack) runChronos(c *chronos.Config) (admin string, stop func()) {
	t := s.t
	t.Helper()
	return testenv.RunInProc(t, "chronos", func(ctx context.Context, ready func(string)) error {
		return chronos.Run(ctx, chronos.Options{Config: c, Logger: zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)).Named("chronos"),
			Ready: func(a net.Addr) { ready(a.String()) }})
	})
}

// awaitGroupReady waits until the inner group has a committed start
// offset on every partition (a new Kafka group starts at the newest offset:
// delay messages sent before that would be skipped).
func (s *stack) awaitGroupReady(group string) {
	t := s.t
	t.Helper()
	c := s.consumer()
	topic := innerName
	testenv.Eventually(t, 30*time.Second, "inner group "+group+" committed", func() bool {
		stats, err := c.GetConsumeStats(context.Background(), &consumer.ConsumeStatsRequest{Group: group, Topic: &topic})
		return err == nil && len(stats) == 1 && len(stats[0].ConsumeOffsets) == 2
	})
}

func (s *stack) consumer() *consumer.ConsumerServiceClient {
	s.t.Helper()
	return thrifttest.Consumer(s.t, s.caddr, 10*time.Second)
}

// producerClient is a framed-compact pproxy client, as the SDKs use.
func (s *stack) producer() *producer.ProducerServiceClient {
	s.t.Helper()
	return thrifttest.Producer(s.t, s.paddr, 10*time.Second)
}

var uuidSeq struct {
	sync.Mutex
	n int
}

func newUUID() string {
	uuidSeq.Lock()
	defer uuidSeq.Unlock()
	uuidSeq.n++
	return fmt.Sprintf("%08x-%04x-4e7d-9a2b-7d1e0f9c8b6a", uuidSeq.n, os.Getpid()&0xffff)
}

func i32(v int32) *int32 { return &v }
func i64(v int64) *int64 { return &v }
func str(v string) *string {
	return &v
}

// addDelay schedules a DELAY at ts and returns its id.
func addDelay(t *testing.T, c *producer.ProducerServiceClient, ts int64, body []byte, tags string, props map[string]string) string {
	t.Helper()
	return sendDelay(t, c, &producer.DelayMessage{Topic: userTopic, Body: body, Tags: tags, Action: 1,
		Timestamp: i64(ts), Dmsgtype: i32(2), UUID: str(newUUID()), Properties: props})
}

// addLoop schedules a loop (typ 3 or 4) and returns its first id.
func addLoop(t *testing.T, c *producer.ProducerServiceClient, typ int32, ts, interval, times, expire int64, body string) string {
	t.Helper()
	return sendDelay(t, c, &producer.DelayMessage{Topic: userTopic, Body: []byte(body), Action: 1,
		Timestamp: i64(ts), Dmsgtype: i32(typ), Interval: i64(interval), Times: i64(times), Expire: i64(expire), UUID: str(newUUID())})
}

func cancelDelay(t *testing.T, c *producer.ProducerServiceClient, id string) {
	t.Helper()
	if got := sendDelay(t, c, &producer.DelayMessage{Topic: userTopic, Body: []byte("c"), Action: 2, UniqDelayMsgId: str(id)}); got != id {
		t.Fatalf("cancel answered id %q, want %q", got, id)
	}
}

func sendDelay(t *testing.T, c *producer.ProducerServiceClient, dm *producer.DelayMessage) string {
	t.Helper()
	r, err := c.SendDelaySync(context.Background(), dm, 2000)
	if err != nil {
		t.Fatalf("sendDelaySync: %v", err)
	}
	if r.Code != 0 || r.UniqDelayMsgId == "" {
		t.Fatalf("sendDelaySync: %d %q", r.Code, r.Msg)
	}
	return r.UniqDelayMsgId
}

// delivered is a message read back from the user topic.
type delivered struct {
	key   string
	body  []byte
	tags  string
	props map[string]string
	at    time.Time
}

// readUser reads every record of the user topic.
func (s *stack) readUser() []delivered {
	s.t.Helper()
	var out []delivered
	for _, r := range s.kafka.ReadAll(userTopic) {
		d := delivered{key: string(r.Key), body: r.Value, at: r.Timestamp, props: map[string]string{}}
		for _, h := range r.Headers {
			if h.Key == "TAGS" {
				d.tags = string(h.Value)
			} else {
				d.props[h.Key] = string(h.Value)
			}
		}
		out = append(out, d)
	}
	return out
}

// byKey groups deliveries by key.
func byKey(ds []delivered) map[string][]delivered {
	out := map[string][]delivered{}
	for _, d := range ds {
		out[d.key] = append(out[d.key], d)
	}
	return out
}

// fireSecond is the fire time encoded in an occurrence id.
func fireSecond(t *testing.T, id string) time.Time {
	t.Helper()
	sec, err := strconv.ParseInt(id[:10], 10, 64)
	if err != nil {
		t.Fatalf("id %q: %v", id, err)
	}
	return time.Unix(sec, 0)
}

// lateness checks a delivery is neither early nor later than limit.
func checkLateness(t *testing.T, d delivered, limit time.Duration) time.Duration {
	t.Helper()
	fire := fireSecond(t, d.key)
	late := d.at.Sub(fire)
	if late < 0 || late > limit {
		t.Fatalf("%s due %s delivered at %s: lateness %v (limit %v)", d.key, fire.Format("15:04:05.000"),
			d.at.Format("15:04:05.000"), late, limit)
	}
	return late
}

// metric reads one unlabelled sample from a Prometheus text endpoint.
func metric(admin, name string) (float64, bool) {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	for _, line := range strings.Split(b.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// child is a chronos daemon run as a child process.
type child struct{ *testenv.Daemon }

// newChild writes c (with a fixed admin port) as YAML for cmd/chronos.
func newChild(t *testing.T, bin string, c *chronos.Config) *child {
	t.Helper()
	dir := t.TempDir()
	ch := &child{testenv.NewDaemon(t, "chronos", bin, filepath.Join(dir, "chronos.yaml"), filepath.Join(dir, "chronos.log"),
		"127.0.0.1:"+strconv.Itoa(testenv.FreePort(t)))}
	y := fmt.Sprintf(`clusterName: %s
groupName: %s
standAlone: %v
adminAddr: %s
logLevel: info
shutdownTimeout: 10s
dbConfig: {dbPath: %s}
pullConfig: {innerGroup: %s, innerTopic: %s, cproxyAddrs: %q, maxLingerTimeMs: %d, retryIntervalMs: %d, backupHoldMs: %d}
pushConfig: {pproxyAddrs: [%q], proxyTimeoutMs: %d, clientTimeoutMs: %d}
zkConfig: {zkAddrs: %q, zkSessionTimeoutMs: %d, publishIntervalMs: %d}
`, c.ClusterName, c.GroupName, c.StandAlone, ch.Admin, c.DB.DBPath, c.Pull.InnerGroup, c.Pull.InnerTopic,
		strings.Join(c.Pull.CproxyAddrs, ";"), c.Pull.MaxLingerTimeMs, c.Pull.RetryIntervalMs, c.Pull.BackupHoldMs,
		c.Push.PproxyAddrs[0], c.Push.ProxyTimeoutMs, c.Push.ClientTimeoutMs, c.ZK.ZkAddrs, c.ZK.ZkSessionTimeoutMs, c.ZK.PublishIntervalMs)
	if err := os.WriteFile(ch.Conf, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return ch
}

func (c *child) master() bool {
	v, ok := metric(c.Admin, "chronos_master")
	return ok && v == 1
}
