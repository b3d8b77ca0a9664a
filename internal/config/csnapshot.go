package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
)

// UnitKey identifies a served (group, broker cluster) pair, written G@B.
// There is one broker consumer per G@B (zookeeper-layout.md §5.11).
type UnitKey struct {
	Group   string
	Cluster string
}

// String returns "group@cluster".
func (k UnitKey) String() string { return k.Group + "@" + k.Cluster }

// CProxySnapshot is the complete, validated, immutable view of one cproxy
// instance, rebuilt from scratch on every ZooKeeper change and swapped
// atomically. Readers never mutate it.
type CProxySnapshot struct {
	// Instance is this cproxy's "<host>:<port>" name.
	Instance string
	// Node is the parsed /cproxy/<instance> node (defaults applied).
	Node *CProxyConfig
	// Groups holds every white-listed group whose node exists and is
	// valid, served here or not (getConsumeStats looks at all of them).
	Groups map[string]*GroupView
	// Units holds the served G@B units only.
	Units map[UnitKey]*UnitView
	// Unconfigured lists units that the binding rules assign to this
	// instance but whose cluster is in neither rocketmqConfigs nor
	// kafkaConfigs: they cannot be consumed and are not served (log them).
	// Sorted.
	Unconfigured []UnitKey
}

// GroupView is one white-listed group.
type GroupView struct {
	// Name is the node name (/group/<Name>); it is the consumer group.
	Name   string
	Config *GroupConfig
	// Kind is the group's kind over all its enabled subscriptions
	// (GroupConfig.Kind): Pull groups start their consumers lazily.
	Kind ConsumeKind
	// Units are the keys of the group's served units, sorted by cluster.
	Units []UnitKey
}

// UnitView is one served G@B: the enabled subscriptions of group G on
// broker cluster B, consumed by one broker consumer.
type UnitView struct {
	Key   UnitKey
	Group *GroupView
	// ClusterKind is ClusterRocketMQ or ClusterKafka (never ClusterNone).
	ClusterKind ClusterKind
	// RocketMQ is the cluster's configuration when ClusterKind is
	// ClusterRocketMQ, else nil.
	RocketMQ *RocketmqConsumerConfiguration
	// Kafka is the cluster's configuration when ClusterKind is
	// ClusterKafka, else nil.
	Kafka *KafkaConsumerConfiguration
	// Subscriptions are the group's enabled subscriptions on the cluster,
	// in configuration order; their topics are distinct.
	Subscriptions []*Subscription
}

// Broadcasting reports whether the unit consumes in RocketMQ's
// broadcasting model: the group's messageModel when set, else its cluster's.
// Kafka units never broadcast.
func (u *UnitView) Broadcasting() bool {
	if u.ClusterKind != ClusterRocketMQ || u.RocketMQ == nil {
		return false
	}
	if u.Group != nil && u.Group.Config != nil && u.Group.Config.MessageModel != "" {
		return u.Group.Config.MessageModel == MessageModelBroadcasting
	}
	return u.RocketMQ.Broadcasting()
}

// Subscription is the consumer's view of one enabled UpstreamTopic, with
// the derived values applied.
type Subscription struct {
	Topic  string
	Config *UpstreamTopic
	// Kind is Pull, LowLevel or Push.
	Kind ConsumeKind
	// TagExpression is the RocketMQ tag filter ("*" or "a||b"), taken from
	// the cluster's subscription map when it has the topic; always "*" on
	// Kafka, which has no tags.
	TagExpression string
	// MaxConsumeLag is the effective lag limit (0 resolved to
	// concurrency × 3; -1 = unlimited).
	MaxConsumeLag int64
}

// Group returns a white-listed group with a valid node.
func (s *CProxySnapshot) Group(name string) (*GroupView, bool) {
	g, ok := s.Groups[name]
	return g, ok
}

// Unit returns a served G@B.
func (s *CProxySnapshot) Unit(group, cluster string) (*UnitView, bool) {
	u, ok := s.Units[UnitKey{group, cluster}]
	return u, ok
}

// UnitKeys returns the served units, sorted by group, then cluster.
func (s *CProxySnapshot) UnitKeys() []UnitKey {
	keys := make([]UnitKey, 0, len(s.Units))
	for k := range s.Units {
		keys = append(keys, k)
	}
	sortUnitKeys(keys)
	return keys
}

