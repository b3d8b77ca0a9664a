package rocketmq

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configures a Producer. Fields mirror RocketmqConfiguration
// (zookeeper-layout.md §4.4.4) plus the pproxy's rocketmqProducers and
// autoBatch; the pproxy maps its configuration to them. Zero values take
// the defaults named per field.
type Options struct {
	// Cluster names the broker cluster in logs and metric labels.
	Cluster string
	// NameServers are the NameServer addresses, host:port (required).
	NameServers []string
	// Group is the producer group (default DefaultGroupPrefix + Cluster;
	// the pproxy passes groupPrefix + cluster). It matters to a stock
	// broker only for transactional messages, which the proxy never sends.
	Group string
	// Instances is the number of client instances (rocketmqProducers), each
	// with its own connections; records are spread over them round-robin
	// (default 1). See doc.go for how per-queue order survives that.
	Instances int
	// SendTimeout bounds one single-message send (sendMsgTimeout, default
	// 3s). rocketmq-client-go caps every asynchronous send at 3s, so larger
	// values act as 3s.
	SendTimeout time.Duration
	// BatchTimeout bounds one SEND_BATCH_MESSAGE (default 5s per
	// behaviour.md §1.10; also capped at 3s by the library).
	BatchTimeout time.Duration
	// CompressOver is compressMsgBodyOverHowmuch: single-message bodies of
	// at least this many bytes are sent zlib-compressed with the
	// compressed sysFlag, as RocketMQ clients do (default 4096). Batches are
	// never compressed.
	CompressOver int
	// MaxMessageSize is the broker's limit (maxMessageSize, default 4 MiB,
	// RocketMQ's default): a body above it fails with
	// mq.ErrMessageTooLarge without reaching the broker, and batch requests
	// are split so that each request body stays within it.
	MaxMessageSize int
	// MaxBatchMessages bounds the messages of one SEND_BATCH_MESSAGE
	// (default 256).
	MaxBatchMessages int
	// RouteRefresh is the period of the background route refresh of every
	// topic in use (pollNameServerInterval, default 30s).
	RouteRefresh time.Duration
	// RouteTimeout bounds one route lookup at the NameServer, including
	// trying the next NameServer (default 3s).
	RouteTimeout time.Duration
	// AutoBatch enables ProduceAutoBatch's coalescing (behaviour.md §1.11);
	// nil sends every record singly.
	AutoBatch *AutoBatchOptions
	// InstanceName prefixes the client instance names (default
	// "carrera-<pid>"). Every Producer gets names of its own, so an old and
	// a new producer of one cluster can coexist in one process.
	InstanceName string
	// Registerer receives the producer's metrics; nil disables them.
	Registerer prometheus.Registerer
}

// AutoBatchOptions configures auto-batching (the pproxy's autoBatch block,
// zookeeper-layout.md §4.4.3).
type AutoBatchOptions struct {
	// MaxBytes (maxBathBytes): a batch is sent before adding a record
	// would make its bodies reach this many bytes (default 4096).
	MaxBytes int
	// ThresholdBytes (doBatchThresholdBytes): only bodies smaller than this
	// are batched; larger ones are sent singly (default 1024).
	ThresholdBytes int
	// MaxMessages (maxBatchMessagesNumber): a batch holding this many
	// records is sent at once (default 32).
	MaxMessages int
	// Wait (batchWaitMills): the longest a record waits for company
	// (default 5ms; 0 sends whatever is queued as soon as the queue's
	// previous request completed).
	Wait time.Duration
	// MaxInflight (maxEncodeWorkerForEachBroker): requests in flight per
	// (topic, queue); records arriving meanwhile accumulate (default 1).
	MaxInflight int
	// Timeout bounds one request (default 5s, capped at 3s by the library).
	Timeout time.Duration
}

// Defaults.
const (
	DefaultGroupPrefix      = "carrera_rocketmq_producer_"
	DefaultSendTimeout      = 3 * time.Second
	DefaultBatchTimeout     = 5 * time.Second
	DefaultCompressOver     = 4096
	DefaultMaxMessageSize   = 4 << 20
	DefaultMaxBatchMessages = 256
	DefaultRouteRefresh     = 30 * time.Second
	DefaultRouteTimeout     = 3 * time.Second

	DefaultAutoBatchMaxBytes       = 4096
	DefaultAutoBatchThresholdBytes = 1024
	DefaultAutoBatchMaxMessages    = 32
	DefaultAutoBatchWait           = 5 * time.Millisecond
	DefaultAutoBatchMaxInflight    = 1
	DefaultAutoBatchTimeout        = 5 * time.Second
)

// libraryTimeoutCap is the bound rocketmq-client-go v2.1.2 puts on every
// asynchronous send (producer.sendAsync: context.WithTimeout(ctx, 3s)).
const libraryTimeoutCap = 3 * time.Second

func (o *Options) applyDefaults() {
	o.NameServers = slices.Clone(o.NameServers)
	if o.Group == "" {
		o.Group = DefaultGroupPrefix + o.Cluster
	}
	if o.Instances <= 0 {
		o.Instances = 1
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = DefaultSendTimeout
	}
	if o.BatchTimeout <= 0 {
		o.BatchTimeout = DefaultBatchTimeout
	}
	if o.CompressOver <= 0 {
		o.CompressOver = DefaultCompressOver
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
	if o.MaxBatchMessages <= 0 {
		o.MaxBatchMessages = DefaultMaxBatchMessages
	}
	if o.RouteRefresh <= 0 {
		o.RouteRefresh = DefaultRouteRefresh
	}
	if o.RouteTimeout <= 0 {
		o.RouteTimeout = DefaultRouteTimeout
	}
	if o.InstanceName == "" {
		o.InstanceName = fmt.Sprintf("carrera-%d", os.Getpid())
	}
	if o.AutoBatch != nil {
		ab := *o.AutoBatch
		ab.applyDefaults()
		o.AutoBatch = &ab
	}
}

func (a *AutoBatchOptions) applyDefaults() {
	if a.MaxBytes <= 0 {
		a.MaxBytes = DefaultAutoBatchMaxBytes
	}
	if a.ThresholdBytes <= 0 {
		a.ThresholdBytes = DefaultAutoBatchThresholdBytes
	}
	if a.MaxMessages <= 0 {
		a.MaxMessages = DefaultAutoBatchMaxMessages
	}
	if a.Wait < 0 {
		a.Wait = 0
	}
	if a.MaxInflight <= 0 {
		a.MaxInflight = DefaultAutoBatchMaxInflight
	}
	if a.Timeout <= 0 {
		a.Timeout = DefaultAutoBatchTimeout
	}
}

func (o *Options) validate() error {
	if len(o.NameServers) == 0 {
		return errors.New("rocketmq: no name servers")
	}
	for _, a := range o.NameServers {
		if a == "" {
			return errors.New("rocketmq: empty name server address")
		}
	}
	return nil
}
