package contract_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	rmqtb "github.com/ddmq-go/carrera/internal/testbroker/rocketmq"
	"github.com/ddmq-go/carrera/internal/testenv"
)

// backend is one broker technology under the suite. Everything that may
// differ between technologies is here; the cases in contract_test.go never
// look at the name.
type backend struct {
	name string
	// start starts a broker for one stack (stopped in t.Cleanup).
	start func(t *testing.T) *broker
}

// broker is a running broker as the suite sees it.
type broker struct {
	// cluster is the broker-cluster name in ZooKeeper.
	cluster string
	// createTopic creates topic with n qids.
	createTopic func(topic string, n int)
	// pproxyConf are the carreraConfiguration keys selecting the cluster
	// (use*, *Producers, *ConfigurationMap).
	pproxyConf map[string]any
	// cproxyConf are the /cproxy node keys of the cluster (kafkaConfigs or
	// rocketmqConfigs).
	cproxyConf map[string]any
	// qid names the queue/partition that pproxy's partitionId p (0 <= p <
	// n) selects in a topic of n qids.
	qid func(p, n int) string
	// qidPattern matches every QID of the cluster (wire-contract.md §5).
	qidPattern *regexp.Regexp
}

// backends are the technologies the suite runs against.
var backends = []backend{
	{name: "kafka", start: startKafka},
	{name: "rocketmq", start: startRocketMQ},
}

// startKafka starts kfake (one broker, no topic auto-creation, short group
// session timeouts accepted).
func startKafka(t *testing.T) *broker {
	const cluster = "K_ct"
	k := testenv.StartKafka(t, kfake.GroupMinSessionTimeout(100*time.Millisecond))
	return &broker{
		cluster:     cluster,
		createTopic: func(topic string, n int) { k.CreateTopic(topic, int32(n)) },
		pproxyConf: map[string]any{
			"useKafka": true, "kafkaProducers": 1,
			"kafkaConfigurationMap": map[string]any{cluster: map[string]any{
				"bootstrapServers": k.Addrs(), "acks": "all", "retries": 0, "batchSize": 16384,
				"clientId": "pproxy-contract", "retryBackoff": 100, "metadataMaxAge": 300000,
				"metadataFetchTimeout": 5000, "ackTimeout": 3000, "bufferMemory": 33554432}},
		},
		cproxyConf: map[string]any{"kafkaConfigs": map[string]any{cluster: map[string]any{
			"clusterName": cluster, "zookeeperAddr": "127.0.0.1:1/kafka",
			"autoCommitInterval": 100, "rebalanceMaxRetries": 8, "partitionAssignmentStrategy": "range",
			"extra": map[string]any{"bootstrap.servers": strings.Join(k.Addrs(), ",")}}}},
		qid:        func(p, _ int) string { return fmt.Sprintf("%s_%d", cluster, p) },
		qidPattern: regexp.MustCompile(`^` + cluster + `_[0-9]+$`),
	}
}

// startRocketMQ starts the test broker with broker-a and broker-b (no
// topic auto-creation); a topic of n qids has n/2 queues on each broker.
func startRocketMQ(t *testing.T) *broker {
	const cluster = "R_ct"
	names := []string{"broker-a", "broker-b"}
	r := testenv.StartRocketMQ(t, testenv.RocketMQBrokers(names...), testenv.RocketMQNoAutoCreate(),
		func(o *rmqtb.Options) { o.MaxPullHold = 500 * time.Millisecond })
	return &broker{
		cluster: cluster,
		createTopic: func(topic string, n int) {
			if n%len(names) != 0 {
				t.Fatalf("rocketmq fixture: %d qids do not split over %d brokers", n, len(names))
			}
			r.CreateTopic(topic, n/len(names))
		},
		pproxyConf: map[string]any{
			"useRocketmq": true, "rocketmqProducers": 2,
			"rocketmqConfigurationMap": map[string]any{cluster: map[string]any{
				"namesrvAddrs": []string{r.NameServer}, "groupPrefix": "carrera_contract_", "sendMsgTimeout": 3000,
				"compressMsgBodyOverHowmuch": 4096, "retryTimesWhenSendFailed": 0,
				"retryAnotherBrokerWhenNotStoreOK": false, "maxMessageSize": 2097152,
				"clientCallbackExecutorThreads": 4, "pollNameServerInterval": 2000,
				"heartbeatBrokerInterval": 10000, "persistConsumerOffsetInterval": 5000}},
		},
		cproxyConf: map[string]any{"rocketmqConfigs": map[string]any{cluster: map[string]any{
			"clusterName": cluster, "namesrvAddrs": []string{r.NameServer},
			"groupPrefix": "carrera_rocketmq_consumer_", "pollNameServerInterval": 500,
			"heartbeatBrokerInterval": 1000, "persistConsumerOffsetInterval": 100,
			"consumeConcurrentlyMaxSpan": 2000, "consumeMessageBatchMaxSize": 1, "pullBatchSize": 32,
			"pullThresholdForQueue": 1000, "consumeFromWhere": "CONSUME_FROM_LAST_OFFSET"}}},
		// pproxy's queue list is sorted by (brokerName, queueId).
		qid: func(p, n int) string {
			per := n / len(names)
			return fmt.Sprintf("%s_%s_%d", cluster, names[p/per], p%per)
		},
		qidPattern: regexp.MustCompile(`^` + cluster + `_broker-[ab]_[0-9]+$`),
	}
}
