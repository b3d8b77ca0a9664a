package zkconf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ddmq-go/carrera/internal/config"
	"github.com/ddmq-go/carrera/internal/testenv"
)

const (
	me      = "127.0.0.1:9613"
	other   = "127.0.0.1:9614"
	reload  = time.Second // hot reloads must be visible within 1 s
	resync  = 20 * time.Second
	nodeKey = "/pproxy/" + me
)

// pproxyNode returns a valid /pproxy/<me> node with the given white list
// and node maxTps.
func pproxyNode(maxTps int, topics ...string) []byte {
	list, _ := json.Marshal(topics)
	return []byte(fmt.Sprintf(`{
  "instance": %q, "proxyCluster": "P_test", "brokerClusters": ["R_default", "K_main"],
  "topics": %s,
  "carreraConfiguration": {
    "retryDelays": [200],
    "useKafka": true, "useRocketmq": true, "useRequestLimiter": true,
    "rocketmqProducers": 1, "kafkaProducers": 1,
    "thriftServer": {"selectorThreads": 1, "acceptQueueSizePerThread": 10, "maxReadBufferBytes": 5000000,
                     "backlog": 50, "workerQueueSize": 100, "timeoutCheckerThreads": 1, "port": 9613},
    "rocketmqConfigurationMap": {
      "R_default": {"namesrvAddrs": ["127.0.0.1:9876"], "groupPrefix": "g", "sendMsgTimeout": 3000,
                    "compressMsgBodyOverHowmuch": 4096, "maxMessageSize": 1048576,
                    "clientCallbackExecutorThreads": 1, "pollNameServerInterval": 2000,
                    "heartbeatBrokerInterval": 10000, "persistConsumerOffsetInterval": 5000}},
    "kafkaConfigurationMap": {
      "K_main": {"bootstrapServers": ["127.0.0.1:9092"], "acks": "all", "batchSize": 16384,
                 "clientId": "pproxy", "retryBackoff": 100, "metadataMaxAge": 300000,
                 "metadataFetchTimeout": 5000, "ackTimeout": 3000, "bufferMemory": 33554432}},
    "delay": {"innerTopicNum": 1, "chronosInnerTopicPrefix": "R_test_chronos_inner_"},
    "maxTps": %d, "tpsWarningRatio": 0.8
  }
}`, me, list, maxTps))
}

// topicNode returns a /topic/<name> node with one unit on cluster.
func topicNode(name, cluster string, maxTps float64, proxies ...string) []byte {
	list, _ := json.Marshal(proxies)
	return []byte(fmt.Sprintf(`{"topic": %q, "topicUnits": [{"brokerCluster": %q,
  "proxies": {"P_test": %s}, "totalMaxTps": 10000, "maxTps": %s}], "limiterFailureRetryInterval": -1}`,
		name, cluster, list, strconv.FormatFloat(maxTps, 'f', 1, 64)))
}

type sourceEnv struct {
	src  *PProxySource
	reg  *prometheus.Registry
	logs *observer.ObservedLogs
}

// newSource builds and starts a PProxySource against connect.
func newSource(t *testing.T, connect, cacheDir string, startTimeout time.Duration) (*sourceEnv, error) {
	t.Helper()
	return newSourceWith(t, connect, cacheDir, startTimeout, 30*time.Second)
}

func newSourceWith(t *testing.T, connect, cacheDir string, startTimeout, sessionTimeout time.Duration) (*sourceEnv, error) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	reg := prometheus.NewRegistry()
	src, err := NewPProxySource(PProxySourceConfig{
		Watcher: Config{
			ConnectString:  connect,
			StartTimeout:   startTimeout,
			CacheDir:       cacheDir,
			CacheInterval:  50 * time.Millisecond,
			RetryInterval:  50 * time.Millisecond,
			SessionTimeout: sessionTimeout,
		},
		Instance:   me,
		Logger:     zap.New(core),
		Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = src.Close()
		if t.Failed() { // the logs explain most failures
			for _, e := range logs.All() {
				t.Logf("source log: %s %s %v", e.Level, e.Message, e.ContextMap())
			}
		}
	})
	err = src.Start(context.Background())
	return &sourceEnv{src: src, reg: reg, logs: logs}, err
}

func mustSource(t *testing.T, connect, cacheDir string, startTimeout time.Duration) *sourceEnv {
	t.Helper()
	return mustSourceWith(t, connect, cacheDir, startTimeout, 30*time.Second)
}

