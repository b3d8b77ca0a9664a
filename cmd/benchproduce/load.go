package main

// Load generators: closed-loop workers (direct sarama SyncProducer, pproxy
// sendSync, pproxy sendBatchSync) and an open pipeline with a bounded
// in-flight window (direct sarama AsyncProducer).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/apache/thrift/lib/go/thrift"
	metrics "github.com/rcrowley/go-metrics"

	"github.com/ddmq-go/carrera/gen-go/carrera/producer"
	bu "github.com/ddmq-go/carrera/internal/benchutil"
)

const (
	sendTimeoutMs  = 3000 // sendSync's proxy-side timeout
	randomPartiton = -2   // partitionId: pproxy picks a random partition
	errorPause     = 10 * time.Millisecond
)

// window is the measured interval of a phase: calls that complete inside
// it are counted; the warm-up before it is not.
type window struct {
	start, end time.Time
}

func newWindow(warmup, dur time.Duration) window {
	s := time.Now().Add(warmup)
	return window{start: s, end: s.Add(dur)}
}

func (w window) contains(t time.Time) bool { return !t.Before(w.start) && t.Before(w.end) }

// schedule runs atStart at w.start and atEnd at w.end (skipped once ctx is
// done). The returned function waits for both.
func schedule(ctx context.Context, w window, atStart, atEnd func()) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, step := range []struct {
			at time.Time
			fn func()
		}{{w.start, atStart}, {w.end, atEnd}} {
			t := time.NewTimer(time.Until(step.at))
			select {
			case <-t.C:
				step.fn()
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
	}()
	return func() { <-done }
}

// callFunc makes one call and returns the number of messages it carried.
type callFunc func() (int, error)

// runClosed runs one goroutine per call function, each calling back to
// back until the window ends (closed loop: concurrency = len(calls)).
func runClosed(ctx context.Context, w window, calls []callFunc) *recorder {
	recs := make([]*recorder, len(calls))
	var wg sync.WaitGroup
	for i, call := range calls {
		r := &recorder{lat: make([]int64, 0, 1<<12)}
		recs[i] = r
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(w.end) {
					return
				}
				n, err := call()
				t1 := time.Now()
				if err != nil {
					r.fail(err, w.contains(t1))
					time.Sleep(errorPause) // a dead endpoint must not spin
					continue
				}
				if w.contains(t1) {
					r.ok(t1.Sub(t0), n)
				}
			}
		})
	}
	wg.Wait()
	return merge(recs)
}

// directConfig is the sarama configuration of the direct path, matching
// what pproxy's Kafka adapter uses where it matters: protocol 2.8, acks
// all, no client retries, no flush delay, 3 s broker ack timeout.
func directConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.ClientID = "benchproduce-direct"
	cfg.Metadata.Full = false
	p := &cfg.Producer
	p.RequiredAcks = sarama.WaitForAll
	p.Timeout = 3 * time.Second
	p.Retry.Max = 0
	p.Return.Successes = true
	p.Return.Errors = true
	p.Partitioner = sarama.NewRandomPartitioner
	return cfg
}

// produceCounter returns the produce requests a producer has sent so far
// and the records in them (ok false when unknown).
type produceCounter func() (requests, records float64, ok bool)

// saramaCounter reads sarama's own metrics of the producer built from cfg.
func saramaCounter(cfg *sarama.Config) produceCounter {
	return func() (float64, float64, bool) {
		h, _ := cfg.MetricRegistry.Get("records-per-request").(metrics.Histogram)
		m, _ := cfg.MetricRegistry.Get("record-send-rate").(metrics.Meter)
		if h == nil || m == nil {
			return 0, 0, false
		}
		return float64(h.Snapshot().Count()), float64(m.Snapshot().Count()), true
	}
}

// pproxyCounter scrapes pproxy's carrera_kafka_producer_records_per_request
// summary (count = requests, sum = records).
func pproxyCounter(admin string) produceCounter {
	client := &http.Client{Timeout: 2 * time.Second}
	return func() (float64, float64, bool) {
		m, err := bu.ScrapeMetrics(client, admin)
		if err != nil {
			return 0, 0, false
		}
		reqs, haveReqs := m.Sum("carrera_kafka_producer_records_per_request_count")
		recs, haveRecs := m.Sum("carrera_kafka_producer_records_per_request_sum")
		return reqs, recs, haveReqs && haveRecs
	}
}

// directSync prepares conc goroutines sharing one SyncProducer built from cfg.
func directSync(cfg *sarama.Config, brokers []string, topic string, body []byte, conc int) ([]callFunc, func(), error) {
	sp, err := sarama.NewSyncProducer(brokers, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("sarama sync producer: %w", err)
	}
	call := func() (int, error) {
		_, _, err := sp.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(body)})
		return 1, err
	}
	calls := make([]callFunc, conc)
	for i := range calls {
		calls[i] = call
	}
	return calls, func() { _ = sp.Close() }, nil
}