// UnitsOf returns the served units of a group, sorted by cluster.
func (s *CProxySnapshot) UnitsOf(group string) []*UnitView {
	g, ok := s.Groups[group]
	if !ok {
		return nil
	}
	out := make([]*UnitView, 0, len(g.Units))
	for _, k := range g.Units {
		out = append(out, s.Units[k])
	}
	return out
}

// ClusterKind returns the backend of a broker cluster on this cproxy.
func (s *CProxySnapshot) ClusterKind(name string) ClusterKind {
	return s.Node.ClusterKind(name)
}

// WatchGroups returns the groups whose /group/<g> nodes must be watched:
// the white list, sorted and de-duplicated.
func (s *CProxySnapshot) WatchGroups() []string {
	return WatchGroupNames(s.Node)
}

// WatchGroupNames returns the group white list of a node, sorted and
// de-duplicated (empty names dropped).
func WatchGroupNames(node *CProxyConfig) []string {
	return unionSorted(node.Groups)
}

// Subscription returns the unit's subscription of a topic.
func (u *UnitView) Subscription(topic string) (*Subscription, bool) {
	for _, s := range u.Subscriptions {
		if s.Topic == topic {
			return s, true
		}
	}
	return nil, false
}

// Topics returns the unit's topics in configuration order.
func (u *UnitView) Topics() []string {
	out := make([]string, len(u.Subscriptions))
	for i, s := range u.Subscriptions {
		out[i] = s.Topic
	}
	return out
}

// FetchThreads returns Σ fetchThreads of the unit's subscriptions (the
// RocketMQ consume threads unless consumeThreadMin/Max are present; Kafka
// uses fetchThreads per topic).
func (u *UnitView) FetchThreads() int {
	n := 0
	for _, s := range u.Subscriptions {
		n += s.Config.FetchThreads
	}
	return n
}

// PullThresholdForTopic returns the RocketMQ client's per-topic cache
// limit: the configured value, else max(1000, max concurrency of the
// unit's subscriptions). 0 for Kafka units.
func (u *UnitView) PullThresholdForTopic() int {
	if u.RocketMQ == nil {
		return 0
	}
	if v := u.RocketMQ.PullThresholdForTopic; v != nil {
		return *v
	}
	n := DefaultPullThresholdForTopicFloor
	for _, s := range u.Subscriptions {
		n = max(n, s.Config.Concurrency)
	}
	return n
}

// CommitIntervalMillis returns cproxy's offset commit interval for the
// unit's cluster: persistConsumerOffsetInterval (RocketMQ) or
// autoCommitInterval (Kafka).
func (u *UnitView) CommitIntervalMillis() int {
	switch {
	case u.RocketMQ != nil:
		return u.RocketMQ.PersistConsumerOffsetInterval
	case u.Kafka != nil:
		return u.Kafka.AutoCommitInterval
	default:
		return 0
	}
}

