package config

import (
	"encoding/json"
	"fmt"
	"sort"
)

// pproxy node defaults (zookeeper-layout.md §4.4, §4.4.3).
const (
	DefaultNodeMaxTps                   = 100000
	DefaultTpsWarningRatio              = 0.9
	DefaultLimiterFailureRetryQueueSize = 1024

	DefaultMaxBathBytes                 = 4096
	DefaultDoBatchThresholdBytes        = 1024
	DefaultMaxBatchMessagesNumber       = 32
	DefaultEncodeWorkerThreads          = 4
	DefaultMaxEncodeWorkerForEachBroker = 1
	DefaultBatchWaitMills               = 5
	DefaultMaxContinuouslyRunningMills  = 50
)

// PProxyConfig is the content of /pproxy/<ip:port> (zookeeper-layout.md §4.3).
type PProxyConfig struct {
	// Instance is "ip:port", equal to the node name.
	Instance string `json:"instance"`
	// ProxyCluster is the proxy cluster name (console convention P_<name>).
	ProxyCluster string `json:"proxyCluster"`
	// BrokerClusters lists the broker clusters this pproxy may use; it
	// contains every key of both cluster maps.
	BrokerClusters []string `json:"brokerClusters"`
	// Topics is the topic white list.
	Topics []string `json:"topics"`
	// CarreraConfiguration holds everything else; required.
	CarreraConfiguration *CarreraConfiguration `json:"carreraConfiguration"`
}

// TopicInfoConf is the {"topics":[TopicConfig]} wrapper of static topics
// (defaultTopicInfoConf, §4.6).
type TopicInfoConf struct {
	Topics []*TopicConfig `json:"topics"`
}

// CarreraConfiguration is the pproxy's carreraConfiguration block (§4.4).
type CarreraConfiguration struct {
	// RetryDelays is never used; accepted as is (DDMQ requires it).
	RetryDelays []int `json:"retryDelays,omitempty"`

	UseKafka          bool `json:"useKafka"`
	UseRocketmq       bool `json:"useRocketmq"`
	UseRequestLimiter bool `json:"useRequestLimiter"`

	// RocketmqProducers / KafkaProducers: client instances per cluster.
	RocketmqProducers int `json:"rocketmqProducers"`
	KafkaProducers    int `json:"kafkaProducers"`

	// ThriftServer is required.
	ThriftServer *ThriftServerConfiguration `json:"thriftServer"`

	KafkaConfigurationMap    map[string]KafkaConfiguration    `json:"kafkaConfigurationMap,omitempty"`
	RocketmqConfigurationMap map[string]RocketmqConfiguration `json:"rocketmqConfigurationMap,omitempty"`

	// Delay is nil when absent: delay disabled (no inner-topic prefix
	// check; sendDelaySync answers 13). See behaviour.md §4 #14.
	Delay *DelayConfiguration `json:"delay,omitempty"`

	UseAutoBatch bool `json:"useAutoBatch"`
	// AutoBatch is required when UseAutoBatch; absent keys get defaults.
	AutoBatch *BatchMQProducerConfiguration `json:"autoBatch,omitempty"`

	WarmUpConnection bool `json:"warmUpConnection"`
	// MaxTps is the node-level produce rate limit (default 100000).
	MaxTps int `json:"maxTps"`
	// TpsWarningRatio splits each limit into normal/warning buckets
	// (default 0.9).
	TpsWarningRatio float64 `json:"tpsWarningRatio"`
	// DefaultTopicInfoConf holds static topics (default {"topics":[]}).
	DefaultTopicInfoConf TopicInfoConf `json:"defaultTopicInfoConf"`
	// WarmUpFetchTopicRouteInfo (default true).
	WarmUpFetchTopicRouteInfo bool `json:"warmUpFetchTopicRouteInfo"`
	// LimiterFailureRetryQueueSize bounds the limiter retries (default 1024).
	LimiterFailureRetryQueueSize int `json:"limiterFailureRetryQueueSize"`
}

