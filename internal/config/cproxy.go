package config

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"time"
)

// cproxy node defaults (zookeeper-layout.md §5.2, §5.4).
const (
	DefaultCProxyPort                = 9713
	DefaultConsumeSelectorThreads    = 16
	DefaultConsumeWorkerThreads      = 128
	DefaultConsumeAcceptQueueSize    = 100
	DefaultConsumeMaxReadBufferBytes = 5000000
	DefaultConsumeBacklog            = 50
	DefaultConsumeWorkerQueueSize    = 20000
	DefaultMaxRecvMsgsLength         = 4194304
	DefaultKafkaRebalanceMaxRetries  = 8
	DefaultPartitionAssignment       = AssignmentRange
	// DefaultPullThresholdForTopicFloor is the lower bound of the default
	// pullThresholdForTopic: max(1000, max concurrency of the unit's topics).
	DefaultPullThresholdForTopicFloor = 1000

	// AssignmentRange and AssignmentRoundRobin are the values of
	// partitionAssignmentStrategy (any other value means range, as in the
	// old Kafka consumer).
	AssignmentRange      = "range"
	AssignmentRoundRobin = "roundrobin"

	// KafkaBootstrapServersKey is the extra property holding the
	// comma-separated broker list of a cproxy Kafka cluster.
	KafkaBootstrapServersKey = "bootstrap.servers"
	// KafkaAutoOffsetResetKey is the extra property choosing where a group
	// without a committed offset starts: "latest" (default; also "largest",
	// "newest") or "earliest" (also "smallest", "oldest").
	KafkaAutoOffsetResetKey = "auto.offset.reset"

	// consumeFromWhere values (§5.3).
	ConsumeFromLastOffset  = "CONSUME_FROM_LAST_OFFSET"
	ConsumeFromFirstOffset = "CONSUME_FROM_FIRST_OFFSET"
	ConsumeFromTimestamp   = "CONSUME_FROM_TIMESTAMP"

	// messageModel values (§5.3).
	MessageModelClustering   = "CLUSTERING"
	MessageModelBroadcasting = "BROADCASTING"

	// ConsumeTimestampLayout is the Go layout of consumeTimestamp
	// (yyyyMMddHHmmss).
	ConsumeTimestampLayout = "20060102150405"
)

// deprecatedConsumeFrom are RocketMQ's deprecated consumeFromWhere values;
// the Java client treats them like CONSUME_FROM_LAST_OFFSET.
var deprecatedConsumeFrom = map[string]bool{
	"CONSUME_FROM_LAST_OFFSET_AND_FROM_MIN_WHEN_BOOT_FIRST": true,
	"CONSUME_FROM_MIN_OFFSET":                               true,
	"CONSUME_FROM_MAX_OFFSET":                               true,
}

// CProxyConfig is the content of /cproxy/<ip:port> (zookeeper-layout.md
// §5.1).
type CProxyConfig struct {
	// Instance is "ip:port", equal to the node name.
	Instance string `json:"instance"`
	// ProxyCluster is the proxy cluster name (console convention
	// C_<name>); only the proxies entry of this cluster binds units (§5.11).
	ProxyCluster string `json:"proxyCluster"`
	// BrokerClusters lists the broker clusters this cproxy may consume from.
	BrokerClusters []string `json:"brokerClusters"`
	// KafkaConfigs holds the Kafka clusters by broker-cluster name.
	KafkaConfigs map[string]KafkaConsumerConfiguration `json:"kafkaConfigs,omitempty"`
	// RocketmqConfigs holds the RocketMQ clusters by broker-cluster name.
	RocketmqConfigs map[string]RocketmqConsumerConfiguration `json:"rocketmqConfigs,omitempty"`
	// ThriftServer is required.
	ThriftServer *ConsumeServerConfiguration `json:"thriftServer"`
	// Groups is the group white list: only these /group/<g> nodes are
	// loaded (default []).
	Groups []string `json:"groups"`
}

