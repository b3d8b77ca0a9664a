package config

import (
	"strings"
	"testing"
)

// exampleCProxy is zookeeper-layout.md §10.5, verbatim.
const exampleCProxy = `{
  "instance": "10.0.0.21:9713",
  "proxyCluster": "C_ddmq",
  "brokerClusters": ["R_default", "K_main"],
  "rocketmqConfigs": {
    "R_default": {"clusterName": "R_default", "namesrvAddrs": ["10.0.1.1:9876", "10.0.1.2:9876"],
                  "groupPrefix": "carrera_rocketmq_consumer_", "pullBatchSize": 32,
                  "pullThresholdForQueue": 1000, "pollNameServerInterval": 2000,
                  "consumeMessageBatchMaxSize": 1, "heartbeatBrokerInterval": 2000,
                  "consumeConcurrentlyMaxSpan": 2000, "persistConsumerOffsetInterval": 5000,
                  "consumeFromWhere": "CONSUME_FROM_LAST_OFFSET"}
  },
  "kafkaConfigs": {
    "K_main": {"clusterName": "K_main", "zookeeperAddr": "10.0.1.5:2181/kafka",
               "autoCommitInterval": 5000, "rebalanceMaxRetries": 8,
               "partitionAssignmentStrategy": "range",
               "extra": {"bootstrap.servers": "10.0.1.6:9092,10.0.1.7:9092"}}
  },
  "thriftServer": {"port": 9713, "selectorThreads": 16, "workerThreads": 128,
                   "acceptQueueSizePerThread": 100, "maxReadBufferBytes": 5000000,
                   "backlog": 50, "workerQueueSize": 20000, "maxRecvMsgsLength": 4194304},
  "groups": ["cg_order_pull", "cg_order_http", "cg_clicks_lowlevel", "cg_R_test_chronos_inner_0_0"]
}`

// minimalCProxy is the smallest valid node: one RocketMQ cluster, the
// thriftServer block defaulted, no groups.
const minimalCProxy = `{
  "instance": "127.0.0.1:9713", "proxyCluster": "C_test", "brokerClusters": ["R_default"],
  "rocketmqConfigs": {
    "R_default": {"namesrvAddrs": ["127.0.0.1:9876"], "groupPrefix": "g", "pullBatchSize": 32,
                  "pullThresholdForQueue": 1000, "pollNameServerInterval": 2000,
                  "consumeMessageBatchMaxSize": 1, "heartbeatBrokerInterval": 2000,
                  "consumeConcurrentlyMaxSpan": 2000, "persistConsumerOffsetInterval": 5000}
  },
  "thriftServer": {}
}`

func mustParseCProxy(t testing.TB, s string) *CProxyConfig {
	t.Helper()
	c, err := ParseCProxyConfig([]byte(s))
	if err != nil {
		t.Fatalf("ParseCProxyConfig: %v", err)
	}
	return c
}

func TestParseCProxyConfigExample(t *testing.T) {
	c := mustParseCProxy(t, exampleCProxy)
	if c.Instance != "10.0.0.21:9713" || c.ProxyCluster != "C_ddmq" {
		t.Fatalf("identity: %+v", c)
	}
	if !equalStrings(c.BrokerClusters, []string{"R_default", "K_main"}) || len(c.Groups) != 4 {
		t.Fatalf("lists: %v %v", c.BrokerClusters, c.Groups)
	}
	r := c.RocketmqConfigs["R_default"]
	if r.ClusterName != "R_default" || len(r.NamesrvAddrs) != 2 || r.GroupPrefix != "carrera_rocketmq_consumer_" ||
		r.PullBatchSize != 32 || r.PullThresholdForQueue != 1000 || r.PersistConsumerOffsetInterval != 5000 ||
		r.ConsumeConcurrentlyMaxSpan != 2000 || r.ConsumeMessageBatchMaxSize != 1 {
		t.Fatalf("rocketmq: %+v", r)
	}
	if r.StartFrom() != ConsumeFromLastOffset || r.Broadcasting() || r.ConsumeThreadMin != nil || r.PullThresholdForTopic != nil {
		t.Fatalf("rocketmq options: %+v", r)
	}
	k := c.KafkaConfigs["K_main"]
	if k.ZookeeperAddr != "10.0.1.5:2181/kafka" || k.AutoCommitInterval != 5000 || k.RebalanceMaxRetries != 8 || k.Assignment() != AssignmentRange {
		t.Fatalf("kafka: %+v", k)
	}
	if got := k.BootstrapServers(); !equalStrings(got, []string{"10.0.1.6:9092", "10.0.1.7:9092"}) {
		t.Fatalf("bootstrap servers: %v", got)
	}
	if *c.ThriftServer != DefaultConsumeServerConfiguration() {
		t.Fatalf("thriftServer: %+v", c.ThriftServer)
	}
	if c.ClusterKind("R_default") != ClusterRocketMQ || c.ClusterKind("K_main") != ClusterKafka || c.ClusterKind("X") != ClusterNone {
		t.Fatal("cluster kinds")
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Fatalf("warnings: %v", w)
	}
}

