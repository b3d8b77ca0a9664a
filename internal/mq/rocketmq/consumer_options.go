package rocketmq

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Consume-from-where policies of a group without a committed offset
// (RocketMQ's ConsumeFromWhere; the same strings as config.ConsumeFrom*).
const (
	ConsumeFromLastOffset  = "CONSUME_FROM_LAST_OFFSET"
	ConsumeFromFirstOffset = "CONSUME_FROM_FIRST_OFFSET"
	ConsumeFromTimestamp   = "CONSUME_FROM_TIMESTAMP"
)

// Consumer defaults (the Java client's, except where noted).
const (
	DefaultHeartbeatInterval = 30 * time.Second
	DefaultRebalanceInterval = 20 * time.Second
	DefaultRouteInterval     = 30 * time.Second
	// DefaultConsumerCommitInterval is the offset flush period
	// (persistConsumerOffsetInterval).
	DefaultConsumerCommitInterval = 5 * time.Second
	DefaultPullBatchSize          = 32
	// DefaultPullSuspend is how long the broker may hold a pull with nothing
	// to return (the Java push consumer's 15 s).
	DefaultPullSuspend = 15 * time.Second
	// DefaultConsumerRequestTimeout bounds every request except long-polling pulls.
	DefaultConsumerRequestTimeout = 3 * time.Second
	// DefaultConsumerRetryBackoff is the wait after a failed pull, route
	// lookup or offset query (the Java push consumer waits 3 s after a pull
	// exception; a shorter wait recovers faster from a restarted broker).
	DefaultConsumerRetryBackoff = time.Second
	// DefaultMaxReconsumeTimes is sent with CONSUMER_SEND_MSG_BACK: after
	// that many send-backs the broker moves the message to %DLQ%<group>.
	DefaultMaxReconsumeTimes = 16
)

// Subscription is one subscribed topic and its tag expression ("*", "" =
// every tag, or "tagA||tagB").
type Subscription struct {
	Topic      string
	Expression string
}

// ConsumerOptions configures a GroupConsumer (one member of one consumer
// group on one RocketMQ cluster) and an OffsetReader (which uses only
// Cluster, NameServers, RequestTimeout, RetryBackoff and RouteInterval).
// Zero values take the defaults named per field.
type ConsumerOptions struct {
	// Cluster names the broker cluster in logs.
	Cluster string
	// NameServers are the NameServer addresses, host:port (required).
	NameServers []string
	// Group is the RocketMQ consumer group: the DDMQ group name (required
	// for a GroupConsumer).
	Group string
	// Subscriptions are the subscribed topics (required for a
	// GroupConsumer). A clustering member also subscribes to
	// %RETRY%<Group>, like a Java push consumer.
	Subscriptions []Subscription
	// Broadcasting makes every member claim every queue (messageModel
	// BROADCASTING). Offsets are then kept per member under OffsetGroup.
	Broadcasting bool
	// OffsetGroup is the consumer group under which offsets are queried and
	// stored (default Group). For broadcasting, set it to a name unique per
	// cproxy instance and stable across its restarts (see doc.go,
	// "Broadcasting").
	OffsetGroup string
	// ConsumeFrom is where a queue without a committed offset starts:
	// ConsumeFromLastOffset (default, also for unknown values),
	// ConsumeFromFirstOffset or ConsumeFromTimestamp.
	ConsumeFrom string
	// ConsumeTimestamp is the start time for ConsumeFromTimestamp (default:
	// half an hour before the member starts, as the Java client).
	ConsumeTimestamp time.Time
	// ClientIP is the IP part of the client id "ip@instance" (default: the
	// first non-loopback IPv4 address, else 127.0.0.1).
	ClientIP string
	// InstanceName prefixes the instance part of the client id
	// "ip@<InstanceName>#<sequence>" (default: the process id). The
	// sequence makes every GroupConsumer of the process a distinct member,
	// also of one group (low-level fetchers, overlapping restarts).
	InstanceName string
	// SkipRetryTopic keeps a clustering member off %RETRY%<Group> (for
	// members that never send messages back, e.g. low-level fetchers).
	SkipRetryTopic bool
	// HeartbeatInterval (default 30 s; heartbeatBrokerInterval).
	HeartbeatInterval time.Duration
	// RebalanceInterval is the periodic rebalance (default 20 s); a member
	// also rebalances at once when a broker notifies a membership change.
	RebalanceInterval time.Duration
	// RouteInterval is the route refresh period (default 30 s;
	// pollNameServerInterval).
	RouteInterval time.Duration
	// CommitInterval is the offset flush period (default 5 s;
	// persistConsumerOffsetInterval). Offsets are also flushed when a claim
	// ends and when the member stops.
	CommitInterval time.Duration
	// PullBatchSize is the number of messages per broker pull (default 32;
	// pullBatchSize).
	PullBatchSize int
	// PullSuspend is how long the broker may hold a pull that finds nothing
	// (default 15 s).
	PullSuspend time.Duration
	// RequestTimeout bounds every broker and NameServer request except a
	// pull's hold (default 3 s).
	RequestTimeout time.Duration
	// RetryBackoff is the wait after a failed pull, route lookup or offset
	// query (default 1 s).
	RetryBackoff time.Duration
	// MaxReconsumeTimes is sent with CONSUMER_SEND_MSG_BACK (default 16).
	MaxReconsumeTimes int
}

