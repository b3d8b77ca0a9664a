package config

import (
	"testing"
)

func TestParsePProxyConfigExample(t *testing.T) {
	c := mustParsePProxy(t, examplePProxy)
	if c.Instance != "10.0.0.11:9613" || c.ProxyCluster != "P_ddmq" {
		t.Fatalf("identity: %+v", c)
	}
	if !equalStrings(c.BrokerClusters, []string{"R_default", "K_main"}) || len(c.Topics) != 4 {
		t.Fatalf("lists: %v %v", c.BrokerClusters, c.Topics)
	}
	cc := c.CarreraConfiguration
	if !cc.UseKafka || !cc.UseRocketmq || !cc.UseRequestLimiter || cc.RocketmqProducers != 3 || cc.KafkaProducers != 2 {
		t.Fatalf("switches: %+v", cc)
	}
	if cc.MaxTps != 30000 || cc.TpsWarningRatio != 0.8 || cc.LimiterFailureRetryQueueSize != 1024 || !cc.WarmUpFetchTopicRouteInfo {
		t.Fatalf("limits: %+v", cc)
	}
	if ts := cc.ThriftServer; ts.SelectorThreads != 8 || ts.MaxReadBufferBytes != 5000000 || ts.WorkerQueueSize != 20000 || ts.TimeoutCheckerThreads != 3 || ts.Port != 9613 {
		t.Fatalf("thriftServer: %+v", ts)
	}
	r := cc.RocketmqConfigurationMap["R_default"]
	if len(r.NamesrvAddrs) != 2 || r.GroupPrefix != "carrera_rocketmq_producer_" || r.MaxMessageSize != 2097152 || r.SendMsgTimeout != 3000 {
		t.Fatalf("rocketmq: %+v", r)
	}
	k := cc.KafkaConfigurationMap["K_main"]
	if k.Acks != "all" || k.ClientID != "pproxy" || k.BufferMemory != 33554432 || k.MetadataMaxAge != 300000 {
		t.Fatalf("kafka: %+v", k)
	}
	if cc.Delay == nil || cc.Delay.InnerTopicNum != 1 || cc.Delay.ChronosInnerTopicPrefix != "R_test_chronos_inner_" {
		t.Fatalf("delay: %+v", cc.Delay)
	}
	if got := cc.Delay.InnerTopics(); !equalStrings(got, []string{"R_test_chronos_inner_0"}) {
		t.Fatalf("inner topics: %v", got)
	}
	if !cc.UseAutoBatch || cc.AutoBatch == nil || *cc.AutoBatch != DefaultBatchMQProducerConfiguration() {
		t.Fatalf("autoBatch: %+v", cc.AutoBatch)
	}
	if cc.DefaultTopicInfoConf.Topics == nil || len(cc.DefaultTopicInfoConf.Topics) != 0 {
		t.Fatalf("defaultTopicInfoConf: %+v", cc.DefaultTopicInfoConf)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Fatalf("warnings: %v", w)
	}
}

func TestParsePProxyConfigDefaults(t *testing.T) {
	tests := []struct {
		name  string
		json  string
		check func(t *testing.T, c *PProxyConfig)
	}{
		{"minimal node", minimalPProxy, func(t *testing.T, c *PProxyConfig) {
			cc := c.CarreraConfiguration
			if c.Topics == nil || len(c.Topics) != 0 {
				t.Fatalf("topics default: %#v", c.Topics)
			}
			if cc.MaxTps != 100000 || cc.TpsWarningRatio != 0.9 || cc.LimiterFailureRetryQueueSize != 1024 || !cc.WarmUpFetchTopicRouteInfo {
				t.Fatalf("defaults: %+v", cc)
			}
			if cc.Delay != nil || cc.AutoBatch != nil || cc.UseAutoBatch || cc.UseKafka || cc.UseRequestLimiter || cc.WarmUpConnection {
				t.Fatalf("optional blocks: %+v", cc)
			}
			if cc.DefaultTopicInfoConf.Topics == nil {
				t.Fatal("defaultTopicInfoConf.topics must default to []")
			}
			if w := c.Warnings(); len(w) != 1 {
				t.Fatalf("want the missing retryDelays warning, got %v", w)
			}
		}},
		{"autoBatch keys default individually", patchJSON(t, minimalPProxy, func(m map[string]any) {
			cc := obj(m, "carreraConfiguration")
			cc["useAutoBatch"] = true
			cc["autoBatch"] = map[string]any{"maxBatchMessagesNumber": 8}
		}), func(t *testing.T, c *PProxyConfig) {
			want := DefaultBatchMQProducerConfiguration()
			want.MaxBatchMessagesNumber = 8
			if *c.CarreraConfiguration.AutoBatch != want {
				t.Fatalf("autoBatch: %+v", c.CarreraConfiguration.AutoBatch)
			}
		}},
		{"console seed data with vestigial keys", patchJSON(t, minimalPProxy, func(m map[string]any) {
			cc := obj(m, "carreraConfiguration")
			cc["rateLimit"] = map[string]any{"a": 1}
			cc["paramLength"] = map[string]any{"key": 255}
			m["someFutureKey"] = []any{1, "x"}
		}), func(t *testing.T, c *PProxyConfig) {}},
		{"disabled backend entries are not validated", patchJSON(t, minimalPProxy, func(m map[string]any) {
			m["brokerClusters"] = []any{"R_default", "K_off"}
			obj(m, "carreraConfiguration")["kafkaConfigurationMap"] = map[string]any{"K_off": map[string]any{}}
		}), func(t *testing.T, c *PProxyConfig) {}},
		{"ints and doubles", patchJSON(t, minimalPProxy, func(m map[string]any) {
			obj(m, "carreraConfiguration")["tpsWarningRatio"] = 1
			obj(m, "carreraConfiguration")["maxTps"] = 5
		}), func(t *testing.T, c *PProxyConfig) {
			if c.CarreraConfiguration.TpsWarningRatio != 1 || c.CarreraConfiguration.MaxTps != 5 {
				t.Fatalf("%+v", c.CarreraConfiguration)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, mustParsePProxy(t, tc.json))
		})
	}
}