func TestParseCProxyConfigDefaults(t *testing.T) {
	tests := []struct {
		name  string
		json  string
		check func(t *testing.T, c *CProxyConfig)
	}{
		{"minimal node", minimalCProxy, func(t *testing.T, c *CProxyConfig) {
			if c.Groups == nil || len(c.Groups) != 0 {
				t.Fatalf("groups default: %#v", c.Groups)
			}
			if *c.ThriftServer != DefaultConsumeServerConfiguration() {
				t.Fatalf("thriftServer defaults: %+v", c.ThriftServer)
			}
			if c.KafkaConfigs != nil {
				t.Fatalf("kafkaConfigs: %+v", c.KafkaConfigs)
			}
		}},
		{"kafka defaults and lenient extra", patchJSON(t, minimalCProxy, func(m map[string]any) {
			m["brokerClusters"] = []any{"R_default", "K"}
			m["kafkaConfigs"] = map[string]any{"K": map[string]any{
				"zookeeperAddr": "zk:2181", "autoCommitInterval": 1000,
				"extra": map[string]any{"bootstrap.servers": " a:1 , ,b:2,", "fetch.max.bytes": 1048576,
					"check.crcs": true, "gone": nil},
			}}
		}), func(t *testing.T, c *CProxyConfig) {
			k := c.KafkaConfigs["K"]
			if k.RebalanceMaxRetries != 8 || k.PartitionAssignmentStrategy != "range" {
				t.Fatalf("kafka defaults: %+v", k)
			}
			if !equalStrings(k.BootstrapServers(), []string{"a:1", "b:2"}) {
				t.Fatalf("servers: %q", k.BootstrapServers())
			}
			if k.Extra["fetch.max.bytes"] != "1048576" || k.Extra["check.crcs"] != "true" {
				t.Fatalf("extra: %v", k.Extra)
			}
			if _, ok := k.Extra["gone"]; ok {
				t.Fatal("null extra value must be dropped")
			}
		}},
		{"kafka without bootstrap.servers", patchJSON(t, minimalCProxy, func(m map[string]any) {
			m["kafkaConfigs"] = map[string]any{"K": map[string]any{"zookeeperAddr": "zk:2181", "autoCommitInterval": 1000,
				"partitionAssignmentStrategy": "roundrobin"}}
		}), func(t *testing.T, c *CProxyConfig) {
			k := c.KafkaConfigs["K"]
			if k.BootstrapServers() != nil || k.Assignment() != AssignmentRoundRobin {
				t.Fatalf("kafka: %+v", k)
			}
			if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0], `cluster "K" is configured but not listed`) {
				t.Fatalf("warnings: %v", w)
			}
		}},
		{"unknown assignment strategy means range", patchJSON(t, minimalCProxy, func(m map[string]any) {
			m["brokerClusters"] = []any{"R_default", "K"}
			m["kafkaConfigs"] = map[string]any{"K": map[string]any{"zookeeperAddr": "zk", "autoCommitInterval": 1,
				"partitionAssignmentStrategy": "sticky"}}
		}), func(t *testing.T, c *CProxyConfig) {
			if k := c.KafkaConfigs["K"]; k.Assignment() != AssignmentRange {
				t.Fatal(k.Assignment())
			}
			if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0], "partitionAssignmentStrategy") {
				t.Fatalf("warnings: %v", w)
			}
		}},
		{"rocketmq optional keys", patchJSON(t, minimalCProxy, func(m map[string]any) {
			r := obj(m, "rocketmqConfigs", "R_default")
			r["consumeFromWhere"] = "CONSUME_FROM_TIMESTAMP"
			r["consumeTimestamp"] = "20240131235959"
			r["messageModel"] = "BROADCASTING"
			r["consumeThreadMin"] = 4
			r["consumeThreadMax"] = 8
			r["pullThresholdForTopic"] = 5000
			r["subscription"] = map[string]any{"t1": " a || b "}
			r["orderly"] = true
		}), func(t *testing.T, c *CProxyConfig) {
			r := c.RocketmqConfigs["R_default"]
			if r.StartFrom() != ConsumeFromTimestamp || !r.Broadcasting() || *r.ConsumeThreadMin != 4 || *r.ConsumeThreadMax != 8 {
				t.Fatalf("%+v", r)
			}
			if r.TagExpression("t1", "*") != "a || b" || r.TagExpression("t2", "x||y") != "x||y" {
				t.Fatal("subscription override")
			}
		}},
		{"deprecated consumeFromWhere means last offset", patchJSON(t, minimalCProxy, func(m map[string]any) {
			obj(m, "rocketmqConfigs", "R_default")["consumeFromWhere"] = "CONSUME_FROM_MAX_OFFSET"
		}), func(t *testing.T, c *CProxyConfig) {
			if r := c.RocketmqConfigs["R_default"]; r.StartFrom() != ConsumeFromLastOffset {
				t.Fatal(r.StartFrom())
			}
		}},
		{"unknown keys ignored, keys case-insensitive", patchJSON(t, minimalCProxy, func(m map[string]any) {
			m["someFutureKey"] = map[string]any{"x": 1}
			m["GROUPS"] = []any{"g1"}
			obj(m, "thriftServer")["MaxRecvMsgsLength"] = 77
		}), func(t *testing.T, c *CProxyConfig) {
			if !equalStrings(c.Groups, []string{"g1"}) || c.ThriftServer.MaxRecvMsgsLength != 77 {
				t.Fatalf("%+v %+v", c.Groups, c.ThriftServer)
			}
		}},
		{"brokerCluster without configuration warns", patchJSON(t, minimalCProxy, func(m map[string]any) {
			m["brokerClusters"] = []any{"R_default", "R_gone"}
		}), func(t *testing.T, c *CProxyConfig) {
			if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0], `"R_gone" but neither`) {
				t.Fatalf("warnings: %v", w)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, mustParseCProxy(t, tc.json))
		})
	}
}

