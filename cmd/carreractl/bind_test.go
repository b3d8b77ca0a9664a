package main

import (
	"strings"
	"testing"
)

func TestBindTopicJSON(t *testing.T) {
	b := binding{Topic: "t", Cluster: "K_main", ProxyCluster: "P_ddmq", Instance: "10.0.0.12:9613"}
	tests := []struct {
		name    string
		in      string
		b       binding
		want    string // "" = unchanged (the input is returned)
		wantErr string
	}{
		{
			name: "adds to the existing unit, keeps everything else",
			in:   `{"topic":"t","x-unknown":{"a":[1,2.50]},"topicUnits":[{"brokerCluster":"K_main","proxies":{"P_ddmq":["10.0.0.11:9613"]},"totalMaxTps":2000,"maxTps":500.0,"extra":true}],"delayTopic":false}`,
			b:    b,
			want: `{"topic":"t","x-unknown":{"a":[1,2.50]},"topicUnits":[{"brokerCluster":"K_main","proxies":{"P_ddmq":["10.0.0.11:9613","10.0.0.12:9613"]},"totalMaxTps":2000,"maxTps":500.0,"extra":true}],"delayTopic":false}`,
		},
		{
			name: "already bound",
			in:   `{"topic":"t", "topicUnits":[{"brokerCluster":"K_main","proxies":{"P_ddmq":["10.0.0.12:9613"]}}]}`,
			b:    b,
		},
		{
			name: "already bound, same maxTps in another spelling",
			in:   `{"topic":"t","topicUnits":[{"brokerCluster":"K_main","proxies":{"P_ddmq":["10.0.0.12:9613"]},"maxTps":500.0}]}`,
			b:    with(b, func(b *binding) { b.MaxTps = 500 }),
		},
		{
			name: "sets maxTps of the existing unit",
			in:   `{"topic":"t","topicUnits":[{"brokerCluster":"K_main","proxies":{"P_ddmq":["10.0.0.12:9613"]},"maxTps":500.0,"totalMaxTps":500}]}`,
			b:    with(b, func(b *binding) { b.MaxTps = 1000 }),
			want: `{"topic":"t","topicUnits":[{"brokerCluster":"K_main","proxies":{"P_ddmq":["10.0.0.12:9613"]},"maxTps":1000,"totalMaxTps":500}]}`,
		},
		{
			name: "adds a proxy cluster key; keys are exact",
			in:   `{"topic":"t","topicUnits":[{"brokerCluster":"K_main","proxies":{"p_ddmq":["10.0.0.11:9613"]}}]}`,
			b:    b,
			want: `{"topic":"t","topicUnits":[{"brokerCluster":"K_main","proxies":{"p_ddmq":["10.0.0.11:9613"],"P_ddmq":["10.0.0.12:9613"]}}]}`,
		},
		{
			name: "creates the unit of a new cluster",
			in:   `{"topic":"t","topicUnits":[{"brokerCluster":"R_default","proxies":{"P_ddmq":["10.0.0.12:9613"]}}]}`,
			b:    b,
			want: `{"topic":"t","topicUnits":[{"brokerCluster":"R_default","proxies":{"P_ddmq":["10.0.0.12:9613"]}},{"brokerCluster":"K_main","proxies":{"P_ddmq":["10.0.0.12:9613"]}}]}`,
		},
		{
			name: "creates the unit with rates",
			in:   `{"topic":"t"}`,
			b:    with(b, func(b *binding) { b.MaxTps = 1000 }),
			want: `{"topic":"t","topicUnits":[{"brokerCluster":"K_main","proxies":{"P_ddmq":["10.0.0.12:9613"]},"totalMaxTps":1000,"maxTps":1000}]}`,
		},
		{
			name: "null topicUnits and proxies",
			in:   `{"topic":"t","topicUnits":[{"brokerCluster":"K_main","proxies":null}]}`,
			b:    b,
			want: `{"topic":"t","topicUnits":[{"brokerCluster":"K_main","proxies":{"P_ddmq":["10.0.0.12:9613"]}}]}`,
		},
		{
			name: "field names match case-insensitively and keep their spelling",
			in:   `{"topic":"t","TopicUnits":[{"BrokerCluster":"K_main"}]}`,
			b:    b,
			want: `{"topic":"t","TopicUnits":[{"BrokerCluster":"K_main","proxies":{"P_ddmq":["10.0.0.12:9613"]}}]}`,
		},
		{
			name: "no HTML escaping of kept strings",
			in:   `{"topic":"t","note":"a&b<c>","topicUnits":[]}`,
			b:    b,
			want: `{"topic":"t","note":"a&b<c>","topicUnits":[{"brokerCluster":"K_main","proxies":{"P_ddmq":["10.0.0.12:9613"]}}]}`,
		},
		{name: "not JSON", in: `{"topic":`, b: b, wantErr: "invalid JSON"},
		{name: "not an object", in: `[1]`, b: b, wantErr: "not an object"},
		{name: "trailing data", in: `{} {}`, b: b, wantErr: "data after"},
		{name: "topicUnits not a list", in: `{"topicUnits":{}}`, b: b, wantErr: "topicUnits"},
		{name: "unit not an object", in: `{"topicUnits":[1]}`, b: b, wantErr: "topicUnits[0]"},
		{name: "proxies list of numbers", in: `{"topicUnits":[{"brokerCluster":"K_main","proxies":{"P_ddmq":[1]}}]}`, b: b, wantErr: "topicUnits[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, changed, err := bindTopicJSON([]byte(tc.in), tc.b)
			checkEdit(t, tc.in, string(got), changed, err, tc.want, tc.wantErr)
		})
	}
}

