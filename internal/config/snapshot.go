package config

import (
	"errors"
	"fmt"
	"sort"
)

// PProxySnapshot is the complete, validated, immutable routing view of one
// pproxy instance, rebuilt from scratch on every ZooKeeper change and swapped
// atomically. Readers never mutate it.
type PProxySnapshot struct {
	// Instance is this pproxy's "<host>:<port>" name.
	Instance string
	// Node is the parsed /pproxy/<instance> node (defaults applied).
	Node *PProxyConfig
	// Topics holds the served topics only (white-listed or static, and at
	// least one unit lists Instance). A white-listed topic that is not
	// served is absent, like an unknown topic.
	Topics map[string]*TopicView
	// StaticTopics are the names of the static topics (bootstrap and
	// carreraConfiguration.defaultTopicInfoConf), sorted. They are watched
	// in ZooKeeper like white-listed topics.
	StaticTopics []string
}

// TopicView is what pproxy needs to know about one served topic.
type TopicView struct {
	Name   string
	Config *TopicConfig
	// Clusters are the brokerCluster names of the units in management,
	// de-duplicated and sorted by name (behaviour.md §1.4).
	Clusters []string
	// MaxTps is Σ maxTps of the units in management (the limiter's L_t).
	MaxTps float64
	// MaxBodyBytes is the body limit: min maxMessageSize over the topic's
	// RocketMQ clusters, 2 097 152 if none.
	MaxBodyBytes int
	// Units are the topic units in management of this instance (those
	// listing Instance in a proxies set), in configuration order.
	Units []TopicConfiguration
}

// DefaultMaxBodyBytes is the body limit of topics without RocketMQ clusters
// and of unknown topics.
const DefaultMaxBodyBytes = 2097152

// ClusterKind is the backend type of a broker cluster on this pproxy.
type ClusterKind int

const (
	// ClusterNone: no producer for the cluster (requests get code 21).
	ClusterNone ClusterKind = iota
	// ClusterRocketMQ: a key of rocketmqConfigurationMap with useRocketmq.
	ClusterRocketMQ
	// ClusterKafka: a key of kafkaConfigurationMap with useKafka.
	ClusterKafka
)

// String returns "none", "rocketmq" or "kafka".
func (k ClusterKind) String() string {
	switch k {
	case ClusterRocketMQ:
		return "rocketmq"
	case ClusterKafka:
		return "kafka"
	default:
		return "none"
	}
}

// ClusterKind returns the backend of a broker cluster: RocketMQ when it is a
// key of rocketmqConfigurationMap and useRocketmq is set, Kafka when it is a
// key of kafkaConfigurationMap and useKafka is set, None otherwise (no
// producer: requests for it answer 21).
func (s *PProxySnapshot) ClusterKind(name string) ClusterKind {
	return clusterKind(s.Node.CarreraConfiguration, name)
}

func clusterKind(cc *CarreraConfiguration, name string) ClusterKind {
	if cc == nil {
		return ClusterNone
	}
	if _, ok := cc.RocketmqConfigurationMap[name]; ok && cc.UseRocketmq {
		return ClusterRocketMQ
	}
	if _, ok := cc.KafkaConfigurationMap[name]; ok && cc.UseKafka {
		return ClusterKafka
	}
	return ClusterNone
}

// Topic returns the served topic, or false when the topic is not served by
// this instance (unknown, not white-listed, or no unit lists the instance).
func (s *PProxySnapshot) Topic(name string) (*TopicView, bool) {
	t, ok := s.Topics[name]
	return t, ok
}

// MaxBodyBytes returns the body limit of a topic; DefaultMaxBodyBytes for a
// topic that is not served (behaviour.md §1.2 #7).
func (s *PProxySnapshot) MaxBodyBytes(topic string) int {
	if t, ok := s.Topics[topic]; ok {
		return t.MaxBodyBytes
	}
	return DefaultMaxBodyBytes
}

// Delay returns the delay block, nil when delay is disabled.
func (s *PProxySnapshot) Delay() *DelayConfiguration {
	return s.Node.CarreraConfiguration.Delay
}

// DelayPrefix returns chronosInnerTopicPrefix, or false when the node has no
// delay block (delay disabled: no prefix check, sendDelaySync answers 13).
func (s *PProxySnapshot) DelayPrefix() (string, bool) {
	d := s.Delay()
	if d == nil {
		return "", false
	}
	return d.ChronosInnerTopicPrefix, true
}

// WatchTopics returns the topics whose /topic/<t> nodes must be watched:
// the white list ∪ the static topic names, sorted and de-duplicated.
func (s *PProxySnapshot) WatchTopics() []string {
	return unionSorted(s.Node.Topics, s.StaticTopics)
}

