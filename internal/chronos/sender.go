package chronos

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/gen-go/carrera/producer"
	"github.com/ddmq-go/carrera/internal/chronos/store"
)

// Wire constants of a delivery (wire-contract.md §7, §8.1).
const (
	fromChronosKey   = "from_chronos"
	randomPartition  = -2
	codeOK           = 0
	codeMissingParam = 102 // the SDKs' client-side "missing parameters"
)

// permanentCodes are pproxy answers that no retry can fix
// (behaviour.md §3.4): the delivery is discarded.
var permanentCodes = map[int32]bool{11: true, 13: true, 14: true}

// Delivery is one due occurrence to send to its user topic.
type Delivery struct {
	// ID is the occurrence's uniqDelayMsgId: the message key.
	ID string
	// Fire is the occurrence's fire second; zero for deliveries that were
	// already due at ingestion (no lateness is recorded for them).
	Fire int64
	Msg  *store.Message
}

// Outcome is how a delivery ended.
type Outcome int

// Outcomes of Deliver.
const (
	// Delivered: pproxy answered OK (or fakeSend).
	Delivered Outcome = iota
	// Discarded: a permanent code; the occurrence is given up.
	Discarded
	// Aborted: the context ended before an OK (shutdown deadline); the
	// occurrence must be delivered again later.
	Aborted
)

// message builds the pproxy message of d: key = occurrence id, the stored
// tags and properties plus from_chronos, random partition.
func (d *Delivery) message() *producer.Message {
	props := make(map[string]string, len(d.Msg.Properties)+1)
	for k, v := range d.Msg.Properties {
		props[k] = v
	}
	props[fromChronosKey] = fromChronosKey
	return &producer.Message{Topic: d.Msg.Topic, Key: d.ID, Tags: d.Msg.Tags, PartitionId: randomPartition,
		Body: d.Msg.Body, Properties: props}
}

// senderConfig configures the delivery workers.
type senderConfig struct {
	addrs         []string
	proxyTimeout  time.Duration // sendSync's timeout argument
	clientTimeout time.Duration // socket timeout
	clientRetry   int           // immediate retries on another address after a transport error
	retryInterval time.Duration
	fakeSend      bool
}

// sendPool runs the delivery workers. Each worker owns one pproxy
// connection; jobs are queued on a bounded channel, so a caller submitting
// faster than pproxy answers blocks (the seek loop streams a second's keys
// through it).
type sendPool struct {
	log  *zap.Logger
	m    *metrics
	cfg  senderConfig
	hard context.Context // ends only at the shutdown deadline: aborts retries

	jobs chan sendJob
	wg   sync.WaitGroup
	once sync.Once
}

type sendJob struct {
	d    *Delivery
	done func(Outcome)
}

func newSendPool(hard context.Context, workers int, cfg senderConfig, m *metrics, log *zap.Logger) *sendPool {
	p := &sendPool{log: log, m: m, cfg: cfg, hard: hard, jobs: make(chan sendJob, 2*workers)}
	for i := range workers {
		w := &pproxyClient{cfg: cfg, next: i}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer w.close()
			for j := range p.jobs {
				j.done(p.deliver(w, j.d))
			}
		}()
	}
	return p
}

// Submit queues d; done is called exactly once, on a worker goroutine,
// with its outcome. It blocks while the queue is full and returns false
// (without calling done) if ctx ends first.
func (p *sendPool) Submit(ctx context.Context, d *Delivery, done func(Outcome)) bool {
	select {
	case p.jobs <- sendJob{d: d, done: done}:
		return true
	case <-ctx.Done():
		return false
	}
}

// Close stops the workers after the queued jobs and closes the
// connections. No Submit may follow.
func (p *sendPool) Close() {
	p.once.Do(func() { close(p.jobs) })
	p.wg.Wait()
}