var consumerInstanceSeq atomic.Int64

func (o *ConsumerOptions) applyDefaults() {
	o.NameServers = slices.Clone(o.NameServers)
	o.Subscriptions = slices.Clone(o.Subscriptions)
	if o.OffsetGroup == "" {
		o.OffsetGroup = o.Group
	}
	switch o.ConsumeFrom {
	case ConsumeFromFirstOffset, ConsumeFromTimestamp:
	default:
		o.ConsumeFrom = ConsumeFromLastOffset
	}
	if o.ConsumeTimestamp.IsZero() {
		o.ConsumeTimestamp = time.Now().Add(-30 * time.Minute)
	}
	if o.ClientIP == "" {
		o.ClientIP = consumerLocalIP()
	}
	if o.InstanceName == "" {
		o.InstanceName = strconv.Itoa(os.Getpid())
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if o.RebalanceInterval <= 0 {
		o.RebalanceInterval = DefaultRebalanceInterval
	}
	if o.RouteInterval <= 0 {
		o.RouteInterval = DefaultRouteInterval
	}
	if o.CommitInterval <= 0 {
		o.CommitInterval = DefaultConsumerCommitInterval
	}
	if o.PullBatchSize <= 0 {
		o.PullBatchSize = DefaultPullBatchSize
	}
	if o.PullSuspend <= 0 {
		o.PullSuspend = DefaultPullSuspend
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultConsumerRequestTimeout
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = DefaultConsumerRetryBackoff
	}
	if o.MaxReconsumeTimes <= 0 {
		o.MaxReconsumeTimes = DefaultMaxReconsumeTimes
	}
}

// validateReader checks what an OffsetReader needs.
func (o *ConsumerOptions) validateReader() error {
	if len(o.NameServers) == 0 {
		return errors.New("rocketmq: no name servers")
	}
	for _, a := range o.NameServers {
		if strings.TrimSpace(a) == "" || !strings.Contains(a, ":") {
			return fmt.Errorf("rocketmq: name server %q is not host:port", a)
		}
	}
	return nil
}

// validateGroup checks what a GroupConsumer needs.
func (o *ConsumerOptions) validateGroup() error {
	if err := o.validateReader(); err != nil {
		return err
	}
	if o.Group == "" {
		return errors.New("rocketmq: no consumer group")
	}
	if len(o.Subscriptions) == 0 {
		return errors.New("rocketmq: no topics")
	}
	seen := map[string]bool{}
	for _, s := range o.Subscriptions {
		if s.Topic == "" {
			return errors.New("rocketmq: empty topic")
		}
		if seen[s.Topic] {
			return fmt.Errorf("rocketmq: topic %q subscribed twice", s.Topic)
		}
		seen[s.Topic] = true
	}
	return nil
}

// newClientID returns a fresh client id "ip@instance#seq" (after
// defaults).
func (o *ConsumerOptions) newClientID() string {
	return o.ClientIP + "@" + o.InstanceName + "#" + strconv.FormatInt(consumerInstanceSeq.Add(1), 10)
}

// RetryTopic returns a group's retry topic, "%RETRY%<group>": the topic
// CONSUMER_SEND_MSG_BACK re-queues the group's messages to. A clustering
// GroupConsumer claims its queues too.
func RetryTopic(group string) string { return groupRetryTopic(group) }

// consumerLocalIP returns the first non-loopback IPv4 address of the host,
// else 127.0.0.1 (the IP part of RocketMQ client ids).
func consumerLocalIP() string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() {
				if v4 := n.IP.To4(); v4 != nil {
					return v4.String()
				}
			}
		}
	}
	return "127.0.0.1"
}