// ConsumeServerConfiguration is the cproxy's thriftServer block (§5.2).
type ConsumeServerConfiguration struct {
	// Port is DDMQ's listen port; this project listens on the bootstrap
	// port and warns when they differ (§1).
	Port                     int   `json:"port"`
	SelectorThreads          int   `json:"selectorThreads"`
	WorkerThreads            int   `json:"workerThreads"`
	AcceptQueueSizePerThread int   `json:"acceptQueueSizePerThread"`
	MaxReadBufferBytes       int64 `json:"maxReadBufferBytes"`
	Backlog                  int   `json:"backlog"`
	WorkerQueueSize          int   `json:"workerQueueSize"`
	// MaxRecvMsgsLength caps the total body bytes of a pull response.
	MaxRecvMsgsLength int64 `json:"maxRecvMsgsLength"`
}

// RocketmqConsumerConfiguration is one entry of rocketmqConfigs (§5.3).
// Optional integers are pointers: nil means "not present".
type RocketmqConsumerConfiguration struct {
	// ClusterName is informational; the brokerCluster key is used instead.
	ClusterName  string   `json:"clusterName,omitempty"`
	NamesrvAddrs []string `json:"namesrvAddrs"`
	// GroupPrefix is required but unused: the consumer group is the DDMQ
	// group name.
	GroupPrefix             string `json:"groupPrefix"`
	PollNameServerInterval  int    `json:"pollNameServerInterval"`
	HeartbeatBrokerInterval int    `json:"heartbeatBrokerInterval"`
	// PersistConsumerOffsetInterval (ms) is cproxy's offset commit interval
	// for this cluster.
	PersistConsumerOffsetInterval int `json:"persistConsumerOffsetInterval"`
	ConsumeConcurrentlyMaxSpan    int `json:"consumeConcurrentlyMaxSpan"`
	ConsumeMessageBatchMaxSize    int `json:"consumeMessageBatchMaxSize"`
	// PullBatchSize is the number of messages per broker pull.
	PullBatchSize         int `json:"pullBatchSize"`
	PullThresholdForQueue int `json:"pullThresholdForQueue"`
	// ConsumeFromWhere: start position of a group without committed
	// offset; see StartFrom.
	ConsumeFromWhere string `json:"consumeFromWhere,omitempty"`
	// ConsumeTimestamp (yyyyMMddHHmmss) for CONSUME_FROM_TIMESTAMP.
	ConsumeTimestamp string `json:"consumeTimestamp,omitempty"`
	// Orderly is ignored.
	Orderly bool `json:"orderly,omitempty"`
	// MessageModel: CLUSTERING (default) or BROADCASTING, for every group
	// on this cluster.
	MessageModel string `json:"messageModel,omitempty"`
	// Subscription maps a topic to a tag expression that replaces the one
	// derived from UpstreamTopic.tags.
	Subscription map[string]string `json:"subscription,omitempty"`
	// ConsumeThreadMin/Max replace Σ fetchThreads when present.
	ConsumeThreadMin *int `json:"consumeThreadMin,omitempty"`
	ConsumeThreadMax *int `json:"consumeThreadMax,omitempty"`
	// InstanceName replaces the generated client instance name.
	InstanceName string `json:"instanceName,omitempty"`
	// Client cache limits.
	PullThresholdSizeForQueue *int `json:"pullThresholdSizeForQueue,omitempty"`
	PullThresholdForTopic     *int `json:"pullThresholdForTopic,omitempty"`
	PullThresholdSizeForTopic *int `json:"pullThresholdSizeForTopic,omitempty"`
}

