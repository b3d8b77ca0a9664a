package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	bu "github.com/ddmq-go/carrera/internal/benchutil"
)

// Names of the bench's ZooKeeper nodes and topics.
const (
	cluster     = "K_bench"
	innerPrefix = "bench_inner_"
	innerTopic  = innerPrefix + "0"
	proxyTopic  = "bench_delay"  // user topic of the through-proxy phase
	directTopic = "bench_direct" // user topic of the direct phase
	innerGroup  = "cg_bench_inner"
)

type stack struct {
	zk, broker, pproxy, cproxy *bu.Proc
	zkAddr, brokers            string
	paddr, caddr               string
	binDir                     string
	tmp                        string
}

func dirOf(tmp, name string) string {
	d := filepath.Join(tmp, name)
	_ = os.MkdirAll(d, 0o755)
	return d
}

// up builds the binaries and starts ZooKeeper, kfakeserver, pproxy and
// cproxy as child processes.
func up(ctx context.Context, o *options, cl *bu.Cleanups, tmp string) (*stack, error) {
	root, err := bu.ModuleRoot(ctx)
	if err != nil {
		return nil, err
	}
	s := &stack{tmp: tmp, binDir: filepath.Join(tmp, "bin")}
	logf("building kfakeserver, pproxy, cproxy, chronos into %s", s.binDir)
	if err := bu.BuildBinaries(ctx, root, s.binDir, "./cmd/kfakeserver", "./cmd/pproxy", "./cmd/cproxy", "./cmd/chronos"); err != nil {
		return nil, err
	}
	ports, err := bu.FreePorts(6)
	if err != nil {
		return nil, err
	}
	s.zkAddr = "127.0.0.1:" + strconv.Itoa(ports[0])
	s.brokers = "127.0.0.1:" + strconv.Itoa(ports[1])
	s.paddr = "127.0.0.1:" + strconv.Itoa(ports[2])
	s.caddr = "127.0.0.1:" + strconv.Itoa(ports[3])
	padmin, cadmin := "127.0.0.1:"+strconv.Itoa(ports[4]), "127.0.0.1:"+strconv.Itoa(ports[5])

	if s.zk, err = bu.StartZooKeeper(ctx, dirOf(tmp, "zookeeper"), ports[0], ""); err != nil {
		return nil, err
	}
	cl.StopOnCleanup(s.zk)
	kdir := dirOf(tmp, "kfakeserver")
	s.broker, err = bu.StartProc("kfakeserver", kdir, filepath.Join(kdir, "kfakeserver.log"), "", nil,
		filepath.Join(s.binDir, "kfakeserver"), "-ports", strconv.Itoa(ports[1]), "-partitions", strconv.Itoa(o.partitions),
		"-seed-topics", strings.Join([]string{innerTopic, proxyTopic, directTopic}, ","))
	if err != nil {
		return nil, err
	}
	cl.StopOnCleanup(s.broker)
	if err := bu.WaitReady(ctx, s.broker, 30*time.Second, "listening", func() bool {
		b, _ := os.ReadFile(s.broker.LogPath)
		return strings.Contains(string(b), "kfakeserver listening on")
	}); err != nil {
		return nil, err
	}
	logf("ZooKeeper %s, kfakeserver %s (%d partitions per topic)", s.zkAddr, s.brokers, o.partitions)

	nodes := map[string][]byte{
		"/pproxy/" + s.paddr: pproxyNode(s.paddr, s.brokers),
		"/cproxy/" + s.caddr: cproxyNode(s.caddr, ports[3], s.brokers),
		"/group/" + innerGroup: bu.MustJSON(map[string]any{"group": innerGroup, "asyncThreads": 8, "topics": []any{map[string]any{
			"brokerCluster": cluster, "proxies": map[string][]string{"C_bench": {s.caddr}},
			"enabled": true, "topic": innerTopic, "actions": []string{"Async", "PullServer"},
			"maxTps": 10000000.0, "totalMaxTps": 10000000.0, "concurrency": 8192, "timeout": 30000,
			"maxRetry": -1, "retryIntervals": []int{500, -1}, "maxPullBatchSize": o.pullBatch}}}),
	}
	for _, t := range []struct {
		name  string
		delay bool
	}{{innerTopic, false}, {proxyTopic, true}, {directTopic, true}} {
		nodes["/topic/"+t.name] = bu.MustJSON(map[string]any{"topic": t.name,
			"topicUnits": []map[string]any{{"brokerCluster": cluster, "proxies": map[string][]string{"P_bench": {s.paddr}},
				"totalMaxTps": 10000000, "maxTps": 10000000}},
			"delayTopic": t.delay})
	}
	if err := bu.SeedZK(s.zkAddr, bu.ZKChroot, nodes); err != nil {
		return nil, fmt.Errorf("seeding ZooKeeper: %w", err)
	}
	for _, p := range []struct {
		name, addr, admin string
		port              int
		proc              **bu.Proc
	}{{"pproxy", s.paddr, padmin, ports[2], &s.pproxy}, {"cproxy", s.caddr, cadmin, ports[3], &s.cproxy}} {
		d := dirOf(tmp, p.name)
		y := fmt.Sprintf("zookeeperAddr: %s%s\nhost: 127.0.0.1\nport: %d\nadminAddr: %s\nconfigCacheDir: %s\nlogLevel: warn\nzkStartTimeout: 5s\nshutdownTimeout: 10s\n",
			s.zkAddr, bu.ZKChroot, p.port, p.admin, filepath.Join(d, "cache"))
		conf := filepath.Join(d, p.name+".yaml")
		if err := os.WriteFile(conf, []byte(y), 0o644); err != nil {
			return nil, err
		}
		proc, err := bu.StartProc(p.name, d, filepath.Join(d, p.name+".log"), "", nil, filepath.Join(s.binDir, p.name), "-conf", conf)
		if err != nil {
			return nil, err
		}
		*p.proc = proc
		cl.StopOnCleanup(proc)
		if err := bu.WaitHealthy(ctx, proc, p.admin, 60*time.Second); err != nil {
			return nil, err
		}
		logf("%s serving on %s (pid %d)", p.name, p.addr, proc.PID())
	}
	return s, nil
}

