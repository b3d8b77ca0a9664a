package kafka

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configures a Producer. Fields mirror KafkaConfiguration
// (zookeeper-layout.md §4.4.5); the pproxy maps its configuration to them.
// Zero values take the defaults named per field.
type Options struct {
	// Cluster names the broker cluster in logs and metric labels.
	Cluster string
	// Brokers are the bootstrap addresses, host:port (required).
	Brokers []string
	// Acks: "all" or "-1" (wait for all in-sync replicas; default), "1"
	// (leader only) or "0" (no response: success once written to the socket).
	Acks string
	// Retries is the client's retry count per record (sarama Retry.Max).
	// DDMQ uses 0: the proxy's single retry replaces client retries.
	Retries int
	// BatchBytes is KafkaConfiguration.batchSize. It is accepted but does
	// not drive flushing: sarama's Flush.Bytes without Flush.Frequency would
	// hold a lone record until that many bytes accumulate. Batches are
	// bounded by MaxMessageBytes per partition instead; see doc.go.
	BatchBytes int
	// ClientID is the Kafka client.id (default "carrera-pproxy").
	ClientID string
	// RetryBackoff is the wait between client retries and between metadata
	// retries (default 100ms).
	RetryBackoff time.Duration
	// MetadataMaxAge is the background metadata refresh period (default
	// 5 min).
	MetadataMaxAge time.Duration
	// MetadataTimeout bounds one metadata refresh including its retries
	// (default 5s).
	MetadataTimeout time.Duration
	// AckTimeout is how long the broker may wait for replica acks (default
	// 10s). The client's read timeout is kept above it.
	AckTimeout time.Duration
	// BufferMemory bounds the bytes of records handed over and not yet
	// completed; a record that would exceed it fails at once with
	// mq.ErrBufferFull (default 32 MiB).
	BufferMemory int64
	// MaxMessageBytes is the largest record the client sends (sarama
	// Producer.MaxMessageBytes, default 1 MiB); larger records fail with
	// mq.ErrMessageTooLarge before reaching the broker.
	MaxMessageBytes int
	// Instances is the number of sarama producers (each with its own
	// connections) the records are spread over (default 1).
	Instances int
	// Registerer receives the producer's metrics; nil disables them.
	Registerer prometheus.Registerer
}

// Defaults.
const (
	DefaultClientID        = "carrera-pproxy"
	DefaultRetryBackoff    = 100 * time.Millisecond
	DefaultMetadataMaxAge  = 5 * time.Minute
	DefaultMetadataTimeout = 5 * time.Second
	DefaultAckTimeout      = 10 * time.Second
	DefaultBufferMemory    = 32 << 20
	DefaultMaxMessageBytes = 1 << 20
)

// protocolVersion is the Kafka version sarama assumes: 2.8 (sarama's own
// default; record headers need >= 0.11).
var protocolVersion = sarama.V2_8_0_0

func (o *Options) applyDefaults() {
	if o.Acks == "" {
		o.Acks = "all"
	}
	if o.ClientID == "" {
		o.ClientID = DefaultClientID
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = DefaultRetryBackoff
	}
	if o.MetadataMaxAge <= 0 {
		o.MetadataMaxAge = DefaultMetadataMaxAge
	}
	if o.MetadataTimeout <= 0 {
		o.MetadataTimeout = DefaultMetadataTimeout
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = DefaultAckTimeout
	}
	if o.BufferMemory <= 0 {
		o.BufferMemory = DefaultBufferMemory
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if o.Instances <= 0 {
		o.Instances = 1
	}
}

func parseAcks(s string) (sarama.RequiredAcks, error) {
	switch strings.TrimSpace(strings.ToLower(s)) {
	case "all", "-1":
		return sarama.WaitForAll, nil
	case "1":
		return sarama.WaitForLocal, nil
	case "0":
		return sarama.NoResponse, nil
	}
	return 0, fmt.Errorf("kafka: acks %q: want all, -1, 1 or 0", s)
}

// saramaConfig builds the configuration shared by all instances. Call it
// after applyDefaults.
func (o *Options) saramaConfig() (*sarama.Config, error) {
	if len(o.Brokers) == 0 {
		return nil, errors.New("kafka: no brokers")
	}
	if o.Retries < 0 {
		return nil, fmt.Errorf("kafka: retries %d < 0", o.Retries)
	}
	acks, err := parseAcks(o.Acks)
	if err != nil {
		return nil, err
	}
	cfg := sarama.NewConfig()
	cfg.Version = protocolVersion
	cfg.ClientID = o.ClientID

	cfg.Metadata.RefreshFrequency = o.MetadataMaxAge
	cfg.Metadata.Timeout = o.MetadataTimeout
	cfg.Metadata.Retry.Backoff = o.RetryBackoff
	// Only the topics this proxy produces to, not the whole cluster.
	cfg.Metadata.Full = false
	// AllowAutoTopicCreation stays sarama's default (true): the broker's
	// auto.create.topics.enable decides, as it did for DDMQ's client.

	p := &cfg.Producer
	p.RequiredAcks = acks
	p.Timeout = o.AckTimeout
	p.Retry.Max = o.Retries
	p.Retry.Backoff = o.RetryBackoff
	p.MaxMessageBytes = o.MaxMessageBytes
	p.Partitioner = sarama.NewManualPartitioner
	p.Return.Successes = true
	p.Return.Errors = true
	// Flush.Frequency, Flush.Bytes and Flush.Messages stay 0: sarama then
	// sends whenever it can and, while a partition's request is in flight,
	// accumulates that partition's records into the next request (see
	// doc.go, "Batching").
	p.Flush.Frequency = 0
	p.Flush.Bytes = 0
	p.Flush.Messages = 0

	// One produce request in flight per broker connection: records that
	// arrive meanwhile coalesce into the next request (about twice the
	// records per request of sarama's default 5 under concurrent load, see
	// `make bench-produce`), and per-partition order survives client retries.
	cfg.Net.MaxOpenRequests = 1

	// The client-side wait for a produce response must outlast the broker's
	// ack wait, or every slow ack turns into a client timeout.
	if floor := o.AckTimeout + 5*time.Second; cfg.Net.ReadTimeout < floor {
		cfg.Net.ReadTimeout = floor
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	return cfg, nil
}