// WatchTopicNames is WatchTopics for a node and static topics that have not
// been assembled into a snapshot yet (start-up, node changes). Static topics
// are the bootstrap ones; the node's own defaultTopicInfoConf is added.
func WatchTopicNames(node *PProxyConfig, static []*TopicConfig) []string {
	return unionSorted(node.Topics, staticNames(node, static))
}

func staticNames(node *PProxyConfig, static []*TopicConfig) []string {
	var names []string
	for _, t := range static {
		if t != nil {
			names = append(names, t.Topic)
		}
	}
	if node.CarreraConfiguration != nil {
		for _, t := range node.CarreraConfiguration.DefaultTopicInfoConf.Topics {
			if t != nil {
				names = append(names, t.Topic)
			}
		}
	}
	return unionSorted(names)
}

func unionSorted(lists ...[]string) []string {
	seen := map[string]bool{}
	out := []string{}
	for _, l := range lists {
		for _, s := range l {
			if s != "" && !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	sort.Strings(out)
	return out
}

// BuildPProxySnapshot assembles the routing view of instance from its node,
// the ZooKeeper topic nodes (keyed by node name) and the bootstrap static
// topics, following zookeeper-layout.md §4.5/§4.6:
//
//   - static topics are loaded first (bootstrap, then the node's
//     carreraConfiguration.defaultTopicInfoConf; a later one of the same
//     name replaces an earlier one) and a ZooKeeper topic of the same name
//     replaces them;
//   - a topic is served iff it is white-listed or static, and at least one
//     unit lists instance in any of its proxies sets; only those units are
//     "in management";
//   - Clusters = their brokerClusters sorted and de-duplicated, MaxTps = Σ
//     their maxTps, MaxBodyBytes = min maxMessageSize over those clusters
//     that are RocketMQ clusters (DefaultMaxBodyBytes if none).
//
// Topics in topics that are neither white-listed nor static are ignored. A
// served cluster without a producer is not an error (requests answer 21).
// The node and every used topic are validated; nil entries are skipped.
func BuildPProxySnapshot(instance string, node *PProxyConfig, topics map[string]*TopicConfig, static []*TopicConfig) (*PProxySnapshot, error) {
	if instance == "" {
		return nil, errors.New("build pproxy snapshot: empty instance name")
	}
	if node == nil {
		return nil, errors.New("build pproxy snapshot: nil pproxy node")
	}
	if err := node.Validate(); err != nil {
		return nil, fmt.Errorf("build pproxy snapshot: pproxy node %q: %w", node.Instance, err)
	}
	cc := node.CarreraConfiguration

	// Effective configs: static first (bootstrap, then node), ZK on top.
	effective := map[string]*TopicConfig{}
	for _, list := range [][]*TopicConfig{static, cc.DefaultTopicInfoConf.Topics} {
		for _, t := range list {
			if t != nil {
				effective[t.Topic] = t
			}
		}
	}
	staticList := staticNames(node, static)
	candidates := unionSorted(node.Topics, staticList)
	for _, name := range candidates {
		if t := topics[name]; t != nil {
			effective[name] = t
		}
	}

	snap := &PProxySnapshot{
		Instance:     instance,
		Node:         node,
		Topics:       map[string]*TopicView{},
		StaticTopics: staticList,
	}
	for _, name := range candidates {
		tc := effective[name]
		if tc == nil {
			continue // white-listed but no node (yet): not served
		}
		if err := tc.Validate(); err != nil {
			return nil, fmt.Errorf("build pproxy snapshot: topic %q: %w", name, err)
		}
		view := &TopicView{Name: name, Config: tc}
		for _, u := range tc.TopicUnits {
			if !u.ListsProxy(instance) {
				continue
			}
			view.Units = append(view.Units, u)
			view.Clusters = append(view.Clusters, u.BrokerCluster)
			view.MaxTps += u.MaxTps
		}
		if len(view.Units) == 0 {
			continue // no unit lists this instance: not served
		}
		view.Clusters = unionSorted(view.Clusters)
		view.MaxBodyBytes = 0
		for _, c := range view.Clusters {
			if clusterKind(cc, c) != ClusterRocketMQ {
				continue
			}
			size := cc.RocketmqConfigurationMap[c].MaxMessageSize
			if view.MaxBodyBytes == 0 || size < view.MaxBodyBytes {
				view.MaxBodyBytes = size
			}
		}
		if view.MaxBodyBytes == 0 {
			view.MaxBodyBytes = DefaultMaxBodyBytes
		}
		snap.Topics[name] = view
	}
	return snap, nil
}
