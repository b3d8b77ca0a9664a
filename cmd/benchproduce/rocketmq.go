package main

// The RocketMQ backend (-backend rocketmq): the test broker (./cmd/rmqbroker,
// one NameServer and one broker, a development broker — not RocketMQ), its
// topic administration over the project's own remoting client, pproxy's
// node for a RocketMQ cluster, and the direct rocketmq-client-go producer
// the proxy is compared with.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	rmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	rmqproducer "github.com/apache/rocketmq-client-go/v2/producer"

	bu "github.com/ddmq-go/carrera/internal/benchutil"
	// For its process-wide library settings: the recovery of the library's
	// panic on every timed-out asynchronous send, and its logging (off).
	_ "github.com/ddmq-go/carrera/internal/mq/rocketmq"
	"github.com/ddmq-go/carrera/internal/rocketmq/remoting"
)

// topicAdmin empties the bench topic between phases.
type topicAdmin interface {
	// Empty removes every message; it returns how many the topic held
	// and how many were ever written (when known).
	Empty(partitions int) (held, written int64, err error)
}

const rmqBrokerName = bu.RMQBrokerName

// rmqRetentionBytes bounds what the test broker keeps in memory: nothing
// reads the produced messages back, so only the newest are kept (the
// counts come from the queues' offsets).
const rmqRetentionBytes = 512 << 20

// startRMQBroker starts rmqbroker (NameServer on nsPort, broker-a on
// brokerPort, no auto-created topics, rmqRetentionBytes) and waits for its
// ready line.
func startRMQBroker(ctx context.Context, bin, dir string, nsPort, brokerPort int, cpus string) (*bu.Proc, error) {
	return bu.StartRocketMQ(ctx, bin, dir, nsPort, brokerPort, rmqRetentionBytes, cpus)
}

// rmqAdmin creates and empties the bench topic on the test broker.
type rmqAdmin struct {
	broker string
	topic  string
	queues int
	cli    *remoting.Client
}

func newRMQAdmin(ctx context.Context, broker, topic string, queues int) (*rmqAdmin, error) {
	c, err := remoting.Dial(ctx, broker)
	if err != nil {
		return nil, err
	}
	return &rmqAdmin{broker: broker, topic: topic, queues: queues, cli: c}, nil
}

func (a *rmqAdmin) Close() { _ = a.cli.Close() }

func (a *rmqAdmin) call(code int16, ext map[string]string) (*remoting.Command, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := a.cli.Invoke(ctx, remoting.NewRequest(code, ext, nil))
	if err != nil {
		return nil, err
	}
	return resp, remoting.CheckCode(resp)
}

// CreateTopic creates the topic with a.queues read and write queues.
func (a *rmqAdmin) CreateTopic() error {
	n := strconv.Itoa(a.queues)
	_, err := a.call(remoting.CreateTopic, map[string]string{
		"topic": a.topic, "defaultTopic": remoting.DefaultTopic, "readQueueNums": n, "writeQueueNums": n,
		"perm": strconv.Itoa(remoting.PermRead | remoting.PermWrite), "topicFilterType": "SINGLE_TAG",
		"topicSysFlag": "0", "order": "false",
	})
	if err != nil {
		return fmt.Errorf("create topic %q: %w", a.topic, err)
	}
	return nil
}

// Empty deletes the topic (the test broker keeps messages in memory up to
// its retention bound) and creates it again with the same queues, so
// every phase starts from an empty broker. Producers keep their routes.
// held counts the messages kept (max - min offsets), written all of them.
func (a *rmqAdmin) Empty(int) (held, written int64, err error) {
	offset := func(code int16, q int) (int64, error) {
		resp, err := a.call(code, map[string]string{"topic": a.topic, "queueId": strconv.Itoa(q)})
		if err != nil {
			return 0, fmt.Errorf("offsets of %s/%d: %w", a.topic, q, err)
		}
		return strconv.ParseInt(resp.Ext("offset"), 10, 64)
	}
	for q := range a.queues {
		maxOff, err := offset(remoting.GetMaxOffset, q)
		if err != nil {
			return 0, 0, err
		}
		minOff, err := offset(remoting.GetMinOffset, q)
		if err != nil {
			return 0, 0, err
		}
		written += maxOff
		held += maxOff - minOff
	}
	if written == 0 {
		return 0, 0, nil
	}
	if _, err := a.call(remoting.DeleteTopicInBroker, map[string]string{"topic": a.topic}); err != nil {
		return 0, 0, fmt.Errorf("delete topic %q: %w", a.topic, err)
	}
	return held, written, a.CreateTopic()
}

// rmqPProxyNode is the /pproxy/<instance> node of the RocketMQ backend:
// one RocketMQ cluster, rocketmqProducers 1, no limiter, no auto-batch.
func rmqPProxyNode(instance string, port int, nameServer, topic string) []byte {
	return bu.MustJSON(map[string]any{
		"instance": instance, "proxyCluster": "P_bench", "brokerClusters": []string{"R_bench"},
		"topics": []string{topic},
		"carreraConfiguration": map[string]any{
			"retryDelays": []int{200}, "useKafka": false, "useRocketmq": true, "rocketmqProducers": 1,
			"useRequestLimiter": false, "maxTps": 1000000, "tpsWarningRatio": 0.9,
			"warmUpFetchTopicRouteInfo": true,
			"thriftServer": map[string]any{"selectorThreads": 1, "workerThreads": 0, "acceptQueueSizePerThread": 100,
				"maxReadBufferBytes": 5000000, "backlog": 50, "clientTimeout": 0, "workerQueueSize": 100,
				"timeoutCheckerThreads": 1, "port": port},
			"rocketmqConfigurationMap": map[string]any{"R_bench": map[string]any{
				"namesrvAddrs": []string{nameServer}, "groupPrefix": "carrera_bench_", "sendMsgTimeout": 3000,
				"compressMsgBodyOverHowmuch": 4096, "retryTimesWhenSendFailed": 0, "retryAnotherBrokerWhenNotStoreOK": false,
				"maxMessageSize": 4194304, "clientCallbackExecutorThreads": 4, "pollNameServerInterval": 30000,
				"heartbeatBrokerInterval": 30000, "persistConsumerOffsetInterval": 5000}},
		},
	})
}

