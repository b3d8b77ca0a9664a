package config

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// The group examples of zookeeper-layout.md §10.6–§10.9, verbatim.

const exampleGroupOrderPull = `{
  "group": "cg_order_pull", "asyncThreads": 8, "delayRequestHandlerThreads": -1,
  "enableAlarm": true, "delayTimeThreshold": 300000, "committedLagThreshold": 10000,
  "topics": [
    {"brokerCluster": "R_default", "proxies": {"C_ddmq": ["10.0.0.21:9713"]},
     "enabled": true, "topic": "order_created", "tags": ["*"],
     "actions": ["Async", "PullServer"],
     "fetchThreads": 1, "maxTps": 1000.0, "totalMaxTps": 1000.0, "concurrency": 1024,
     "maxConsumeLag": -1, "timeout": 5000, "pressureTraffic": false,
     "maxRetry": 2, "retryIntervals": [100, 150, 300],
     "httpMethod": "POST", "tokenKey": "", "httpMaxTps": -1.0, "maxPullBatchSize": 8}
  ]
}`

const exampleGroupOrderHTTP = `{
  "group": "cg_order_http", "asyncThreads": 16, "delayRequestHandlerThreads": -1,
  "topics": [
    {"brokerCluster": "R_default", "proxies": {"C_ddmq": ["10.0.0.21:9713"]},
     "enabled": true, "topic": "order_created", "tags": ["paid", "refunded"],
     "actions": ["Async", "Json", "QueryParams", "FormParams", "AsyncHttp"],
     "fetchThreads": 2, "maxTps": 200.0, "totalMaxTps": 200.0, "concurrency": 256,
     "maxConsumeLag": 0, "timeout": 3000, "pressureTraffic": false, "orderKey": "KEY",
     "maxRetry": 3, "retryIntervals": [1000, 5000, 30000, -1],
     "urls": ["http://10.0.2.10:8080/hook/order", "http://10.0.2.11:8080/hook/order"],
     "httpMethod": "POST", "queryParams": {"orderId": "$.orderId"},
     "appendContext": ["TOPIC", "QID", "OFFSET", "MSG_KEY", "PROPERTIES"],
     "tokenKey": "", "httpMaxTps": 100.0, "maxPullBatchSize": 8}
  ]
}`

const exampleGroupClicksLowLevel = `{
  "group": "cg_clicks_lowlevel", "asyncThreads": 4,
  "topics": [
    {"brokerCluster": "K_main", "proxies": {"C_ddmq": ["10.0.0.21:9713"]},
     "enabled": true, "topic": "clicks", "actions": ["LowLevel", "PullServer"],
     "fetchThreads": 1, "maxTps": 5000.0, "totalMaxTps": 5000.0, "concurrency": 1000,
     "timeout": 5000, "maxRetry": 2, "retryIntervals": [100, 150, 300],
     "maxPullBatchSize": 100}
  ]
}`

const exampleGroupChronosInner = `{
  "group": "cg_R_test_chronos_inner_0_0", "asyncThreads": 8,
  "topics": [
    {"brokerCluster": "R_default", "proxies": {"C_ddmq": ["10.0.0.21:9713"]},
     "enabled": true, "topic": "R_test_chronos_inner_0", "actions": ["Async", "PullServer"],
     "fetchThreads": 1, "maxTps": 5000.0, "totalMaxTps": 5000.0, "concurrency": 2000,
     "timeout": 5000, "maxRetry": -1, "retryIntervals": [500, -1], "maxPullBatchSize": 200}
  ]
}`

// The storage-sink fragments of §10.10, verbatim.

const exampleRedisFragment = `"redisConfig": {"hosts": ["10.0.3.1:6379", "10.0.3.2:6379"], "password": "s3cret", "timeout": 2000,
                "jedisPool": {"maxTotal": 32, "maxIdle": 8, "minIdle": 0, "maxWaitMillis": 1000, "testOnBorrow": false}}`

const exampleHdfsFragment = `"hdfsConfiguration": {"rootPath": "hdfs://10.0.4.1:8020/warehouse", "filePath": "${topic}/${yyyy}${MM}${dd}/${HH}",
                      "userName": "etl", "password": "unused", "fileType": "text"}`

const exampleHBaseFragment = `"hbaseconfiguration": {"hbaseZK": "10.0.5.1,10.0.5.2", "hbasePort": "2181", "hbaseBuffer": "2097152",
  "user": "hbase", "password": "secret",
  "hBaseTableConfig": {"hbaseTables": [
    {"originalTable": "orders_\\d+", "hbaseTable": "orders", "columnFamily": "f", "nameSpace": "default",
     "columns": [{"hbaseColumn": "id", "columnName": "order_id", "columnType": "long", "key": 1},
                 {"hbaseColumn": "st", "columnName": "status", "columnType": "string", "key": 0}]}]}}`

