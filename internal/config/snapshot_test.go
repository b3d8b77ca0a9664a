package config

import (
	"fmt"
	"reflect"
	"testing"
)

const (
	inst11 = "10.0.0.11:9613"
	inst12 = "10.0.0.12:9613"
)

// exampleTopics returns the §10 topics keyed by node name.
func exampleTopics(t *testing.T) map[string]*TopicConfig {
	t.Helper()
	m := map[string]*TopicConfig{}
	for _, s := range []string{exampleTopicOrderCreated, exampleTopicClicks, exampleTopicOrderTimeout, exampleTopicInner0} {
		c := mustParseTopic(t, s)
		m[c.Topic] = c
	}
	return m
}

// topicJSON builds a topic node; units are "cluster@maxTps@proxy,proxy".
func topicJSON(name string, units ...string) string {
	s := fmt.Sprintf(`{"topic":%q,"topicUnits":[`, name)
	for i, u := range units {
		var cluster, proxies string
		var tps float64
		fmt.Sscanf(u, "%s %g %s", &cluster, &tps, &proxies)
		if i > 0 {
			s += ","
		}
		list := "[]"
		if proxies != "" {
			list = fmt.Sprintf("[%q]", proxies)
		}
		s += fmt.Sprintf(`{"brokerCluster":%q,"maxTps":%g,"proxies":{"P_x":%s}}`, cluster, tps, list)
	}
	return s + "]}"
}