func TestParseCProxyConfigInvalid(t *testing.T) {
	type edit = func(m map[string]any)
	rocket := func(f func(r map[string]any)) edit {
		return func(m map[string]any) { f(obj(m, "rocketmqConfigs", "R_default")) }
	}
	kafka := func(f func(k map[string]any)) edit {
		return func(m map[string]any) { f(obj(m, "kafkaConfigs", "K_main")) }
	}
	tests := []struct {
		name string
		edit edit
		want []string
	}{
		{"identity", func(m map[string]any) { delete(m, "instance"); m["proxyCluster"] = ""; m["brokerClusters"] = []any{} },
			[]string{"instance must not be empty", "proxyCluster must not be empty", "brokerClusters must not be empty"}},
		{"no cluster maps", func(m map[string]any) { delete(m, "rocketmqConfigs"); m["kafkaConfigs"] = map[string]any{} },
			[]string{"at least one of kafkaConfigs and rocketmqConfigs must be present"}},
		{"no thriftServer", func(m map[string]any) { delete(m, "thriftServer") }, []string{"thriftServer is required"}},
		{"null thriftServer", func(m map[string]any) { m["thriftServer"] = nil }, []string{"thriftServer is required"}},
		{"thriftServer knobs", func(m map[string]any) {
			m["thriftServer"] = map[string]any{"selectorThreads": 0, "workerThreads": -1, "acceptQueueSizePerThread": 0,
				"maxReadBufferBytes": 0, "backlog": 0, "workerQueueSize": 0, "maxRecvMsgsLength": -5}
		}, []string{
			"thriftServer.selectorThreads must be > 0", "thriftServer.workerThreads must be > 0",
			"thriftServer.acceptQueueSizePerThread must be > 0", "thriftServer.maxReadBufferBytes must be > 0",
			"thriftServer.backlog must be > 0", "thriftServer.workerQueueSize must be > 0",
			"thriftServer.maxRecvMsgsLength must be > 0, got -5",
		}},
		{"rocketmq required keys", func(m map[string]any) {
			obj(m, "rocketmqConfigs")["R_default"] = map[string]any{}
		}, []string{
			`rocketmqConfigs["R_default"].namesrvAddrs must not be empty`,
			`rocketmqConfigs["R_default"].groupPrefix must not be empty`,
			`rocketmqConfigs["R_default"].pollNameServerInterval must be > 0`,
			`rocketmqConfigs["R_default"].heartbeatBrokerInterval must be > 0`,
			`rocketmqConfigs["R_default"].persistConsumerOffsetInterval must be > 0`,
			`rocketmqConfigs["R_default"].consumeConcurrentlyMaxSpan must be > 0`,
			`rocketmqConfigs["R_default"].consumeMessageBatchMaxSize must be > 0`,
			`rocketmqConfigs["R_default"].pullBatchSize must be > 0`,
			`rocketmqConfigs["R_default"].pullThresholdForQueue must be > 0`,
		}},
		{"null rocketmq entry", func(m map[string]any) { obj(m, "rocketmqConfigs")["R_default"] = nil },
			[]string{`rocketmqConfigs["R_default"].namesrvAddrs must not be empty`}},
		{"rocketmq enums", rocket(func(r map[string]any) {
			r["consumeFromWhere"] = "CONSUME_FROM_NOWHERE"
			r["messageModel"] = "clustering"
			r["consumeTimestamp"] = "2024-01-01"
		}), []string{"consumeFromWhere must be", "messageModel must be CLUSTERING or BROADCASTING", "consumeTimestamp must be yyyyMMddHHmmss"}},
		{"rocketmq optional ints", rocket(func(r map[string]any) {
			r["consumeThreadMin"] = 9
			r["consumeThreadMax"] = 3
			r["pullThresholdForTopic"] = 0
			r["subscription"] = map[string]any{"t": " "}
		}), []string{"consumeThreadMin (9) must not exceed consumeThreadMax (3)", "pullThresholdForTopic must be > 0 when present",
			`subscription["t"] must not be empty`}},
		{"kafka required keys", kafka(func(k map[string]any) { delete(k, "zookeeperAddr"); k["autoCommitInterval"] = 0 }),
			[]string{`kafkaConfigs["K_main"].zookeeperAddr must not be empty`, `kafkaConfigs["K_main"].autoCommitInterval must be > 0`}},
		{"kafka bootstrap.servers empty", kafka(func(k map[string]any) { k["extra"] = map[string]any{"bootstrap.servers": " , "} }),
			[]string{`extra["bootstrap.servers"] must list at least one host:port`}},
		{"kafka bootstrap.servers not host:port", kafka(func(k map[string]any) { k["extra"] = map[string]any{"bootstrap.servers": "a:1,b"} }),
			[]string{`"b" is not host:port`}},
		{"cluster in both maps", func(m map[string]any) {
			obj(m, "kafkaConfigs")["R_default"] = obj(m, "kafkaConfigs", "K_main")
		}, []string{`cluster "R_default" is a key of both rocketmqConfigs and kafkaConfigs`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCProxyConfig([]byte(patchJSON(t, exampleCProxy, tc.edit)))
			if c != nil {
				t.Fatal("config returned with an error")
			}
			wantErr(t, err, tc.want...)
			wantErr(t, err, `cproxy config "`)
		})
	}

	for _, doc := range []string{`not json`, `[]`, `{"kafkaConfigs":{"K":{"extra":{"a":[1]}}}}`, `{"groups":"g"}`} {
		if _, err := ParseCProxyConfig([]byte(doc)); err == nil {
			t.Errorf("%s: want an error", doc)
		} else {
			wantErr(t, err, "cproxy config: invalid JSON")
		}
	}
}