// ThriftServerConfiguration is the pproxy's thriftServer block (§4.4.1).
// These are Java NIO server knobs without defaults (absent = 0).
type ThriftServerConfiguration struct {
	SelectorThreads          int   `json:"selectorThreads"`
	WorkerThreads            int   `json:"workerThreads"`
	AcceptQueueSizePerThread int   `json:"acceptQueueSizePerThread"`
	MaxReadBufferBytes       int64 `json:"maxReadBufferBytes"`
	Backlog                  int   `json:"backlog"`
	ClientTimeout            int   `json:"clientTimeout"`
	WorkerQueueSize          int   `json:"workerQueueSize"`
	TimeoutCheckerThreads    int   `json:"timeoutCheckerThreads"`
	// Port is overridden by the bootstrap port.
	Port int `json:"port"`
}

// DelayConfiguration is the delay block (§4.4.2).
type DelayConfiguration struct {
	// InnerTopicNum is the number of inner topics <prefix>0 … <prefix>N-1.
	InnerTopicNum int `json:"innerTopicNum"`
	// ChronosInnerTopicPrefix is the inner-topic name prefix.
	ChronosInnerTopicPrefix string `json:"chronosInnerTopicPrefix"`
}

// BatchMQProducerConfiguration is the autoBatch block (§4.4.3). The key
// "maxBathBytes" is misspelt in DDMQ and kept so.
type BatchMQProducerConfiguration struct {
	MaxBathBytes                 int `json:"maxBathBytes"`
	DoBatchThresholdBytes        int `json:"doBatchThresholdBytes"`
	MaxBatchMessagesNumber       int `json:"maxBatchMessagesNumber"`
	EncodeWorkerThreads          int `json:"encodeWorkerThreads"`
	MaxEncodeWorkerForEachBroker int `json:"maxEncodeWorkerForEachBroker"`
	BatchWaitMills               int `json:"batchWaitMills"`
	MaxContinuouslyRunningMills  int `json:"maxContinuouslyRunningMills"`
}

// DefaultBatchMQProducerConfiguration returns the §4.4.3 defaults.
func DefaultBatchMQProducerConfiguration() BatchMQProducerConfiguration {
	return BatchMQProducerConfiguration{
		MaxBathBytes:                 DefaultMaxBathBytes,
		DoBatchThresholdBytes:        DefaultDoBatchThresholdBytes,
		MaxBatchMessagesNumber:       DefaultMaxBatchMessagesNumber,
		EncodeWorkerThreads:          DefaultEncodeWorkerThreads,
		MaxEncodeWorkerForEachBroker: DefaultMaxEncodeWorkerForEachBroker,
		BatchWaitMills:               DefaultBatchWaitMills,
		MaxContinuouslyRunningMills:  DefaultMaxContinuouslyRunningMills,
	}
}

// RocketmqConfiguration is one entry of rocketmqConfigurationMap (§4.4.4).
type RocketmqConfiguration struct {
	NamesrvAddrs                     []string `json:"namesrvAddrs"`
	GroupPrefix                      string   `json:"groupPrefix"`
	SendMsgTimeout                   int      `json:"sendMsgTimeout"`
	CompressMsgBodyOverHowmuch       int      `json:"compressMsgBodyOverHowmuch"`
	RetryTimesWhenSendFailed         int      `json:"retryTimesWhenSendFailed"`
	RetryAnotherBrokerWhenNotStoreOK bool     `json:"retryAnotherBrokerWhenNotStoreOK"`
	// MaxMessageSize is the broker limit and pproxy's body limit.
	MaxMessageSize                int `json:"maxMessageSize"`
	ClientCallbackExecutorThreads int `json:"clientCallbackExecutorThreads"`
	PollNameServerInterval        int `json:"pollNameServerInterval"`
	HeartbeatBrokerInterval       int `json:"heartbeatBrokerInterval"`
	PersistConsumerOffsetInterval int `json:"persistConsumerOffsetInterval"`
}

// KafkaConfiguration is one entry of kafkaConfigurationMap (§4.4.5).
type KafkaConfiguration struct {
	BootstrapServers     []string `json:"bootstrapServers"`
	Acks                 string   `json:"acks"`
	Retries              int      `json:"retries"`
	BatchSize            int      `json:"batchSize"`
	ClientID             string   `json:"clientId"`
	RetryBackoff         int64    `json:"retryBackoff"`
	MetadataMaxAge       int64    `json:"metadataMaxAge"`
	MetadataFetchTimeout int64    `json:"metadataFetchTimeout"`
	AckTimeout           int      `json:"ackTimeout"`
	BufferMemory         int64    `json:"bufferMemory"`
}