func mustSourceWith(t *testing.T, connect, cacheDir string, startTimeout, sessionTimeout time.Duration) *sourceEnv {
	t.Helper()
	env, err := newSourceWith(t, connect, cacheDir, startTimeout, sessionTimeout)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return env
}

// counter reads a counter from the registry (0 if absent).
func counter(t *testing.T, reg *prometheus.Registry, name, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := reason == ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "reason" && lp.GetValue() == reason {
					match = true
				}
			}
			if match {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func served(s *PProxySource, topic string) (*config.TopicView, bool) {
	return s.Current().Topic(topic)
}

func maxTpsIs(s *PProxySource, topic string, want float64) func() bool {
	return func() bool {
		v, ok := served(s, topic)
		return ok && v.MaxTps == want
	}
}

func TestPProxySourceHotReload(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{
		nodeKey:    pproxyNode(30000, "a", "c"),
		"/topic/a": topicNode("a", "R_default", 100, me, other),
		"/topic/b": topicNode("b", "K_main", 200, me),
		"/topic/c": topicNode("c", "R_default", 300, other),
	})
	env := mustSource(t, z.ConnectString(""), t.TempDir(), 10*time.Second)
	s := env.src
	if !s.Connected() {
		t.Fatal("not connected")
	}

	type swap struct{ old, new *config.PProxySnapshot }
	swaps := make(chan swap, 100)
	unsubscribe := s.Subscribe(func(old, new *config.PProxySnapshot) { swaps <- swap{old, new} })
	defer unsubscribe()

	snap := s.Current()
	if v, ok := snap.Topic("a"); !ok || v.MaxTps != 100 || v.MaxBodyBytes != 1048576 || v.Clusters[0] != "R_default" {
		t.Fatalf("a: %+v %v", v, ok)
	}
	if _, ok := snap.Topic("b"); ok {
		t.Fatal("b is not white-listed")
	}
	if _, ok := snap.Topic("c"); ok {
		t.Fatal("c does not list this instance")
	}
	if p, ok := snap.DelayPrefix(); !ok || p != "R_test_chronos_inner_" {
		t.Fatal("delay prefix")
	}

	// Change maxTps.
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{"/topic/a": topicNode("a", "R_default", 150, me)})
	waitFor(t, reload, "a.maxTps = 150", maxTpsIs(s, "a", 150))
	sw := <-swaps
	if sw.old != snap || sw.new != s.Current() {
		t.Fatal("subscriber must get the old and the new snapshot")
	}

	// Bind c (the unit now lists this instance).
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{"/topic/c": topicNode("c", "R_default", 300, other, me)})
	waitFor(t, reload, "c bound", maxTpsIs(s, "c", 300))

	// White-list b: its watch is added and it becomes served.
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{nodeKey: pproxyNode(30000, "a", "b", "c")})
	waitFor(t, reload, "b served", maxTpsIs(s, "b", 200))
	if v, _ := served(s, "b"); s.Current().ClusterKind(v.Clusters[0]) != config.ClusterKafka || v.MaxBodyBytes != config.DefaultMaxBodyBytes {
		t.Fatalf("b: %+v", v)
	}
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{"/topic/b": topicNode("b", "K_main", 250, me)})
	waitFor(t, reload, "b.maxTps = 250", maxTpsIs(s, "b", 250))

	// Unbind a.
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{"/topic/a": topicNode("a", "R_default", 150, other)})
	waitFor(t, reload, "a unbound", func() bool { _, ok := served(s, "a"); return !ok })

	// Node-level change.
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{nodeKey: pproxyNode(777, "a", "b", "c")})
	waitFor(t, reload, "node maxTps = 777", func() bool { return s.Current().Node.CarreraConfiguration.MaxTps == 777 })

	// Drop b from the white list: unserved, unwatched.
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{nodeKey: pproxyNode(777, "a", "c")})
	waitFor(t, reload, "b dropped", func() bool { _, ok := served(s, "b"); return !ok })
	for _, p := range s.w.Watched() {
		if p == "/topic/b" {
			t.Fatal("/topic/b still watched")
		}
	}
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{
		"/topic/b": topicNode("b", "K_main", 999, me),
		"/topic/c": topicNode("c", "R_default", 333, other, me),
	})
	waitFor(t, reload, "c.maxTps = 333", maxTpsIs(s, "c", 333))
	if _, ok := served(s, "b"); ok {
		t.Fatal("b must stay unserved")
	}

	if got := counter(t, env.reg, "carrera_config_reloads_total", ""); got < 8 {
		t.Fatalf("reloads_total = %v, want >= 8", got)
	}
	if got := counter(t, env.reg, "carrera_config_reload_failures_total", ReasonInvalidTopic); got != 0 {
		t.Fatalf("failures = %v", got)
	}
}