// KafkaConsumerConfiguration is one entry of kafkaConfigs (§5.4).
type KafkaConsumerConfiguration struct {
	// ClusterName is informational.
	ClusterName string `json:"clusterName,omitempty"`
	// ZookeeperAddr is the Kafka cluster's ZooKeeper; broker registrations
	// are read from it when extra has no bootstrap.servers.
	ZookeeperAddr string `json:"zookeeperAddr"`
	// AutoCommitInterval (ms) is cproxy's offset commit interval for this
	// cluster.
	AutoCommitInterval int `json:"autoCommitInterval"`
	// RebalanceMaxRetries is an old-consumer option (default 8).
	RebalanceMaxRetries int `json:"rebalanceMaxRetries"`
	// PartitionAssignmentStrategy: "range" (default) or "roundrobin"; see
	// Assignment.
	PartitionAssignmentStrategy string `json:"partitionAssignmentStrategy"`
	// Extra holds extra consumer properties, e.g. bootstrap.servers.
	// Scalar JSON values (numbers, booleans) are kept as their text, as
	// Java's Map<String,String> binding does.
	Extra map[string]string `json:"extra,omitempty"`
}

// UnmarshalJSON applies the defaults of §5.2 before decoding.
func (c *ConsumeServerConfiguration) UnmarshalJSON(b []byte) error {
	type plain ConsumeServerConfiguration
	p := plain(DefaultConsumeServerConfiguration())
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*c = ConsumeServerConfiguration(p)
	return nil
}

// DefaultConsumeServerConfiguration returns the §5.2 defaults.
func DefaultConsumeServerConfiguration() ConsumeServerConfiguration {
	return ConsumeServerConfiguration{
		Port:                     DefaultCProxyPort,
		SelectorThreads:          DefaultConsumeSelectorThreads,
		WorkerThreads:            DefaultConsumeWorkerThreads,
		AcceptQueueSizePerThread: DefaultConsumeAcceptQueueSize,
		MaxReadBufferBytes:       DefaultConsumeMaxReadBufferBytes,
		Backlog:                  DefaultConsumeBacklog,
		WorkerQueueSize:          DefaultConsumeWorkerQueueSize,
		MaxRecvMsgsLength:        DefaultMaxRecvMsgsLength,
	}
}

// UnmarshalJSON applies the defaults of §5.4 and decodes extra leniently.
func (c *KafkaConsumerConfiguration) UnmarshalJSON(b []byte) error {
	type plain KafkaConsumerConfiguration
	p := plain{
		RebalanceMaxRetries:         DefaultKafkaRebalanceMaxRetries,
		PartitionAssignmentStrategy: DefaultPartitionAssignment,
	}
	aux := struct {
		*plain
		Extra map[string]json.RawMessage `json:"extra"`
	}{plain: &p}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	if aux.Extra != nil {
		p.Extra = make(map[string]string, len(aux.Extra))
		for k, raw := range aux.Extra {
			v, ok, err := scalarText(raw)
			if err != nil {
				return fmt.Errorf("extra[%q]: %w", k, err)
			}
			if ok {
				p.Extra[k] = v
			}
		}
	}
	*c = KafkaConsumerConfiguration(p)
	return nil
}

// scalarText turns a JSON string, number or boolean into its text; null is
// reported as absent; objects and arrays are errors.
func scalarText(raw json.RawMessage) (string, bool, error) {
	var v any
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return "", false, err
	}
	switch x := v.(type) {
	case nil:
		return "", false, nil
	case string:
		return x, true, nil
	case json.Number:
		return x.String(), true, nil
	case bool:
		if x {
			return "true", true, nil
		}
		return "false", true, nil
	default:
		return "", false, fmt.Errorf("must be a string, number or boolean")
	}
}

// UnmarshalJSON defaults the group white list to an empty (non-nil) slice.
func (c *CProxyConfig) UnmarshalJSON(b []byte) error {
	type plain CProxyConfig
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	if p.Groups == nil {
		p.Groups = []string{}
	}
	*c = CProxyConfig(p)
	return nil
}

