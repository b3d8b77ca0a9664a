package cproxy

import (
	"context"
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/config"
	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/mq/kafka"
)

// kafkaBackend builds Kafka consumers, offset readers and dead-letter
// producers from the current snapshot's kafkaConfigs. Readers and producers
// are created lazily per cluster and closed by Close.
type kafkaBackend struct {
	log     *zap.Logger
	reg     prometheus.Registerer
	snap    func() *config.CProxySnapshot
	timings GroupTimings

	mu        sync.Mutex
	readers   map[string]*kafka.OffsetReader
	producers map[string]*kafka.Producer
}

func newKafkaBackend(log *zap.Logger, reg prometheus.Registerer, snap func() *config.CProxySnapshot, t GroupTimings) *kafkaBackend {
	return &kafkaBackend{log: log, reg: reg, snap: snap, timings: t,
		readers: map[string]*kafka.OffsetReader{}, producers: map[string]*kafka.Producer{}}
}

func (b *kafkaBackend) brokers(cluster string) ([]string, bool) {
	kc, ok := b.snap().Node.KafkaConfigs[cluster]
	if !ok {
		return nil, false
	}
	s := kc.BootstrapServers()
	return s, len(s) > 0
}

func (b *kafkaBackend) GroupConsumer(u *config.UnitView) (mq.GroupConsumer, error) {
	if u.Kafka == nil {
		return nil, errors.New("cproxy: unit " + u.Key.String() + " is not on a Kafka cluster")
	}
	brokers := u.Kafka.BootstrapServers()
	if len(brokers) == 0 {
		return nil, errors.New("cproxy: no bootstrap.servers for cluster " + u.Key.Cluster)
	}
	opts := kafka.ConsumerOptions{
		Cluster: u.Key.Cluster, Brokers: brokers, Group: u.Key.Group, Topics: u.Topics(),
		InitialOffset:  u.Kafka.InitialOffset(),
		SessionTimeout: b.timings.SessionTimeout, HeartbeatInterval: b.timings.HeartbeatInterval,
		RebalanceTimeout: b.timings.RebalanceTimeout, CommitInterval: b.timings.CommitInterval,
		FetchMaxWait: b.timings.FetchMaxWait, Registerer: b.reg,
	}
	n := kafkaMembers(u)
	ms := make(mq.Members, n)
	for i := range ms {
		gc, err := kafka.NewGroupConsumer(opts, b.log.Named("kafka"))
		if err != nil {
			return nil, err
		}
		ms[i] = gc
	}
	return ms, nil
}

// maxKafkaMembers caps the group members one cproxy runs for a unit.
const maxKafkaMembers = 16

// kafkaMembers is the number of group members cproxy runs for a Kafka unit:
// the largest fetchThreads of its topics (DDMQ: consumer streams per
// topic), at most maxKafkaMembers. Each member fetches its share of the
// partitions on its own connection (mq.Members).
func kafkaMembers(u *config.UnitView) int {
	n := 1
	for _, s := range u.Subscriptions {
		n = max(n, s.Config.FetchThreads)
	}
	return min(n, maxKafkaMembers)
}

// perCluster returns m[cluster], building it with build on first use; ok
// is false when the cluster has no Kafka bootstrap servers or build failed
// (logged as what). The caller holds b.mu.
func perCluster[T any](b *kafkaBackend, m map[string]T, cluster, what string, build func(brokers []string) (T, error)) (v T, ok bool) {
	if v, ok := m[cluster]; ok {
		return v, true
	}
	brokers, ok := b.brokers(cluster)
	if !ok {
		return v, false
	}
	v, err := build(brokers)
	if err != nil {
		b.log.Warn(what, zap.String("cluster", cluster), zap.Error(err))
		return v, false
	}
	m[cluster] = v
	return v, true
}

// reader returns the cluster's offset reader (nil if the cluster has no
// Kafka config).
func (b *kafkaBackend) reader(cluster string) mq.OffsetReader {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := perCluster(b, b.readers, cluster, "offset reader", func(brokers []string) (*kafka.OffsetReader, error) {
		return kafka.NewOffsetReader(kafka.ConsumerOptions{Cluster: cluster, Brokers: brokers}, b.log.Named("kafka"))
	})
	if !ok {
		return nil
	}
	return r
}

// Producer returns the cluster's dead-letter producer (nil if the cluster
// has no Kafka config).
func (b *kafkaBackend) Producer(cluster string) mq.Producer {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := perCluster(b, b.producers, cluster, "dead-letter producer", func(brokers []string) (*kafka.Producer, error) {
		return kafka.NewProducer(kafka.Options{Cluster: cluster, Brokers: brokers, ClientID: "carrera-cproxy-dlq"}, b.log.Named("dlq"))
	})
	if !ok {
		return nil
	}
	return p
}

func (b *kafkaBackend) Partitions(ctx context.Context, cluster, topic string) (int, error) {
	r := b.reader(cluster)
	if r == nil {
		return 0, errors.New("cproxy: no reader for cluster " + cluster)
	}
	n, err := r.Partitions(ctx, topic)
	return int(n), err
}

// Close closes readers and producers.
func (b *kafkaBackend) Close(ctx context.Context) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range b.readers {
		_ = r.Close()
	}
	for _, p := range b.producers {
		_ = p.Close(ctx)
	}
	b.readers, b.producers = map[string]*kafka.OffsetReader{}, map[string]*kafka.Producer{}
}