// rmqTopicNode is /topic/<topic>, bound to instance on R_bench.
func rmqTopicNode(topic, instance string) []byte {
	return bu.MustJSON(map[string]any{
		"topic": topic,
		"topicUnits": []map[string]any{{"brokerCluster": "R_bench",
			"proxies": map[string][]string{"P_bench": {instance}}, "totalMaxTps": 1000000, "maxTps": 1000000}},
		"delayTopic": false, "limiterFailureRetryInterval": 0,
	})
}

// rmqDirect is one rocketmq-client-go producer of the direct path,
// configured as pproxy's adapter configures its own: no client retries,
// 3 s send timeout, random queue. It counts its requests and messages.
type rmqDirect struct {
	p          rmq.Producer
	reqs, msgs atomic.Int64
}

var directSeq atomic.Int64

func newRMQDirect(nameServer string) (*rmqDirect, error) {
	p, err := rmq.NewProducer(
		rmqproducer.WithNsResolver(primitive.NewPassthroughResolver([]string{nameServer})),
		rmqproducer.WithGroupName("benchproduce_direct"),
		rmqproducer.WithInstanceName(fmt.Sprintf("benchproduce-direct-%d-%d", os.Getpid(), directSeq.Add(1))),
		rmqproducer.WithRetry(0),
		rmqproducer.WithSendMsgTimeout(3*time.Second),
		rmqproducer.WithQueueSelector(rmqproducer.NewRandomQueueSelector()),
	)
	if err != nil {
		return nil, err
	}
	if err := p.Start(); err != nil {
		return nil, err
	}
	return &rmqDirect{p: p}, nil
}

func (d *rmqDirect) close() { _ = d.p.Shutdown() }

// counter reports the direct producer's requests and messages.
func (d *rmqDirect) counter() produceCounter {
	return func() (float64, float64, bool) {
		return float64(d.reqs.Load()), float64(d.msgs.Load()), true
	}
}

// rmqDirectSync prepares conc goroutines sharing one producer, each calling
// SendSync back to back.
func rmqDirectSync(d *rmqDirect, topic string, body []byte, conc int) ([]callFunc, func(), error) {
	call := func() (int, error) {
		d.reqs.Add(1)
		d.msgs.Add(1)
		_, err := d.p.SendSync(context.Background(), primitive.NewMessage(topic, body))
		return 1, err
	}
	calls := make([]callFunc, conc)
	for i := range calls {
		calls[i] = call
	}
	return calls, func() {}, nil
}

// runRMQDirectAsync feeds one producer's SendAsync with at most limit
// messages in flight. One latency sample per message: hand-over → callback.
func runRMQDirectAsync(ctx context.Context, w window, d *rmqDirect, topic string, body []byte, limit int) (*recorder, error) {
	type result struct {
		took time.Duration
		at   time.Time
		err  error
	}
	results := make(chan result, limit)
	r := &recorder{lat: make([]int64, 0, 1<<16)}
	collected := make(chan struct{})
	slots := make(chan struct{}, limit)
	go func() { // the only goroutine touching r
		defer close(collected)
		for res := range results {
			if res.err != nil {
				r.fail(res.err, w.contains(res.at))
			} else if w.contains(res.at) {
				r.ok(res.took, 1)
			}
			<-slots
		}
	}()
	inflight := atomic.Int64{}
	for ctx.Err() == nil {
		slots <- struct{}{}
		start := time.Now()
		if !start.Before(w.end) {
			<-slots
			break
		}
		d.reqs.Add(1)
		d.msgs.Add(1)
		inflight.Add(1)
		err := d.p.SendAsync(context.Background(), func(_ context.Context, _ *primitive.SendResult, err error) {
			now := time.Now()
			results <- result{took: now.Sub(start), at: now, err: err}
			inflight.Add(-1)
		}, primitive.NewMessage(topic, body))
		if err != nil {
			inflight.Add(-1)
			results <- result{at: time.Now(), err: err}
			time.Sleep(errorPause)
		}
	}
	// Wait for the callbacks of what is in flight (bounded by the send
	// timeout), then stop the collector.
	deadline := time.Now().Add(5 * time.Second)
	for inflight.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if inflight.Load() > 0 {
		return nil, fmt.Errorf("%d direct async sends never completed", inflight.Load())
	}
	close(results)
	<-collected
	return r, nil
}

// rmqPProxyCounter scrapes pproxy's RocketMQ request metrics
// (carrera_rocketmq_producer_messages_per_request: count = requests, sum =
// messages, over every kind).
func rmqPProxyCounter(admin string) produceCounter {
	client := &http.Client{Timeout: 2 * time.Second}
	return func() (float64, float64, bool) {
		m, err := bu.ScrapeMetrics(client, admin)
		if err != nil {
			return 0, 0, false
		}
		reqs, haveReqs := m.Sum("carrera_rocketmq_producer_messages_per_request_count")
		msgs, haveMsgs := m.Sum("carrera_rocketmq_producer_messages_per_request_sum")
		return reqs, msgs, haveReqs && haveMsgs
	}
}