// Groups built around the fragments, with the chains §10.10 names.
var (
	exampleGroupRedis = `{"group": "cg_redis", ` + exampleRedisFragment + `, "topics": [
  {"brokerCluster": "R_default", "proxies": {"C_ddmq": ["10.0.0.21:9713"]}, "enabled": true, "topic": "t",
   "actions": ["Async","Json","Groovy","Redis"], "totalMaxTps": 10.0, "concurrency": 1000,
   "groovyScript": "return true"}]}`
	exampleGroupHdfs = `{"group": "cg_hdfs", "topics": [
  {"brokerCluster": "R_default", "proxies": {"C_ddmq": ["10.0.0.21:9713"]}, "enabled": true, "topic": "t",
   "actions": ["Async","Hdfs"], "totalMaxTps": 10.0, "concurrency": 1000, ` + exampleHdfsFragment + `}]}`
	exampleGroupHBase = `{"group": "cg_hbase", "topics": [
  {"brokerCluster": "R_default", "proxies": {"C_ddmq": ["10.0.0.21:9713"]}, "enabled": true, "topic": "t",
   "actions": ["Async","Hbase"], "totalMaxTps": 10.0, "concurrency": 1000, ` + exampleHBaseFragment + `}]}`
)

func mustParseGroup(t testing.TB, s string) *GroupConfig {
	t.Helper()
	g, err := ParseGroupConfig([]byte(s))
	if err != nil {
		t.Fatalf("ParseGroupConfig: %v", err)
	}
	return g
}

func TestParseGroupConfigExamples(t *testing.T) {
	t.Run("10.6 SDK pull", func(t *testing.T) {
		g := mustParseGroup(t, exampleGroupOrderPull)
		if g.Group != "cg_order_pull" || g.AsyncThreads != 8 || g.EffectiveDelayRequestHandlerThreads() != 4 || g.Kind() != KindPull {
			t.Fatalf("group: %+v", g)
		}
		u := &g.Topics[0]
		if !u.Enabled || u.Topic != "order_created" || u.TagExpression() != "*" || !u.IsHighLevelPull() || u.IsPush() {
			t.Fatalf("unit: %+v", u)
		}
		if u.EffectiveMaxConsumeLag() != -1 || u.MaxTps != 1000 || u.TotalMaxTps != 1000 || u.MaxPullBatchSize != 8 ||
			u.OrderKind() != OrderNone || u.EffectiveDeadLetterPolicy() != DeadLetterDrop {
			t.Fatalf("unit values: %+v", u)
		}
		if !u.ListsProxyIn("C_ddmq", "10.0.0.21:9713") || u.ListsProxyIn("C_other", "10.0.0.21:9713") {
			t.Fatal("ListsProxyIn")
		}
	})
	t.Run("10.7 HTTP push", func(t *testing.T) {
		g := mustParseGroup(t, exampleGroupOrderHTTP)
		if g.Kind() != KindPush || g.EffectiveDelayRequestHandlerThreads() != 8 {
			t.Fatalf("group: %+v", g)
		}
		u := &g.Topics[0]
		if u.EffectiveMaxConsumeLag() != 768 || u.TagExpression() != "paid||refunded" {
			t.Fatalf("derived: %d %q", u.EffectiveMaxConsumeLag(), u.TagExpression())
		}
		if !u.IsHTTP() || !u.IsPush() || u.IsPullServer() || u.Kind() != KindPush || u.Method() != "POST" || u.OrderKind() != OrderKey {
			t.Fatalf("predicates: %+v", u)
		}
		if !reflect.DeepEqual(u.RetryIntervals, []int{1000, 5000, 30000, -1}) || u.MaxRetry != 3 || u.HTTPMaxTps != 100 {
			t.Fatalf("retry: %+v", u)
		}
		if len(u.URLs) != 2 || u.QueryParams["orderId"] != "$.orderId" || len(u.AppendContext) != 5 {
			t.Fatalf("http: %+v", u)
		}
		if w := g.Warnings(); len(w) != 0 {
			t.Fatalf("warnings: %v", w)
		}
	})
	t.Run("10.8 low-level", func(t *testing.T) {
		g := mustParseGroup(t, exampleGroupClicksLowLevel)
		u := &g.Topics[0]
		if g.Kind() != KindLowLevel || !u.IsLowLevel() || !u.IsPullServer() || u.IsHighLevelPull() || u.Kind() != KindLowLevel {
			t.Fatalf("kind: %+v", u)
		}
		if u.Tags != nil || u.TagExpression() != "*" || u.MaxPullBatchSize != 100 || u.Concurrency != 1000 ||
			u.MaxConsumeLag != -1 || u.HTTPMethod != "POST" || u.HTTPMaxTps != -1 || u.PressureTraffic {
			t.Fatalf("defaults: %+v", u)
		}
		if g.DelayRequestHandlerThreads != -1 || !g.EnableAlarm || g.DelayTimeThreshold != 300000 || g.CommittedLagThreshold != 10000 {
			t.Fatalf("group defaults: %+v", g)
		}
	})
	t.Run("10.9 chronos inner", func(t *testing.T) {
		g := mustParseGroup(t, exampleGroupChronosInner)
		u := &g.Topics[0]
		if u.MaxRetry != -1 || !reflect.DeepEqual(u.RetryIntervals, []int{500, -1}) || u.MaxPullBatchSize != 200 || u.Concurrency != 2000 {
			t.Fatalf("%+v", u)
		}
	})
	t.Run("10.10 redis", func(t *testing.T) {
		g := mustParseGroup(t, exampleGroupRedis)
		r := g.RedisConfig
		if r == nil || len(r.Hosts) != 2 || r.Password != "s3cret" || r.Timeout != 2000 ||
			r.JedisPool != (RedisPoolConfig{MaxTotal: 32, MaxIdle: 8, MaxWaitMillis: 1000}) {
			t.Fatalf("redis: %+v", r)
		}
		u := &g.Topics[0]
		if !u.IsRedis() || !u.UsesGroovy() || !u.IsPush() || g.Kind() != KindPush {
			t.Fatalf("%+v", u)
		}
	})
	t.Run("10.10 hdfs", func(t *testing.T) {
		u := &mustParseGroup(t, exampleGroupHdfs).Topics[0]
		h := u.HdfsConfiguration
		if !u.IsHDFS() || h == nil || h.FileType != "text" || h.MaxFileCount != 128 || h.FilePath != "${topic}/${yyyy}${MM}${dd}/${HH}" {
			t.Fatalf("%+v", h)
		}
	})
	t.Run("10.10 hbase", func(t *testing.T) {
		u := &mustParseGroup(t, exampleGroupHBase).Topics[0]
		h := u.HBaseConfiguration
		if !u.IsHBase() || h == nil || h.HbasePort != "2181" || h.HBaseTableConfig == nil || len(h.HBaseTableConfig.HbaseTables) != 1 {
			t.Fatalf("%+v", h)
		}
		tab := h.HBaseTableConfig.HbaseTables[0]
		if tab.OriginalTable != `orders_\d+` || len(tab.Columns) != 2 || tab.Columns[0].Key != 1 {
			t.Fatalf("%+v", tab)
		}
	})
}

