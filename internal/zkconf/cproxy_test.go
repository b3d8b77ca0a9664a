package zkconf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
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
	cme      = "127.0.0.1:9713"
	cother   = "127.0.0.1:9714"
	cnodeKey = "/cproxy/" + cme
)

// cproxyNode returns a valid /cproxy/<cme> node (R_default on RocketMQ,
// K_main on Kafka) with the given group white list.
func cproxyNode(pullBatchSize int, groups ...string) []byte {
	list, _ := json.Marshal(groups)
	return []byte(fmt.Sprintf(`{
  "instance": %q, "proxyCluster": "C_test", "brokerClusters": ["R_default", "K_main"],
  "rocketmqConfigs": {
    "R_default": {"namesrvAddrs": ["127.0.0.1:9876"], "groupPrefix": "g", "pullBatchSize": %d,
                  "pullThresholdForQueue": 1000, "pollNameServerInterval": 2000,
                  "consumeMessageBatchMaxSize": 1, "heartbeatBrokerInterval": 2000,
                  "consumeConcurrentlyMaxSpan": 2000, "persistConsumerOffsetInterval": 5000}},
  "kafkaConfigs": {
    "K_main": {"zookeeperAddr": "127.0.0.1:2181/kafka", "autoCommitInterval": 5000,
               "extra": {"bootstrap.servers": "127.0.0.1:9092"}}},
  "thriftServer": {"port": 9713},
  "groups": %s
}`, cme, pullBatchSize, list))
}

// groupNode returns a /group/<name> node with one enabled pull
// subscription of topic "t" on cluster, listing proxies under C_test.
func groupNode(name, cluster string, concurrency int, maxTps float64, proxies ...string) []byte {
	list, _ := json.Marshal(proxies)
	return []byte(fmt.Sprintf(`{"group": %q, "asyncThreads": 4, "topics": [
  {"brokerCluster": %q, "proxies": {"C_test": %s}, "enabled": true, "topic": "t",
   "actions": ["Async", "PullServer"], "maxTps": %.1f, "totalMaxTps": 1000.0, "concurrency": %d}]}`,
		name, cluster, list, maxTps, concurrency))
}

type csourceEnv struct {
	src     *CProxySource
	reg     *prometheus.Registry
	logs    *observer.ObservedLogs
	deleted chan struct{} // one value per OnNodeDeleted call
}