func TestPProxySourceInvalidAndDeletedNodes(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{
		nodeKey:    pproxyNode(30000, "a"),
		"/topic/a": topicNode("a", "R_default", 100, me),
	})
	env := mustSource(t, z.ConnectString(""), t.TempDir(), 10*time.Second)
	s := env.src
	failures := func(reason string) func() float64 {
		return func() float64 { return counter(t, env.reg, "carrera_config_reload_failures_total", reason) }
	}
	topicFailures, nodeFailures := failures(ReasonInvalidTopic), failures(ReasonInvalidNode)
	before := s.Current()

	steps := []struct {
		name    string
		path    string
		data    string
		counter func() float64
		want    float64
	}{
		{"topic: not JSON", "/topic/a", `{"topic": "a", `, topicFailures, 1},
		{"topic: no units", "/topic/a", `{"topic": "a"}`, topicFailures, 2},
		{"node: not JSON", nodeKey, `not json`, nodeFailures, 1},
		{"node: no carreraConfiguration", nodeKey, `{"instance":"` + me + `","proxyCluster":"P","brokerClusters":["R_default"]}`, nodeFailures, 2},
	}
	for _, st := range steps {
		testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{st.path: []byte(st.data)})
		waitFor(t, reload, st.name+" counted", func() bool { return st.counter() == st.want })
		if s.Current() != before {
			t.Fatalf("%s: snapshot replaced", st.name)
		}
	}
	if n := env.logs.FilterMessage("invalid configuration ignored; keeping the previous snapshot").Len(); n != 4 {
		t.Fatalf("warn logs: %d", n)
	}

	// Fixing the data reloads.
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{
		nodeKey:    pproxyNode(500, "a"),
		"/topic/a": topicNode("a", "R_default", 120, me),
	})
	waitFor(t, reload, "fixed", func() bool {
		return s.Current().Node.CarreraConfiguration.MaxTps == 500 && maxTpsIs(s, "a", 120)()
	})

	// Deleted nodes: logged only, state kept; re-creation is picked up.
	fixed := s.Current()
	testenv.DeleteZK(t, z.Addr, chroot, "/topic/a")
	waitFor(t, reload, "topic deletion logged", func() bool {
		return env.logs.FilterMessage("topic node deleted or missing; keeping the last topic state").Len() == 1
	})
	testenv.DeleteZK(t, z.Addr, chroot, nodeKey)
	waitFor(t, reload, "node deletion logged", func() bool {
		return env.logs.FilterMessage("pproxy node deleted or missing; keeping the last configuration").Len() == 1
	})
	if s.Current() != fixed {
		t.Fatal("deletion replaced the snapshot")
	}
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{"/topic/a": topicNode("a", "R_default", 130, me)})
	waitFor(t, reload, "topic re-created", maxTpsIs(s, "a", 130))
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{nodeKey: pproxyNode(600, "a")})
	waitFor(t, reload, "node re-created", func() bool { return s.Current().Node.CarreraConfiguration.MaxTps == 600 })
}

func TestPProxySourceStartErrors(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	connect := z.ConnectString("")

	if _, err := newSource(t, connect, t.TempDir(), 10*time.Second); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing node: %v", err)
	}
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{nodeKey: []byte(`{"instance":"x"}`)})
	if _, err := newSource(t, connect, t.TempDir(), 10*time.Second); err == nil || !strings.Contains(err.Error(), "proxyCluster") {
		t.Fatalf("invalid node: %v", err)
	}
	z.Stop()
	if _, err := newSource(t, connect, t.TempDir(), 200*time.Millisecond); !errors.Is(err, ErrNoCache) {
		t.Fatalf("ZooKeeper down, no cache: %v", err)
	}
}

