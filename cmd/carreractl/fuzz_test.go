package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzBindUnbind checks the merge invariants on arbitrary topic nodes whose
// units are well-formed enough for unbind: a successful bind yields valid
// JSON, is idempotent and is undone by unbind.
func FuzzBindUnbind(f *testing.F) {
	f.Add([]byte(testTopic))
	f.Add([]byte(`{"topic":"t","topicUnits":[{"brokerCluster":"K_main","proxies":{"P_ddmq":["10.0.0.12:9613"]},"maxTps":500.0}]}`))
	f.Add([]byte(`{"topicUnits":null,"TopicUnits":[{"brokerCluster":"K_main","proxies":null}]}`))
	f.Add([]byte(`{"a":"x&y\u2028","topicUnits":[{"BrokerCluster":"K_main","PROXIES":{"P_ddmq":[]}}]}`))
	b := binding{Topic: "t", Cluster: "K_main", ProxyCluster: "P_ddmq", Instance: "10.0.0.12:9613"}
	f.Fuzz(func(t *testing.T, in []byte) {
		if _, _, err := unbindTopicJSON(in, b.Instance); err != nil {
			return // malformed units (e.g. "proxies":0): both edits refuse them
		}
		out, changed, err := bindTopicJSON(in, b)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("bind produced invalid JSON: %s", out)
		}
		if !changed && string(out) != string(in) {
			t.Fatalf("unchanged but different: %s", out)
		}
		again, changed2, err := bindTopicJSON(out, b)
		if err != nil || changed2 || string(again) != string(out) {
			t.Fatalf("bind not idempotent: err=%v changed=%v\n%s\n%s", err, changed2, out, again)
		}
		un, _, err := unbindTopicJSON(out, b.Instance)
		if err != nil {
			t.Fatalf("unbind after bind: %v\n%s", err, out)
		}
		if !json.Valid(un) {
			t.Fatalf("unbind produced invalid JSON: %s", un)
		}
		_, units, err := parseTopicUnits(un)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range units {
			raw, _ := u.raw("proxies")
			if strings.Contains(string(raw), `"`+b.Instance+`"`) {
				t.Fatalf("instance still listed after unbind: %s", un)
			}
		}
	})
}