// ParseCProxyConfig decodes and validates a /cproxy/<ip:port> node. Absent
// keys get their defaults; unknown keys are ignored.
func ParseCProxyConfig(data []byte) (*CProxyConfig, error) {
	var c CProxyConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("cproxy config: invalid JSON: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("cproxy config %q: %w", c.Instance, err)
	}
	return &c, nil
}

// Validate checks the rules of §5.1 and, recursively, §5.2–§5.4.
//
// Beyond the spec tables: "at least one of kafkaConfigs/rocketmqConfigs"
// means at least one cluster entry in total; a cluster name may not be a
// key of both maps (its kind would be ambiguous, §5.11 rule 4).
func (c *CProxyConfig) Validate() error {
	var p problems
	if c.Instance == "" {
		p.addf("instance must not be empty")
	}
	if c.ProxyCluster == "" {
		p.addf("proxyCluster must not be empty")
	}
	if len(c.BrokerClusters) == 0 {
		p.addf("brokerClusters must not be empty")
	}
	if len(c.KafkaConfigs)+len(c.RocketmqConfigs) == 0 {
		p.addf("at least one of kafkaConfigs and rocketmqConfigs must be present")
	}
	for _, name := range sortedKeys(c.RocketmqConfigs) {
		rc := c.RocketmqConfigs[name]
		p.nest(fmt.Sprintf("rocketmqConfigs[%q]", name), rc.Validate())
		if _, dup := c.KafkaConfigs[name]; dup {
			p.addf("cluster %q is a key of both rocketmqConfigs and kafkaConfigs", name)
		}
	}
	for _, name := range sortedKeys(c.KafkaConfigs) {
		kc := c.KafkaConfigs[name]
		p.nest(fmt.Sprintf("kafkaConfigs[%q]", name), kc.Validate())
	}
	if c.ThriftServer == nil {
		p.addf("thriftServer is required")
	} else {
		p.nest("thriftServer", c.ThriftServer.Validate())
	}
	return p.err()
}

// Warnings returns non-fatal remarks about a valid node, for the caller to
// log.
func (c *CProxyConfig) Warnings() []string {
	var w []string
	listed := map[string]bool{}
	for _, b := range c.BrokerClusters {
		listed[b] = true
		if c.ClusterKind(b) == ClusterNone {
			w = append(w, fmt.Sprintf("brokerClusters lists %q but neither rocketmqConfigs nor kafkaConfigs configures it; its subscriptions are not served", b))
		}
	}
	for _, name := range unionSorted(sortedKeys(c.RocketmqConfigs), sortedKeys(c.KafkaConfigs)) {
		if !listed[name] {
			w = append(w, fmt.Sprintf("cluster %q is configured but not listed in brokerClusters; it is not used", name))
		}
	}
	for _, name := range sortedKeys(c.KafkaConfigs) {
		kc := c.KafkaConfigs[name]
		if s := kc.PartitionAssignmentStrategy; s != AssignmentRange && s != AssignmentRoundRobin {
			w = append(w, fmt.Sprintf("kafkaConfigs[%q].partitionAssignmentStrategy %q is unknown; using %q", name, s, AssignmentRange))
		}
	}
	return w
}

// ClusterKind returns the backend of a broker cluster (§5.11 rule 4):
// RocketMQ for a key of rocketmqConfigs, Kafka for a key of kafkaConfigs,
// None otherwise.
func (c *CProxyConfig) ClusterKind(name string) ClusterKind {
	if _, ok := c.RocketmqConfigs[name]; ok {
		return ClusterRocketMQ
	}
	if _, ok := c.KafkaConfigs[name]; ok {
		return ClusterKafka
	}
	return ClusterNone
}

// ServesCluster reports whether name is listed in brokerClusters.
func (c *CProxyConfig) ServesCluster(name string) bool {
	for _, b := range c.BrokerClusters {
		if b == name {
			return true
		}
	}
	return false
}