// BuildCProxySnapshot assembles the view of cproxy instance from its node
// and the group nodes (keyed by node name), following the binding rules of
// zookeeper-layout.md §5.11. For node proxyCluster C and each white-listed
// group G with a node:
//
//  1. disabled subscriptions are dropped;
//  2. for each broker cluster B, S(B) is the union of proxies[C] over G's
//     enabled subscriptions on B (other proxy clusters' entries do not
//     count);
//  3. instance serves all of G's enabled subscriptions on B iff it is in
//     S(B) and B is in the node's brokerClusters — binding is per G@B;
//  4. B is RocketMQ if it is a key of rocketmqConfigs, Kafka if it is a key
//     of kafkaConfigs; a bound B in neither is listed in Unconfigured.
//
// A cluster on which no subscription lists this instance is simply not
// served (no error; DDMQ defect #16). Groups in groups that are not
// white-listed are ignored; white-listed groups without a node are absent.
// The node and every used group are validated; nil entries are skipped.
func BuildCProxySnapshot(instance string, node *CProxyConfig, groups map[string]*GroupConfig) (*CProxySnapshot, error) {
	if instance == "" {
		return nil, errors.New("build cproxy snapshot: empty instance name")
	}
	if node == nil {
		return nil, errors.New("build cproxy snapshot: nil cproxy node")
	}
	if err := node.Validate(); err != nil {
		return nil, fmt.Errorf("build cproxy snapshot: cproxy node %q: %w", node.Instance, err)
	}
	snap := &CProxySnapshot{
		Instance: instance,
		Node:     node,
		Groups:   map[string]*GroupView{},
		Units:    map[UnitKey]*UnitView{},
	}
	for _, name := range WatchGroupNames(node) {
		gc := groups[name]
		if gc == nil {
			continue // white-listed but no node (yet)
		}
		if err := gc.Validate(); err != nil {
			return nil, fmt.Errorf("build cproxy snapshot: group %q: %w", name, err)
		}
		gv := &GroupView{Name: name, Config: gc, Kind: gc.Kind()}
		snap.Groups[name] = gv

		byCluster := map[string][]*UpstreamTopic{}
		bound := map[string]bool{}
		for _, u := range gc.EnabledTopics() {
			byCluster[u.BrokerCluster] = append(byCluster[u.BrokerCluster], u)
			if u.ListsProxyIn(node.ProxyCluster, instance) {
				bound[u.BrokerCluster] = true
			}
		}
		for _, cluster := range sortedKeys(byCluster) {
			if !bound[cluster] || !node.ServesCluster(cluster) {
				continue
			}
			key := UnitKey{Group: name, Cluster: cluster}
			uv := &UnitView{Key: key, Group: gv, ClusterKind: node.ClusterKind(cluster)}
			switch uv.ClusterKind {
			case ClusterRocketMQ:
				rc := node.RocketmqConfigs[cluster]
				uv.RocketMQ = &rc
			case ClusterKafka:
				kc := node.KafkaConfigs[cluster]
				uv.Kafka = &kc
			default:
				snap.Unconfigured = append(snap.Unconfigured, key)
				continue
			}
			for _, u := range byCluster[cluster] {
				sub := &Subscription{
					Topic:         u.Topic,
					Config:        u,
					Kind:          u.Kind(),
					TagExpression: TagAll,
					MaxConsumeLag: u.EffectiveMaxConsumeLag(),
				}
				if uv.RocketMQ != nil {
					sub.TagExpression = uv.RocketMQ.TagExpression(u.Topic, u.TagExpression())
				}
				uv.Subscriptions = append(uv.Subscriptions, sub)
			}
			snap.Units[key] = uv
			gv.Units = append(gv.Units, key)
		}
	}
	sortUnitKeys(snap.Unconfigured)
	return snap, nil
}

func sortUnitKeys(keys []UnitKey) {
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Group != keys[j].Group {
			return keys[i].Group < keys[j].Group
		}
		return keys[i].Cluster < keys[j].Cluster
	})
}

// ---- Business equality and diff (zookeeper-layout.md §7.2) ----

// BusinessEqual reports whether two views of a G@B would make its broker
// consumer behave the same, so that a configuration change between them
// needs no consumer restart (§7.2). It compares:
//
//   - the group's asyncThreads, effective delayRequestHandlerThreads,
//     redisConfig, and its kind (lazy start or not);
//   - every field of the unit's subscriptions (matched by topic) except
//     proxies, maxTps, hbaseconfiguration and the monitoring-only fields
//     (enableAlarm, delayTimeThreshold, committedLagThreshold); derived
//     values are compared instead of their spellings (maxConsumeLag 0 and
//     concurrency × 3, tags and the effective tag expression, httpMethod
//     case, httpMaxTps <= 0, an ignored deadLetterTopic);
//   - the cluster kind and the cluster's rocketmqConfigs/kafkaConfigs entry
//     (a finer rule than DDMQ's "restart all consumers on any change of the
//     cluster maps"; CProxyDiff.ClustersChanged allows the coarse one).
//
// Nil views are equal only to nil.
func BusinessEqual(a, b *UnitView) bool {
	return businessEqual(a, b, false)
}

// BusinessEqualExceptRates is BusinessEqual that also ignores totalMaxTps
// and httpMaxTps: a false BusinessEqual with a true
// BusinessEqualExceptRates is a pure rate change, which a cproxy may apply
// to its limiters live instead of restarting the consumer (§7.2).
func BusinessEqualExceptRates(a, b *UnitView) bool {
	return businessEqual(a, b, true)
}

