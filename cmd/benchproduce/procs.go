package main

// The pproxy side of the stack: its ZooKeeper nodes and the process. The
// generic process management lives in internal/benchutil.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bu "github.com/ddmq-go/carrera/internal/benchutil"
)

// pproxyNode is the /pproxy/<instance> node: one Kafka cluster, no request
// limiter, acks all, one producer client, the topic white-listed.
func pproxyNode(instance string, port int, brokers []string, topic string) []byte {
	return bu.MustJSON(map[string]any{
		"instance": instance, "proxyCluster": "P_bench", "brokerClusters": []string{"K_bench"},
		"topics": []string{topic},
		"carreraConfiguration": map[string]any{
			"retryDelays": []int{200}, "useKafka": true, "useRocketmq": false, "kafkaProducers": 1,
			"useRequestLimiter": false, "maxTps": 1000000, "tpsWarningRatio": 0.9,
			"warmUpFetchTopicRouteInfo": true,
			"thriftServer": map[string]any{"selectorThreads": 1, "workerThreads": 0, "acceptQueueSizePerThread": 100,
				"maxReadBufferBytes": 5000000, "backlog": 50, "clientTimeout": 0, "workerQueueSize": 100,
				"timeoutCheckerThreads": 1, "port": port},
			"kafkaConfigurationMap": map[string]any{"K_bench": map[string]any{
				"bootstrapServers": brokers, "acks": "all", "retries": 0, "batchSize": 16384,
				"clientId": "pproxy-bench", "retryBackoff": 100, "metadataMaxAge": 300000,
				"metadataFetchTimeout": 5000, "ackTimeout": 3000, "bufferMemory": 33554432}},
		},
	})
}

// topicNode is /topic/<topic>, bound to instance on K_bench.
func topicNode(topic, instance string) []byte {
	return bu.MustJSON(map[string]any{
		"topic": topic,
		"topicUnits": []map[string]any{{"brokerCluster": "K_bench",
			"proxies": map[string][]string{"P_bench": {instance}}, "totalMaxTps": 1000000, "maxTps": 1000000}},
		"delayTopic": false, "limiterFailureRetryInterval": 0,
	})
}

// startPProxy writes carrera.yaml under dir and starts pproxy; it returns
// once http://adminAddr/healthz answers 200.
func startPProxy(ctx context.Context, bin, dir, zkAddr string, port int, adminAddr, cpus string, env []string) (*bu.Proc, error) {
	cache := filepath.Join(dir, "cache")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, err
	}
	yaml := fmt.Sprintf("zookeeperAddr: %s%s\nhost: 127.0.0.1\nport: %d\nadminAddr: %s\nconfigCacheDir: %s\n"+
		"logLevel: info\nlogDir: \"\"\nzkStartTimeout: 5s\nshutdownTimeout: 5s\n",
		zkAddr, bu.ZKChroot, port, adminAddr, cache)
	conf := filepath.Join(dir, "carrera.yaml")
	if err := os.WriteFile(conf, []byte(yaml), 0o644); err != nil {
		return nil, err
	}
	p, err := bu.StartProc("pproxy", dir, filepath.Join(dir, "pproxy.log"), cpus, env, bin, "-conf", conf)
	if err != nil {
		return nil, err
	}
	if err := bu.WaitHealthy(ctx, p, adminAddr, 60*time.Second); err != nil {
		p.Stop(bu.StopGrace)
		return nil, err
	}
	return p, nil
}