// deliver sends until OK, a permanent code, or the hard context ends;
// failed attempts are retried every retryInterval (behaviour.md §3.4).
func (p *sendPool) deliver(w *pproxyClient, d *Delivery) Outcome {
	if d.Msg == nil || d.Msg.Topic == "" || len(d.Msg.Body) == 0 {
		p.m.discarded.WithLabelValues(strconv.Itoa(codeMissingParam)).Inc()
		p.log.Warn("delivery discarded: missing topic or body", zap.String("id", d.ID))
		return Discarded
	}
	if p.cfg.fakeSend {
		return Delivered
	}
	msg := d.message()
	for attempt := 1; ; attempt++ {
		code, err := w.send(msg)
		switch {
		case err == nil && code == codeOK:
			return Delivered
		case err == nil && permanentCodes[code]:
			p.m.discarded.WithLabelValues(strconv.Itoa(int(code))).Inc()
			p.log.Warn("delivery discarded: permanent pproxy code", zap.String("id", d.ID),
				zap.String("topic", msg.Topic), zap.Int32("code", code))
			return Discarded
		case err == nil:
			p.m.sendFailures.WithLabelValues(strconv.Itoa(int(code))).Inc()
			if attempt == 1 || attempt%50 == 0 {
				p.log.Warn("delivery failed, retrying", zap.String("id", d.ID), zap.String("topic", msg.Topic),
					zap.Int32("code", code), zap.Int("attempt", attempt))
			}
		default:
			p.m.sendFailures.WithLabelValues("transport").Inc()
			if attempt == 1 || attempt%50 == 0 {
				p.log.Warn("delivery failed, retrying", zap.String("id", d.ID), zap.Error(err), zap.Int("attempt", attempt))
			}
		}
		t := time.NewTimer(p.cfg.retryInterval)
		select {
		case <-t.C:
		case <-p.hard.Done():
			t.Stop()
			return Aborted
		}
	}
}

// pproxyClient is one worker's framed-compact connection to a pproxy,
// (re)opened lazily; on a transport error it moves to the next address.
type pproxyClient struct {
	cfg    senderConfig
	next   int
	trans  thrift.TTransport
	client *producer.ProducerServiceClient
}

var errNoAddress = errors.New("chronos: no pproxy address")

// send makes one sendSync call, trying up to clientRetry further addresses
// after a transport error. It returns the answer's code or the last
// transport error.
func (c *pproxyClient) send(msg *producer.Message) (int32, error) {
	if len(c.cfg.addrs) == 0 {
		return 0, errNoAddress
	}
	var lastErr error
	for range c.cfg.clientRetry + 1 {
		if c.client == nil {
			addr := c.cfg.addrs[c.next%len(c.cfg.addrs)]
			trans, proto, err := dialThrift(addr, c.cfg.clientTimeout)
			if err != nil {
				c.next++
				lastErr = err
				continue
			}
			c.trans, c.client = trans, producer.NewProducerServiceClient(thrift.NewTStandardClient(proto, proto))
		}
		res, err := c.client.SendSync(context.Background(), msg, c.cfg.proxyTimeout.Milliseconds())
		if err != nil {
			c.close()
			c.next++
			lastErr = err
			continue
		}
		return res.GetCode(), nil
	}
	return 0, lastErr
}

func (c *pproxyClient) close() {
	if c.trans != nil {
		_ = c.trans.Close()
	}
	c.trans, c.client = nil, nil
}

// dialThrift opens a framed transport with the compact protocol (the DDMQ
// SDKs' choice) to addr.
func dialThrift(addr string, socketTimeout time.Duration) (thrift.TTransport, thrift.TProtocol, error) {
	cfg := &thrift.TConfiguration{ConnectTimeout: 2 * time.Second, SocketTimeout: socketTimeout}
	trans := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(addr, cfg), cfg)
	if err := trans.Open(); err != nil {
		return nil, nil, err
	}
	return trans, thrift.NewTCompactProtocolConf(trans, cfg), nil
}