func newCSource(t *testing.T, connect, cacheDir string, startTimeout time.Duration) (*csourceEnv, error) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	env := &csourceEnv{reg: prometheus.NewRegistry(), logs: logs, deleted: make(chan struct{}, 16)}
	src, err := NewCProxySource(CProxySourceConfig{
		Watcher: Config{
			ConnectString: connect,
			StartTimeout:  startTimeout,
			CacheDir:      cacheDir,
			CacheInterval: 50 * time.Millisecond,
			RetryInterval: 50 * time.Millisecond,
		},
		Instance:      cme,
		OnNodeDeleted: func() { env.deleted <- struct{}{} },
		Logger:        zap.New(core),
		Registerer:    env.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	env.src = src
	t.Cleanup(func() {
		_ = src.Close()
		if t.Failed() {
			for _, e := range logs.All() {
				t.Logf("source log: %s %s %v", e.Level, e.Message, e.ContextMap())
			}
		}
	})
	return env, src.Start(context.Background())
}

func mustCSource(t *testing.T, connect, cacheDir string, startTimeout time.Duration) *csourceEnv {
	t.Helper()
	env, err := newCSource(t, connect, cacheDir, startTimeout)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return env
}

type cswap struct{ old, new *config.CProxySnapshot }

// swaps subscribes and returns the channel of snapshot swaps.
func swaps(t *testing.T, s *CProxySource) <-chan cswap {
	t.Helper()
	ch := make(chan cswap, 100)
	t.Cleanup(s.Subscribe(func(old, new *config.CProxySnapshot) { ch <- cswap{old, new} }))
	return ch
}

// nextDiff waits for the next swap and returns its diff; the swap must
// chain from the previous one.
func nextDiff(t *testing.T, ch <-chan cswap, prev *config.CProxySnapshot, what string) (config.CProxyDiff, *config.CProxySnapshot) {
	t.Helper()
	select {
	case sw := <-ch:
		if sw.old != prev {
			t.Fatalf("%s: the swap does not chain from the previous snapshot", what)
		}
		return config.DiffCProxySnapshots(sw.old, sw.new), sw.new
	case <-time.After(reload):
		t.Fatalf("%s: no snapshot swap within %s", what, reload)
		return config.CProxyDiff{}, nil
	}
}

func keys(ks ...string) []config.UnitKey {
	var out []config.UnitKey
	for _, k := range ks {
		g, c, _ := strings.Cut(k, "@")
		out = append(out, config.UnitKey{Group: g, Cluster: c})
	}
	return out
}

func wantKeys(t *testing.T, what string, got []config.UnitKey, want ...string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, keys(want...)) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

func TestCProxySourceHotReload(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{
		cnodeKey:    cproxyNode(32, "g1", "g2"),
		"/group/g1": groupNode("g1", "R_default", 100, 10, cme, cother),
		"/group/g2": groupNode("g2", "K_main", 100, 10, cother),
		"/group/g3": groupNode("g3", "R_default", 100, 10, cme),
	})
	env := mustCSource(t, z.ConnectString(""), t.TempDir(), 10*time.Second)
	s := env.src
	if !s.Connected() {
		t.Fatal("not connected")
	}
	ch := swaps(t, s)

	snap := s.Current()
	wantKeys(t, "initial units", snap.UnitKeys(), "g1@R_default")
	if _, ok := snap.Group("g2"); !ok {
		t.Fatal("g2 is white-listed and valid: it must be loaded although not served")
	}
	if _, ok := snap.Group("g3"); ok {
		t.Fatal("g3 is not white-listed")
	}
	if u, _ := snap.Unit("g1", "R_default"); u.RocketMQ.PullBatchSize != 32 || u.Subscriptions[0].Config.Concurrency != 100 {
		t.Fatalf("g1: %+v", u)
	}

	// A business change of g1 restarts g1@R_default.
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{"/group/g1": groupNode("g1", "R_default", 200, 10, cme, cother)})
	d, snap := nextDiff(t, ch, snap, "g1 concurrency")
	wantKeys(t, "changed", d.Changed, "g1@R_default")
	if u, _ := snap.Unit("g1", "R_default"); u.Subscriptions[0].MaxConsumeLag != -1 || u.Subscriptions[0].Config.Concurrency != 200 {
		t.Fatalf("g1: %+v", u.Subscriptions[0])
	}

	// maxTps is not business: updated in place.
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{"/group/g1": groupNode("g1", "R_default", 200, 20, cme, cother)})
	d, snap = nextDiff(t, ch, snap, "g1 maxTps")
	wantKeys(t, "updated", d.Updated, "g1@R_default")
	wantKeys(t, "changed", d.Changed)

	// g2 gets bound.
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{"/group/g2": groupNode("g2", "K_main", 100, 10, cother, cme)})
	d, snap = nextDiff(t, ch, snap, "g2 bound")
	wantKeys(t, "added", d.Added, "g2@K_main")
	if u, _ := snap.Unit("g2", "K_main"); u.ClusterKind != config.ClusterKafka || !slices.Equal(u.Kafka.BootstrapServers(), []string{"127.0.0.1:9092"}) {
		t.Fatalf("g2: %+v", u)
	}

	// g2 leaves the white list: removed and unwatched; g3 joins it.
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{cnodeKey: cproxyNode(32, "g1", "g3")})
	d, snap = nextDiff(t, ch, snap, "white list")
	wantKeys(t, "removed", d.Removed, "g2@K_main")
	wantKeys(t, "added", d.Added, "g3@R_default")
	if !slices.Equal(d.GroupsRemoved, []string{"g2"}) || !slices.Equal(d.GroupsAdded, []string{"g3"}) {
		t.Fatalf("groups: %+v", d)
	}
	if slices.Contains(s.w.Watched(), "/group/g2") {
		t.Fatalf("/group/g2 still watched: %v", s.w.Watched())
	}
	// A change of g2 is ignored now; the next swap is g3's.
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{"/group/g2": groupNode("g2", "K_main", 999, 10, cme)})
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{"/group/g3": groupNode("g3", "R_default", 300, 10, cme)})
	d, snap = nextDiff(t, ch, snap, "g3 change")
	wantKeys(t, "changed", d.Changed, "g3@R_default")
	if _, ok := snap.Group("g2"); ok {
		t.Fatal("g2 must stay unloaded")
	}

	// A cluster configuration change restarts the units on that cluster.
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{cnodeKey: cproxyNode(64, "g1", "g3")})
	d, snap = nextDiff(t, ch, snap, "cluster change")
	wantKeys(t, "changed", d.Changed, "g1@R_default", "g3@R_default")
	if !slices.Equal(d.ClustersChanged, []string{"R_default"}) {
		t.Fatalf("clusters: %v", d.ClustersChanged)
	}

	// A deleted group disappears from the snapshot; re-creating it brings
	// it back (its watch stays while it is white-listed).
	testenv.DeleteZK(t, z.Addr, chroot, "/group/g3")
	d, snap = nextDiff(t, ch, snap, "g3 deleted")
	wantKeys(t, "removed", d.Removed, "g3@R_default")
	if !slices.Equal(d.GroupsRemoved, []string{"g3"}) {
		t.Fatalf("groups removed: %v", d.GroupsRemoved)
	}
	if _, ok := snap.Group("g3"); ok {
		t.Fatal("g3 still in the snapshot")
	}
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{"/group/g3": groupNode("g3", "R_default", 300, 10, cme)})
	d, snap = nextDiff(t, ch, snap, "g3 re-created")
	wantKeys(t, "added", d.Added, "g3@R_default")
	if s.Current() != snap {
		t.Fatal("Current is not the last swapped snapshot")
	}

	if got := counter(t, env.reg, "carrera_config_reloads_total", ""); got != 8 {
		t.Fatalf("reloads_total = %v, want 8", got)
	}
	for _, r := range []string{ReasonInvalidGroup, ReasonInvalidNode, ReasonInvalidSnapshot} {
		if got := counter(t, env.reg, "carrera_config_reload_failures_total", r); got != 0 {
			t.Fatalf("failures{%s} = %v", r, got)
		}
	}
}

