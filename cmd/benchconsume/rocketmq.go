package main

// The RocketMQ backend of the benchmark: the project's RocketMQ test broker
// (internal/testbroker/rocketmq) as a child process — ./cmd/rmqbroker, as
// cmd/benchproduce runs it (benchutil.StartRocketMQ) — with one broker
// name and the bench topic's queues, created over the project's remoting
// client, which also writes the messages (SEND_BATCH_MESSAGE for the
// pre-fill, SEND_MESSAGE otherwise); the direct baseline is
// rocketmq-client-go's push consumer in this process.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	rmqconsumer "github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/rlog"

	bu "github.com/ddmq-go/carrera/internal/benchutil"
	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/rocketmq/remoting"
)

const (
	brokerName     = bu.RMQBrokerName
	rmqPullBatch   = 32 // pullBatchSize of cproxy's RocketMQ cluster config
	rmqPrefillMsgs = 64 // messages per SEND_BATCH_MESSAGE of the pre-fill
	// rmqStoredOverhead bounds the stored layout's bytes beyond the body
	// of a bench message (header, topic, properties).
	rmqStoredOverhead = 160
)

// rmqRetention is the broker's -retention-bytes: the whole pre-fill (read
// by every throughput phase) plus room, so that only the later phases'
// messages push the oldest — already consumed — pre-filled ones out.
func rmqRetention(o *options) int64 {
	return max(int64(o.prefill)*int64(o.size+rmqStoredOverhead)+128<<20, 512<<20)
}

// rocketmqBackend is the test broker with the remoting client and
// rocketmq-client-go's push consumer.
type rocketmqBackend struct {
	ns, broker string
	queues     int

	mu     sync.Mutex
	client *remoting.Client
}

func (r *rocketmqBackend) name() string       { return "rocketmq" }
func (r *rocketmqBackend) cluster() string    { return "R_bench" }
func (r *rocketmqBackend) directPath() string { return "rocketmq-client-go push" }

func (r *rocketmqBackend) start(ctx context.Context, o *options, binDir, dir string, port int) (*bu.Proc, error) {
	ports, err := bu.FreePorts(1)
	if err != nil {
		return nil, err
	}
	r.ns, r.broker, r.queues = "127.0.0.1:"+strconv.Itoa(port), "127.0.0.1:"+strconv.Itoa(ports[0]), o.partitions
	root, err := bu.ModuleRoot(ctx)
	if err != nil {
		return nil, err
	}
	logf("building ./cmd/rmqbroker into %s", binDir)
	if err := bu.BuildBinaries(ctx, root, binDir, "./cmd/rmqbroker"); err != nil {
		return nil, err
	}
	retention := rmqRetention(o)
	p, err := bu.StartRocketMQ(ctx, filepath.Join(binDir, "rmqbroker"), dir, port, ports[0], retention, "")
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if r.client, err = remoting.Dial(dctx, r.broker); err != nil {
		return p, p.Failure(err)
	}
	n := strconv.Itoa(o.partitions)
	resp, err := r.client.Invoke(dctx, remoting.NewRequest(remoting.CreateTopic, map[string]string{
		"topic": o.topic, "defaultTopic": remoting.DefaultTopic, "readQueueNums": n, "writeQueueNums": n,
		"perm": strconv.Itoa(remoting.PermRead | remoting.PermWrite), "topicFilterType": "SINGLE_TAG", "topicSysFlag": "0", "order": "false",
	}, nil))
	if err == nil {
		err = remoting.CheckCode(resp)
	}
	if err != nil {
		return p, p.Failure(fmt.Errorf("create topic %q: %w", o.topic, err))
	}
	logf("rmqbroker (test broker): nameserver %s, %s on %s (pid %d), topic %q with %d queues, retention %d MiB, GOGC %d, GOMEMLIMIT %d MiB",
		r.ns, brokerName, r.broker, p.PID(), o.topic, o.partitions, retention>>20, bu.RMQGoGC, bu.RMQGoMemLimit(retention)>>20)
	return p, nil
}

// release is a no-op: the test broker runs with a retention bound (see
// rmqRetention), so the latency phases' messages push the consumed
// pre-fill out.
func (r *rocketmqBackend) release(context.Context, string, int) error { return nil }

func (r *rocketmqBackend) clusterConfig() (string, map[string]any) {
	return "rocketmqConfigs", map[string]any{"clusterName": r.cluster(), "namesrvAddrs": []string{r.ns},
		"groupPrefix": "carrera_rocketmq_consumer_", "pollNameServerInterval": 30000, "heartbeatBrokerInterval": 30000,
		"persistConsumerOffsetInterval": 1000, "consumeConcurrentlyMaxSpan": 2000, "consumeMessageBatchMaxSize": 1,
		"pullBatchSize": rmqPullBatch, "pullThresholdForQueue": 1000, "consumeFromWhere": "CONSUME_FROM_LAST_OFFSET"}
}

