package main

// The broker technology under test: Kafka (kfakeserver, sarama) or RocketMQ
// (the project's test broker, rocketmq-client-go / the remoting client).
// Everything else of the benchmark — cproxy, its Thrift clients, the
// phases and the report — is shared.

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	bu "github.com/ddmq-go/carrera/internal/benchutil"
	"github.com/ddmq-go/carrera/internal/cproxy/engine"
	"github.com/ddmq-go/carrera/internal/mq"
)

// mqBackend is one broker technology.
type mqBackend interface {
	// name is "kafka" or "rocketmq".
	name() string
	// start starts the broker process on port (files under dir) and
	// creates the bench topic with o.partitions partitions/queues.
	start(ctx context.Context, o *options, binDir, dir string, port int) (*bu.Proc, error)
	// cluster is the broker-cluster name in cproxy's configuration.
	cluster() string
	// clusterConfig is the cproxy node's key ("kafkaConfigs" /
	// "rocketmqConfigs") and entry for the cluster.
	clusterConfig() (key string, entry map[string]any)
	// prefill stores n tagFill messages of size bytes.
	prefill(ctx context.Context, topic string, n, size int) error
	// direct consumes with the technology's own client (no proxy) from the
	// oldest offset until target tagFill messages were consumed or dur
	// passed since the first one.
	direct(ctx context.Context, topic, group string, target int64, dur time.Duration) (*throughput, error)
	// probe stores a probe (tagProbe + decimal index) in partition/queue i.
	probe(ctx context.Context, topic string, i int) error
	// release frees the broker memory held by topic's consumed messages
	// before the latency phases, so an in-memory broker's heap does not
	// skew them (a disk-based broker's would not grow with the data).
	release(ctx context.Context, topic string, partitions int) error
	// sender returns an asynchronous producer for the latency phases.
	sender(topic string) (msgSender, error)
	// directPath names the direct client in the report.
	directPath() string
	// rssPerGroup is the memory one cproxy group may hold, in bytes.
	rssPerGroup(o *options) float64
	// notes are backend-specific report notes.
	notes(o *options) []string
	close()
}

// msgSender sends without waiting; close waits for the sends in flight and
// returns the number that failed.
type msgSender interface {
	send(body []byte)
	close() (errs int64)
}

// kafkaBackend is kfakeserver with sarama clients.
type kafkaBackend struct {
	brokers []string
	probeP  sarama.SyncProducer
}

func (k *kafkaBackend) name() string       { return "kafka" }
func (k *kafkaBackend) cluster() string    { return "K_bench" }
func (k *kafkaBackend) directPath() string { return "sarama" }

func (k *kafkaBackend) start(ctx context.Context, o *options, binDir, dir string, port int) (*bu.Proc, error) {
	k.brokers = []string{"127.0.0.1:" + strconv.Itoa(port)}
	p, err := bu.StartKafka(ctx, filepath.Join(binDir, "kfakeserver"), dir, port, o.partitions, "", "")
	if err != nil {
		return nil, err
	}
	admin, err := bu.NewBrokerAdmin(k.brokers, o.topic)
	if err != nil {
		return p, p.Failure(err)
	}
	defer admin.Close()
	if err := admin.CreateTopic(o.partitions, o.retention); err != nil {
		return p, p.Failure(err)
	}
	logf("kfakeserver on %s (pid %d), topic %q with %d partitions", k.brokers[0], p.PID(), o.topic, o.partitions)
	if k.probeP, err = probeProducer(k.brokers); err != nil {
		return p, err
	}
	return p, nil
}

func (k *kafkaBackend) clusterConfig() (string, map[string]any) {
	return "kafkaConfigs", map[string]any{"clusterName": k.cluster(), "zookeeperAddr": "127.0.0.1:1/kafka",
		"autoCommitInterval": 1000, "rebalanceMaxRetries": 8, "partitionAssignmentStrategy": "range",
		"extra": map[string]any{"bootstrap.servers": strings.Join(k.brokers, ",")}}
}

// release deletes every record of topic (DeleteRecords up to the log end):
// kfake keeps records in memory, and a heap of gigabytes stalls it for
// hundreds of milliseconds at a time.
func (k *kafkaBackend) release(_ context.Context, topic string, partitions int) error {
	admin, err := bu.NewBrokerAdmin(k.brokers, topic)
	if err != nil {
		return err
	}
	defer admin.Close()
	if _, _, err = admin.Empty(partitions); err != nil {
		return err
	}
	// The pipeline phases keep only a short tail. kfake keeps the log in
	// in-memory segment files until retention drops whole segments; with
	// the pre-fill's retention its heap grew by the 1–1.7 GB the pipeline
	// phases produce. Every fresh page of that growth is a page fault in
	// kfake's one request goroutine, and on this VM page faults
	// periodically ran at 100 % system time for 0.3–2 s: every produce and
	// fetch waited, and the latency phase's p99 read 0.3–1.2 s in about
	// half the runs. Measured in DESIGN.md (decision 37).
	return admin.SetRetention(pipelineRetention)
}