func pproxyNode(instance, brokers string) []byte {
	return bu.MustJSON(map[string]any{
		"instance": instance, "proxyCluster": "P_bench", "brokerClusters": []string{cluster},
		"topics": []string{innerTopic, proxyTopic, directTopic},
		"carreraConfiguration": map[string]any{
			"retryDelays": []int{200}, "useKafka": true, "kafkaProducers": 2, "useRequestLimiter": false,
			"maxTps": 10000000, "tpsWarningRatio": 0.9,
			"thriftServer": map[string]any{"selectorThreads": 2, "workerThreads": 0, "acceptQueueSizePerThread": 100,
				"maxReadBufferBytes": 5000000, "backlog": 128, "clientTimeout": 0, "workerQueueSize": 1000,
				"timeoutCheckerThreads": 1},
			"kafkaConfigurationMap": map[string]any{cluster: map[string]any{
				"bootstrapServers": []string{brokers}, "acks": "all", "retries": 0, "batchSize": 16384,
				"clientId": "pproxy-benchdelay", "retryBackoff": 100, "metadataMaxAge": 300000,
				"metadataFetchTimeout": 5000, "ackTimeout": 5000, "bufferMemory": 67108864}},
			"delay": map[string]any{"innerTopicNum": 1, "chronosInnerTopicPrefix": innerPrefix},
		},
	})
}

func cproxyNode(instance string, port int, brokers string) []byte {
	return bu.MustJSON(map[string]any{
		"instance": instance, "proxyCluster": "C_bench", "brokerClusters": []string{cluster},
		"kafkaConfigs": map[string]any{cluster: map[string]any{"clusterName": cluster, "zookeeperAddr": "127.0.0.1:1/kafka",
			"autoCommitInterval": 1000, "rebalanceMaxRetries": 8, "partitionAssignmentStrategy": "range",
			"extra": map[string]any{"bootstrap.servers": brokers}}},
		"thriftServer": map[string]any{"port": port, "selectorThreads": 2, "workerThreads": 16,
			"acceptQueueSizePerThread": 100, "maxReadBufferBytes": 5000000, "backlog": 50, "workerQueueSize": 1000},
		"groups": []string{innerGroup},
	})
}

// chronosYAML is a standalone delay-service configuration.
func (s *stack) chronosYAML(o *options, dir, admin string, pullOn bool) string {
	return fmt.Sprintf(`standAlone: true
pullOn: %v
adminAddr: %s
logLevel: info
shutdownTimeout: 20s
dbConfig: {dbPath: %s, cacheMB: 16, memTableMB: 16}
pullConfig: {innerGroup: %s, innerTopic: %s, cproxyAddrs: %q, threadNum: %d, maxBatchSize: %d, maxLingerTimeMs: 200, retryIntervalMs: 100}
pushConfig: {pproxyAddrs: [%q], proxyTimeoutMs: 2000, clientTimeoutMs: 5000, batchSendThreadNum: %d}
`, pullOn, admin, filepath.Join(dir, "db"), innerGroup, innerTopic, s.caddr, o.pullThreads, o.pullBatch, s.paddr, o.sendThreads)
}
