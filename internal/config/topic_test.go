package config

import (
	"testing"
)

func TestParseTopicConfigExamples(t *testing.T) {
	tests := []struct {
		name  string
		json  string
		check func(t *testing.T, c *TopicConfig)
	}{
		{"10.1 order_created", exampleTopicOrderCreated, func(t *testing.T, c *TopicConfig) {
			if c.Topic != "order_created" || !c.AutoBatch || c.DelayTopic || c.StrongOrder {
				t.Fatalf("flags: %+v", c)
			}
			if c.CompressType != CompressPrimordial || c.LimiterFailureRetryInterval != -1 {
				t.Fatalf("compress/retry: %+v", c)
			}
			if len(c.AlarmGroup) != 1 || c.AlarmGroup[0] != "oncall-orders" {
				t.Fatalf("alarmGroup: %v", c.AlarmGroup)
			}
			u := c.TopicUnits[0]
			if u.BrokerCluster != "R_default" || u.TotalMaxTps != 2000 || u.MaxTps != 1000 {
				t.Fatalf("unit: %+v", u)
			}
			if !u.ListsProxy("10.0.0.12:9613") || u.ListsProxy("10.0.0.13:9613") {
				t.Fatalf("proxies: %v", u.Proxies)
			}
		}},
		{"10.2 clicks", exampleTopicClicks, func(t *testing.T, c *TopicConfig) {
			if !c.StrongOrder || c.LimiterFailureRetryInterval != 0 {
				t.Fatalf("%+v", c)
			}
			if c.CompressType != CompressPrimordial {
				t.Fatalf("default compressType: %q", c.CompressType)
			}
		}},
		{"10.3 order_timeout", exampleTopicOrderTimeout, func(t *testing.T, c *TopicConfig) {
			if !c.DelayTopic || c.TopicUnits[0].MaxTps != 250 {
				t.Fatalf("%+v", c)
			}
		}},
		{"10.3 inner topic", exampleTopicInner0, func(t *testing.T, c *TopicConfig) {
			if c.Topic != "R_test_chronos_inner_0" || c.LimiterFailureRetryInterval != -1 {
				t.Fatalf("%+v", c)
			}
		}},
		{"defaults", `{"topic":"t","topicUnits":[{"brokerCluster":"R"}]}`, func(t *testing.T, c *TopicConfig) {
			if c.LimiterFailureRetryInterval != -1 || c.CompressType != CompressPrimordial ||
				c.DelayTopic || c.AutoBatch || c.StrongOrder {
				t.Fatalf("topic defaults: %+v", c)
			}
			u := c.TopicUnits[0]
			if u.MaxTps != 1024 || u.TotalMaxTps != 1024 || u.Proxies == nil || len(u.Proxies) != 0 {
				t.Fatalf("unit defaults: %+v", u)
			}
		}},
		{"maxTps written as double", `{"topic":"t","topicUnits":[{"brokerCluster":"R","maxTps":1000.0,"totalMaxTps":2000.5}]}`,
			func(t *testing.T, c *TopicConfig) {
				if c.TopicUnits[0].MaxTps != 1000 || c.TopicUnits[0].TotalMaxTps != 2000.5 {
					t.Fatalf("%+v", c.TopicUnits[0])
				}
			}},
		{"unknown keys ignored, keys case-insensitive",
			`{"Topic":"t","rateLimit":{"x":1},"TOPICUNITS":[{"BrokerCluster":"R","MAXTPS":7,"extra":[1]}],"strongorder":true}`,
			func(t *testing.T, c *TopicConfig) {
				if c.Topic != "t" || !c.StrongOrder || c.TopicUnits[0].MaxTps != 7 || c.TopicUnits[0].BrokerCluster != "R" {
					t.Fatalf("%+v", c)
				}
			}},
		{"snappy, several units", `{"topic":"t","compressType":"SNAPPY","topicUnits":[{"brokerCluster":"A"},{"brokerCluster":"B","maxTps":0}]}`,
			func(t *testing.T, c *TopicConfig) {
				if c.CompressType != CompressSnappy || len(c.TopicUnits) != 2 || c.TopicUnits[1].MaxTps != 0 {
					t.Fatalf("%+v", c)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, mustParseTopic(t, tc.json))
		})
	}
}

func TestParseTopicConfigInvalid(t *testing.T) {
	tests := []struct {
		name string
		json string
		want []string
	}{
		{"not JSON", `{"topic":`, []string{"invalid JSON"}},
		{"trailing garbage", `{"topic":"t","topicUnits":[{"brokerCluster":"R"}]} x`, []string{"invalid JSON"}},
		{"wrong type", `{"topic":"t","topicUnits":[{"brokerCluster":"R","maxTps":"many"}]}`, []string{"invalid JSON"}},
		{"null", `null`, []string{"topic must not be empty", "topicUnits must not be empty"}},
		{"empty object", `{}`, []string{"topic must not be empty"}},
		{"no units", `{"topic":"t"}`, []string{`"t"`, "topicUnits must not be empty"}},
		{"empty units", `{"topic":"t","topicUnits":[]}`, []string{"topicUnits must not be empty"}},
		{"blank broker cluster", `{"topic":"t","topicUnits":[{"brokerCluster":"R"},{"maxTps":1}]}`,
			[]string{"topicUnits[1].brokerCluster must not be empty"}},
		{"totalMaxTps zero", `{"topic":"t","topicUnits":[{"brokerCluster":"R","totalMaxTps":0}]}`,
			[]string{"topicUnits[0].totalMaxTps must be > 0"}},
		{"negative maxTps", `{"topic":"t","topicUnits":[{"brokerCluster":"R","maxTps":-1}]}`,
			[]string{"topicUnits[0].maxTps must be >= 0"}},
		{"bad compressType", `{"topic":"t","compressType":"LZ4","topicUnits":[{"brokerCluster":"R"}]}`,
			[]string{"compressType must be PRIMORDIAL or SNAPPY"}},
		{"several problems at once", `{"topicUnits":[{"totalMaxTps":-5}]}`,
			[]string{"topic must not be empty", "topicUnits[0].brokerCluster", "topicUnits[0].totalMaxTps"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseTopicConfig([]byte(tc.json))
			if c != nil {
				t.Fatalf("got config %+v, want nil", c)
			}
			wantErr(t, err, tc.want...)
		})
	}
}
