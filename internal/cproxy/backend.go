package cproxy

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/config"
	"github.com/ddmq-go/carrera/internal/mq"
)

// GroupTimings tunes the broker group protocol (tests shorten them).
type GroupTimings struct {
	// Kafka group protocol and commit flush.
	SessionTimeout, HeartbeatInterval, RebalanceTimeout, CommitInterval, FetchMaxWait time.Duration
	// RocketMQRebalance is the periodic rebalance of RocketMQ members
	// (default 20 s; a broker's membership notification triggers one at
	// once anyway). RocketMQ heartbeat, route and offset-flush periods come
	// from the cluster configuration.
	RocketMQRebalance time.Duration
	// RocketMQPullSuspend bounds how long a broker may hold a RocketMQ pull
	// that finds nothing (default 15 s).
	RocketMQPullSuspend time.Duration
}

// backends dispatches every broker-side operation of a unit or cluster to
// the backend of the cluster's technology (config.ClusterKind): Kafka or
// RocketMQ. It implements Backend.
type backends struct {
	snap  func() *config.CProxySnapshot
	kafka *kafkaBackend
	rmq   *rocketmqBackend
}

var _ Backend = (*backends)(nil)

// newBackends returns the dispatcher; instance is this cproxy's instance
// name (RocketMQ broadcast offsets are kept per instance).
func newBackends(log *zap.Logger, reg prometheus.Registerer, snap func() *config.CProxySnapshot, t GroupTimings, instance string) *backends {
	return &backends{
		snap:  snap,
		kafka: newKafkaBackend(log, reg, snap, t),
		rmq:   newRocketmqBackend(log, snap, t, instance),
	}
}

func (b *backends) kind(cluster string) config.ClusterKind {
	s := b.snap()
	if s == nil {
		return config.ClusterNone
	}
	return s.ClusterKind(cluster)
}

// GroupConsumer implements Backend.
func (b *backends) GroupConsumer(u *config.UnitView) (mq.GroupConsumer, error) {
	switch u.ClusterKind {
	case config.ClusterKafka:
		return b.kafka.GroupConsumer(u)
	case config.ClusterRocketMQ:
		return b.rmq.GroupConsumer(u)
	}
	return nil, errors.New("cproxy: unit " + u.Key.String() + " has no broker cluster configuration")
}

// Producer implements Backend: the dead-letter producer of a Kafka
// cluster. RocketMQ clusters have none: their failed messages are sent
// back to the broker (SendBack).
func (b *backends) Producer(cluster string) mq.Producer {
	if b.kind(cluster) == config.ClusterKafka {
		return b.kafka.Producer(cluster)
	}
	return nil
}

// Partitions implements Backend.
func (b *backends) Partitions(ctx context.Context, cluster, topic string) (int, error) {
	r := b.reader(cluster)
	if r == nil {
		return 0, errors.New("cproxy: no reader for cluster " + cluster)
	}
	n, err := r.Partitions(ctx, topic)
	return int(n), err
}

// QID implements Backend (wire-contract.md §5).
func (b *backends) QID(cluster string, partition int32) string {
	if b.kind(cluster) == config.ClusterRocketMQ {
		return RocketMQQID(cluster, partition)
	}
	return QID(cluster, partition)
}

// SendBack implements Backend.
func (b *backends) SendBack(ctx context.Context, cluster, group string, d *mq.Delivery) (bool, error) {
	if b.kind(cluster) != config.ClusterRocketMQ {
		return false, nil
	}
	return true, b.rmq.SendBack(ctx, cluster, group, d)
}

// reader returns the offset reader of a cluster (nil if it has no
// configuration here).
func (b *backends) reader(cluster string) mq.OffsetReader {
	switch b.kind(cluster) {
	case config.ClusterKafka:
		return b.kafka.reader(cluster)
	case config.ClusterRocketMQ:
		if r := b.rmq.reader(cluster); r != nil {
			return r
		}
	}
	return nil
}

// offsetGroup is the group under which a unit's offsets are stored: the
// group, except for RocketMQ broadcasting units (per-instance offsets).
func (b *backends) offsetGroup(u *config.UnitView) string {
	if u.ClusterKind == config.ClusterRocketMQ {
		return b.rmq.offsetGroup(u)
	}
	return u.Key.Group
}

// Close closes readers and producers of both technologies.
func (b *backends) Close(ctx context.Context) {
	b.kafka.Close(ctx)
	b.rmq.Close()
}