func TestBuildPProxySnapshotExample(t *testing.T) {
	node := mustParsePProxy(t, examplePProxy)
	snap, err := BuildPProxySnapshot(inst11, node, exampleTopics(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	// §10.4: order_created → R_default, 1000/s; clicks → K_main, 5000/s;
	// 2 MiB body limit for both.
	type want struct {
		clusters []string
		maxTps   float64
		body     int
	}
	for name, w := range map[string]want{
		"order_created":          {[]string{"R_default"}, 1000, 2097152},
		"clicks":                 {[]string{"K_main"}, 5000, DefaultMaxBodyBytes},
		"order_timeout":          {[]string{"R_default"}, 250, 2097152},
		"R_test_chronos_inner_0": {[]string{"R_default"}, 1000, 2097152},
	} {
		v, ok := snap.Topic(name)
		if !ok {
			t.Fatalf("%s not served", name)
		}
		if !equalStrings(v.Clusters, w.clusters) || v.MaxTps != w.maxTps || v.MaxBodyBytes != w.body || v.Name != name {
			t.Errorf("%s: got clusters=%v maxTps=%v body=%d", name, v.Clusters, v.MaxTps, v.MaxBodyBytes)
		}
	}
	if len(snap.Topics) != 4 {
		t.Fatalf("served: %d topics", len(snap.Topics))
	}
	if snap.ClusterKind("R_default") != ClusterRocketMQ || snap.ClusterKind("K_main") != ClusterKafka || snap.ClusterKind("X") != ClusterNone {
		t.Fatal("ClusterKind")
	}
	if p, ok := snap.DelayPrefix(); !ok || p != "R_test_chronos_inner_" {
		t.Fatalf("DelayPrefix: %q %v", p, ok)
	}
	if got := snap.MaxBodyBytes("nope"); got != DefaultMaxBodyBytes {
		t.Fatalf("MaxBodyBytes(unknown) = %d", got)
	}
	wantWatch := []string{"R_test_chronos_inner_0", "clicks", "order_created", "order_timeout"}
	if got := snap.WatchTopics(); !equalStrings(got, wantWatch) {
		t.Fatalf("WatchTopics = %v", got)
	}
	if got := WatchTopicNames(node, nil); !equalStrings(got, wantWatch) {
		t.Fatalf("WatchTopicNames = %v", got)
	}

	// The second pproxy of §10 is listed for order_created but not clicks.
	node12 := mustParsePProxy(t, patchJSON(t, examplePProxy, func(m map[string]any) { m["instance"] = inst12 }))
	snap12, err := BuildPProxySnapshot(inst12, node12, exampleTopics(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := snap12.Topic("clicks"); ok {
		t.Fatal("clicks must not be served on 10.0.0.12")
	}
	if _, ok := snap12.Topic("order_created"); !ok {
		t.Fatal("order_created must be served on 10.0.0.12")
	}
}

func TestBuildPProxySnapshotBinding(t *testing.T) {
	const me = "127.0.0.1:9613"
	base := patchJSON(t, minimalPProxy, func(m map[string]any) {
		m["brokerClusters"] = []any{"R_default", "R_small", "K_main"}
		cc := obj(m, "carreraConfiguration")
		small := map[string]any{}
		for k, v := range obj(cc, "rocketmqConfigurationMap", "R_default") {
			small[k] = v
		}
		small["maxMessageSize"] = 1000
		obj(cc, "rocketmqConfigurationMap")["R_small"] = small
		cc["useKafka"] = true
		cc["kafkaProducers"] = 1
		cc["kafkaConfigurationMap"] = map[string]any{"K_main": map[string]any{
			"bootstrapServers": []any{"127.0.0.1:9092"}, "acks": "1", "batchSize": 1, "retryBackoff": 1,
			"metadataMaxAge": 1, "metadataFetchTimeout": 1, "ackTimeout": 1, "bufferMemory": 1,
		}}
	})
	nodeWith := func(t *testing.T, white []string, static ...string) *PProxyConfig {
		t.Helper()
		return mustParsePProxy(t, patchJSON(t, base, func(m map[string]any) {
			w := []any{}
			for _, s := range white {
				w = append(w, s)
			}
			m["topics"] = w
			var st []any
			for _, s := range static {
				var x map[string]any
				_ = jsonUnmarshal(s, &x)
				st = append(st, x)
			}
			obj(m, "carreraConfiguration")["defaultTopicInfoConf"] = map[string]any{"topics": st}
		}))
	}
	parse := func(t *testing.T, docs ...string) map[string]*TopicConfig {
		m := map[string]*TopicConfig{}
		for _, d := range docs {
			c := mustParseTopic(t, d)
			m[c.Topic] = c
		}
		return m
	}
	type served struct {
		clusters []string
		maxTps   float64
		body     int
	}
	tests := []struct {
		name   string
		node   func(t *testing.T) *PProxyConfig
		topics []string
		static []string
		want   map[string]served
	}{
		{
			name:   "white-listed and listed",
			node:   func(t *testing.T) *PProxyConfig { return nodeWith(t, []string{"a"}) },
			topics: []string{topicJSON("a", "R_default 10 "+me)},
			want:   map[string]served{"a": {[]string{"R_default"}, 10, 4194304}},
		},
		{
			name:   "not white-listed",
			node:   func(t *testing.T) *PProxyConfig { return nodeWith(t, nil) },
			topics: []string{topicJSON("a", "R_default 10 "+me)},
			want:   map[string]served{},
		},
		{
			name:   "white-listed but no unit lists the instance",
			node:   func(t *testing.T) *PProxyConfig { return nodeWith(t, []string{"a"}) },
			topics: []string{topicJSON("a", "R_default 10 10.9.9.9:9613", "K_main 5")},
			want:   map[string]served{},
		},
		{
			name:   "white-listed but no node",
			node:   func(t *testing.T) *PProxyConfig { return nodeWith(t, []string{"a", "b"}) },
			topics: []string{topicJSON("a", "K_main 3 "+me)},
			want:   map[string]served{"a": {[]string{"K_main"}, 3, DefaultMaxBodyBytes}},
		},
		{
			name: "only units in management count; clusters sorted and deduped",
			node: func(t *testing.T) *PProxyConfig { return nodeWith(t, []string{"a"}) },
			topics: []string{topicJSON("a", "R_small 1 "+me, "R_default 2 "+me, "K_main 4 10.9.9.9:1",
				"R_default 8 "+me, "K_main 16 "+me)},
			want: map[string]served{"a": {[]string{"K_main", "R_default", "R_small"}, 27, 1000}},
		},
		{
			name:   "cluster without producer is served (requests get 21)",
			node:   func(t *testing.T) *PProxyConfig { return nodeWith(t, []string{"a"}) },
			topics: []string{topicJSON("a", "R_gone 7 "+me)},
			want:   map[string]served{"a": {[]string{"R_gone"}, 7, DefaultMaxBodyBytes}},
		},
		{
			name:   "bootstrap static topic served without white list",
			node:   func(t *testing.T) *PProxyConfig { return nodeWith(t, nil) },
			static: []string{topicJSON("s", "R_default 5 "+me)},
			want:   map[string]served{"s": {[]string{"R_default"}, 5, 4194304}},
		},
		{
			name:   "zookeeper topic replaces static",
			node:   func(t *testing.T) *PProxyConfig { return nodeWith(t, nil) },
			static: []string{topicJSON("s", "R_default 5 "+me)},
			topics: []string{topicJSON("s", "K_main 9 "+me)},
			want:   map[string]served{"s": {[]string{"K_main"}, 9, DefaultMaxBodyBytes}},
		},
		{
			name:   "node static replaces bootstrap static",
			node:   func(t *testing.T) *PProxyConfig { return nodeWith(t, nil, topicJSON("s", "R_small 6 "+me)) },
			static: []string{topicJSON("s", "R_default 5 "+me)},
			want:   map[string]served{"s": {[]string{"R_small"}, 6, 1000}},
		},
		{
			name: "static topic not listing the instance",
			node: func(t *testing.T) *PProxyConfig { return nodeWith(t, nil, topicJSON("s", "R_default 5 1.1.1.1:1")) },
			want: map[string]served{},
		},
		{
			name:   "unrelated zookeeper topics are ignored",
			node:   func(t *testing.T) *PProxyConfig { return nodeWith(t, []string{"a"}) },
			topics: []string{topicJSON("a", "R_default 1 "+me), topicJSON("zzz", "R_default 1 "+me)},
			want:   map[string]served{"a": {[]string{"R_default"}, 1, 4194304}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var static []*TopicConfig
			for _, s := range tc.static {
				static = append(static, mustParseTopic(t, s))
			}
			snap, err := BuildPProxySnapshot(me, tc.node(t), parse(t, tc.topics...), static)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]served{}
			for name, v := range snap.Topics {
				got[name] = served{v.Clusters, v.MaxTps, v.MaxBodyBytes}
				if len(v.Units) == 0 || v.Config == nil {
					t.Errorf("%s: empty view %+v", name, v)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("served topics:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestBuildPProxySnapshotErrors(t *testing.T) {
	node := mustParsePProxy(t, examplePProxy)
	if _, err := BuildPProxySnapshot("", node, nil, nil); err == nil {
		t.Error("empty instance: want error")
	}
	if _, err := BuildPProxySnapshot(inst11, nil, nil, nil); err == nil {
		t.Error("nil node: want error")
	}
	bad := *node
	bad.ProxyCluster = ""
	if _, err := BuildPProxySnapshot(inst11, &bad, nil, nil); err == nil {
		t.Error("invalid node: want error")
	}
	topics := exampleTopics(t)
	topics["clicks"] = &TopicConfig{Topic: "clicks"} // no units
	_, err := BuildPProxySnapshot(inst11, node, topics, nil)
	wantErr(t, err, `topic "clicks"`, "topicUnits must not be empty")
}

func TestSnapshotDelayDisabled(t *testing.T) {
	snap, err := BuildPProxySnapshot("127.0.0.1:9613", mustParsePProxy(t, minimalPProxy), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := snap.DelayPrefix(); ok || p != "" || snap.Delay() != nil {
		t.Fatalf("delay must be disabled, got %q %v", p, ok)
	}
	if len(snap.WatchTopics()) != 0 || len(snap.Topics) != 0 {
		t.Fatalf("no topics expected: %v", snap.WatchTopics())
	}
}

func TestClusterKindRespectsBackendSwitch(t *testing.T) {
	node := mustParsePProxy(t, patchJSON(t, examplePProxy, func(m map[string]any) {
		obj(m, "carreraConfiguration")["useKafka"] = false
	}))
	snap, err := BuildPProxySnapshot(inst11, node, exampleTopics(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if k := snap.ClusterKind("K_main"); k != ClusterNone || k.String() != "none" {
		t.Fatalf("K_main with useKafka=false: %v", k)
	}
	if v, ok := snap.Topic("clicks"); !ok || v.MaxBodyBytes != DefaultMaxBodyBytes {
		t.Fatal("clicks must still be served (requests answer 21)")
	}
	if ClusterRocketMQ.String() != "rocketmq" || ClusterKafka.String() != "kafka" {
		t.Fatal("ClusterKind.String")
	}
}