func TestCProxySourceInvalidData(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{
		cnodeKey:    cproxyNode(32, "g1", "g_bad"),
		"/group/g1": groupNode("g1", "R_default", 100, 10, cme),
		// Invalid at start: counted, left out, served once fixed.
		"/group/g_bad": []byte(`{"group": "g_bad", "topics": [{"enabled": true}]}`),
	})
	env := mustCSource(t, z.ConnectString(""), t.TempDir(), 10*time.Second)
	s := env.src
	failures := func(reason string) float64 {
		return counter(t, env.reg, "carrera_config_reload_failures_total", reason)
	}
	if failures(ReasonInvalidGroup) != 1 {
		t.Fatalf("invalid group at start not counted: %v", failures(ReasonInvalidGroup))
	}
	if _, ok := s.Current().Group("g_bad"); ok {
		t.Fatal("invalid group loaded")
	}
	before := s.Current()

	steps := []struct {
		name   string
		path   string
		data   string
		reason string
		want   float64
	}{
		{"group: not JSON", "/group/g1", `{"group": `, ReasonInvalidGroup, 2},
		{"group: low-level mix", "/group/g1", `{"group":"g1","topics":[
			{"brokerCluster":"R_default","enabled":true,"topic":"a","actions":["LowLevel","PullServer"],"totalMaxTps":1},
			{"brokerCluster":"R_default","enabled":true,"topic":"b","actions":["Async","PullServer"],"totalMaxTps":1}]}`, ReasonInvalidGroup, 3},
		{"node: not JSON", cnodeKey, `not json`, ReasonInvalidNode, 1},
		{"node: no thriftServer", cnodeKey, `{"instance":"` + cme + `","proxyCluster":"C","brokerClusters":["R"],"rocketmqConfigs":{}}`, ReasonInvalidNode, 2},
	}
	for _, st := range steps {
		testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{st.path: []byte(st.data)})
		waitFor(t, reload, st.name+" counted", func() bool { return failures(st.reason) == st.want })
		if s.Current() != before {
			t.Fatalf("%s: snapshot replaced", st.name)
		}
	}

	// Fixing the data reloads.
	ch := swaps(t, s)
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{
		cnodeKey:       cproxyNode(16, "g1", "g_bad"),
		"/group/g1":    groupNode("g1", "R_default", 50, 10, cme),
		"/group/g_bad": groupNode("g_bad", "K_main", 50, 10, cme),
	})
	waitFor(t, reload, "fixed", func() bool {
		snap := s.Current()
		g1, ok1 := snap.Unit("g1", "R_default")
		_, ok2 := snap.Unit("g_bad", "K_main")
		return ok1 && ok2 && g1.RocketMQ.PullBatchSize == 16 && g1.Subscriptions[0].Config.Concurrency == 50
	})
	if len(ch) == 0 {
		t.Fatal("subscribers not called")
	}
}