func TestParsePProxyConfigInvalid(t *testing.T) {
	type edit = func(m map[string]any)
	carrera := func(f func(cc map[string]any)) edit {
		return func(m map[string]any) { f(obj(m, "carreraConfiguration")) }
	}
	tests := []struct {
		name string
		base string
		edit edit
		want []string
	}{
		{"no instance", examplePProxy, func(m map[string]any) { delete(m, "instance") }, []string{"instance must not be empty"}},
		{"no proxyCluster", examplePProxy, func(m map[string]any) { m["proxyCluster"] = "" }, []string{"proxyCluster must not be empty"}},
		{"no brokerClusters", examplePProxy, func(m map[string]any) { delete(m, "brokerClusters") },
			[]string{"brokerClusters must not be empty", `brokerClusters must contain "R_default"`, `brokerClusters must contain "K_main"`}},
		{"brokerClusters misses a kafka key", examplePProxy, func(m map[string]any) { m["brokerClusters"] = []any{"R_default"} },
			[]string{`brokerClusters must contain "K_main" (a key of carreraConfiguration.kafkaConfigurationMap)`}},
		{"no carreraConfiguration", examplePProxy, func(m map[string]any) { delete(m, "carreraConfiguration") },
			[]string{"carreraConfiguration is required"}},
		{"no thriftServer", examplePProxy, carrera(func(cc map[string]any) { delete(cc, "thriftServer") }),
			[]string{"carreraConfiguration.thriftServer is required"}},
		{"thriftServer knobs", examplePProxy, carrera(func(cc map[string]any) {
			cc["thriftServer"] = map[string]any{"workerThreads": -1, "clientTimeout": -1, "workerQueueSize": -1}
		}), []string{
			"thriftServer.selectorThreads must be > 0", "thriftServer.workerThreads must be >= 0",
			"thriftServer.acceptQueueSizePerThread must be > 0", "thriftServer.maxReadBufferBytes must be > 0",
			"thriftServer.backlog must be > 0", "thriftServer.clientTimeout must be >= 0",
			"thriftServer.workerQueueSize must be >= 0", "thriftServer.timeoutCheckerThreads must be > 0",
		}},
		{"rocketmq producers", examplePProxy, carrera(func(cc map[string]any) { cc["rocketmqProducers"] = 0 }),
			[]string{"rocketmqProducers must be > 0 when useRocketmq is true"}},
		{"kafka producers", examplePProxy, carrera(func(cc map[string]any) { delete(cc, "kafkaProducers") }),
			[]string{"kafkaProducers must be > 0 when useKafka is true"}},
		{"empty rocketmq map", examplePProxy, carrera(func(cc map[string]any) { cc["rocketmqConfigurationMap"] = map[string]any{} }),
			[]string{"rocketmqConfigurationMap must not be empty when useRocketmq is true"}},
		{"missing kafka map", examplePProxy, carrera(func(cc map[string]any) { delete(cc, "kafkaConfigurationMap") }),
			[]string{"kafkaConfigurationMap must not be empty when useKafka is true"}},
		{"rocketmq entry invalid", examplePProxy, carrera(func(cc map[string]any) {
			r := obj(cc, "rocketmqConfigurationMap", "R_default")
			r["maxMessageSize"] = 0
			r["namesrvAddrs"] = []any{}
			r["sendMsgTimeout"] = -1
		}), []string{
			`carreraConfiguration.rocketmqConfigurationMap["R_default"].maxMessageSize must be > 0`,
			`rocketmqConfigurationMap["R_default"].namesrvAddrs must not be empty`,
			`rocketmqConfigurationMap["R_default"].sendMsgTimeout must be >= 0`,
		}},
		{"rocketmq entry null", examplePProxy, carrera(func(cc map[string]any) { obj(cc, "rocketmqConfigurationMap")["R_default"] = nil }),
			[]string{`rocketmqConfigurationMap["R_default"].namesrvAddrs must not be empty`}},
		{"kafka entry invalid", examplePProxy, carrera(func(cc map[string]any) {
			k := obj(cc, "kafkaConfigurationMap", "K_main")
			k["acks"] = "2"
			k["bufferMemory"] = 0
			delete(k, "bootstrapServers")
		}), []string{
			`kafkaConfigurationMap["K_main"].acks must be all, -1, 1 or 0`,
			`kafkaConfigurationMap["K_main"].bufferMemory must be > 0`,
			`kafkaConfigurationMap["K_main"].bootstrapServers must not be empty`,
		}},
		{"kafka acks missing", examplePProxy, carrera(func(cc map[string]any) { delete(obj(cc, "kafkaConfigurationMap", "K_main"), "acks") }),
			[]string{"acks is required"}},
		{"cluster in both maps", examplePProxy, carrera(func(cc map[string]any) {
			obj(cc, "kafkaConfigurationMap")["R_default"] = obj(cc, "kafkaConfigurationMap", "K_main")
		}), []string{`cluster "R_default" is a key of both`}},
		{"delay invalid", examplePProxy, carrera(func(cc map[string]any) { cc["delay"] = map[string]any{"innerTopicNum": 0} }),
			[]string{"delay.innerTopicNum must be > 0", "delay.chronosInnerTopicPrefix must not be empty"}},
		{"autoBatch required", examplePProxy, carrera(func(cc map[string]any) { delete(cc, "autoBatch") }),
			[]string{"autoBatch is required when useAutoBatch is true"}},
		{"autoBatch invalid", examplePProxy, carrera(func(cc map[string]any) {
			cc["autoBatch"] = map[string]any{"maxBatchMessagesNumber": 0, "batchWaitMills": -1}
		}), []string{"autoBatch.maxBatchMessagesNumber must be > 0", "autoBatch.batchWaitMills must be >= 0"}},
		{"node maxTps", examplePProxy, carrera(func(cc map[string]any) { cc["maxTps"] = 0 }),
			[]string{"carreraConfiguration.maxTps must be > 0"}},
		{"tpsWarningRatio zero", examplePProxy, carrera(func(cc map[string]any) { cc["tpsWarningRatio"] = 0 }),
			[]string{"tpsWarningRatio must be in (0, 1]"}},
		{"tpsWarningRatio above one", examplePProxy, carrera(func(cc map[string]any) { cc["tpsWarningRatio"] = 1.5 }),
			[]string{"tpsWarningRatio must be in (0, 1]"}},
		{"static topic null", examplePProxy, carrera(func(cc map[string]any) {
			cc["defaultTopicInfoConf"] = map[string]any{"topics": []any{nil}}
		}), []string{"defaultTopicInfoConf.topics[0] must not be null"}},
		{"static topic invalid", examplePProxy, carrera(func(cc map[string]any) {
			cc["defaultTopicInfoConf"] = map[string]any{"topics": []any{map[string]any{"topic": "s"}}}
		}), []string{"defaultTopicInfoConf.topics[0].topicUnits must not be empty"}},
		{"wrong JSON type", examplePProxy, func(m map[string]any) { m["topics"] = "order_created" }, []string{"invalid JSON"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParsePProxyConfig([]byte(patchJSON(t, tc.base, tc.edit)))
			if c != nil {
				t.Fatal("got a config, want nil")
			}
			wantErr(t, err, tc.want...)
		})
	}

	for _, doc := range []string{``, `null`, `[]`, `{"instance":`, `"x"`} {
		if _, err := ParsePProxyConfig([]byte(doc)); err == nil {
			t.Errorf("ParsePProxyConfig(%q): want error", doc)
		}
	}
}