// pipelineRetention is retention.bytes per partition in the saturation and
// latency phases: 16 MiB is over 3 s of the latency rate per partition,
// while the closed loop keeps at most 4 MiB unread in all. A message
// dropped by it before it was pulled would show as "received < sent" in
// the latency result.
const pipelineRetention = 16 << 20

func (k *kafkaBackend) prefill(ctx context.Context, topic string, n, size int) error {
	return prefill(ctx, k.brokers, topic, n, size)
}

func (k *kafkaBackend) direct(ctx context.Context, topic, group string, target int64, dur time.Duration) (*throughput, error) {
	return directConsume(ctx, k.brokers, topic, group, target, dur)
}

func (k *kafkaBackend) probe(_ context.Context, topic string, i int) error {
	_, _, err := k.probeP.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: int32(i),
		Value: sarama.StringEncoder(string(rune(tagProbe)) + strconv.Itoa(i))})
	return err
}

func (k *kafkaBackend) sender(topic string) (msgSender, error) {
	cfg := producerConfig("benchconsume-latency")
	cfg.Producer.Partitioner = sarama.NewRandomPartitioner
	prod, err := sarama.NewAsyncProducer(k.brokers, cfg)
	if err != nil {
		return nil, err
	}
	s := &kafkaSender{topic: topic, prod: prod}
	s.drain.Go(func() {
		for range prod.Successes() {
		}
	})
	s.drain.Go(func() {
		for range prod.Errors() {
			s.errs.Add(1)
		}
	})
	return s, nil
}

func (k *kafkaBackend) rssPerGroup(o *options) float64 {
	response := o.partitions * fetchBytes // one fetch response of every partition
	return float64(min(maxBufferedBytes, 3*groupConcurrency*o.size) + o.partitions*(2*fetchBytes+claimBufBytes(o)+admitBatchMsgs*o.size) +
		// Responses kept alive by shared bodies: in the claim channels, those
		// read within mq.ShareWindow of each member's traffic plus the one in
		// progress; in the engine, those holding the last engine.ShareWindow
		// of admitted bodies plus one.
		o.fetchThreads*mq.ShareWindow + engine.ShareWindow + 2*response)
}

func (k *kafkaBackend) notes(o *options) []string {
	return []string{
		"Broker: kfakeserver (franz-go kfake, in memory, not Kafka). Direct: sarama ConsumerGroup from the oldest offset, MarkMessage per message, auto-commit every second.",
		"cproxy's Kafka consumer groups start at the newest offset, so they were joined (a probe pulled on every partition) before the pre-fill; " +
			"the direct group starts from the oldest offset and also reads the probes (not counted).",
		"Latency producer: sarama AsyncProducer (acks all, no linger).",
		fmt.Sprintf("cproxy's groups have fetchThreads %d: cproxy runs that many members of each group, each with its own sarama client and fetch cycle "+
			"(-fetch-threads; 1 is DDMQ's default). The direct consumer is one member.", o.fetchThreads),
		"Pipeline phases (saturation, latency): the topic keeps a 16 MiB tail per partition; kfake's in-memory log otherwise grows its heap " +
			"by every byte produced, and the page faults of that growth stalled its single request goroutine for 0.3–2 s (DESIGN.md 37).",
		"RSS bound per group: min(MaxBufferedBytes 64 MiB, 3 × concurrency × size) + partitions × (2 × 1 MiB fetch + converted messages " +
			"(min(1024 messages, 1 MiB + one message): mq.ClaimBuffer, mq.ClaimBufferBytes) + 64 messages read by the claim reader) + " +
			"fetchThreads × 16 MiB (mq.ShareWindow) + 8 MiB (engine.ShareWindow) + 2 fetch responses of all partitions. " +
			"Two fetch responses: sarama reads the next response while the partitions' buffered messages (256 each, windows into the previous one) keep that alive. " +
			"Bodies are not copied out of sarama's responses (DESIGN.md 27): the windows in the claim channels reach back at most mq.ShareWindow of each member's " +
			"traffic (else the member copies: \"bodies copied\" in the log), those the engine holds at most engine.ShareWindow of admissions (else it copies).",
	}
}

func (k *kafkaBackend) close() {
	if k.probeP != nil {
		_ = k.probeP.Close()
	}
}

type kafkaSender struct {
	topic string
	prod  sarama.AsyncProducer
	drain sync.WaitGroup
	errs  atomic.Int64
}

func (s *kafkaSender) send(body []byte) {
	s.prod.Input() <- &sarama.ProducerMessage{Topic: s.topic, Value: sarama.ByteEncoder(body)}
}

func (s *kafkaSender) close() int64 {
	_ = s.prod.Close()
	s.drain.Wait()
	return s.errs.Load()
}