func TestCProxySourceNodeDeleted(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{
		cnodeKey:    cproxyNode(32, "g1"),
		"/group/g1": groupNode("g1", "R_default", 100, 10, cme),
	})
	env := mustCSource(t, z.ConnectString(""), t.TempDir(), 10*time.Second)
	s := env.src
	before := s.Current()

	testenv.DeleteZK(t, z.Addr, chroot, cnodeKey)
	select {
	case <-env.deleted:
	case <-time.After(reload):
		t.Fatal("OnNodeDeleted not called")
	}
	logged := env.logs.FilterMessageSnippet("cproxy node deleted").All()
	if len(logged) != 1 || logged[0].Level != zapcore.ErrorLevel {
		t.Fatalf("deletion log: %+v", logged)
	}
	if s.Current() != before {
		t.Fatal("deletion replaced the snapshot")
	}

	// Re-created (e.g. before the daemon finished stopping): loaded again,
	// and a second deletion calls the callback again.
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{cnodeKey: cproxyNode(8, "g1")})
	waitFor(t, reload, "node re-created", func() bool {
		u, ok := s.Current().Unit("g1", "R_default")
		return ok && u.RocketMQ.PullBatchSize == 8
	})
	testenv.DeleteZK(t, z.Addr, chroot, cnodeKey)
	select {
	case <-env.deleted:
	case <-time.After(reload):
		t.Fatal("OnNodeDeleted not called for the second deletion")
	}
}

func TestCProxySourceStartErrors(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	connect := z.ConnectString("")

	if _, err := newCSource(t, connect, t.TempDir(), 10*time.Second); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing node: %v", err)
	}
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{cnodeKey: []byte(`{"instance":"x"}`)})
	if _, err := newCSource(t, connect, t.TempDir(), 10*time.Second); err == nil || !strings.Contains(err.Error(), "proxyCluster") {
		t.Fatalf("invalid node: %v", err)
	}
	z.Stop()
	if _, err := newCSource(t, connect, t.TempDir(), 200*time.Millisecond); !errors.Is(err, ErrNoCache) {
		t.Fatalf("ZooKeeper down, no cache: %v", err)
	}
}