// sendExt is the SEND_MESSAGE ext of one message to queue q.
func sendExt(topic string, q int, props string) map[string]string {
	return map[string]string{
		"producerGroup": "benchconsume", "topic": topic, "defaultTopic": remoting.DefaultTopic, "defaultTopicQueueNums": "4",
		"queueId": strconv.Itoa(q), "sysFlag": "0", "bornTimestamp": strconv.FormatInt(time.Now().UnixMilli(), 10),
		"flag": "0", "properties": props, "reconsumeTimes": "0", "unitMode": "false", "maxReconsumeTimes": "16", "batch": "false",
	}
}

// batchExt is the SEND_BATCH_MESSAGE ext (one-letter keys) for queue q.
func batchExt(topic string, q int) map[string]string {
	return map[string]string{"a": "benchconsume", "b": topic, "c": remoting.DefaultTopic, "d": "4",
		"e": strconv.Itoa(q), "f": "0", "g": strconv.FormatInt(time.Now().UnixMilli(), 10), "h": "0",
		"i": "", "j": "0", "k": "false", "l": "16", "m": "true"}
}

func (r *rocketmqBackend) invoke(ctx context.Context, req *remoting.Command) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := r.client.Invoke(cctx, req)
	if err != nil {
		return err
	}
	return remoting.CheckCode(resp, remoting.Success, remoting.FlushDiskTimeout, remoting.FlushSlaveTimeout, remoting.SlaveNotAvailable)
}

