package cproxy

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/config"
	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/mq/rocketmq"
)

// RocketMQQID returns the RocketMQ QID "<cluster>_<brokerName>_<queueId>"
// of a queue numbered by rocketmq.QueuePartition (wire-contract.md §5).
func RocketMQQID(cluster string, partition int32) string {
	return cluster + "_" + rocketmq.QueueName(partition)
}

// rocketmqBackend builds RocketMQ group members and offset readers from
// the current snapshot's rocketmqConfigs. Readers are created lazily per
// cluster (and again when the cluster's name servers change) and closed by
// Close.
type rocketmqBackend struct {
	log      *zap.Logger
	snap     func() *config.CProxySnapshot
	timings  GroupTimings
	instance string

	mu      sync.Mutex
	readers map[string]*rmqReader
}

type rmqReader struct {
	r     *rocketmq.OffsetReader
	addrs string // name servers it was built for
}

func newRocketmqBackend(log *zap.Logger, snap func() *config.CProxySnapshot, t GroupTimings, instance string) *rocketmqBackend {
	return &rocketmqBackend{log: log, snap: snap, timings: t, instance: instance, readers: map[string]*rmqReader{}}
}

func millis(ms int) time.Duration { return time.Duration(ms) * time.Millisecond }

// offsetGroup is the group under which the unit's offsets live: the group
// itself, or for a broadcasting cluster "<group>_BROADCAST_<instance>"
// (instance with every character outside [A-Za-z0-9_-] replaced by '_'),
// so each cproxy instance keeps its own position at the broker (see
// README, "RocketMQ").
func (b *rocketmqBackend) offsetGroup(u *config.UnitView) string {
	if !u.Broadcasting() {
		return u.Key.Group
	}
	return BroadcastOffsetGroup(u.Key.Group, b.instance)
}

// BroadcastOffsetGroup returns the consumer group under which a cproxy
// instance stores its offsets of a broadcasting RocketMQ group.
func BroadcastOffsetGroup(group, instance string) string {
	clean := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			return r
		}
		return '_'
	}, instance)
	return group + "_BROADCAST_" + clean
}

// GroupConsumer returns a member of the unit's group on its RocketMQ
// cluster.
func (b *rocketmqBackend) GroupConsumer(u *config.UnitView) (mq.GroupConsumer, error) {
	rc := u.RocketMQ
	if rc == nil {
		return nil, errors.New("cproxy: unit " + u.Key.String() + " is not on a RocketMQ cluster")
	}
	subs := make([]rocketmq.Subscription, 0, len(u.Subscriptions))
	for _, s := range u.Subscriptions {
		subs = append(subs, rocketmq.Subscription{Topic: s.Topic, Expression: s.TagExpression})
	}
	opts := rocketmq.ConsumerOptions{
		Cluster:           u.Key.Cluster,
		NameServers:       rc.NamesrvAddrs,
		Group:             u.Key.Group,
		Subscriptions:     subs,
		Broadcasting:      u.Broadcasting(),
		OffsetGroup:       b.offsetGroup(u),
		ConsumeFrom:       rc.StartFrom(),
		InstanceName:      rc.InstanceName,
		HeartbeatInterval: millis(rc.HeartbeatBrokerInterval),
		RouteInterval:     millis(rc.PollNameServerInterval),
		CommitInterval:    millis(rc.PersistConsumerOffsetInterval),
		PullBatchSize:     rc.PullBatchSize,
		RebalanceInterval: b.timings.RocketMQRebalance,
		PullSuspend:       b.timings.RocketMQPullSuspend,
		// Low-level fetchers never send messages back.
		SkipRetryTopic: u.Group != nil && u.Group.Kind == config.KindLowLevel,
	}
	if rc.StartFrom() == config.ConsumeFromTimestamp && rc.ConsumeTimestamp != "" {
		if ts, err := time.ParseInLocation(config.ConsumeTimestampLayout, rc.ConsumeTimestamp, time.Local); err == nil {
			opts.ConsumeTimestamp = ts
		}
	}
	return rocketmq.NewGroupConsumer(opts, b.log.Named("rocketmq"))
}

// reader returns the cluster's offset reader (nil if the cluster has no
// RocketMQ config).
func (b *rocketmqBackend) reader(cluster string) *rocketmq.OffsetReader {
	snap := b.snap()
	if snap == nil {
		return nil
	}
	rc, ok := snap.Node.RocketmqConfigs[cluster]
	if !ok || len(rc.NamesrvAddrs) == 0 {
		return nil
	}
	addrs := strings.Join(rc.NamesrvAddrs, ",")
	b.mu.Lock()
	defer b.mu.Unlock()
	if cur, ok := b.readers[cluster]; ok {
		if cur.addrs == addrs {
			return cur.r
		}
		_ = cur.r.Close()
		delete(b.readers, cluster)
	}
	r, err := rocketmq.NewOffsetReader(rocketmq.ConsumerOptions{Cluster: cluster, NameServers: rc.NamesrvAddrs,
		RouteInterval: millis(rc.PollNameServerInterval)}, b.log.Named("rocketmq"))
	if err != nil {
		b.log.Warn("offset reader", zap.String("cluster", cluster), zap.Error(err))
		return nil
	}
	b.readers[cluster] = &rmqReader{r: r, addrs: addrs}
	return r
}

// SendBack returns an exhausted message to the broker's retry path of its
// group (CONSUMER_SEND_MSG_BACK, delay level 0), behaviour.md §2.4.
func (b *rocketmqBackend) SendBack(ctx context.Context, cluster, group string, d *mq.Delivery) error {
	r := b.reader(cluster)
	if r == nil {
		return errors.New("cproxy: no RocketMQ configuration for cluster " + cluster)
	}
	return r.SendBack(ctx, group, d)
}

// Close closes the readers.
func (b *rocketmqBackend) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range b.readers {
		_ = r.r.Close()
	}
	b.readers = map[string]*rmqReader{}
}
