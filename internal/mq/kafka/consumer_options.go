package kafka

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
)

// ConsumerOptions configures a GroupConsumer (one member of one consumer
// group on one cluster) and an OffsetReader (which uses only Cluster,
// Brokers, ClientID, FetchMaxBytes, RetryBackoff and MetadataMaxAge).
// Zero values take the defaults named per field.
type ConsumerOptions struct {
	// Cluster names the broker cluster in logs.
	Cluster string
	// Brokers are the bootstrap addresses, host:port (required).
	Brokers []string
	// Group is the Kafka group.id: the DDMQ group name (required for a
	// GroupConsumer).
	Group string
	// Topics are the subscribed topics (required for a GroupConsumer). All of
	// them must exist: while one is missing the member cannot join (Run
	// logs and retries).
	Topics []string
	// ClientID is the Kafka client.id (default "carrera-cproxy").
	ClientID string
	// InitialOffset is where a partition without a committed offset (or
	// with one outside the log) starts: "newest" (default; DDMQ's
	// consume-from-last, also "latest") or "oldest" (also "earliest").
	InitialOffset string
	// SessionTimeout is the group session timeout (default 10s); it must lie
	// within the brokers' group.min/max.session.timeout.ms.
	SessionTimeout time.Duration
	// HeartbeatInterval (default 3s) must be below SessionTimeout.
	HeartbeatInterval time.Duration
	// RebalanceTimeout is how long the coordinator waits for every member to
	// rejoin after a rebalance starts (default 60s). Claim handlers must
	// return well within it.
	RebalanceTimeout time.Duration
	// CommitInterval is the period of the member's commit flush (default
	// 1s; KafkaConfiguration.autoCommitInterval). Commits are also flushed
	// whenever a claim ends.
	CommitInterval time.Duration
	// FetchMaxBytes is the per-partition fetch size (default 1 MiB). The
	// group consumer grows it for a larger record; an OffsetReader.Fetch
	// also uses it as the response size limit.
	FetchMaxBytes int32
	// FetchMaxWait is how long a group consumer's fetch waits at the broker
	// for new records (default 500ms). sarama sends a broker's fetches,
	// heartbeats, commits and joins over one connection, one at a time, so
	// this also delays the group traffic to a coordinator that leads
	// consumed partitions: keep it well below HeartbeatInterval and
	// RebalanceTimeout.
	FetchMaxWait time.Duration
	// RetryBackoff is the wait between metadata, coordinator and rejoin
	// retries (default 100ms).
	RetryBackoff time.Duration
	// MetadataMaxAge is the background metadata refresh period (default 5
	// min); the group leader also checks the subscribed topics' partition
	// counts at this period and rebalances when they change.
	MetadataMaxAge time.Duration
	// Registerer, if set, receives the consumer's metrics
	// (carrera_kafka_consumer_shared_copies_total).
	Registerer prometheus.Registerer
}

// Consumer defaults.
const (
	DefaultConsumerClientID  = "carrera-cproxy"
	DefaultSessionTimeout    = 10 * time.Second
	DefaultHeartbeatInterval = 3 * time.Second
	DefaultRebalanceTimeout  = 60 * time.Second
	DefaultCommitInterval    = time.Second
	DefaultFetchMaxBytes     = 1 << 20
	DefaultFetchMaxWait      = 500 * time.Millisecond
)

func (o *ConsumerOptions) applyDefaults() {
	if o.ClientID == "" {
		o.ClientID = DefaultConsumerClientID
	}
	if o.InitialOffset == "" {
		o.InitialOffset = "newest"
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = DefaultSessionTimeout
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if o.RebalanceTimeout <= 0 {
		o.RebalanceTimeout = DefaultRebalanceTimeout
	}
	if o.CommitInterval <= 0 {
		o.CommitInterval = DefaultCommitInterval
	}
	if o.FetchMaxBytes <= 0 {
		o.FetchMaxBytes = DefaultFetchMaxBytes
	}
	if o.FetchMaxWait <= 0 {
		o.FetchMaxWait = DefaultFetchMaxWait
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = DefaultRetryBackoff
	}
	if o.MetadataMaxAge <= 0 {
		o.MetadataMaxAge = DefaultMetadataMaxAge
	}
}

func parseInitialOffset(s string) (int64, error) {
	switch strings.TrimSpace(strings.ToLower(s)) {
	case "newest", "latest":
		return sarama.OffsetNewest, nil
	case "oldest", "earliest":
		return sarama.OffsetOldest, nil
	}
	return 0, fmt.Errorf("kafka: initial offset %q: want newest or oldest", s)
}

// baseConfig is the client configuration shared by the group consumer and
// the offset reader. Call it after applyDefaults.
func (o *ConsumerOptions) baseConfig() (*sarama.Config, error) {
	if len(o.Brokers) == 0 {
		return nil, errors.New("kafka: no brokers")
	}
	cfg := sarama.NewConfig()
	cfg.Version = protocolVersion
	cfg.ClientID = o.ClientID
	cfg.Metadata.RefreshFrequency = o.MetadataMaxAge
	cfg.Metadata.Retry.Backoff = o.RetryBackoff
	cfg.Metadata.Full = false
	// Consumers never create topics, whatever the broker allows.
	cfg.Metadata.AllowAutoTopicCreation = false
	cfg.Consumer.Fetch.Default = o.FetchMaxBytes
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.IsolationLevel = sarama.ReadUncommitted
	return cfg, nil
}

// groupConfig is the configuration of a GroupConsumer's client.
func (o *ConsumerOptions) groupConfig() (*sarama.Config, error) {
	if o.Group == "" {
		return nil, errors.New("kafka: no consumer group")
	}
	if len(o.Topics) == 0 {
		return nil, errors.New("kafka: no topics")
	}
	initial, err := parseInitialOffset(o.InitialOffset)
	if err != nil {
		return nil, err
	}
	cfg, err := o.baseConfig()
	if err != nil {
		return nil, err
	}
	c := &cfg.Consumer
	// Offsets move only through Claim.Commit (behaviour.md §2.2).
	c.Offsets.AutoCommit.Enable = false
	c.Offsets.Initial = initial
	c.MaxWaitTime = o.FetchMaxWait
	c.Group.ResetInvalidOffsets = true
	c.Group.Session.Timeout = o.SessionTimeout
	c.Group.Heartbeat.Interval = o.HeartbeatInterval
	c.Group.Rebalance.Timeout = o.RebalanceTimeout
	c.Group.Rebalance.Retry.Backoff = o.RetryBackoff
	// Eager range assignment, as DDMQ's Kafka consumer: a rebalance ends
	// every claim of the generation (see doc.go, "Consumer").
	c.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
	// A JoinGroup may legitimately wait for the whole rebalance timeout.
	if floor := o.RebalanceTimeout + 5*time.Second; cfg.Net.ReadTimeout < floor {
		cfg.Net.ReadTimeout = floor
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	return cfg, nil
}

// readerConfig is the configuration of an OffsetReader's client.
func (o *ConsumerOptions) readerConfig() (*sarama.Config, error) {
	cfg, err := o.baseConfig()
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	return cfg, nil
}
