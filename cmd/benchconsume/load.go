package main

// Load generators and consumers: the pre-fill producer, the direct sarama
// consumer group, cproxy pull+submit clients, the probe join and the
// paced latency producer.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
	bu "github.com/ddmq-go/carrera/internal/benchutil"
)

// Body tags (first byte): pre-filled, latency-stamped, probe.
const (
	tagFill  = 'F'
	tagStamp = 'L'
	tagProbe = 'P'
)

func producerConfig(client string) *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.ClientID = client
	cfg.Metadata.Full = false
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	cfg.Producer.Retry.Max = 3
	cfg.Producer.Partitioner = sarama.NewRoundRobinPartitioner
	return cfg
}

// prefill writes n messages of size bytes (tagged tagFill) with one
// AsyncProducer, at most window in flight.
func prefill(ctx context.Context, brokers []string, topic string, n, size int) error {
	cfg := producerConfig("benchconsume-prefill")
	cfg.Producer.Flush.Messages = 256
	cfg.Producer.Flush.Frequency = 2 * time.Millisecond
	p, err := sarama.NewAsyncProducer(brokers, cfg)
	if err != nil {
		return err
	}
	defer p.Close()
	body := make([]byte, size)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	body[0] = tagFill
	const window = 4096
	sem := make(chan struct{}, window)
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Go(func() {
		for range n {
			select {
			case <-p.Successes():
			case e := <-p.Errors():
				mu.Lock()
				if firstErr == nil {
					firstErr = e.Err
				}
				mu.Unlock()
			}
			<-sem
		}
	})
	sent := 0
	for ; sent < n && ctx.Err() == nil; sent++ {
		sem <- struct{}{}
		p.Input() <- &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(body)}
	}
	if sent < n { // interrupted: let the reader finish what was sent
		for range n - sent {
			sem <- struct{}{}
		}
	}
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return firstErr
}

// throughput is a consumed-messages measurement.
type throughput struct {
	msgs         int64
	start, end   time.Time
	lat          []int64 // per-call latency (cproxy pulls), ns
	calls, errs  int64
	firstErr     error
	reachedCount bool
}