func TestPProxySourceZooKeeperOutage(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{
		nodeKey:    pproxyNode(30000, "a"),
		"/topic/a": topicNode("a", "R_default", 100, me),
	})
	cacheDir := t.TempDir()
	connect := z.ConnectString(chroot) // explicit chroot, as in carrera.yaml
	a := mustSource(t, connect, cacheDir, 10*time.Second).src
	// Cache layout: <cacheDir>/<zkPath>/<dataVersion> with the raw data.
	assertCacheFiles(t, cacheDir, nodeKey, map[string]string{"0": string(pproxyNode(30000, "a"))})
	assertCacheFiles(t, cacheDir, "/topic/a", map[string]string{"0": string(topicNode("a", "R_default", 100, me))})
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{"/topic/a": topicNode("a", "R_default", 110, me)})
	waitFor(t, reload, "a.maxTps = 110", maxTpsIs(a, "a", 110))
	assertCacheFiles(t, cacheDir, "/topic/a", map[string]string{"1": string(topicNode("a", "R_default", 110, me))})

	// ZooKeeper goes away: the last snapshot keeps being served.
	last := a.Current()
	z.Stop()
	waitFor(t, resync, "disconnected", func() bool { return !a.Connected() })
	if a.Current() != last {
		t.Fatal("snapshot changed while ZooKeeper is down")
	}

	// A new source started now runs from the cache.
	envB := mustSource(t, connect, cacheDir, 300*time.Millisecond)
	b := envB.src
	if b.Connected() {
		t.Fatal("b connected to a stopped ZooKeeper")
	}
	if !maxTpsIs(b, "a", 110)() {
		t.Fatalf("b from cache: %+v", b.Current().Topics)
	}
	logged := envB.logs.FilterMessage("starting from cached config").FilterField(zap.String("path", nodeKey)).All()
	if len(logged) != 1 || logged[0].Level != zapcore.WarnLevel {
		t.Fatalf("start-from-cache warning: %+v", logged)
	}

	// While disconnected, a newer cached version is applied by both.
	writeCacheFile(t, cacheDir, "/topic/a", "5", string(topicNode("a", "R_default", 150, me)))
	waitFor(t, 5*time.Second, "cached v5 applied by a", maxTpsIs(a, "a", 150))
	waitFor(t, 5*time.Second, "cached v5 applied by b", maxTpsIs(b, "a", 150))

	// ZooKeeper returns: its data (version 1, maxTps 110) replaces the
	// cached version 5, and changes flow again.
	z.Restart()
	waitFor(t, resync, "both reconnected", func() bool { return a.Connected() && b.Connected() })
	waitFor(t, resync, "a re-synced", maxTpsIs(a, "a", 110))
	waitFor(t, resync, "b re-synced", maxTpsIs(b, "a", 110))
	assertCacheFiles(t, cacheDir, "/topic/a", map[string]string{"1": string(topicNode("a", "R_default", 110, me))})
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{"/topic/a": topicNode("a", "R_default", 400, me)})
	waitFor(t, reload, "a sees 400", maxTpsIs(a, "a", 400))
	waitFor(t, reload, "b sees 400", maxTpsIs(b, "a", 400))
}

func TestNewPProxySourceErrors(t *testing.T) {
	if _, err := NewPProxySource(PProxySourceConfig{Watcher: Config{ConnectString: "h:1"}}); err == nil {
		t.Error("empty instance: want error")
	}
	if _, err := NewPProxySource(PProxySourceConfig{Watcher: Config{ConnectString: "h:1"}, Instance: "../x"}); err == nil {
		t.Error("instance with a path: want error")
	}
	if _, err := NewPProxySource(PProxySourceConfig{Watcher: Config{}, Instance: me}); err == nil {
		t.Error("no servers: want error")
	}
	// Two sources may share a registry.
	reg := prometheus.NewRegistry()
	for i := 0; i < 2; i++ {
		s, err := NewPProxySource(PProxySourceConfig{Watcher: Config{ConnectString: "h:1"}, Instance: me, Registerer: reg})
		if err != nil {
			t.Fatalf("source %d: %v", i, err)
		}
		_ = s.Close()
	}
	if got := counter(t, reg, "carrera_config_reload_failures_total", ReasonInvalidNode); got != 0 {
		t.Fatalf("zero-initialised failures: %v", got)
	}
}

func TestWatcherConfigFromBootstrap(t *testing.T) {
	b, err := config.ParseBootstrap([]byte("zookeeperAddr: h:2181/carrera/v4/config\nport: 9613\nconfigCacheDir: /tmp/cc\nzkStartTimeout: 2s\n"))
	if err != nil {
		t.Fatal(err)
	}
	c := WatcherConfigFromBootstrap(b)
	if c.ConnectString != "h:2181/carrera/v4/config" || c.CacheDir != "/tmp/cc" || c.StartTimeout != 2*time.Second {
		t.Fatalf("%+v", c)
	}
}