// unitJSON is a valid enabled pull subscription on R_default with edits.
func unitJSON(t *testing.T, edit func(u map[string]any)) map[string]any {
	t.Helper()
	u := map[string]any{
		"brokerCluster": "R_default", "proxies": map[string]any{"C_test": []any{"127.0.0.1:9713"}},
		"enabled": true, "topic": "t", "actions": []any{"Async", "PullServer"}, "totalMaxTps": 100.0,
	}
	if edit != nil {
		edit(u)
	}
	return u
}

// groupJSON builds a group document from subscriptions.
func groupJSON(t *testing.T, name string, edit func(g map[string]any), units ...map[string]any) string {
	t.Helper()
	topics := make([]any, len(units))
	for i, u := range units {
		topics[i] = u
	}
	return patchJSON(t, `{}`, func(m map[string]any) {
		m["group"] = name
		m["topics"] = topics
		if edit != nil {
			edit(m)
		}
	})
}

func TestParseGroupConfigDefaults(t *testing.T) {
	tests := []struct {
		name  string
		json  string
		check func(t *testing.T, g *GroupConfig)
	}{
		{"unit defaults", groupJSON(t, "g", nil, unitJSON(t, nil)), func(t *testing.T, g *GroupConfig) {
			u := g.Topics[0]
			want := defaultUpstreamTopic()
			want.BrokerCluster, want.Topic, want.Enabled, want.TotalMaxTps = "R_default", "t", true, 100
			want.Proxies = map[string][]string{"C_test": {"127.0.0.1:9713"}}
			want.Actions = []string{"Async", "PullServer"}
			want.RetryIntervals = []int{100, 150, 300}
			if !reflect.DeepEqual(u, want) {
				t.Fatalf("got  %+v\nwant %+v", u, want)
			}
		}},
		{"empty group", `{"group":"g"}`, func(t *testing.T, g *GroupConfig) {
			if g.Topics == nil || len(g.Topics) != 0 || g.AsyncThreads != 8 || g.Kind() != KindPull {
				t.Fatalf("%+v", g)
			}
		}},
		{"aliases isEnabled / isPressureTraffic", groupJSON(t, "g", nil, unitJSON(t, func(u map[string]any) {
			delete(u, "enabled")
			u["isEnabled"] = true
			u["isPressureTraffic"] = true
		})), func(t *testing.T, g *GroupConfig) {
			if u := g.Topics[0]; !u.Enabled || !u.PressureTraffic {
				t.Fatalf("%+v", u)
			}
		}},
		{"canonical key wins over alias", groupJSON(t, "g", nil, unitJSON(t, func(u map[string]any) {
			u["isEnabled"] = false
			u["pressureTraffic"] = false
			u["isPressureTraffic"] = true
		})), func(t *testing.T, g *GroupConfig) {
			if u := g.Topics[0]; !u.Enabled || u.PressureTraffic {
				t.Fatalf("%+v", u)
			}
		}},
		{"disabled units are not validated", groupJSON(t, "g", nil, unitJSON(t, nil),
			map[string]any{"brokerCluster": "", "actions": []any{"Bogus"}, "concurrency": -1}),
			func(t *testing.T, g *GroupConfig) {
				if len(g.EnabledTopics()) != 1 {
					t.Fatal(g.EnabledTopics())
				}
			}},
		{"null proxies and retryIntervals default; [] stays", groupJSON(t, "g", nil,
			unitJSON(t, func(u map[string]any) { u["proxies"] = nil; u["retryIntervals"] = nil }),
			unitJSON(t, func(u map[string]any) { u["topic"] = "t2"; u["retryIntervals"] = []any{} })),
			func(t *testing.T, g *GroupConfig) {
				if g.Topics[0].Proxies == nil || !reflect.DeepEqual(g.Topics[0].RetryIntervals, DefaultRetryIntervals) {
					t.Fatalf("%+v", g.Topics[0])
				}
				if g.Topics[1].RetryIntervals == nil || len(g.Topics[1].RetryIntervals) != 0 {
					t.Fatalf("%+v", g.Topics[1].RetryIntervals)
				}
			}},
		{"derived values", groupJSON(t, "g", func(g map[string]any) { g["asyncThreads"] = 1; g["delayRequestHandlerThreads"] = 0 },
			unitJSON(t, func(u map[string]any) {
				u["tags"] = []any{" a ", "", "b"}
				u["maxConsumeLag"] = 0
				u["concurrency"] = 10
			}),
			unitJSON(t, func(u map[string]any) { u["topic"] = "t2"; u["tags"] = []any{"a", "*"}; u["maxConsumeLag"] = -7 }),
			unitJSON(t, func(u map[string]any) { u["topic"] = "t3"; u["tags"] = []any{}; u["maxConsumeLag"] = 42 }),
		), func(t *testing.T, g *GroupConfig) {
			if g.EffectiveDelayRequestHandlerThreads() != 1 {
				t.Fatal(g.EffectiveDelayRequestHandlerThreads())
			}
			got := []any{g.Topics[0].TagExpression(), g.Topics[0].EffectiveMaxConsumeLag(),
				g.Topics[1].TagExpression(), g.Topics[1].EffectiveMaxConsumeLag(),
				g.Topics[2].TagExpression(), g.Topics[2].EffectiveMaxConsumeLag()}
			want := []any{"a||b", int64(30), "*", int64(-1), "*", int64(42)}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %v want %v", got, want)
			}
		}},
		{"delayRequestHandlerThreads capped", groupJSON(t, "g", func(g map[string]any) { g["asyncThreads"] = 4; g["delayRequestHandlerThreads"] = 9 }),
			func(t *testing.T, g *GroupConfig) {
				if g.EffectiveDelayRequestHandlerThreads() != 4 {
					t.Fatal(g.EffectiveDelayRequestHandlerThreads())
				}
			}},
		{"dead letter extension", groupJSON(t, "g", nil,
			unitJSON(t, func(u map[string]any) { u["deadLetterTopic"] = "dlq_t"; u["deadLetterPolicy"] = "DLQ" }),
			unitJSON(t, func(u map[string]any) { u["topic"] = "t2"; u["deadLetterTopic"] = "dlq_t2" })),
			func(t *testing.T, g *GroupConfig) {
				if !g.Topics[0].DLQEnabled() || g.Topics[0].EffectiveDeadLetterPolicy() != DeadLetterDLQ {
					t.Fatalf("%+v", g.Topics[0])
				}
				if g.Topics[1].DLQEnabled() || g.Topics[1].EffectiveDeadLetterPolicy() != DeadLetterDrop {
					t.Fatalf("%+v", g.Topics[1])
				}
				if w := g.Warnings(); len(w) != 1 || !strings.Contains(w[0], `deadLetterTopic "dlq_t2" is ignored`) {
					t.Fatalf("warnings: %v", w)
				}
			}},
		{"JsonPath order key without Json warns", groupJSON(t, "g", nil,
			unitJSON(t, func(u map[string]any) { u["orderKey"] = "$.user.id" }),
			unitJSON(t, func(u map[string]any) {
				u["topic"] = "t2"
				u["orderKey"] = "$.id"
				u["actions"] = []any{"Json", "Async", "PullServer"}
			})),
			func(t *testing.T, g *GroupConfig) {
				if g.Topics[0].OrderKind() != OrderJSONPath {
					t.Fatal(g.Topics[0].OrderKind())
				}
				if w := g.Warnings(); len(w) != 1 || !strings.Contains(w[0], "t@R_default") {
					t.Fatalf("warnings: %v", w)
				}
			}},
		{"http method case-insensitive; NonBlockAsync", groupJSON(t, "g", nil, unitJSON(t, func(u map[string]any) {
			u["actions"] = []any{"NonBlockAsync", "Transit", "FormParams2", "AsyncHttp"}
			u["urls"] = []any{"http://h/x"}
			u["httpMethod"] = "get"
			u["transit"] = map[string]any{"$": "$.data", "$.id": "$['meta']['id']"}
		})), func(t *testing.T, g *GroupConfig) {
			if g.Topics[0].Method() != "GET" {
				t.Fatal(g.Topics[0].Method())
			}
		}},
		{"group name charset", groupJSON(t, "%RETRY%|a-b_9", nil), func(t *testing.T, g *GroupConfig) {}},
		{"unknown keys ignored", patchJSON(t, exampleGroupOrderPull, func(m map[string]any) {
			m["alarmGroup"] = []any{"x"}
			m["futureKey"] = 1
			m["topics"].([]any)[0].(map[string]any)["futureUnitKey"] = map[string]any{}
		}), func(t *testing.T, g *GroupConfig) {}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, mustParseGroup(t, tc.json))
		})
	}
}