// Validate checks §5.2.
func (c *ConsumeServerConfiguration) Validate() error {
	var p problems
	for _, f := range []struct {
		key string
		v   int64
	}{
		{"selectorThreads", int64(c.SelectorThreads)},
		{"workerThreads", int64(c.WorkerThreads)},
		{"acceptQueueSizePerThread", int64(c.AcceptQueueSizePerThread)},
		{"maxReadBufferBytes", c.MaxReadBufferBytes},
		{"backlog", int64(c.Backlog)},
		{"workerQueueSize", int64(c.WorkerQueueSize)},
		{"maxRecvMsgsLength", c.MaxRecvMsgsLength},
	} {
		if f.v <= 0 {
			p.addf("%s must be > 0, got %d", f.key, f.v)
		}
	}
	return p.err()
}

// Validate checks §5.3.
//
// Beyond the spec table: consumeFromWhere, when present, must be one of
// the three documented values or one of RocketMQ's deprecated ones
// (treated as CONSUME_FROM_LAST_OFFSET), messageModel CLUSTERING or
// BROADCASTING (both are Java enums in DDMQ, so other values never load
// there), consumeTimestamp must be yyyyMMddHHmmss when present, and the
// optional integers must be > 0 when present.
func (c *RocketmqConsumerConfiguration) Validate() error {
	var p problems
	if len(c.NamesrvAddrs) == 0 {
		p.addf("namesrvAddrs must not be empty")
	}
	if c.GroupPrefix == "" {
		p.addf("groupPrefix must not be empty")
	}
	for _, f := range []struct {
		key string
		v   int
	}{
		{"pollNameServerInterval", c.PollNameServerInterval},
		{"heartbeatBrokerInterval", c.HeartbeatBrokerInterval},
		{"persistConsumerOffsetInterval", c.PersistConsumerOffsetInterval},
		{"consumeConcurrentlyMaxSpan", c.ConsumeConcurrentlyMaxSpan},
		{"consumeMessageBatchMaxSize", c.ConsumeMessageBatchMaxSize},
		{"pullBatchSize", c.PullBatchSize},
		{"pullThresholdForQueue", c.PullThresholdForQueue},
	} {
		if f.v <= 0 {
			p.addf("%s must be > 0, got %d", f.key, f.v)
		}
	}
	for _, f := range []struct {
		key string
		v   *int
	}{
		{"consumeThreadMin", c.ConsumeThreadMin},
		{"consumeThreadMax", c.ConsumeThreadMax},
		{"pullThresholdSizeForQueue", c.PullThresholdSizeForQueue},
		{"pullThresholdForTopic", c.PullThresholdForTopic},
		{"pullThresholdSizeForTopic", c.PullThresholdSizeForTopic},
	} {
		if f.v != nil && *f.v <= 0 {
			p.addf("%s must be > 0 when present, got %d", f.key, *f.v)
		}
	}
	if c.ConsumeThreadMin != nil && c.ConsumeThreadMax != nil && *c.ConsumeThreadMin > *c.ConsumeThreadMax {
		p.addf("consumeThreadMin (%d) must not exceed consumeThreadMax (%d)", *c.ConsumeThreadMin, *c.ConsumeThreadMax)
	}
	switch w := c.ConsumeFromWhere; {
	case w == "", w == ConsumeFromLastOffset, w == ConsumeFromFirstOffset, w == ConsumeFromTimestamp, deprecatedConsumeFrom[w]:
	default:
		p.addf("consumeFromWhere must be %s, %s or %s, got %q", ConsumeFromLastOffset, ConsumeFromFirstOffset, ConsumeFromTimestamp, w)
	}
	if c.ConsumeTimestamp != "" {
		if _, err := time.Parse(ConsumeTimestampLayout, c.ConsumeTimestamp); err != nil {
			p.addf("consumeTimestamp must be yyyyMMddHHmmss, got %q", c.ConsumeTimestamp)
		}
	}
	switch c.MessageModel {
	case "", MessageModelClustering, MessageModelBroadcasting:
	default:
		p.addf("messageModel must be %s or %s, got %q", MessageModelClustering, MessageModelBroadcasting, c.MessageModel)
	}
	for _, topic := range sortedKeys(c.Subscription) {
		if strings.TrimSpace(c.Subscription[topic]) == "" {
			p.addf("subscription[%q] must not be empty", topic)
		}
	}
	return p.err()
}