// prefill sends batches of rmqPrefillMsgs messages round-robin over the
// queues, 16 batches in flight.
func (r *rocketmqBackend) prefill(ctx context.Context, topic string, n, size int) error {
	body := make([]byte, size)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	body[0] = tagFill
	props := remoting.EncodeProperties(map[string]string{"WAIT": "true"})
	one := remoting.BatchMessage{Body: body, Properties: props}
	batches := make(chan int, 16)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range 16 {
		wg.Go(func() {
			for k := range batches {
				msgs := make([]remoting.BatchMessage, k)
				for i := range msgs {
					msgs[i] = one
				}
				enc, err := remoting.EncodeBatch(msgs)
				if err == nil {
					err = r.invoke(ctx, remoting.NewRequest(remoting.SendBatchMessage, batchExt(topic, rand.IntN(r.queues)), enc))
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for left := n; left > 0 && ctx.Err() == nil; {
		k := min(left, rmqPrefillMsgs)
		batches <- k
		left -= k
	}
	close(batches)
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return firstErr
}

func (r *rocketmqBackend) probe(ctx context.Context, topic string, i int) error {
	return r.invoke(ctx, remoting.NewRequest(remoting.SendMessage, sendExt(topic, i, ""),
		[]byte(string(rune(tagProbe))+strconv.Itoa(i))))
}

// direct runs rocketmq-client-go's clustering push consumer from the first
// offset (it commits by returning success from the callback; the library
// persists offsets every 5 s).
func (r *rocketmqBackend) direct(ctx context.Context, topic, group string, target int64, dur time.Duration) (*throughput, error) {
	rlog.SetLogLevel("error")
	c, err := rmqconsumer.NewPushConsumer(
		rmqconsumer.WithGroupName(group),
		rmqconsumer.WithNsResolver(primitive.NewPassthroughResolver([]string{r.ns})),
		rmqconsumer.WithConsumeFromWhere(rmqconsumer.ConsumeFromFirstOffset),
		rmqconsumer.WithPullBatchSize(rmqPullBatch),
		rmqconsumer.WithConsumeMessageBatchMaxSize(rmqPullBatch),
		rmqconsumer.WithInstance("benchconsume-direct"),
	)
	if err != nil {
		return nil, err
	}
	var (
		mu          sync.Mutex
		count       int64
		first, last time.Time
		done        = make(chan struct{})
		firstSeen   = make(chan struct{})
		once, fin   sync.Once
	)
	err = c.Subscribe(topic, rmqconsumer.MessageSelector{}, func(_ context.Context, msgs ...*primitive.MessageExt) (rmqconsumer.ConsumeResult, error) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			if len(m.Body) == 0 || m.Body[0] != tagFill {
				continue
			}
			if count == 0 {
				first = now
				once.Do(func() { close(firstSeen) })
			}
			if now.Sub(first) <= dur {
				count++
				last = now
				if count >= target {
					fin.Do(func() { close(done) })
				}
			}
		}
		return rmqconsumer.ConsumeSuccess, nil
	})
	if err != nil {
		return nil, err
	}
	if err := c.Start(); err != nil {
		return nil, err
	}
	defer func() { _ = c.Shutdown() }()
	join := time.NewTimer(60 * time.Second)
	defer join.Stop()
	select {
	case <-firstSeen:
	case <-join.C:
		return nil, errors.New("direct push consumer: no message within 60s")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	t := time.NewTimer(dur)
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	mu.Lock()
	defer mu.Unlock()
	res := &throughput{msgs: count, start: first, end: time.Now(), reachedCount: count >= target}
	if count >= target {
		res.end = last
	}
	return res, ctx.Err()
}

// sender sends to random queues with one worker per queue over one
// connection: a worker sends what accumulated for its queue while its
// previous request was in flight as one SEND_BATCH_MESSAGE (a lone message
// as SEND_MESSAGE) — coalescing without a linger, as sarama's producer does
// per partition.
func (r *rocketmqBackend) sender(topic string) (msgSender, error) {
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := remoting.Dial(dctx, r.broker)
	if err != nil {
		return nil, err
	}
	s := &rmqSender{c: c, queues: make([]chan []byte, r.queues)}
	for q := range s.queues {
		ch := make(chan []byte, 1024)
		s.queues[q] = ch
		s.wg.Go(func() { s.worker(topic, q, ch) })
	}
	return s, nil
}

type rmqSender struct {
	c      *remoting.Client
	queues []chan []byte
	wg     sync.WaitGroup
	errs   atomic.Int64
}

func (s *rmqSender) send(body []byte) { s.queues[rand.IntN(len(s.queues))] <- body }

func (s *rmqSender) worker(topic string, q int, in chan []byte) {
	const maxBatch = 64
	batch := make([]remoting.BatchMessage, 0, maxBatch)
	for body := range in {
		batch = append(batch[:0], remoting.BatchMessage{Body: body})
	more:
		for len(batch) < maxBatch {
			select {
			case b, ok := <-in:
				if !ok {
					break more
				}
				batch = append(batch, remoting.BatchMessage{Body: b})
			default:
				break more
			}
		}
		var req *remoting.Command
		if len(batch) == 1 {
			req = remoting.NewRequest(remoting.SendMessage, sendExt(topic, q, ""), batch[0].Body)
		} else {
			enc, err := remoting.EncodeBatch(batch)
			if err != nil {
				s.errs.Add(int64(len(batch)))
				continue
			}
			req = remoting.NewRequest(remoting.SendBatchMessage, batchExt(topic, q), enc)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := s.c.Invoke(ctx, req)
		cancel()
		if err == nil {
			err = remoting.CheckCode(resp)
		}
		if err != nil {
			s.errs.Add(int64(len(batch)))
		}
	}
}

func (s *rmqSender) close() int64 {
	for _, ch := range s.queues {
		close(ch)
	}
	s.wg.Wait()
	_ = s.c.Close()
	return s.errs.Load()
}

func (r *rocketmqBackend) rssPerGroup(o *options) float64 {
	// Engine buffer, plus up to one pulled batch held by each queue's pull
	// loop (the bench topic's queues and the group's retry queue).
	return float64(min(maxBufferedBytes, 3*groupConcurrency*o.size) + (o.partitions+1)*((rmqPullBatch+admitBatchMsgs)*o.size+claimBufBytes(o)))
}

func (r *rocketmqBackend) notes(o *options) []string {
	return []string{
		fmt.Sprintf("Broker: rmqbroker, the project's RocketMQ test broker (in memory, one broker name, not Apache RocketMQ), "+
			"keeping the newest %d MiB of messages (the whole pre-fill), GOGC %d.", rmqRetention(o)>>20, bu.RMQGoGC),
		"Direct: rocketmq-client-go v2.1.2 push consumer in this process from the first offset (pull batch 32, callback batch 32, " +
			"success per batch; the library persists offsets on its own timer).",
		"cproxy: its own RocketMQ group member (remoting client; long-polling pulls of 32 messages per queue, offsets stored every second).",
		"Pre-fill: SEND_BATCH_MESSAGE of 64 messages to random queues, 16 in flight; probes: SEND_MESSAGE; latency messages: random queue, " +
			"one sender per queue sending what accumulated while its previous request was in flight (no linger; SEND_MESSAGE or SEND_BATCH_MESSAGE).",
		fmt.Sprintf("RSS bound per group: min(MaxBufferedBytes 64 MiB, 3 × concurrency × size) + (%d queues + 1 retry queue) × "+
			"(%d pulled + %d read by the claim reader messages + converted ones: min(%d messages, %d MiB + one message)).",
			o.partitions, rmqPullBatch, admitBatchMsgs, mq.ClaimBuffer, mq.ClaimBufferBytes>>20),
	}
}

func (r *rocketmqBackend) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.client != nil {
		_ = r.client.Close()
		r.client = nil
	}
}