func TestCProxySourceStartFromCache(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{
		cnodeKey:    cproxyNode(32, "g1", "g2"),
		"/group/g1": groupNode("g1", "R_default", 100, 10, cme),
		"/group/g2": groupNode("g2", "K_main", 100, 10, cme),
	})
	cacheDir := t.TempDir()
	connect := z.ConnectString(chroot) // explicit chroot, as in carrera.yaml
	a := mustCSource(t, connect, cacheDir, 10*time.Second).src
	assertCacheFiles(t, cacheDir, cnodeKey, map[string]string{"0": string(cproxyNode(32, "g1", "g2"))})
	assertCacheFiles(t, cacheDir, "/group/g1", map[string]string{"0": string(groupNode("g1", "R_default", 100, 10, cme))})
	want := a.Current().UnitKeys()
	wantKeys(t, "a", want, "g1@R_default", "g2@K_main")

	// ZooKeeper goes away: a new source starts from the cache.
	z.Stop()
	envB := mustCSource(t, connect, cacheDir, 300*time.Millisecond)
	b := envB.src
	if b.Connected() {
		t.Fatal("b connected to a stopped ZooKeeper")
	}
	if got := b.Current().UnitKeys(); !reflect.DeepEqual(got, want) {
		t.Fatalf("b from cache: %v, want %v", got, want)
	}
	logged := envB.logs.FilterMessage("starting from cached config").FilterField(zap.String("path", cnodeKey)).All()
	if len(logged) != 1 || logged[0].Level != zapcore.WarnLevel {
		t.Fatalf("start-from-cache warning: %+v", logged)
	}

	// While disconnected, a newer cached group version is applied.
	writeCacheFile(t, cacheDir, "/group/g1", "5", string(groupNode("g1", "R_default", 555, 10, cme)))
	concurrency := func(s *CProxySource, want int) func() bool {
		return func() bool {
			u, ok := s.Current().Unit("g1", "R_default")
			return ok && u.Subscriptions[0].Config.Concurrency == want
		}
	}
	waitFor(t, 5*time.Second, "cached v5 applied by b", concurrency(b, 555))

	// ZooKeeper returns: its data (version 0) replaces the cached
	// version 5, and changes flow again.
	z.Restart()
	waitFor(t, resync, "b reconnected", b.Connected)
	waitFor(t, resync, "b re-synced", concurrency(b, 100))
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{"/group/g1": groupNode("g1", "R_default", 777, 10, cme)})
	waitFor(t, reload, "b sees 777", concurrency(b, 777))
	waitFor(t, resync, "a sees 777", concurrency(a, 777))
}

func TestNewCProxySourceErrors(t *testing.T) {
	if _, err := NewCProxySource(CProxySourceConfig{Watcher: Config{ConnectString: "h:1"}}); err == nil {
		t.Error("empty instance: want error")
	}
	if _, err := NewCProxySource(CProxySourceConfig{Watcher: Config{ConnectString: "h:1"}, Instance: "../x"}); err == nil {
		t.Error("instance with a path: want error")
	}
	if _, err := NewCProxySource(CProxySourceConfig{Watcher: Config{}, Instance: cme}); err == nil {
		t.Error("no servers: want error")
	}
	// A cproxy and a pproxy source may share a registry (same counters).
	reg := prometheus.NewRegistry()
	c, err := NewCProxySource(CProxySourceConfig{Watcher: Config{ConnectString: "h:1"}, Instance: cme, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	p, err := NewPProxySource(PProxySourceConfig{Watcher: Config{ConnectString: "h:1"}, Instance: me, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	_ = p.Close()
	if c.metrics.failures != p.metrics.failures || c.metrics.reloads != p.metrics.reloads {
		t.Fatal("collectors not shared")
	}
	if got := counter(t, reg, "carrera_config_reload_failures_total", ReasonInvalidGroup); got != 0 {
		t.Fatalf("zero-initialised failures: %v", got)
	}
	if c.Start(context.Background()) == nil {
		t.Fatal("Start after Close must fail")
	}
}
