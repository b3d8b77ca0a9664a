// Package testenv starts the servers the tests need and registers their
// cleanup with the test. Test-only: nothing outside _test.go files and test
// helpers may import it.
package testenv

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Kafka is an in-process kfake cluster speaking the Kafka protocol over TCP
// on 127.0.0.1.
//
// Tests using it together with goleak should set
// metrics.UseNilMetrics = true (github.com/rcrowley/go-metrics) in TestMain:
// sarama's go-metrics meters otherwise leave a goroutine behind.
type Kafka struct {
	t testing.TB
	// Cluster is the kfake cluster, for fault injection (ControlKey, Fault,
	// MoveTopicPartition, ...).
	Cluster *kfake.Cluster
}

// KafkaRecord is a record read back by ReadAll.
type KafkaRecord struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte // nil for a null key
	Value     []byte
	Headers   []KafkaHeader // in record order
	Timestamp time.Time
}

// KafkaHeader is one record header.
type KafkaHeader struct {
	Key   string
	Value []byte
}

// StartKafka starts a kfake cluster with one broker and no topic
// auto-creation; opts are applied after those defaults, so
// kfake.NumBrokers(3), kfake.AllowAutoTopicCreation() or
// kfake.SeedTopics(4, "a", "b") override or extend them. The cluster is
// closed in t.Cleanup.
func StartKafka(t testing.TB, opts ...kfake.Opt) *Kafka {
	t.Helper()
	all := append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)
	c, err := kfake.NewCluster(all...)
	if err != nil {
		t.Fatalf("testenv: start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return &Kafka{t: t, Cluster: c}
}

// Addrs returns the bootstrap addresses ("127.0.0.1:port").
func (k *Kafka) Addrs() []string { return k.Cluster.ListenAddrs() }

// CreateTopic creates topic with the given number of partitions; it fails
// the test on error.
func (k *Kafka) CreateTopic(topic string, partitions int32) {
	k.t.Helper()
	k.CreateTopicWithConfig(topic, partitions, nil)
}

// SeedTopics creates each of topics with the given number of partitions.
func (k *Kafka) SeedTopics(partitions int32, topics ...string) {
	k.t.Helper()
	for _, topic := range topics {
		k.CreateTopicWithConfig(topic, partitions, nil)
	}
}

// CreateTopicWithConfig creates topic with topic-level configs such as
// "max.message.bytes"; it fails the test on error.
func (k *Kafka) CreateTopicWithConfig(topic string, partitions int32, configs map[string]string) {
	k.t.Helper()
	if err := k.Cluster.CreateTopic(topic, partitions, configs); err != nil {
		k.t.Fatalf("testenv: create topic %q: %v", topic, err)
	}
}

// ReadAll reads every record of topic with a sarama consumer and returns
// them ordered by partition and offset. It fails the test on error.
func (k *Kafka) ReadAll(topic string) []KafkaRecord {
	k.t.Helper()
	recs, err := k.readAll(topic)
	if err != nil {
		k.t.Fatalf("testenv: read %q: %v", topic, err)
	}
	return recs
}

func (k *Kafka) readAll(topic string) (_ []KafkaRecord, err error) {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.ClientID = "testenv-reader"
	cfg.Metadata.AllowAutoTopicCreation = false
	client, err := sarama.NewClient(k.Addrs(), cfg)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, client.Close()) }()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, consumer.Close()) }()

	parts, err := client.Partitions(topic)
	if err != nil {
		return nil, err
	}
	var out []KafkaRecord
	for _, p := range slices.Sorted(slices.Values(parts)) {
		oldest, err := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			return nil, err
		}
		newest, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return nil, err
		}
		if newest <= oldest {
			continue
		}
		recs, err := readPartition(consumer, topic, p, oldest, newest)
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
	}
	return out, nil
}

func readPartition(c sarama.Consumer, topic string, p int32, from, to int64) (_ []KafkaRecord, err error) {
	pc, err := c.ConsumePartition(topic, p, from)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, pc.Close()) }()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	var out []KafkaRecord
	for {
		select {
		case m := <-pc.Messages():
			r := KafkaRecord{
				Topic: m.Topic, Partition: m.Partition, Offset: m.Offset,
				Key: m.Key, Value: m.Value, Timestamp: m.Timestamp,
			}
			for _, h := range m.Headers {
				r.Headers = append(r.Headers, KafkaHeader{Key: string(h.Key), Value: h.Value})
			}
			out = append(out, r)
			if m.Offset >= to-1 {
				return out, nil
			}
		case e := <-pc.Errors():
			return nil, e
		case <-timeout.C:
			return nil, fmt.Errorf("partition %d: read %d of offsets [%d,%d) in 10s", p, len(out), from, to)
		}
	}
}