func FuzzParseCProxyConfig(f *testing.F) {
	for _, s := range []string{
		exampleCProxy, minimalCProxy,
		`{"instance":"i","proxyCluster":"C","brokerClusters":["R"],"rocketmqConfigs":{"R":null},"thriftServer":null}`,
		`{"kafkaConfigs":{"K":{"extra":{"bootstrap.servers":"a:1,,b:2","n":1,"b":false,"z":null}}}}`,
		`{"kafkaConfigs":{"K":{"extra":{"bootstrap.servers":[1]}}}}`,
		`{"rocketmqConfigs":{"R":{"consumeThreadMin":1e3,"subscription":{"t":"a||b"}}},"groups":[null,"",""]}`,
		`null`, `{}`, `"x"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCProxyConfig(data)
		if err != nil {
			if c != nil {
				t.Fatal("config returned with an error")
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config does not re-validate: %v", err)
		}
		_ = c.Warnings()
		snap, err := BuildCProxySnapshot("127.0.0.1:9713", c, nil)
		if err != nil {
			t.Fatalf("valid node does not build: %v", err)
		}
		if len(snap.Units) != 0 || len(snap.Groups) != 0 {
			t.Fatal("units without groups")
		}
		for _, b := range c.BrokerClusters {
			_ = snap.ClusterKind(b)
		}
		for _, k := range c.KafkaConfigs {
			for _, s := range k.BootstrapServers() {
				if s == "" {
					t.Fatal("empty bootstrap server")
				}
			}
		}
		for _, r := range c.RocketmqConfigs {
			switch r.StartFrom() {
			case ConsumeFromLastOffset, ConsumeFromFirstOffset, ConsumeFromTimestamp:
			default:
				t.Fatalf("StartFrom %q", r.StartFrom())
			}
		}
		d := DiffCProxySnapshots(nil, snap)
		if len(d.Added) != 0 || len(d.ClustersChanged) != len(c.RocketmqConfigs)+len(c.KafkaConfigs) {
			t.Fatalf("diff from nil: %+v", d)
		}
		if !DiffCProxySnapshots(snap, snap).Empty() {
			t.Fatal("self diff not empty")
		}
	})
}

func TestKafkaInitialOffset(t *testing.T) {
	for _, tc := range []struct {
		extra map[string]string
		want  string
		valid bool
	}{
		{nil, "newest", true},
		{map[string]string{"auto.offset.reset": "earliest"}, "oldest", true},
		{map[string]string{"auto.offset.reset": " Smallest "}, "oldest", true},
		{map[string]string{"auto.offset.reset": "largest"}, "newest", true},
		{map[string]string{"auto.offset.reset": "latest"}, "newest", true},
		{map[string]string{"auto.offset.reset": "none"}, "", false},
	} {
		c := KafkaConsumerConfiguration{ZookeeperAddr: "zk:2181", AutoCommitInterval: 1000, Extra: tc.extra}
		if got := c.InitialOffset(); got != tc.want {
			t.Errorf("%v: InitialOffset %q, want %q", tc.extra, got, tc.want)
		}
		if err := c.Validate(); (err == nil) != tc.valid {
			t.Errorf("%v: Validate() = %v, want valid=%v", tc.extra, err, tc.valid)
		}
	}
}
