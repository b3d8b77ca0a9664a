package config

import (
	"encoding/json"
	"fmt"
)

// Topic defaults (zookeeper-layout.md §4.1, §4.2).
const (
	// DefaultUnitMaxTps is the default maxTps and totalMaxTps of a topic unit.
	DefaultUnitMaxTps = 1024
	// DefaultLimiterFailureRetryInterval (-1) means "derive the limiter
	// retry delay from the request timeout" (behaviour.md §1.6).
	DefaultLimiterFailureRetryInterval = -1

	// CompressPrimordial and CompressSnappy are the values of
	// TopicConfig.CompressType.
	CompressPrimordial = "PRIMORDIAL"
	CompressSnappy     = "SNAPPY"
)

// TopicConfig is the content of /topic/<topic> (zookeeper-layout.md §4.1).
type TopicConfig struct {
	// Topic is the topic name; it equals the node name.
	Topic string `json:"topic"`
	// AlarmGroup lists alarm receivers; not used by the proxies.
	AlarmGroup []string `json:"alarmGroup,omitempty"`
	// TopicUnits has one entry per broker cluster the topic lives in.
	TopicUnits []TopicConfiguration `json:"topicUnits"`
	// DelayTopic: the topic accepts only sendDelaySync (plus sendSync
	// carrying the from_chronos property).
	DelayTopic bool `json:"delayTopic"`
	// AutoBatch: the topic may use pproxy auto-batching.
	AutoBatch bool `json:"autoBatch"`
	// StrongOrder disables the proxy-side timeout retry and the "prefer
	// another broker" queue choice.
	StrongOrder bool `json:"strongOrder"`
	// CompressType is PRIMORDIAL (default) or SNAPPY; not used by pproxy.
	CompressType string `json:"compressType"`
	// LimiterFailureRetryInterval (ms): -1 = derive from the request
	// timeout, 0 = no retry, > 0 = retry once after this many ms.
	LimiterFailureRetryInterval int64 `json:"limiterFailureRetryInterval"`
}

// TopicConfiguration is one "topic unit": the topic on one broker cluster
// (zookeeper-layout.md §4.2).
type TopicConfiguration struct {
	// BrokerCluster is the broker cluster name, a key of the pproxy's
	// rocketmqConfigurationMap or kafkaConfigurationMap.
	BrokerCluster string `json:"brokerCluster"`
	// Proxies maps a proxy cluster name to the "ip:port" instance names of
	// the pproxies serving this unit. Order and duplicates are meaningless.
	Proxies map[string][]string `json:"proxies"`
	// TotalMaxTps is the unit's total produce rate (informational).
	TotalMaxTps float64 `json:"totalMaxTps"`
	// MaxTps is the per-pproxy produce rate used by the limiter. DDMQ types
	// it int but the console may write 1000.0, hence float64.
	MaxTps float64 `json:"maxTps"`
}

// ListsProxy reports whether instance appears in any proxies set of the unit.
func (u *TopicConfiguration) ListsProxy(instance string) bool {
	for _, list := range u.Proxies {
		for _, p := range list {
			if p == instance {
				return true
			}
		}
	}
	return false
}

// UnmarshalJSON applies the defaults of §4.1 before decoding, so keys that
// are absent keep their default.
func (c *TopicConfig) UnmarshalJSON(b []byte) error {
	type plain TopicConfig // no methods: avoids recursion
	p := plain{
		CompressType:                CompressPrimordial,
		LimiterFailureRetryInterval: DefaultLimiterFailureRetryInterval,
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*c = TopicConfig(p)
	return nil
}

// UnmarshalJSON applies the defaults of §4.2 before decoding.
func (u *TopicConfiguration) UnmarshalJSON(b []byte) error {
	type plain TopicConfiguration
	p := plain{
		TotalMaxTps: DefaultUnitMaxTps,
		MaxTps:      DefaultUnitMaxTps,
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	if p.Proxies == nil {
		p.Proxies = map[string][]string{}
	}
	*u = TopicConfiguration(p)
	return nil
}

// ParseTopicConfig decodes and validates a /topic/<topic> node. Absent keys
// get their defaults; unknown keys are ignored.
func ParseTopicConfig(data []byte) (*TopicConfig, error) {
	var c TopicConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("topic config: invalid JSON: %w", err)
	}
	if err := c.Validate(); err != nil {
		name := c.Topic
		if name == "" {
			name = "?"
		}
		return nil, fmt.Errorf("topic config %q: %w", name, err)
	}
	return &c, nil
}

// Validate checks the rules of §4.1/§4.2. All problems are reported, each
// naming its key.
//
// Beyond the spec tables: compressType must be PRIMORDIAL or SNAPPY (DDMQ
// decodes it into a Java enum, so other values never load there; "" is
// taken as PRIMORDIAL) and a unit's maxTps must not be negative (the
// limiter cannot use a negative rate).
func (c *TopicConfig) Validate() error {
	var p problems
	if c.Topic == "" {
		p.addf("topic must not be empty")
	}
	switch c.CompressType {
	case "", CompressPrimordial, CompressSnappy:
	default:
		p.addf("compressType must be %s or %s, got %q", CompressPrimordial, CompressSnappy, c.CompressType)
	}
	if len(c.TopicUnits) == 0 {
		p.addf("topicUnits must not be empty")
	}
	for i := range c.TopicUnits {
		p.nest(fmt.Sprintf("topicUnits[%d]", i), c.TopicUnits[i].Validate())
	}
	return p.err()
}

// Validate checks one topic unit (§4.2).
func (u *TopicConfiguration) Validate() error {
	var p problems
	if u.BrokerCluster == "" {
		p.addf("brokerCluster must not be empty")
	}
	if !(u.TotalMaxTps > 0) {
		p.addf("totalMaxTps must be > 0, got %v", u.TotalMaxTps)
	}
	if u.MaxTps < 0 {
		p.addf("maxTps must be >= 0, got %v", u.MaxTps)
	}
	return p.err()
}