// UnmarshalJSON applies the defaults of §4.4 before decoding.
func (c *CarreraConfiguration) UnmarshalJSON(b []byte) error {
	type plain CarreraConfiguration
	p := plain{
		MaxTps:                       DefaultNodeMaxTps,
		TpsWarningRatio:              DefaultTpsWarningRatio,
		WarmUpFetchTopicRouteInfo:    true,
		LimiterFailureRetryQueueSize: DefaultLimiterFailureRetryQueueSize,
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	if p.DefaultTopicInfoConf.Topics == nil {
		p.DefaultTopicInfoConf.Topics = []*TopicConfig{}
	}
	*c = CarreraConfiguration(p)
	return nil
}

// UnmarshalJSON applies the defaults of §4.4.3 before decoding.
func (c *BatchMQProducerConfiguration) UnmarshalJSON(b []byte) error {
	type plain BatchMQProducerConfiguration
	p := plain(DefaultBatchMQProducerConfiguration())
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*c = BatchMQProducerConfiguration(p)
	return nil
}

// UnmarshalJSON defaults the white list to an empty (non-nil) slice.
func (c *PProxyConfig) UnmarshalJSON(b []byte) error {
	type plain PProxyConfig
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	if p.Topics == nil {
		p.Topics = []string{}
	}
	*c = PProxyConfig(p)
	return nil
}

// ParsePProxyConfig decodes and validates a /pproxy/<ip:port> node. Absent
// keys get their defaults; unknown keys are ignored.
func ParsePProxyConfig(data []byte) (*PProxyConfig, error) {
	var c PProxyConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("pproxy config: invalid JSON: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("pproxy config %q: %w", c.Instance, err)
	}
	return &c, nil
}

// Validate checks the rules of §4.3 and, recursively, §4.4.
func (c *PProxyConfig) Validate() error {
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
	if c.CarreraConfiguration == nil {
		p.addf("carreraConfiguration is required")
		return p.err()
	}
	p.nest("carreraConfiguration", c.CarreraConfiguration.Validate())

	// Every key of both cluster maps must be listed in brokerClusters.
	listed := make(map[string]bool, len(c.BrokerClusters))
	for _, b := range c.BrokerClusters {
		listed[b] = true
	}
	cc := c.CarreraConfiguration
	for _, name := range sortedKeys(cc.RocketmqConfigurationMap) {
		if !listed[name] {
			p.addf("brokerClusters must contain %q (a key of carreraConfiguration.rocketmqConfigurationMap)", name)
		}
	}
	for _, name := range sortedKeys(cc.KafkaConfigurationMap) {
		if !listed[name] {
			p.addf("brokerClusters must contain %q (a key of carreraConfiguration.kafkaConfigurationMap)", name)
		}
	}
	return p.err()
}

// Validate checks §4.4. Cluster entries of a disabled backend (useKafka or
// useRocketmq false) are not validated: no producer is built for them.
//
// Beyond the spec tables: tpsWarningRatio must be <= 1 (a larger value
// would give the warning bucket a negative rate); when both backends are
// enabled a cluster name may not be a key of both maps (its backend type
// would be ambiguous); when useAutoBatch is set the autoBatch sizes and
// counts must be > 0 and the times >= 0.
func (c *CarreraConfiguration) Validate() error {
	var p problems
	if c.UseRocketmq {
		if c.RocketmqProducers <= 0 {
			p.addf("rocketmqProducers must be > 0 when useRocketmq is true, got %d", c.RocketmqProducers)
		}
		if len(c.RocketmqConfigurationMap) == 0 {
			p.addf("rocketmqConfigurationMap must not be empty when useRocketmq is true")
		}
		for _, name := range sortedKeys(c.RocketmqConfigurationMap) {
			rc := c.RocketmqConfigurationMap[name]
			p.nest(fmt.Sprintf("rocketmqConfigurationMap[%q]", name), rc.Validate())
		}
	}
	if c.UseKafka {
		if c.KafkaProducers <= 0 {
			p.addf("kafkaProducers must be > 0 when useKafka is true, got %d", c.KafkaProducers)
		}
		if len(c.KafkaConfigurationMap) == 0 {
			p.addf("kafkaConfigurationMap must not be empty when useKafka is true")
		}
		for _, name := range sortedKeys(c.KafkaConfigurationMap) {
			kc := c.KafkaConfigurationMap[name]
			p.nest(fmt.Sprintf("kafkaConfigurationMap[%q]", name), kc.Validate())
		}
	}
	if c.UseRocketmq && c.UseKafka {
		for _, name := range sortedKeys(c.RocketmqConfigurationMap) {
			if _, dup := c.KafkaConfigurationMap[name]; dup {
				p.addf("cluster %q is a key of both rocketmqConfigurationMap and kafkaConfigurationMap", name)
			}
		}
	}
	if c.ThriftServer == nil {
		p.addf("thriftServer is required")
	} else {
		p.nest("thriftServer", c.ThriftServer.Validate())
	}
	if c.Delay != nil {
		p.nest("delay", c.Delay.Validate())
	}
	if c.UseAutoBatch {
		if c.AutoBatch == nil {
			p.addf("autoBatch is required when useAutoBatch is true")
		} else {
			p.nest("autoBatch", c.AutoBatch.Validate())
		}
	}
	if c.MaxTps <= 0 {
		p.addf("maxTps must be > 0, got %d", c.MaxTps)
	}
	if !(c.TpsWarningRatio > 0 && c.TpsWarningRatio <= 1) {
		p.addf("tpsWarningRatio must be in (0, 1], got %v", c.TpsWarningRatio)
	}
	for i, t := range c.DefaultTopicInfoConf.Topics {
		path := fmt.Sprintf("defaultTopicInfoConf.topics[%d]", i)
		if t == nil {
			p.addf("%s must not be null", path)
			continue
		}
		p.nest(path, t.Validate())
	}
	return p.err()
}

// Validate checks §4.4.1.
func (c *ThriftServerConfiguration) Validate() error {
	var p problems
	if c.SelectorThreads <= 0 {
		p.addf("selectorThreads must be > 0, got %d", c.SelectorThreads)
	}
	if c.WorkerThreads < 0 {
		p.addf("workerThreads must be >= 0, got %d", c.WorkerThreads)
	}
	if c.AcceptQueueSizePerThread <= 0 {
		p.addf("acceptQueueSizePerThread must be > 0, got %d", c.AcceptQueueSizePerThread)
	}
	if c.MaxReadBufferBytes <= 0 {
		p.addf("maxReadBufferBytes must be > 0, got %d", c.MaxReadBufferBytes)
	}
	if c.Backlog <= 0 {
		p.addf("backlog must be > 0, got %d", c.Backlog)
	}
	if c.ClientTimeout < 0 {
		p.addf("clientTimeout must be >= 0, got %d", c.ClientTimeout)
	}
	if c.WorkerQueueSize < 0 {
		p.addf("workerQueueSize must be >= 0, got %d", c.WorkerQueueSize)
	}
	if c.TimeoutCheckerThreads <= 0 {
		p.addf("timeoutCheckerThreads must be > 0, got %d", c.TimeoutCheckerThreads)
	}
	return p.err()
}

// Validate checks §4.4.2.
func (c *DelayConfiguration) Validate() error {
	var p problems
	if c.InnerTopicNum <= 0 {
		p.addf("innerTopicNum must be > 0, got %d", c.InnerTopicNum)
	}
	if c.ChronosInnerTopicPrefix == "" {
		p.addf("chronosInnerTopicPrefix must not be empty")
	}
	return p.err()
}

// InnerTopics returns the inner topic names <prefix>0 … <prefix>N-1.
func (c *DelayConfiguration) InnerTopics() []string {
	out := make([]string, 0, max(c.InnerTopicNum, 0))
	for i := 0; i < c.InnerTopicNum; i++ {
		out = append(out, fmt.Sprintf("%s%d", c.ChronosInnerTopicPrefix, i))
	}
	return out
}

// Validate checks the auto-batch block (not in the spec tables; see
// CarreraConfiguration.Validate).
func (c *BatchMQProducerConfiguration) Validate() error {
	var p problems
	pos := []struct {
		key string
		v   int
	}{
		{"maxBathBytes", c.MaxBathBytes},
		{"doBatchThresholdBytes", c.DoBatchThresholdBytes},
		{"maxBatchMessagesNumber", c.MaxBatchMessagesNumber},
		{"encodeWorkerThreads", c.EncodeWorkerThreads},
		{"maxEncodeWorkerForEachBroker", c.MaxEncodeWorkerForEachBroker},
	}
	for _, f := range pos {
		if f.v <= 0 {
			p.addf("%s must be > 0, got %d", f.key, f.v)
		}
	}
	if c.BatchWaitMills < 0 {
		p.addf("batchWaitMills must be >= 0, got %d", c.BatchWaitMills)
	}
	if c.MaxContinuouslyRunningMills < 0 {
		p.addf("maxContinuouslyRunningMills must be >= 0, got %d", c.MaxContinuouslyRunningMills)
	}
	return p.err()
}

// Validate checks §4.4.4. groupPrefix is "non-null" in DDMQ; after
// decoding, absent and "" cannot be told apart, so both are accepted.
func (c *RocketmqConfiguration) Validate() error {
	var p problems
	if len(c.NamesrvAddrs) == 0 {
		p.addf("namesrvAddrs must not be empty")
	}
	if c.SendMsgTimeout < 0 {
		p.addf("sendMsgTimeout must be >= 0, got %d", c.SendMsgTimeout)
	}
	if c.CompressMsgBodyOverHowmuch <= 0 {
		p.addf("compressMsgBodyOverHowmuch must be > 0, got %d", c.CompressMsgBodyOverHowmuch)
	}
	if c.RetryTimesWhenSendFailed < 0 {
		p.addf("retryTimesWhenSendFailed must be >= 0, got %d", c.RetryTimesWhenSendFailed)
	}
	if c.MaxMessageSize <= 0 {
		p.addf("maxMessageSize must be > 0, got %d", c.MaxMessageSize)
	}
	if c.ClientCallbackExecutorThreads <= 0 {
		p.addf("clientCallbackExecutorThreads must be > 0, got %d", c.ClientCallbackExecutorThreads)
	}
	if c.PollNameServerInterval <= 0 {
		p.addf("pollNameServerInterval must be > 0, got %d", c.PollNameServerInterval)
	}
	if c.HeartbeatBrokerInterval <= 0 {
		p.addf("heartbeatBrokerInterval must be > 0, got %d", c.HeartbeatBrokerInterval)
	}
	if c.PersistConsumerOffsetInterval <= 0 {
		p.addf("persistConsumerOffsetInterval must be > 0, got %d", c.PersistConsumerOffsetInterval)
	}
	return p.err()
}

// Validate checks §4.4.5. acks must be one of "all", "-1", "1", "0" (the
// only values with a producer mapping). clientId is "non-null" in DDMQ;
// absent and "" cannot be told apart after decoding, so both are accepted.
func (c *KafkaConfiguration) Validate() error {
	var p problems
	if len(c.BootstrapServers) == 0 {
		p.addf("bootstrapServers must not be empty")
	}
	switch c.Acks {
	case "all", "-1", "1", "0":
	case "":
		p.addf("acks is required (all, -1, 1 or 0)")
	default:
		p.addf("acks must be all, -1, 1 or 0, got %q", c.Acks)
	}
	if c.Retries < 0 {
		p.addf("retries must be >= 0, got %d", c.Retries)
	}
	if c.BatchSize <= 0 {
		p.addf("batchSize must be > 0, got %d", c.BatchSize)
	}
	if c.RetryBackoff <= 0 {
		p.addf("retryBackoff must be > 0, got %d", c.RetryBackoff)
	}
	if c.MetadataMaxAge <= 0 {
		p.addf("metadataMaxAge must be > 0, got %d", c.MetadataMaxAge)
	}
	if c.MetadataFetchTimeout <= 0 {
		p.addf("metadataFetchTimeout must be > 0, got %d", c.MetadataFetchTimeout)
	}
	if c.AckTimeout <= 0 {
		p.addf("ackTimeout must be > 0, got %d", c.AckTimeout)
	}
	if c.BufferMemory <= 0 {
		p.addf("bufferMemory must be > 0, got %d", c.BufferMemory)
	}
	return p.err()
}

// sortedKeys returns a map's keys in ascending order (deterministic error
// messages and iteration).
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Warnings returns non-fatal remarks about a valid node, for the caller to
// log: currently a missing retryDelays (DDMQ requires it; it is unused).
func (c *PProxyConfig) Warnings() []string {
	var w []string
	if c.CarreraConfiguration != nil && len(c.CarreraConfiguration.RetryDelays) == 0 {
		w = append(w, "carreraConfiguration.retryDelays is missing (unused, but DDMQ requires it)")
	}
	return w
}