// directConsume runs a sarama consumer group from the oldest offset,
// marking every message (auto-commit every second), until target messages
// tagged tagFill were consumed or dur passed since the first one.
func directConsume(ctx context.Context, brokers []string, topic, group string, target int64, dur time.Duration) (*throughput, error) {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.ClientID = "benchconsume-direct"
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = true
	cfg.Consumer.Offsets.AutoCommit.Interval = time.Second
	cfg.Consumer.Group.Session.Timeout = 10 * time.Second
	cfg.Consumer.Group.Heartbeat.Interval = 3 * time.Second
	cfg.Consumer.Fetch.Default = 1 << 20
	cg, err := sarama.NewConsumerGroup(brokers, group, cfg)
	if err != nil {
		return nil, err
	}
	h := &directHandler{target: target, dur: dur, done: make(chan struct{})}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		for cctx.Err() == nil {
			if err := cg.Consume(cctx, []string{topic}, h); err != nil && cctx.Err() == nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	join := time.NewTimer(60 * time.Second)
	defer join.Stop()
	select {
	case <-h.started():
	case err := <-errc:
		_ = cg.Close()
		return nil, fmt.Errorf("direct consumer group: %v", err)
	case <-join.C:
		_ = cg.Close()
		return nil, errors.New("direct consumer group: no message within 60s")
	case <-ctx.Done():
		_ = cg.Close()
		return nil, ctx.Err()
	}
	t := time.NewTimer(dur)
	select {
	case <-h.done:
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	h.mu.Lock()
	res := &throughput{msgs: h.count, start: h.first, end: time.Now(), reachedCount: h.count >= target}
	if h.count >= target {
		res.end = h.last
	}
	h.mu.Unlock()
	cancel()
	<-errc
	if err := cg.Close(); err != nil {
		logf("  closing the direct group: %v", err)
	}
	return res, ctx.Err()
}

type directHandler struct {
	target int64
	dur    time.Duration
	done   chan struct{}

	mu          sync.Mutex
	count       int64
	first, last time.Time
	firstSeen   chan struct{}
	once, fin   sync.Once
}

func (h *directHandler) started() chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.firstSeen == nil {
		h.firstSeen = make(chan struct{})
	}
	return h.firstSeen
}

func (h *directHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *directHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *directHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	first := h.started()
	for m := range claim.Messages() {
		sess.MarkMessage(m, "")
		if len(m.Value) == 0 || m.Value[0] != tagFill {
			continue
		}
		now := time.Now()
		h.mu.Lock()
		if h.count == 0 {
			h.first = now
			h.once.Do(func() { close(first) })
		}
		if now.Sub(h.first) <= h.dur {
			h.count++
			h.last = now
			if h.count >= h.target {
				h.fin.Do(func() { close(h.done) })
			}
		}
		h.mu.Unlock()
	}
	return nil
}

// cproxyConn is one Thrift connection to cproxy.
type cproxyConn struct {
	trans  thrift.TTransport
	client *consumer.ConsumerServiceClient // submit, and pulls of the generated decoder
	// Pulls with the hand-written reply decoder (pullreply.go).
	frames *bu.FrameTransport
	oprot  thrift.TProtocol
	seq    int32
	msg    consumer.Message
}

func dialCProxy(addr string) (*cproxyConn, error) {
	cfg := &thrift.TConfiguration{ConnectTimeout: 3 * time.Second, SocketTimeout: 30 * time.Second}
	// Replies are read as the Java SDK reads them: each frame whole, with
	// one read into a reused buffer, then decoded from memory.
	trans := bu.NewFrameTransport(addr, 30*time.Second, 0)
	if err := trans.Open(); err != nil {
		return nil, err
	}
	p := thrift.NewTCompactProtocolConf(trans, cfg)
	return &cproxyConn{trans: trans, client: consumer.NewConsumerServiceClient(thrift.NewTStandardClient(p, p)),
		frames: trans, oprot: p}, nil
}

func (c *cproxyConn) close() { _ = c.trans.Close() }

func dialAll(addr string, n int) ([]*cproxyConn, func(), error) {
	var conns []*cproxyConn
	closeAll := func() {
		for _, c := range conns {
			c.close()
		}
	}
	for range n {
		c, err := dialCProxy(addr)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		conns = append(conns, c)
	}
	return conns, closeAll, nil
}

// puller pulls with the previous batch's acknowledgement piggy-backed
// (as the SDKs do) and hands each message to fn.
type puller struct {
	c     *cproxyConn
	group string
	batch int32
	ack   *consumer.ConsumeResult_
}

const pullLingerMs = 100

func (p *puller) pull(ctx context.Context, fn func(m *consumer.Message)) (int, error) {
	bs, ml := p.batch, int32(pullLingerMs)
	offsets := make([]int64, 0, p.batch)
	rctx, n, err := p.c.pullFast(ctx, &consumer.PullRequest{GroupId: p.group, MaxBatchSize: &bs, MaxLingerTime: &ml, Result_: p.ack},
		func(m *consumer.Message) {
			fn(m)
			offsets = append(offsets, m.Offset)
		})
	p.ack = nil
	if err != nil || n == 0 {
		return 0, err
	}
	p.ack = &consumer.ConsumeResult_{Context: rctx, SuccessOffsets: offsets}
	return n, nil
}

// flush submits the pending acknowledgement.
func (p *puller) flush(ctx context.Context) {
	if p.ack != nil {
		_, _ = p.c.client.Submit(ctx, p.ack)
		p.ack = nil
	}
}

// join starts group on cproxy (it starts on the first pull, at the newest
// offsets) and returns once a probe produced to every partition after the
// start was pulled: then every partition is positioned and later messages
// are delivered.
func join(ctx context.Context, conns []*cproxyConn, group string, probe func(i int) error, partitions int) error {
	seen := make([]atomic.Bool, partitions)
	allSeen := func() bool {
		for i := range seen {
			if !seen[i].Load() {
				return false
			}
		}
		return true
	}
	jctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	var pullErr atomic.Value
	for _, c := range conns {
		p := &puller{c: c, group: group, batch: 32}
		wg.Go(func() {
			defer p.flush(context.Background())
			for jctx.Err() == nil {
				_, err := p.pull(jctx, func(m *consumer.Message) {
					if len(m.Value) > 1 && m.Value[0] == tagProbe {
						if i, err := strconv.Atoi(string(m.Value[1:])); err == nil && i < partitions {
							seen[i].Store(true)
						}
					}
				})
				if err != nil && jctx.Err() == nil {
					pullErr.Store(err)
					time.Sleep(100 * time.Millisecond)
				}
			}
		})
	}
	deadline := time.Now().Add(90 * time.Second)
	for !allSeen() {
		if time.Now().After(deadline) {
			e, _ := pullErr.Load().(error)
			return fmt.Errorf("group %s: probes not all pulled after 90s (last pull error: %v)", group, e)
		}
		for i := range seen {
			if seen[i].Load() {
				continue
			}
			if err := probe(i); err != nil {
				return fmt.Errorf("probe: %w", err)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return nil
}

// probeProducer sends probes to explicit partitions.
func probeProducer(brokers []string) (sarama.SyncProducer, error) {
	cfg := producerConfig("benchconsume-probe")
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	return sarama.NewSyncProducer(brokers, cfg)
}

// cproxyConsume pulls+submits from len(conns) connections until target
// tagFill messages were consumed or dur passed since the first one.
func cproxyConsume(ctx context.Context, conns []*cproxyConn, group string, batch int32, target int64, dur time.Duration) *throughput {
	var count atomic.Int64
	var firstNs, lastNs atomic.Int64
	done := make(chan struct{})
	var fin sync.Once
	type local struct {
		lat         []int64
		calls, errs int64
		first       error
	}
	locals := make([]*local, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		l := &local{lat: make([]int64, 0, 1<<14)}
		locals[i] = l
		p := &puller{c: c, group: group, batch: batch}
		wg.Go(func() {
			defer p.flush(context.Background())
			for {
				select {
				case <-done:
					return
				case <-ctx.Done():
					return
				default:
				}
				if f := firstNs.Load(); f != 0 && time.Since(time.Unix(0, f)) > dur {
					fin.Do(func() { close(done) })
					return
				}
				t0 := time.Now()
				_, err := p.pull(ctx, func(m *consumer.Message) {
					if len(m.Value) == 0 || m.Value[0] != tagFill {
						return
					}
					now := time.Now().UnixNano()
					firstNs.CompareAndSwap(0, now)
					if now-firstNs.Load() > int64(dur) {
						return
					}
					if n := count.Add(1); n >= target {
						lastNs.Store(now)
						fin.Do(func() { close(done) })
					}
				})
				if err != nil {
					l.errs++
					if l.first == nil {
						l.first = err
					}
					time.Sleep(10 * time.Millisecond)
					continue
				}
				l.calls++
				l.lat = append(l.lat, int64(time.Since(t0)))
			}
		})
	}
	wg.Wait()
	res := &throughput{msgs: count.Load(), start: time.Unix(0, firstNs.Load())}
	res.reachedCount = res.msgs >= target
	if res.reachedCount {
		res.end = time.Unix(0, lastNs.Load())
	} else {
		res.end = res.start.Add(dur)
	}
	for _, l := range locals {
		res.lat = append(res.lat, l.lat...)
		res.calls += l.calls
		res.errs += l.errs
		if res.firstErr == nil {
			res.firstErr = l.first
		}
	}
	return res
}

// latencyResult is the outcome of one latencyRun.
type latencyResult struct {
	lat  []int64 // produce→pull latencies (ns) of messages sent inside the window
	sent int64   // messages sent inside the window
	errs int64   // produce errors
	// delivered counts stamped messages pulled while the window was open,
	// whenever they were sent: the pipeline's delivery rate is
	// delivered / window.
	delivered int64
}

// latencyRun produces stamped messages at rate msgs/s for warmup+dur
// through a sender of be and pulls them from conns.
// latencyRun produces stamped messages and pulls them on conns. With
// window == 0 it produces at rate; with window > 0 it runs closed-loop:
// it keeps at most window messages sent and not yet pulled, so the
// producer goes exactly as fast as the whole pipeline delivers (rate is
// ignored) and no backlog builds up.
func latencyRun(ctx context.Context, be mqBackend, topic string, conns []*cproxyConn, group string, batch int32,
	rate float64, window int64, size int, warmup, dur time.Duration) (*latencyResult, error) {
	prod, err := be.sender(topic)
	if err != nil {
		return nil, err
	}
	res := &latencyResult{}
	var delivered, received atomic.Int64
	start := time.Now().Add(warmup)
	end := start.Add(dur)

	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	// Each puller's samples are allocated up front, for twice its share of
	// the expected count: growing them mid-run made all pullers copy their
	// arrays at about the same moment, and the GC assist that this burst
	// of allocation triggered stalled the load generator (pullers and
	// producer) for ~70 ms (an in-process heartbeat and gctrace showed it).
	perPuller := 1 << 16
	if window == 0 {
		perPuller = max(perPuller, int(2*rate*(warmup+dur).Seconds())/max(len(conns), 1))
	}
	for _, c := range conns {
		p := &puller{c: c, group: group, batch: batch}
		wg.Go(func() {
			defer p.flush(context.Background())
			mine := make([]int64, 0, perPuller)
			for pctx.Err() == nil {
				if _, err := p.pull(pctx, func(m *consumer.Message) {
					if len(m.Value) < 9 || m.Value[0] != tagStamp {
						return
					}
					now := time.Now()
					received.Add(1)
					if !now.Before(start) && now.Before(end) {
						delivered.Add(1)
					}
					st := time.Unix(0, int64(binary.BigEndian.Uint64(m.Value[1:9])))
					if !st.Before(start) && st.Before(end) {
						mine = append(mine, int64(now.Sub(st)))
					}
				}); err != nil && pctx.Err() == nil {
					time.Sleep(10 * time.Millisecond)
				}
			}
			mu.Lock()
			res.lat = append(res.lat, mine...)
			mu.Unlock()
		})
	}

	// Paced sender: every millisecond, the messages due by then.
	tick := time.NewTicker(time.Millisecond)
	t0 := time.Now()
	var due float64
	var n int64
	for now := t0; now.Before(end) && ctx.Err() == nil; now = <-tick.C {
		if window > 0 {
			due = float64(received.Load() + window)
		} else {
			due = rate * now.Sub(t0).Seconds()
		}
		for ; float64(n) < due; n++ {
			body := make([]byte, size)
			body[0] = tagStamp
			ts := time.Now()
			binary.BigEndian.PutUint64(body[1:9], uint64(ts.UnixNano()))
			if !ts.Before(start) && ts.Before(end) {
				res.sent++
			}
			prod.send(body)
		}
	}
	tick.Stop()
	prodErrs := prod.close()
	// Let the last messages arrive.
	select {
	case <-time.After(2 * time.Second):
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	res.errs, res.delivered = prodErrs, delivered.Load()
	return res, nil
}

// drainGroup pulls and acknowledges on every connection until each has seen
// three empty pulls in a row, so a later run on the group starts without a
// backlog.
func drainGroup(ctx context.Context, conns []*cproxyConn, group string, batch int32) error {
	var wg sync.WaitGroup
	errs := make([]error, len(conns))
	for i, c := range conns {
		p := &puller{c: c, group: group, batch: batch}
		wg.Go(func() {
			defer p.flush(context.Background())
			for empty := 0; empty < 3; {
				if ctx.Err() != nil {
					errs[i] = ctx.Err()
					return
				}
				n, err := p.pull(ctx, func(*consumer.Message) {})
				switch {
				case err != nil:
					errs[i] = err
					return
				case n == 0:
					empty++
				default:
					empty = 0
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func joinGroups(names []string) string { return strings.Join(names, ", ") }