// StartFrom returns the normalised start position for a group without a
// committed offset: ConsumeFromFirstOffset, ConsumeFromTimestamp or (also
// for absent and deprecated values) ConsumeFromLastOffset.
func (c *RocketmqConsumerConfiguration) StartFrom() string {
	switch c.ConsumeFromWhere {
	case ConsumeFromFirstOffset, ConsumeFromTimestamp:
		return c.ConsumeFromWhere
	default:
		return ConsumeFromLastOffset
	}
}

// Broadcasting reports messageModel BROADCASTING.
func (c *RocketmqConsumerConfiguration) Broadcasting() bool {
	return c.MessageModel == MessageModelBroadcasting
}

// TagExpression returns the tag expression for topic: the subscription
// map's entry when present, else derived.
func (c *RocketmqConsumerConfiguration) TagExpression(topic, derived string) string {
	if e, ok := c.Subscription[topic]; ok && strings.TrimSpace(e) != "" {
		return strings.TrimSpace(e)
	}
	return derived
}

// Validate checks §5.4.
//
// Beyond the spec table: extra["bootstrap.servers"], when present, must
// list at least one address and every entry must be host:port.
func (c *KafkaConsumerConfiguration) Validate() error {
	var p problems
	if c.ZookeeperAddr == "" {
		p.addf("zookeeperAddr must not be empty")
	}
	if c.AutoCommitInterval <= 0 {
		p.addf("autoCommitInterval must be > 0, got %d", c.AutoCommitInterval)
	}
	if raw, ok := c.Extra[KafkaAutoOffsetResetKey]; ok && c.InitialOffset() == "" {
		p.addf("extra[%q] must be earliest or latest, got %q", KafkaAutoOffsetResetKey, raw)
	}
	if raw, ok := c.Extra[KafkaBootstrapServersKey]; ok {
		servers := c.BootstrapServers()
		if len(servers) == 0 {
			p.addf("extra[%q] must list at least one host:port, got %q", KafkaBootstrapServersKey, raw)
		}
		for _, s := range servers {
			if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
				p.addf("extra[%q]: %q is not host:port", KafkaBootstrapServersKey, s)
			}
		}
	}
	return p.err()
}

// InitialOffset returns where groups without a committed offset start, from
// extra["auto.offset.reset"]: "oldest", "newest" (also when the key is
// absent), or "" for a value that is neither.
func (c *KafkaConsumerConfiguration) InitialOffset() string {
	raw, ok := c.Extra[KafkaAutoOffsetResetKey]
	if !ok {
		return "newest"
	}
	switch strings.ToLower(strings.TrimSpace(raw)) {
	case "earliest", "smallest", "oldest":
		return "oldest"
	case "latest", "largest", "newest":
		return "newest"
	}
	return ""
}

// BootstrapServers returns the broker addresses of extra["bootstrap.servers"]
// (comma-separated, blanks trimmed, empty entries dropped); nil when the key
// is absent, in which case the brokers must be read from the registrations
// in zookeeperAddr (§5.4).
func (c *KafkaConsumerConfiguration) BootstrapServers() []string {
	raw, ok := c.Extra[KafkaBootstrapServersKey]
	if !ok {
		return nil
	}
	var out []string
	for _, s := range strings.Split(raw, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Assignment returns the group balance strategy: AssignmentRoundRobin for
// "roundrobin", AssignmentRange for anything else (old Kafka consumer).
func (c *KafkaConsumerConfiguration) Assignment() string {
	if c.PartitionAssignmentStrategy == AssignmentRoundRobin {
		return AssignmentRoundRobin
	}
	return AssignmentRange
}