func businessEqual(a, b *UnitView, ignoreRates bool) bool {
	if a == nil || b == nil {
		return a == b
	}
	return reflect.DeepEqual(businessKey(a, ignoreRates), businessKey(b, ignoreRates))
}

type unitBusiness struct {
	AsyncThreads int
	DelayThreads int
	Redis        *RedisConfiguration
	GroupKind    ConsumeKind
	Broadcasting bool
	ClusterKind  ClusterKind
	RocketMQ     *RocketmqConsumerConfiguration
	Kafka        *KafkaConsumerConfiguration
	Subs         map[string]UpstreamTopic
}

func businessKey(u *UnitView, ignoreRates bool) unitBusiness {
	g := u.Group.Config
	k := unitBusiness{
		AsyncThreads: g.AsyncThreads,
		DelayThreads: g.EffectiveDelayRequestHandlerThreads(),
		Redis:        g.RedisConfig,
		GroupKind:    u.Group.Kind,
		Broadcasting: u.Broadcasting(),
		ClusterKind:  u.ClusterKind,
		RocketMQ:     normalRocketMQ(u.RocketMQ),
		Kafka:        normalKafka(u.Kafka),
		Subs:         make(map[string]UpstreamTopic, len(u.Subscriptions)),
	}
	for _, s := range u.Subscriptions {
		c := *s.Config
		c.Proxies = nil
		c.MaxTps = 0
		c.HBaseConfiguration = nil
		c.EnableAlarm, c.DelayTimeThreshold, c.CommittedLagThreshold = false, 0, 0
		c.Tags = []string{s.TagExpression}
		c.MaxConsumeLag = s.MaxConsumeLag
		c.HTTPMethod = c.Method()
		if c.HTTPMaxTps <= 0 {
			c.HTTPMaxTps = -1
		}
		c.DeadLetterPolicy = c.EffectiveDeadLetterPolicy()
		if c.DeadLetterPolicy != DeadLetterDLQ {
			c.DeadLetterTopic = ""
		}
		c.URLs = nilIfEmpty(c.URLs)
		c.AppendContext = nilIfEmpty(c.AppendContext)
		c.RetryIntervals = nilIfEmpty(c.RetryIntervals)
		c.Actions = nilIfEmpty(c.Actions)
		if len(c.QueryParams) == 0 {
			c.QueryParams = nil
		}
		if len(c.Transit) == 0 {
			c.Transit = nil
		}
		if ignoreRates {
			c.TotalMaxTps, c.HTTPMaxTps = 0, 0
		}
		k.Subs[s.Topic] = c
	}
	return k
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

func normalRocketMQ(c *RocketmqConsumerConfiguration) *RocketmqConsumerConfiguration {
	if c == nil {
		return nil
	}
	n := *c
	if len(n.Subscription) == 0 {
		n.Subscription = nil
	}
	n.NamesrvAddrs = nilIfEmpty(n.NamesrvAddrs)
	return &n
}

func normalKafka(c *KafkaConsumerConfiguration) *KafkaConsumerConfiguration {
	if c == nil {
		return nil
	}
	n := *c
	if len(n.Extra) == 0 {
		n.Extra = nil
	}
	return &n
}

// unitEqual reports whether two views of a G@B carry identical
// configuration (group without its topic list, the unit's subscriptions in
// order, the cluster entry).
func unitEqual(a, b *UnitView) bool {
	if a.ClusterKind != b.ClusterKind || len(a.Subscriptions) != len(b.Subscriptions) {
		return false
	}
	ga, gb := *a.Group.Config, *b.Group.Config
	ga.Topics, gb.Topics = nil, nil
	if !reflect.DeepEqual(ga, gb) ||
		!reflect.DeepEqual(a.RocketMQ, b.RocketMQ) || !reflect.DeepEqual(a.Kafka, b.Kafka) {
		return false
	}
	// DeepEqual follows the Config pointers.
	return reflect.DeepEqual(a.Subscriptions, b.Subscriptions)
}

// CProxyDiff is what changed between two cproxy snapshots. All lists are
// sorted.
type CProxyDiff struct {
	// Added are served in the new snapshot only: start their consumers
	// (lazily for Pull groups).
	Added []UnitKey
	// Removed are served in the old snapshot only: stop their consumers.
	Removed []UnitKey
	// Changed are served in both but not BusinessEqual: restart them.
	Changed []UnitKey
	// Updated are served in both, BusinessEqual, but with a different
	// configuration (maxTps, proxies, hbaseconfiguration, monitoring
	// fields, spelling): apply live (e.g. limiter rates) or ignore.
	Updated []UnitKey
	// GroupsAdded / GroupsRemoved are white-listed groups with a valid node
	// in only the new / only the old snapshot; a removed group's buffers
	// are dropped.
	GroupsAdded   []string
	GroupsRemoved []string
	// ClustersChanged are broker clusters whose rocketmqConfigs or
	// kafkaConfigs entry was added, removed or changed. DDMQ restarts all
	// consumers when this is non-empty; the units on these clusters are
	// already in Changed.
	ClustersChanged []string
}

// Empty reports whether nothing changed.
func (d CProxyDiff) Empty() bool {
	return len(d.Added)+len(d.Removed)+len(d.Changed)+len(d.Updated)+
		len(d.GroupsAdded)+len(d.GroupsRemoved)+len(d.ClustersChanged) == 0
}

// DiffCProxySnapshots compares two snapshots; a nil oldSnap (start) makes
// everything added, a nil newSnap everything removed.
func DiffCProxySnapshots(oldSnap, newSnap *CProxySnapshot) CProxyDiff {
	var d CProxyDiff
	oldUnits, newUnits := unitsOf(oldSnap), unitsOf(newSnap)
	for k, nu := range newUnits {
		ou, ok := oldUnits[k]
		switch {
		case !ok:
			d.Added = append(d.Added, k)
		case !BusinessEqual(ou, nu):
			d.Changed = append(d.Changed, k)
		case !unitEqual(ou, nu):
			d.Updated = append(d.Updated, k)
		}
	}
	for k := range oldUnits {
		if _, ok := newUnits[k]; !ok {
			d.Removed = append(d.Removed, k)
		}
	}
	oldGroups, newGroups := groupsOf(oldSnap), groupsOf(newSnap)
	for name := range newGroups {
		if _, ok := oldGroups[name]; !ok {
			d.GroupsAdded = append(d.GroupsAdded, name)
		}
	}
	for name := range oldGroups {
		if _, ok := newGroups[name]; !ok {
			d.GroupsRemoved = append(d.GroupsRemoved, name)
		}
	}
	d.ClustersChanged = changedClusters(nodeOf(oldSnap), nodeOf(newSnap))
	for _, l := range [][]UnitKey{d.Added, d.Removed, d.Changed, d.Updated} {
		sortUnitKeys(l)
	}
	sort.Strings(d.GroupsAdded)
	sort.Strings(d.GroupsRemoved)
	return d
}

func unitsOf(s *CProxySnapshot) map[UnitKey]*UnitView {
	if s == nil {
		return nil
	}
	return s.Units
}

func groupsOf(s *CProxySnapshot) map[string]*GroupView {
	if s == nil {
		return nil
	}
	return s.Groups
}

func nodeOf(s *CProxySnapshot) *CProxyConfig {
	if s == nil {
		return nil
	}
	return s.Node
}

// changedClusters lists the cluster names whose entry differs between the
// two nodes' cluster maps (kind included), sorted.
func changedClusters(a, b *CProxyConfig) []string {
	entry := func(c *CProxyConfig, name string) any {
		if c == nil {
			return nil
		}
		if rc, ok := c.RocketmqConfigs[name]; ok {
			return normalRocketMQ(&rc)
		}
		if kc, ok := c.KafkaConfigs[name]; ok {
			return normalKafka(&kc)
		}
		return nil
	}
	var names []string
	for _, c := range []*CProxyConfig{a, b} {
		if c != nil {
			names = append(names, sortedKeys(c.RocketmqConfigs)...)
			names = append(names, sortedKeys(c.KafkaConfigs)...)
		}
	}
	var out []string
	for _, name := range unionSorted(names) {
		if !reflect.DeepEqual(entry(a, name), entry(b, name)) {
			out = append(out, name)
		}
	}
	return out
}