// runDirectAsync feeds one AsyncProducer as fast as it acknowledges, with
// at most limit messages in flight. One latency sample per message:
// hand-over to sarama → success returned.
func runDirectAsync(ctx context.Context, w window, cfg *sarama.Config, brokers []string, topic string, body []byte, limit int) (*recorder, error) {
	ap, err := sarama.NewAsyncProducer(brokers, cfg)
	if err != nil {
		return nil, fmt.Errorf("sarama async producer: %w", err)
	}
	r := &recorder{lat: make([]int64, 0, 1<<16)}
	slots := make(chan struct{}, limit)
	collected := make(chan struct{})
	go func() { // the only goroutine touching r
		defer close(collected)
		succ, errs := ap.Successes(), ap.Errors()
		for succ != nil || errs != nil {
			select {
			case m, ok := <-succ:
				if !ok {
					succ = nil
					continue
				}
				if now := time.Now(); w.contains(now) {
					r.ok(now.Sub(m.Metadata.(time.Time)), 1)
				}
				<-slots
			case pe, ok := <-errs:
				if !ok {
					errs = nil
					continue
				}
				r.fail(pe.Err, w.contains(time.Now()))
				<-slots
			}
		}
	}()
feed:
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			break feed
		}
		now := time.Now()
		if !now.Before(w.end) {
			<-slots
			break
		}
		ap.Input() <- &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(body), Metadata: now}
	}
	ap.AsyncClose() // flushes what is in flight; closes both channels
	<-collected
	return r, nil
}

// proxyConn is one framed compact-protocol Thrift connection to pproxy,
// redialled after a transport error.
type proxyConn struct {
	addr   string
	trans  thrift.TTransport
	client *producer.ProducerServiceClient
}

func dialProxy(addr string) (*proxyConn, error) {
	c := &proxyConn{addr: addr}
	return c, c.open()
}

func (c *proxyConn) open() error {
	cfg := &thrift.TConfiguration{ConnectTimeout: 2 * time.Second, SocketTimeout: 30 * time.Second}
	// The buffered layer makes the framed transport's header and payload
	// one write, as DDMQ's Java SDK sends them (TFramedTransport over a
	// TSocket with a buffered stream). Without it Go's TFramedTransport
	// issues two writes per call: two segments and two wake-ups at pproxy.
	buffered := thrift.NewTBufferedTransport(thrift.NewTSocketConf(c.addr, cfg), 64<<10)
	trans := thrift.NewTFramedTransportConf(buffered, cfg)
	if err := trans.Open(); err != nil {
		return fmt.Errorf("connect to pproxy %s: %w", c.addr, err)
	}
	proto := thrift.NewTCompactProtocolConf(trans, cfg)
	c.trans = trans
	c.client = producer.NewProducerServiceClient(thrift.NewTStandardClient(proto, proto))
	return nil
}

func (c *proxyConn) close() {
	if c.trans != nil {
		_ = c.trans.Close()
		c.trans, c.client = nil, nil
	}
}

// do runs fn on a live connection; a transport error closes it so the
// next call redials; a non-OK result code is an error too.
func (c *proxyConn) do(fn func(*producer.ProducerServiceClient) (*producer.Result_, error)) error {
	if c.client == nil {
		if err := c.open(); err != nil {
			return err
		}
	}
	res, err := fn(c.client)
	if err != nil {
		c.close()
		return err
	}
	if res.Code != 0 {
		return fmt.Errorf("pproxy answered code %d %q", res.Code, res.Msg)
	}
	return nil
}

// dialAll opens n connections (closing them all if one fails).
func dialAll(addr string, n int) ([]*proxyConn, func(), error) {
	conns := make([]*proxyConn, 0, n)
	closeAll := func() {
		for _, c := range conns {
			c.close()
		}
	}
	for range n {
		c, err := dialProxy(addr)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		conns = append(conns, c)
	}
	return conns, closeAll, nil
}

// proxySync prepares conc connections, each used by its own goroutine for
// sendSync(timeout 3000 ms, partitionId -2).
func proxySync(addr, topic string, body []byte, conc int) ([]callFunc, func(), error) {
	conns, closeAll, err := dialAll(addr, conc)
	if err != nil {
		return nil, nil, err
	}
	calls := make([]callFunc, conc)
	for i, c := range conns {
		msg := &producer.Message{Topic: topic, Body: body, PartitionId: randomPartiton}
		send := func(cl *producer.ProducerServiceClient) (*producer.Result_, error) {
			return cl.SendSync(context.Background(), msg, sendTimeoutMs)
		}
		calls[i] = func() (int, error) { return 1, c.do(send) }
	}
	return calls, closeAll, nil
}

// proxyBatch prepares conns connections, each sending sendBatchSync with
// batch messages (partitionId -2) from its own goroutine.
func proxyBatch(addr, topic string, body []byte, conns, batch int) ([]callFunc, func(), error) {
	cs, closeAll, err := dialAll(addr, conns)
	if err != nil {
		return nil, nil, err
	}
	calls := make([]callFunc, conns)
	for i, c := range cs {
		msgs := make([]*producer.Message, batch)
		for j := range msgs {
			msgs[j] = &producer.Message{Topic: topic, Body: body, PartitionId: randomPartiton}
		}
		send := func(cl *producer.ProducerServiceClient) (*producer.Result_, error) {
			return cl.SendBatchSync(context.Background(), msgs)
		}
		calls[i] = func() (int, error) { return batch, c.do(send) }
	}
	return calls, closeAll, nil
}

// errNoSuccess marks a phase in which nothing succeeded: the harness, not
// the target, failed.
var errNoSuccess = errors.New("no successful call in the measured window")
