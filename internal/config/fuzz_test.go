package config

import (
	"testing"
)

// The fuzz targets check that the parsers never panic and that whatever
// they accept is valid, re-validates, and (for nodes) builds a snapshot.

func FuzzParseTopicConfig(f *testing.F) {
	for _, s := range []string{
		exampleTopicOrderCreated, exampleTopicClicks, exampleTopicOrderTimeout, exampleTopicInner0,
		`{"topic":"t","topicUnits":[{"brokerCluster":"R"}]}`,
		`{"topic":"t","topicUnits":[null,{"brokerCluster":"R","proxies":null}]}`,
		`null`, `[]`, `{"topicUnits":{}}`, `{"topic":"t","topicUnits":[{"brokerCluster":"R","maxTps":1e400}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseTopicConfig(data)
		if err != nil {
			if c != nil {
				t.Fatal("config returned with an error")
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config does not re-validate: %v", err)
		}
		for _, u := range c.TopicUnits {
			_ = u.ListsProxy("127.0.0.1:9613")
		}
	})
}

func FuzzParsePProxyConfig(f *testing.F) {
	for _, s := range []string{
		examplePProxy, minimalPProxy,
		`{"instance":"i","proxyCluster":"p","brokerClusters":["R"],"carreraConfiguration":null}`,
		`{"carreraConfiguration":{"defaultTopicInfoConf":{"topics":[null]},"rocketmqConfigurationMap":{"R":null}}}`,
		`{"carreraConfiguration":{"useAutoBatch":true,"autoBatch":null,"delay":{}}}`,
		`null`, `{}`, `"x"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParsePProxyConfig(data)
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
		snap, err := BuildPProxySnapshot("127.0.0.1:9613", c, nil, nil)
		if err != nil {
			t.Fatalf("valid node does not build: %v", err)
		}
		for _, name := range snap.WatchTopics() {
			_ = snap.MaxBodyBytes(name)
		}
		_, _ = snap.DelayPrefix()
		for _, b := range c.BrokerClusters {
			_ = snap.ClusterKind(b)
		}
	})
}