func TestParseGroupConfigInvalid(t *testing.T) {
	unit := func(edit func(u map[string]any)) string { return groupJSON(t, "g", nil, unitJSON(t, edit)) }
	http := func(edit func(u map[string]any)) string {
		return unit(func(u map[string]any) {
			u["actions"] = []any{"Async", "FormParams", "AsyncHttp"}
			u["urls"] = []any{"http://h/x"}
			if edit != nil {
				edit(u)
			}
		})
	}
	tests := []struct {
		name string
		json string
		want []string
	}{
		{"group name", groupJSON(t, "a b", nil), []string{`group "a b" must match`}},
		{"empty group", groupJSON(t, "", nil), []string{"group must not be empty"}},
		{"long group", groupJSON(t, strings.Repeat("g", 256), nil), []string{"group must be at most 255 characters, got 256"}},
		{"group knobs", groupJSON(t, "g", func(g map[string]any) {
			g["asyncThreads"] = 0
			g["delayTimeThreshold"] = -1
			g["committedLagThreshold"] = -1
		}), []string{"asyncThreads must be > 0", "delayTimeThreshold must be >= 0", "committedLagThreshold must be >= 0"}},
		{"unit required keys", unit(func(u map[string]any) {
			u["brokerCluster"] = ""
			delete(u, "topic")
			u["totalMaxTps"] = 0
			u["fetchThreads"] = 0
			u["concurrency"] = 0
			u["maxTps"] = -1
		}), []string{"topics[0].brokerCluster must not be empty", "topics[0].topic must not be empty",
			"topics[0].totalMaxTps must be > 0, got 0", "topics[0].fetchThreads must be > 0",
			"topics[0].concurrency must be > 0", "topics[0].maxTps must be >= 0"}},
		{"no actions", unit(func(u map[string]any) { u["actions"] = []any{} }), []string{"topics[0].actions must not be empty"}},
		{"unknown action", unit(func(u map[string]any) { u["actions"] = []any{"Async", "async", "PullServer"} }),
			[]string{`topics[0].actions[1] "async" is not a known action`}},
		{"bad last action", unit(func(u map[string]any) { u["actions"] = []any{"Async", "Json"} }),
			[]string{"topics[0].actions must end with AsyncHttp, PullServer, Redis, Hdfs or Hbase, got Json"}},
		{"terminal action not last", unit(func(u map[string]any) { u["actions"] = []any{"PullServer", "Async", "PullServer"} }),
			[]string{"topics[0].actions[0] PullServer must be the last action"}},
		{"pull requirements", unit(func(u map[string]any) { u["timeout"] = 0; u["maxPullBatchSize"] = 0 }),
			[]string{"topics[0].timeout must be > 0 for PullServer", "topics[0].maxPullBatchSize must be > 0 for PullServer"}},
		{"http requirements", http(func(u map[string]any) {
			u["timeout"] = -1
			u["httpMethod"] = "PUT"
			u["urls"] = []any{"https://h/x", "h"}
		}), []string{"topics[0].timeout must be > 0 for AsyncHttp", `topics[0].httpMethod must be POST or GET, got "PUT"`,
			`topics[0].urls[0] "https://h/x" must start with http://`, `topics[0].urls[1] "h" must start with http://`}},
		{"http without urls", http(func(u map[string]any) { delete(u, "urls") }), []string{"topics[0].urls must not be empty for AsyncHttp"}},
		{"query params", http(func(u map[string]any) {
			u["actions"] = []any{"Async", "Json", "QueryParams", "FormParams", "AsyncHttp"}
		}), []string{"topics[0].queryParams must not be empty when QueryParams is used"}},
		{"query param path", http(func(u map[string]any) {
			u["actions"] = []any{"Async", "Json", "QueryParams", "FormParams", "AsyncHttp"}
			u["queryParams"] = map[string]any{"a": "$.x[", "": "$.y"}
		}), []string{`topics[0].queryParams["a"] "$.x[" is not a valid JsonPath`, "topics[0].queryParams has an empty parameter name"}},
		{"transit", unit(func(u map[string]any) {
			u["actions"] = []any{"Async", "Transit", "PullServer"}
			u["transit"] = map[string]any{"$.a.": "$.b"}
		}), []string{`topics[0].transit key "$.a." is not a valid JsonPath`}},
		{"transit empty", unit(func(u map[string]any) { u["actions"] = []any{"Async", "Transit", "PullServer"} }),
			[]string{"topics[0].transit must not be empty when Transit is used"}},
		{"orderKey", unit(func(u map[string]any) { u["orderKey"] = "$..[" }),
			[]string{"topics[0].orderKey must be QID, KEY or a valid JsonPath"}},
		{"appendContext", http(func(u map[string]any) { u["appendContext"] = []any{"TOPIC", "topic"} }),
			[]string{`topics[0].appendContext[1] "topic" is not one of`}},
		{"redis without redisConfig", unit(func(u map[string]any) { u["actions"] = []any{"Async", "Redis"} }),
			[]string{"topics[0].actions end with Redis but the group has no redisConfig"}},
		{"redisConfig invalid", groupJSON(t, "g", func(g map[string]any) {
			g["redisConfig"] = map[string]any{"hosts": []any{" "}, "timeout": -1}
		}), []string{"redisConfig.hosts[0] must not be empty", "redisConfig.timeout must be >= 0"}},
		{"redisConfig without hosts", groupJSON(t, "g", func(g map[string]any) { g["redisConfig"] = map[string]any{} }),
			[]string{"redisConfig.hosts must not be empty"}},
		{"hdfs missing", unit(func(u map[string]any) { u["actions"] = []any{"Async", "Hdfs"} }),
			[]string{"topics[0].hdfsConfiguration is required for Hdfs"}},
		{"hdfs invalid", unit(func(u map[string]any) {
			u["actions"] = []any{"Async", "Hdfs"}
			u["hdfsConfiguration"] = map[string]any{"rootPath": "hdfs://x"}
		}), []string{"topics[0].hdfsConfiguration.filePath must not be empty", "topics[0].hdfsConfiguration.userName must not be empty",
			"topics[0].hdfsConfiguration.password must not be empty", "topics[0].hdfsConfiguration.fileType must not be empty"}},
		{"hbase missing", unit(func(u map[string]any) { u["actions"] = []any{"Async", "Hbase"} }),
			[]string{"topics[0].hbaseconfiguration is required for Hbase"}},
		{"hbase invalid", unit(func(u map[string]any) {
			u["actions"] = []any{"Async", "Hbase"}
			u["hbaseconfiguration"] = map[string]any{"hbasePort": "21x", "hbaseBuffer": ""}
		}), []string{"topics[0].hbaseconfiguration.hbaseZK must not be empty", `hbasePort must be an integer, got "21x"`,
			`hbaseBuffer must be an integer, got ""`, "hbaseconfiguration.user must not be empty",
			"hbaseconfiguration.password must not be empty", "hbaseconfiguration.hBaseTableConfig is required"}},
		{"hbase tables", unit(func(u map[string]any) {
			u["actions"] = []any{"Async", "Hbase"}
			u["hbaseconfiguration"] = map[string]any{"hbaseZK": "z", "hbasePort": "1", "hbaseBuffer": "1", "user": "u", "password": "p",
				"hBaseTableConfig": map[string]any{"hbaseTables": []any{
					map[string]any{"columns": []any{map[string]any{"key": 2}}},
					map[string]any{"hbaseTable": "x", "columnFamily": "f", "nameSpace": "n"},
				}}}
		}), []string{"hbaseTables[0].hbaseTable must not be empty", "hbaseTables[0].columnFamily must not be empty",
			"hbaseTables[0].nameSpace must not be empty", "hbaseTables[0].columns[0].hbaseColumn must not be empty",
			"hbaseTables[0].columns[0].key must be 0 or 1, got 2", "hbaseTables[1].columns must not be empty"}},
		{"low-level all or none", groupJSON(t, "g", nil, unitJSON(t, func(u map[string]any) { u["actions"] = []any{"LowLevel", "PullServer"} }),
			unitJSON(t, func(u map[string]any) { u["topic"] = "t2" })),
			[]string{"enabled subscriptions must all or none contain LowLevel: topics[0] does, topics[1] does not"}},
		{"duplicate unit", groupJSON(t, "g", nil, unitJSON(t, nil), unitJSON(t, nil)),
			[]string{`topics[1] duplicates topics[0]: topic "t" on brokerCluster "R_default"`}},
		{"null unit", patchJSON(t, `{"group":"g"}`, func(m map[string]any) { m["topics"] = []any{nil} }),
			[]string{"topics[0] must not be null"}},
		{"dead letter policy", unit(func(u map[string]any) { u["deadLetterPolicy"] = "retry" }),
			[]string{`topics[0].deadLetterPolicy must be "drop" or "dlq", got "retry"`}},
		{"dlq without topic", unit(func(u map[string]any) { u["deadLetterPolicy"] = "dlq" }),
			[]string{`topics[0].deadLetterTopic must not be empty when deadLetterPolicy is "dlq"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := ParseGroupConfig([]byte(tc.json))
			if g != nil {
				t.Fatal("config returned with an error")
			}
			wantErr(t, err, tc.want...)
			wantErr(t, err, "group config ")
		})
	}

	for _, doc := range []string{`not json`, `[]`, `{"topics":{}}`, `{"topics":[1]}`, `{"topics":[{"maxTps":"x"}]}`} {
		if _, err := ParseGroupConfig([]byte(doc)); err == nil {
			t.Errorf("%s: want an error", doc)
		} else {
			wantErr(t, err, "group config: invalid JSON")
		}
	}
}

func TestValidateJSONPath(t *testing.T) {
	valid := []string{
		"$", "$.a", "$.a.b", "$..a", "$..*", "$.*", "$['a']", `$["a b"]`, "$['a','b']", `$['it\'s']`,
		"$[0]", "$[-1]", "$[0,1]", "$[1:2]", "$[:2]", "$[1:]", "$[*]", "$.a[?(@.b > 1)]", "$..[0]",
		"orderId", "a.b[0]", "$.data.items[0].id",
	}
	invalid := []string{
		"", ".a", "[0]", "$.", "$..", "$.a.", "$[", "$[]", "$[a]", "$['a'", "$['a' 'b']", "$[?(@.a]", "$[?@.a]",
		"$.a b", "$ [0]", "$a", "$[:]", "$[1:2:-1]", "$[0))]",
	}
	for _, p := range valid {
		if err := ValidateJSONPath(p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
	for _, p := range invalid {
		if err := ValidateJSONPath(p); err == nil {
			t.Errorf("%q: want an error", p)
		}
	}
}

func FuzzParseGroupConfig(f *testing.F) {
	for _, s := range []string{
		exampleGroupOrderPull, exampleGroupOrderHTTP, exampleGroupClicksLowLevel, exampleGroupChronosInner,
		exampleGroupRedis, exampleGroupHdfs, exampleGroupHBase,
		`{"group":"g","topics":[null,{"enabled":true}]}`,
		`{"group":"g","topics":[{"isEnabled":true,"brokerCluster":"R","topic":"t","actions":["Json","Async","QueryParams","FormParams2","AsyncHttp"],"urls":["http://x"],"totalMaxTps":1,"queryParams":{"a":"$['x'][0]"},"orderKey":"$..y"}]}`,
		`{"group":"g","redisConfig":null,"topics":[{"enabled":true,"actions":["Hbase"],"hbaseconfiguration":{"hBaseTableConfig":{"hbaseTables":[null]}}}]}`,
		`{"group":"g","topics":[{"enabled":true,"brokerCluster":"R","topic":"t","actions":["LowLevel","PullServer"],"totalMaxTps":1e308,"maxConsumeLag":0,"concurrency":2147483647}]}`,
		`null`, `{}`, `[]`,
	} {
		f.Add([]byte(s))
	}
	node := mustParseCProxy(f, patchJSON(f, minimalCProxy, func(m map[string]any) {
		m["proxyCluster"] = "C_ddmq"
		m["brokerClusters"] = []any{"R_default", "R", "K_main"}
		m["kafkaConfigs"] = map[string]any{"K_main": map[string]any{"zookeeperAddr": "zk", "autoCommitInterval": 1}}
	}))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := ParseGroupConfig(data)
		if err != nil {
			if g != nil {
				t.Fatal("config returned with an error")
			}
			return
		}
		if err := g.Validate(); err != nil {
			t.Fatalf("accepted config does not re-validate: %v", err)
		}
		_ = g.Warnings()
		_ = g.EffectiveDelayRequestHandlerThreads()
		for _, u := range g.EnabledTopics() {
			if u.TagExpression() == "" {
				t.Fatal("empty tag expression")
			}
			if lag := u.EffectiveMaxConsumeLag(); lag == 0 && u.Concurrency != 0 {
				t.Fatalf("lag 0 for %+v", u)
			}
			if m := u.Method(); u.IsHTTP() && m != "GET" && m != "POST" {
				t.Fatalf("method %q", m)
			}
			_ = u.Kind()
		}
		for _, inst := range []string{"127.0.0.1:9713", "10.0.0.21:9713"} {
			n := *node
			n.Groups = []string{g.Group}
			snap, err := BuildCProxySnapshot(inst, &n, map[string]*GroupConfig{g.Group: g})
			if err != nil {
				t.Fatalf("valid group does not build: %v", err)
			}
			for _, k := range snap.UnitKeys() {
				u := snap.Units[k]
				if !BusinessEqual(u, u) || len(u.Subscriptions) == 0 {
					t.Fatalf("unit %s", k)
				}
			}
			if !DiffCProxySnapshots(snap, snap).Empty() {
				t.Fatal("self diff not empty")
			}
		}
	})
}

func TestGroupMessageModel(t *testing.T) {
	var g GroupConfig
	if err := json.Unmarshal([]byte(`{"group":"g1","topics":[],"messageModel":"BROADCASTING"}`), &g); err != nil {
		t.Fatal(err)
	}
	if g.MessageModel != MessageModelBroadcasting || g.Validate() != nil {
		t.Fatalf("messageModel %q, validate %v", g.MessageModel, g.Validate())
	}
	g.MessageModel = "broadcast"
	if g.Validate() == nil {
		t.Fatal("an unknown messageModel passed validation")
	}

	clustering := &RocketmqConsumerConfiguration{MessageModel: MessageModelClustering}
	broadcasting := &RocketmqConsumerConfiguration{MessageModel: MessageModelBroadcasting}
	unit := func(groupModel string, rc *RocketmqConsumerConfiguration, kind ClusterKind) *UnitView {
		return &UnitView{Group: &GroupView{Config: &GroupConfig{Group: "g1", MessageModel: groupModel}}, ClusterKind: kind, RocketMQ: rc}
	}
	for _, tc := range []struct {
		u    *UnitView
		want bool
	}{
		{unit("", clustering, ClusterRocketMQ), false},
		{unit("", broadcasting, ClusterRocketMQ), true},
		{unit(MessageModelBroadcasting, clustering, ClusterRocketMQ), true},
		{unit(MessageModelClustering, broadcasting, ClusterRocketMQ), false},
		{unit(MessageModelBroadcasting, nil, ClusterKafka), false},
	} {
		if got := tc.u.Broadcasting(); got != tc.want {
			t.Errorf("group %q cluster %+v kind %v: Broadcasting %v, want %v", tc.u.Group.Config.MessageModel, tc.u.RocketMQ, tc.u.ClusterKind, got, tc.want)
		}
	}
	if BusinessEqual(unit("", clustering, ClusterRocketMQ), unit(MessageModelBroadcasting, clustering, ClusterRocketMQ)) {
		t.Fatal("a group switching to broadcasting is business-equal (its consumer would not restart)")
	}
}
