package config

import (
	"reflect"
	"strings"
	"testing"
)

func exampleGroups(t *testing.T) map[string]*GroupConfig {
	t.Helper()
	m := map[string]*GroupConfig{}
	for _, doc := range []string{exampleGroupOrderPull, exampleGroupOrderHTTP, exampleGroupClicksLowLevel, exampleGroupChronosInner} {
		g := mustParseGroup(t, doc)
		m[g.Group] = g
	}
	return m
}

func TestBuildCProxySnapshotExample(t *testing.T) {
	node := mustParseCProxy(t, exampleCProxy)
	snap, err := BuildCProxySnapshot("10.0.0.21:9713", node, exampleGroups(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []UnitKey{
		{"cg_R_test_chronos_inner_0_0", "R_default"}, {"cg_clicks_lowlevel", "K_main"},
		{"cg_order_http", "R_default"}, {"cg_order_pull", "R_default"},
	}
	if got := snap.UnitKeys(); !reflect.DeepEqual(got, want) {
		t.Fatalf("units %v, want %v", got, want)
	}
	if len(snap.Groups) != 4 || len(snap.Unconfigured) != 0 {
		t.Fatalf("groups %d, unconfigured %v", len(snap.Groups), snap.Unconfigured)
	}
	if !equalStrings(snap.WatchGroups(), []string{"cg_R_test_chronos_inner_0_0", "cg_clicks_lowlevel", "cg_order_http", "cg_order_pull"}) {
		t.Fatal(snap.WatchGroups())
	}

	pull, _ := snap.Unit("cg_order_pull", "R_default")
	if pull.ClusterKind != ClusterRocketMQ || pull.RocketMQ == nil || pull.Kafka != nil || pull.Group.Kind != KindPull {
		t.Fatalf("pull unit: %+v", pull)
	}
	if s, ok := pull.Subscription("order_created"); !ok || s.Kind != KindPull || s.TagExpression != "*" || s.MaxConsumeLag != -1 {
		t.Fatalf("pull subscription: %+v", s)
	}
	if pull.FetchThreads() != 1 || pull.PullThresholdForTopic() != 1024 || pull.CommitIntervalMillis() != 5000 {
		t.Fatalf("derived: %d %d %d", pull.FetchThreads(), pull.PullThresholdForTopic(), pull.CommitIntervalMillis())
	}

	http, _ := snap.Unit("cg_order_http", "R_default")
	s := http.Subscriptions[0]
	if http.Group.Kind != KindPush || s.Kind != KindPush || s.TagExpression != "paid||refunded" || s.MaxConsumeLag != 768 {
		t.Fatalf("http unit: %+v %+v", http, s)
	}

	low, _ := snap.Unit("cg_clicks_lowlevel", "K_main")
	if low.ClusterKind != ClusterKafka || low.Kafka == nil || low.Group.Kind != KindLowLevel || low.Subscriptions[0].Kind != KindLowLevel {
		t.Fatalf("low-level unit: %+v", low)
	}
	if !equalStrings(low.Kafka.BootstrapServers(), []string{"10.0.1.6:9092", "10.0.1.7:9092"}) || low.CommitIntervalMillis() != 5000 || low.PullThresholdForTopic() != 0 {
		t.Fatalf("kafka: %+v", low.Kafka)
	}
	if got := snap.UnitsOf("cg_clicks_lowlevel"); len(got) != 1 || got[0] != low {
		t.Fatalf("UnitsOf: %v", got)
	}
	if snap.UnitsOf("nope") != nil {
		t.Fatal("UnitsOf unknown group")
	}

	// Another instance of the same proxy cluster serves nothing.
	other, err := BuildCProxySnapshot("10.0.0.22:9713", node, exampleGroups(t))
	if err != nil || len(other.Units) != 0 || len(other.Groups) != 4 {
		t.Fatalf("other instance: %v %+v", err, other)
	}
}

func TestBuildCProxySnapshotBinding(t *testing.T) {
	const me, peer = "127.0.0.1:9713", "127.0.0.2:9713"
	node := mustParseCProxy(t, patchJSON(t, minimalCProxy, func(m map[string]any) {
		m["brokerClusters"] = []any{"R_default", "K_main", "R_unconf"}
		m["kafkaConfigs"] = map[string]any{"K_main": map[string]any{"zookeeperAddr": "zk", "autoCommitInterval": 1000}}
		m["groups"] = []any{"g", "g_missing", "g"}
		obj(m, "rocketmqConfigs", "R_default")["subscription"] = map[string]any{"override": "x||y"}
		// A configured cluster that is not listed in brokerClusters.
		obj(m, "rocketmqConfigs")["R_unlisted"] = obj(m, "rocketmqConfigs", "R_default")
	}))
	u := func(cluster, topic string, enabled bool, proxies map[string]any, edit ...func(map[string]any)) map[string]any {
		return unitJSON(t, func(x map[string]any) {
			x["brokerCluster"], x["topic"], x["enabled"], x["proxies"] = cluster, topic, enabled, proxies
			for _, e := range edit {
				e(x)
			}
		})
	}
	mine := map[string]any{"C_test": []any{me}}
	peers := map[string]any{"C_test": []any{peer}}
	otherCluster := map[string]any{"C_other": []any{me}}
	tags := func(x map[string]any) { x["tags"] = []any{"a", "b"} }

	tests := []struct {
		name         string
		group        string
		groupName    string // key in the groups map; default "g"
		want         map[UnitKey][]string
		unconfigured []UnitKey
	}{
		{"listed under own proxy cluster", groupJSON(t, "g", nil, u("R_default", "t", true, mine)),
			"", map[UnitKey][]string{{"g", "R_default"}: {"t"}}, nil},
		{"listed only under another proxy cluster", groupJSON(t, "g", nil, u("R_default", "t", true, otherCluster)),
			"", map[UnitKey][]string{}, nil},
		{"cluster not in brokerClusters", groupJSON(t, "g", nil, u("R_unlisted", "t", true, mine)),
			"", map[UnitKey][]string{}, nil},
		{"binding is per group and cluster", groupJSON(t, "g", nil,
			u("R_default", "t1", true, peers), u("R_default", "t2", true, mine), u("R_default", "t3", true, map[string]any{})),
			"", map[UnitKey][]string{{"g", "R_default"}: {"t1", "t2", "t3"}}, nil},
		{"cluster without a unit listing us is not served (defect #16)", groupJSON(t, "g", nil,
			u("R_default", "t1", true, mine), u("K_main", "t1", true, peers)),
			"", map[UnitKey][]string{{"g", "R_default"}: {"t1"}}, nil},
		{"disabled units neither bind nor are served", groupJSON(t, "g", nil,
			u("R_default", "t1", false, mine), u("R_default", "t2", true, peers),
			u("K_main", "t1", true, mine), u("K_main", "t2", false, mine)),
			"", map[UnitKey][]string{{"g", "K_main"}: {"t1"}}, nil},
		{"bound but unconfigured cluster", groupJSON(t, "g", nil, u("R_unconf", "t", true, mine), u("R_default", "t", true, mine)),
			"", map[UnitKey][]string{{"g", "R_default"}: {"t"}}, []UnitKey{{"g", "R_unconf"}}},
		{"group not white-listed", groupJSON(t, "x", nil, u("R_default", "t", true, mine)),
			"x", map[UnitKey][]string{}, nil},
		{"node name is the group name", groupJSON(t, "spelled_differently", nil, u("R_default", "t", true, mine)),
			"g", map[UnitKey][]string{{"g", "R_default"}: {"t"}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := tc.groupName
			if name == "" {
				name = "g"
			}
			snap, err := BuildCProxySnapshot(me, node, map[string]*GroupConfig{name: mustParseGroup(t, tc.group)})
			if err != nil {
				t.Fatal(err)
			}
			got := map[UnitKey][]string{}
			for k, uv := range snap.Units {
				got[k] = uv.Topics()
				if uv.Key != k || uv.Group != snap.Groups[k.Group] {
					t.Fatalf("unit %s: key/group mismatch", k)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("served %v, want %v", got, tc.want)
			}
			if !reflect.DeepEqual(snap.Unconfigured, tc.unconfigured) {
				t.Fatalf("unconfigured %v, want %v", snap.Unconfigured, tc.unconfigured)
			}
			if _, ok := snap.Group("g_missing"); ok {
				t.Fatal("white-listed group without a node must be absent")
			}
		})
	}

	t.Run("tag expressions per cluster", func(t *testing.T) {
		g := mustParseGroup(t, groupJSON(t, "g", nil,
			u("R_default", "t", true, mine, tags), u("R_default", "override", true, mine, tags), u("K_main", "t", true, mine, tags)))
		snap, err := BuildCProxySnapshot(me, node, map[string]*GroupConfig{"g": g})
		if err != nil {
			t.Fatal(err)
		}
		r, _ := snap.Unit("g", "R_default")
		k, _ := snap.Unit("g", "K_main")
		if r.Subscriptions[0].TagExpression != "a||b" || r.Subscriptions[1].TagExpression != "x||y" || k.Subscriptions[0].TagExpression != "*" {
			t.Fatalf("%+v %+v %+v", r.Subscriptions[0], r.Subscriptions[1], k.Subscriptions[0])
		}
		if gv, _ := snap.Group("g"); !reflect.DeepEqual(gv.Units, []UnitKey{{"g", "K_main"}, {"g", "R_default"}}) {
			t.Fatalf("group units %v", gv.Units)
		}
	})
}

func TestBuildCProxySnapshotErrors(t *testing.T) {
	node := mustParseCProxy(t, exampleCProxy)
	if _, err := BuildCProxySnapshot("", node, nil); err == nil {
		t.Error("empty instance: want error")
	}
	if _, err := BuildCProxySnapshot("i", nil, nil); err == nil {
		t.Error("nil node: want error")
	}
	bad := *node
	bad.ProxyCluster = ""
	if _, err := BuildCProxySnapshot("i", &bad, nil); err == nil || !strings.Contains(err.Error(), "proxyCluster") {
		t.Errorf("invalid node: %v", err)
	}
	groups := exampleGroups(t)
	groups["cg_order_pull"].AsyncThreads = 0
	if _, err := BuildCProxySnapshot("i", node, groups); err == nil || !strings.Contains(err.Error(), `group "cg_order_pull"`) {
		t.Errorf("invalid group: %v", err)
	}
	groups["cg_order_pull"] = nil // nil entries are skipped
	if snap, err := BuildCProxySnapshot("10.0.0.21:9713", node, groups); err != nil || len(snap.Units) != 3 {
		t.Errorf("nil group: %v", err)
	}
}

// diffFixture builds snapshots of one node and a set of group documents.
type diffFixture struct {
	t    *testing.T
	node string
}

const diffMe = "127.0.0.1:9713"

func newDiffFixture(t *testing.T) *diffFixture {
	return &diffFixture{t: t, node: patchJSON(t, minimalCProxy, func(m map[string]any) {
		m["brokerClusters"] = []any{"R_default", "K_main"}
		m["kafkaConfigs"] = map[string]any{"K_main": map[string]any{"zookeeperAddr": "zk", "autoCommitInterval": 1000}}
		m["groups"] = []any{"g1", "g2"}
	})}
}

func (f *diffFixture) snap(nodeEdit func(m map[string]any), groups ...string) *CProxySnapshot {
	f.t.Helper()
	node := f.node
	if nodeEdit != nil {
		node = patchJSON(f.t, node, nodeEdit)
	}
	m := map[string]*GroupConfig{}
	for _, doc := range groups {
		g := mustParseGroup(f.t, doc)
		m[g.Group] = g
	}
	s, err := BuildCProxySnapshot(diffMe, mustParseCProxy(f.t, node), m)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func TestDiffCProxySnapshots(t *testing.T) {
	f := newDiffFixture(t)
	mine := map[string]any{"C_test": []any{diffMe}}
	unit := func(cluster string, edit ...func(map[string]any)) map[string]any {
		return unitJSON(t, func(x map[string]any) {
			x["brokerCluster"], x["proxies"], x["tags"] = cluster, mine, []any{"*"}
			for _, e := range edit {
				e(x)
			}
		})
	}
	set := func(kv ...any) func(map[string]any) {
		return func(x map[string]any) {
			for i := 0; i < len(kv); i += 2 {
				x[kv[i].(string)] = kv[i+1]
			}
		}
	}
	g1 := func(edit func(g map[string]any), rEdit, kEdit func(map[string]any)) string {
		noop := func(map[string]any) {}
		if rEdit == nil {
			rEdit = noop
		}
		if kEdit == nil {
			kEdit = noop
		}
		return groupJSON(t, "g1", edit, unit("R_default", rEdit), unit("K_main", kEdit))
	}
	g2 := groupJSON(t, "g2", nil, unit("R_default"))
	base := f.snap(nil, g1(nil, nil, nil), g2)

	r1, k1, r2 := UnitKey{"g1", "R_default"}, UnitKey{"g1", "K_main"}, UnitKey{"g2", "R_default"}
	tests := []struct {
		name string
		new  *CProxySnapshot
		want CProxyDiff
		// ratesOnly: for the Changed units, BusinessEqualExceptRates holds.
		ratesOnly bool
	}{
		{"identical rebuild", f.snap(nil, g1(nil, nil, nil), g2), CProxyDiff{}, false},
		{"concurrency restarts only its unit", f.snap(nil, g1(nil, set("concurrency", 10), nil), g2),
			CProxyDiff{Changed: []UnitKey{r1}}, false},
		{"maxTps is applied live", f.snap(nil, g1(nil, set("maxTps", 77.0), nil), g2),
			CProxyDiff{Updated: []UnitKey{r1}}, false},
		{"proxies and monitoring fields are not business", f.snap(nil, g1(nil,
			set("proxies", map[string]any{"C_test": []any{diffMe, "x:1"}, "C_other": []any{"y:1"}}, "enableAlarm", false),
			set("delayTimeThreshold", 1, "committedLagThreshold", 2)), g2),
			CProxyDiff{Updated: []UnitKey{k1, r1}}, false},
		{"totalMaxTps is a pure rate change", f.snap(nil, g1(nil, set("totalMaxTps", 5.0), nil), g2),
			CProxyDiff{Changed: []UnitKey{r1}}, true},
		{"httpMaxTps <= 0 spellings are equal", f.snap(nil, g1(nil, set("httpMaxTps", 0.0), nil), g2),
			CProxyDiff{Updated: []UnitKey{r1}}, false},
		{"maxConsumeLag change (base -1)", f.snap(nil, g1(nil, set("maxConsumeLag", 0), set("maxConsumeLag", 3072)), g2),
			CProxyDiff{Changed: []UnitKey{k1, r1}}, false},
		{"tags spellings of *", f.snap(nil, g1(nil, set("tags", nil), set("tags", []any{"a", "*"})), g2),
			CProxyDiff{Updated: []UnitKey{k1, r1}}, false},
		{"tag filter change", f.snap(nil, g1(nil, set("tags", []any{"a"}), nil), g2),
			CProxyDiff{Changed: []UnitKey{r1}}, false},
		{"group-level field restarts all its units", f.snap(nil, g1(set("asyncThreads", 3), nil, nil), g2),
			CProxyDiff{Changed: []UnitKey{k1, r1}}, false},
		{"group monitoring field", f.snap(nil, g1(set("enableAlarm", false), nil, nil), g2),
			CProxyDiff{Updated: []UnitKey{k1, r1}}, false},
		{"group kind change restarts the other cluster too", f.snap(nil, g1(nil, nil,
			set("actions", []any{"Async", "FormParams", "AsyncHttp"}, "urls", []any{"http://h/x"})), g2),
			CProxyDiff{Changed: []UnitKey{k1, r1}}, false},
		{"unbind", f.snap(nil, g1(nil, set("proxies", map[string]any{}), nil), g2),
			CProxyDiff{Removed: []UnitKey{r1}}, false},
		{"disabling a unit removes it; the group stays pull", f.snap(nil, g1(nil, nil, set("enabled", false)), g2),
			CProxyDiff{Removed: []UnitKey{k1}}, false},
		{"group deleted", f.snap(nil, g1(nil, nil, nil)),
			CProxyDiff{Removed: []UnitKey{r2}, GroupsRemoved: []string{"g2"}}, false},
		{"group removed from the white list", f.snap(set("groups", []any{"g2"}), g1(nil, nil, nil), g2),
			CProxyDiff{Removed: []UnitKey{k1, r1}, GroupsRemoved: []string{"g1"}}, false},
		{"rocketmq cluster change restarts its units only", f.snap(func(m map[string]any) {
			obj(m, "rocketmqConfigs", "R_default")["pullBatchSize"] = 1
		}, g1(nil, nil, nil), g2), CProxyDiff{Changed: []UnitKey{r1, r2}, ClustersChanged: []string{"R_default"}}, false},
		{"kafka extra {} equals absent", f.snap(func(m map[string]any) {
			obj(m, "kafkaConfigs", "K_main")["extra"] = map[string]any{}
		}, g1(nil, nil, nil), g2), CProxyDiff{Updated: []UnitKey{k1}}, false},
		{"cluster removed", f.snap(func(m map[string]any) {
			delete(m, "kafkaConfigs")
			m["brokerClusters"] = []any{"R_default"}
		}, g1(nil, nil, nil), g2), CProxyDiff{Removed: []UnitKey{k1}, ClustersChanged: []string{"K_main"}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := DiffCProxySnapshots(base, tc.new)
			if !reflect.DeepEqual(normDiff(got), normDiff(tc.want)) {
				t.Fatalf("diff\n got %+v\nwant %+v", got, tc.want)
			}
			for _, k := range got.Changed {
				if BusinessEqual(base.Units[k], tc.new.Units[k]) {
					t.Fatalf("%s: changed but business-equal", k)
				}
				if BusinessEqualExceptRates(base.Units[k], tc.new.Units[k]) != tc.ratesOnly {
					t.Fatalf("%s: BusinessEqualExceptRates = %v", k, !tc.ratesOnly)
				}
			}
			back := DiffCProxySnapshots(tc.new, base)
			if len(back.Added) != len(got.Removed) || len(back.Removed) != len(got.Added) || len(back.Changed) != len(got.Changed) {
				t.Fatalf("reverse diff %+v", back)
			}
		})
	}

	t.Run("maxConsumeLag 0 and concurrency x 3 are business-equal", func(t *testing.T) {
		a := f.snap(nil, g1(nil, set("maxConsumeLag", 0), nil), g2)
		b := f.snap(nil, g1(nil, set("maxConsumeLag", 3072), nil), g2)
		if d := DiffCProxySnapshots(a, b); !reflect.DeepEqual(d.Updated, []UnitKey{r1}) || len(d.Changed) != 0 {
			t.Fatalf("%+v", d)
		}
	})
	t.Run("hbaseconfiguration is not business", func(t *testing.T) {
		hb := func(zk string) string {
			return groupJSON(t, "g1", nil, unit("R_default", set("actions", []any{"Async", "Hbase"}, "concurrency", 1000),
				func(x map[string]any) {
					var frag map[string]any
					_ = jsonUnmarshal("{"+exampleHBaseFragment+"}", &frag)
					h := frag["hbaseconfiguration"].(map[string]any)
					h["hbaseZK"] = zk
					x["hbaseconfiguration"] = h
				}))
		}
		d := DiffCProxySnapshots(f.snap(nil, hb("a")), f.snap(nil, hb("b")))
		if !reflect.DeepEqual(d.Updated, []UnitKey{r1}) || len(d.Changed) != 0 {
			t.Fatalf("%+v", d)
		}
	})
	t.Run("from and to nil", func(t *testing.T) {
		d := DiffCProxySnapshots(nil, base)
		if !reflect.DeepEqual(d.Added, []UnitKey{k1, r1, r2}) || !equalStrings(d.GroupsAdded, []string{"g1", "g2"}) ||
			!equalStrings(d.ClustersChanged, []string{"K_main", "R_default"}) {
			t.Fatalf("%+v", d)
		}
		d = DiffCProxySnapshots(base, nil)
		if !reflect.DeepEqual(d.Removed, []UnitKey{k1, r1, r2}) || !equalStrings(d.GroupsRemoved, []string{"g1", "g2"}) {
			t.Fatalf("%+v", d)
		}
		if !DiffCProxySnapshots(nil, nil).Empty() || !BusinessEqual(nil, nil) || BusinessEqual(nil, base.Units[r1]) {
			t.Fatal("nil handling")
		}
	})
}

// normDiff maps empty lists to nil for comparison.
func normDiff(d CProxyDiff) CProxyDiff {
	for _, l := range []*[]UnitKey{&d.Added, &d.Removed, &d.Changed, &d.Updated} {
		if len(*l) == 0 {
			*l = nil
		}
	}
	for _, l := range []*[]string{&d.GroupsAdded, &d.GroupsRemoved, &d.ClustersChanged} {
		if len(*l) == 0 {
			*l = nil
		}
	}
	return d
}

func TestUnitKeyString(t *testing.T) {
	if s := (UnitKey{"g", "R"}).String(); s != "g@R" {
		t.Fatal(s)
	}
	for k, want := range map[ConsumeKind]string{KindPull: "pull", KindLowLevel: "lowlevel", KindPush: "push", 0: "unknown"} {
		if k.String() != want {
			t.Errorf("%d: %s", k, k.String())
		}
	}
}