func TestUnbindTopicJSON(t *testing.T) {
	const inst = "10.0.0.12:9613"
	tests := []struct {
		name, in, want, wantErr string
	}{
		{
			name: "removes from every unit and proxy cluster",
			in:   `{"topic":"t","topicUnits":[{"brokerCluster":"R","proxies":{"P_a":["10.0.0.11:9613","10.0.0.12:9613"],"P_b":["10.0.0.12:9613"]},"maxTps":1.0},{"brokerCluster":"K","proxies":{"P_a":["10.0.0.12:9613","10.0.0.12:9613"]}}],"z":1}`,
			want: `{"topic":"t","topicUnits":[{"brokerCluster":"R","proxies":{"P_a":["10.0.0.11:9613"]},"maxTps":1.0},{"brokerCluster":"K","proxies":{}}],"z":1}`,
		},
		{
			name: "not bound",
			in:   `{"topic":"t","topicUnits":[{"brokerCluster":"R","proxies":{"P_a":["10.0.0.11:9613"]}}]}`,
		},
		{name: "no units", in: `{"topic":"t"}`},
		{name: "bad proxies", in: `{"topicUnits":[{"proxies":[]}]}`, wantErr: "topicUnits[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, changed, err := unbindTopicJSON([]byte(tc.in), inst)
			checkEdit(t, tc.in, string(got), changed, err, tc.want, tc.wantErr)
		})
	}
}

func TestWhitelistJSON(t *testing.T) {
	tests := []struct {
		name, in, want, wantErr string
		remove                  bool
	}{
		{name: "add", in: `{"instance":"i","topics":["a"],"carreraConfiguration":{"maxTps":1.50}}`, want: `{"instance":"i","topics":["a","t"],"carreraConfiguration":{"maxTps":1.50}}`},
		{name: "add present", in: `{"topics":["t","a"]}`},
		{name: "add to missing list", in: `{"instance":"i"}`, want: `{"instance":"i","topics":["t"]}`},
		{name: "add to null list", in: `{"topics":null}`, want: `{"topics":["t"]}`},
		{name: "remove", in: `{"topics":["a","t","b","t"],"x":[]}`, remove: true, want: `{"topics":["a","b"],"x":[]}`},
		{name: "remove last", in: `{"topics":["t"]}`, remove: true, want: `{"topics":[]}`},
		{name: "remove absent", in: `{"topics":["a"]}`, remove: true},
		{name: "bad list", in: `{"topics":"t"}`, wantErr: "topics"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			edit := addWhitelistJSON
			if tc.remove {
				edit = removeWhitelistJSON
			}
			got, changed, err := edit([]byte(tc.in), "t")
			checkEdit(t, tc.in, string(got), changed, err, tc.want, tc.wantErr)
		})
	}
}

func TestBindUnbindRoundTrip(t *testing.T) {
	in := `{"topic":"t","topicUnits":[{"brokerCluster":"K_main","proxies":{"P_ddmq":["10.0.0.11:9613"]},"maxTps":1024}]}`
	b := binding{Topic: "t", Cluster: "K_main", ProxyCluster: "P_ddmq", Instance: "10.0.0.12:9613"}
	bound, changed, err := bindTopicJSON([]byte(in), b)
	if err != nil || !changed {
		t.Fatalf("bind: changed=%v err=%v", changed, err)
	}
	out, changed, err := unbindTopicJSON(bound, b.Instance)
	if err != nil || !changed {
		t.Fatalf("unbind: changed=%v err=%v", changed, err)
	}
	if string(out) != in {
		t.Fatalf("round trip:\n got %s\nwant %s", out, in)
	}
}

func TestParsePProxyInfo(t *testing.T) {
	info, err := parsePProxyInfo([]byte(`{"proxyCluster":"P_x","carreraConfiguration":{"kafkaConfigurationMap":{"K_b":{},"K_a":{}},"rocketmqConfigurationMap":{"R":{}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if info.ProxyCluster != "P_x" || strings.Join(info.Clusters, ",") != "K_b,K_a,R" {
		t.Fatalf("got %+v", info)
	}
	if _, err := parsePProxyInfo([]byte(`{"carreraConfiguration":[]}`)); err == nil {
		t.Fatal("want an error for a non-object carreraConfiguration")
	}
}

// checkEdit checks the result of a pure JSON edit. want "" means "unchanged":
// the input must come back as is.
func checkEdit(t *testing.T, in, got string, changed bool, err error, want, wantErr string) {
	t.Helper()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("err = %v, want one containing %q", err, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	if want == "" {
		if changed || got != in {
			t.Fatalf("want unchanged, got changed=%v %s", changed, got)
		}
		return
	}
	if !changed || got != want {
		t.Fatalf("changed=%v\n got %s\nwant %s", changed, got, want)
	}
}

func with(b binding, f func(*binding)) binding {
	f(&b)
	return b
}
