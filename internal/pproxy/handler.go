// Package pproxy implements the DDMQ ProducerService: validation, routing
// from the current config snapshot, rate limiting, proxy-side timeout with
// one retry, and the mapping of backend outcomes to result codes.
//
// The Thrift handler methods run on the server's per-connection goroutine;
// they block only on channels fed by backend completion callbacks and on
// timers, so a slow broker holds one goroutine per outstanding call and
// nothing else.
package pproxy

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/gen-go/carrera/producer"
	"github.com/ddmq-go/carrera/internal/config"
	"github.com/ddmq-go/carrera/internal/javastr"
	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/ratelimit"
)

// Magic names of the wire contract (§8.1).
const (
	heartbeatTopic = "carrera_heartbeat"
	fromChronosKey = "from_chronos"
	retryTimeout   = 30 * time.Millisecond // the proxy-side retry's timer (§1.7)
	asyncBound     = 10 * time.Second      // sendAsync's bound (defect #15)
	asyncTimeoutMs = 10000                 // sendAsync's timeout for the limiter retry rule
	batchTimeout   = 5 * time.Second       // backend timeout of a sendBatchSync
)

// ProducerSet gives the current producer of a broker cluster (nil if none)
// with a lease on it (Registry; a nil lease for producers never replaced).
type ProducerSet interface {
	Acquire(cluster string) (mq.Producer, *Lease)
}

// Handler implements producer.ProducerService.
type Handler struct {
	log       *zap.Logger
	producers ProducerSet
	m         *metrics

	snap    atomic.Pointer[config.PProxySnapshot]
	limiter atomic.Pointer[ratelimit.Limiter] // nil when useRequestLimiter is off

	limiterRetries atomic.Int64 // requests waiting for their one limiter retry

	gate struct {
		sync.Mutex
		closing bool
		active  int
		drained chan struct{}
	}
}

var _ producer.ProducerService = (*Handler)(nil)

// NewHandler returns a handler serving snap. Call Apply on every new snapshot.
func NewHandler(log *zap.Logger, producers ProducerSet, m *metrics, snap *config.PProxySnapshot) *Handler {
	h := &Handler{log: log, producers: producers, m: m}
	h.gate.drained = make(chan struct{})
	h.Apply(snap)
	return h
}

// Apply swaps in a new snapshot and reconfigures the limiter in place.
func (h *Handler) Apply(snap *config.PProxySnapshot) {
	cc := snap.Node.CarreraConfiguration
	if cc.UseRequestLimiter {
		topics := make(map[string]float64, len(snap.Topics))
		for name, tv := range snap.Topics {
			topics[name] = tv.MaxTps
		}
		if l := h.limiter.Load(); l != nil {
			l.Update(float64(cc.MaxTps), cc.TpsWarningRatio, topics)
		} else {
			l = ratelimit.New(float64(cc.MaxTps), cc.TpsWarningRatio)
			l.Update(float64(cc.MaxTps), cc.TpsWarningRatio, topics)
			h.limiter.Store(l)
		}
	} else {
		h.limiter.Store(nil)
	}
	h.snap.Store(snap)
}

// enter registers an in-flight call; false once shutdown has begun.
func (h *Handler) enter() bool {
	h.gate.Lock()
	defer h.gate.Unlock()
	if h.gate.closing {
		return false
	}
	h.gate.active++
	h.m.inflight.Inc()
	return true
}

func (h *Handler) leave() {
	h.gate.Lock()
	defer h.gate.Unlock()
	h.gate.active--
	h.m.inflight.Dec()
	if h.gate.closing && h.gate.active == 0 {
		close(h.gate.drained)
	}
}

// Drain puts the handler in lame-duck mode (new calls get
// FAIL_SERVER_SHUTDOWN) and waits for in-flight calls, bounded by ctx.
func (h *Handler) Drain(ctx context.Context) error {
	h.gate.Lock()
	if !h.gate.closing {
		h.gate.closing = true
		if h.gate.active == 0 {
			close(h.gate.drained)
		}
	}
	h.gate.Unlock()
	select {
	case <-h.gate.drained:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func result(c Code) *producer.Result_ {
	return &producer.Result_{Code: int32(c), Msg: c.Msg()}
}

// topicLabel keeps metric label values to served topics.
func topicLabel(snap *config.PProxySnapshot, topic string) string {
	if _, ok := snap.Topics[topic]; ok {
		return topic
	}
	return unservedTopic
}

// SendSync implements ProducerService.sendSync.
func (h *Handler) SendSync(ctx context.Context, m *producer.Message, timeout int64) (r *producer.Result_, err error) {
	if m != nil && m.Topic == heartbeatTopic {
		return result(OK), nil
	}
	return h.single(ctx, "sendSync", m, timeout, true), nil
}

// SendAsync implements ProducerService.sendAsync: sendSync without the
// heartbeat shortcut and the timeout retry, bounded at 10 s.
func (h *Handler) SendAsync(ctx context.Context, m *producer.Message) (*producer.Result_, error) {
	return h.single(ctx, "sendAsync", m, 0, false), nil
}

func (h *Handler) single(ctx context.Context, method string, m *producer.Message, timeoutMs int64, sync bool) (res *producer.Result_) {
	start := time.Now()
	snap := h.snap.Load()
	topic := ""
	if m != nil {
		topic = m.Topic
	}
	code := FailServerShutdown
	defer func() {
		if p := recover(); p != nil {
			h.log.Error("panic in handler", zap.String("method", method), zap.Any("panic", p), zap.Stack("stack"))
			code = FailUnknown
			res = result(code)
		}
		h.m.call(method, topicLabel(snap, topic), code)
		h.m.observe(method, time.Since(start))
	}()
	if !h.enter() {
		return result(code)
	}
	defer h.leave()
	code = h.sendOne(ctx, snap, m, timeoutMs, sync)
	return result(code)
}

// sendOne runs behaviour.md §1.3 steps 2–8 for a single message.
func (h *Handler) sendOne(ctx context.Context, snap *config.PProxySnapshot, m *producer.Message, timeoutMs int64, sync bool) Code {
	prefix, _ := delayPrefix(snap)
	body, ok := validateMessage(m, prefix, snap.MaxBodyBytes(topicOf(m)))
	if !ok {
		return FailIllegalMsg
	}
	rec := &mq.Record{Topic: m.Topic, Key: m.Key, Tags: m.Tags, Body: body, Properties: m.Properties}
	return h.deliver(ctx, m, rec, timeoutMs, sync, "")
}

// deliver runs §1.3 steps 3–8 for a validated message: the proxy-side timer,
// resolution, limiter (keyed by limitKey, or the topic's default key when
// empty), produce, and the one timeout retry.
func (h *Handler) deliver(ctx context.Context, m *producer.Message, rec *mq.Record, timeoutMs int64, sync bool, limitKey string) Code {
	// The proxy-side timer starts after validation (§1.7). sendAsync has
	// no timer of its own but is bounded (defect #15).
	limiterTimeout := timeoutMs
	var timer *time.Timer
	switch {
	case !sync:
		timer = time.NewTimer(asyncBound)
		limiterTimeout = asyncTimeoutMs
	case timeoutMs > 0:
		timer = time.NewTimer(time.Duration(timeoutMs) * time.Millisecond)
	}
	var timerC <-chan time.Time
	if timer != nil {
		defer timer.Stop()
		timerC = timer.C
	}
	sel := mq.Selector{PartitionID: m.PartitionId, HashID: m.HashId}
	done := make(chan error, 2)

	a, code := h.admit(ctx, m, sel, limiterTimeout, timerC, limitKey)
	if code != OK {
		return code
	}
	// The lease keeps p open until the request and its records are done,
	// even if a hot reload replaces it meanwhile (DESIGN 36).
	p, lease, tv, target := a.p, a.lease, a.tv, a.target
	defer lease.Release()
	rec.Target = target
	produceFirst(ctx, p, tv, rec, lease.Track(func(err error) { done <- err }))

	select {
	case err := <-done:
		return h.outcome(m, err)
	case <-timerC:
	}
	if !sync || tv.Config.StrongOrder || a.limiterRetried {
		h.log.Warn("send failed", zap.String("topic", m.Topic), zap.String("reason", "proxy-side timeout"))
		return FailTimeout
	}
	// One re-send, preferring another broker, with a 30 ms timer (§1.7).
	// The first attempt is not cancelled: whichever completes first answers.
	h.m.timeoutRetry.WithLabelValues(m.Topic).Inc()
	retry := time.NewTimer(retryTimeout)
	defer retry.Stop()
	sel.AvoidBroker = target.Broker
	if t2, err := p.Resolve(ctx, m.Topic, sel); err == nil {
		rec2 := *rec
		rec2.Target = t2
		p.Produce(ctx, &rec2, lease.Track(func(err error) { done <- err }))
	}
	select {
	case err := <-done:
		return h.outcome(m, err)
	case <-retry.C:
		h.log.Warn("send failed", zap.String("topic", m.Topic), zap.String("reason", "proxy-side timeout after retry"))
		return FailTimeout
	}
}

// autoBatchProducer is implemented by producers that can coalesce single
// sends of one (topic, queue) into batch requests (RocketMQ auto-batch,
// behaviour.md §1.11); they fall back to a plain send when auto-batching
// is off or the record is not eligible.
type autoBatchProducer interface {
	ProduceAutoBatch(ctx context.Context, rec *mq.Record, done func(error))
}

// produceFirst sends the first attempt of a single send: through the
// auto-batcher when the topic allows it and the producer has one.
func produceFirst(ctx context.Context, p mq.Producer, tv *config.TopicView, rec *mq.Record, done func(error)) {
	if tv.Config.AutoBatch {
		if ab, ok := p.(autoBatchProducer); ok {
			ab.ProduceAutoBatch(ctx, rec, done)
			return
		}
	}
	p.Produce(ctx, rec, done)
}

func (h *Handler) outcome(m *producer.Message, err error) Code {
	c := CodeOf(err)
	if c != OK {
		h.log.Warn("send failed", zap.String("topic", m.Topic), zap.String("key", m.Key),
			zap.Int32("code", int32(c)), zap.Error(err))
	}
	return c
}

func topicOf(m *producer.Message) string {
	if m == nil {
		return ""
	}
	return m.Topic
}

func delayPrefix(snap *config.PProxySnapshot) (string, int) {
	d := snap.Node.CarreraConfiguration.Delay
	if d == nil {
		return "", 0
	}
	return d.ChronosInnerTopicPrefix, d.InnerTopicNum
}

// limiterKey is the rate-limit key of a message to topic tv (§1.6).
func limiterKey(snap *config.PProxySnapshot, tv *config.TopicView) string {
	if tv.Config.DelayTopic {
		if prefix, _ := delayPrefix(snap); prefix != "" {
			return prefix + "0"
		}
	}
	return tv.Name
}

// limiterRetryDelay is the delay of the one limiter retry (§1.6); <= 0 means
// no retry.
func limiterRetryDelay(interval, timeoutMs int64) time.Duration {
	switch {
	case interval == 0:
		return 0
	case interval > 0:
		return time.Duration(interval) * time.Millisecond
	}
	d := timeoutMs - 10
	if d <= 10 {
		return 0
	}
	return time.Duration(min(d, 100)) * time.Millisecond
}

// admission is what admit found for a message: the cluster's producer with
// a lease the caller releases, the topic, the resolved target, and whether
// the one limiter retry was used.
type admission struct {
	p              mq.Producer
	lease          *Lease
	tv             *config.TopicView
	target         mq.Target
	limiterRetried bool
}

// admit runs §1.3 steps 4–7 (resolution, delay check, limiter with its one
// retry, producer lookup) and resolves the target. It re-reads the snapshot
// on the limiter retry so a hot reload in between is honoured.
func (h *Handler) admit(ctx context.Context, m *producer.Message, sel mq.Selector, timeoutMs int64, timerC <-chan time.Time, limitKey string) (admission, Code) {
	limiterRetried := false
	for {
		snap := h.snap.Load()
		tv, ok := snap.Topics[m.Topic]
		if !ok {
			return admission{limiterRetried: limiterRetried}, FailTopicNotAllowed
		}
		if tv.Config.DelayTopic && limitKey == "" {
			if _, ok := m.Properties[fromChronosKey]; !ok {
				return admission{limiterRetried: limiterRetried}, FailTopicIsDelay
			}
		}
		if lim := h.limiter.Load(); lim != nil {
			key := limitKey
			if key == "" {
				key = limiterKey(snap, tv)
			}
			switch lim.TryEnter(key) {
			case ratelimit.AdmittedWarning:
				h.m.limiterWarn.WithLabelValues(tv.Name).Inc()
			case ratelimit.Rejected:
				h.m.limiterReject.WithLabelValues(tv.Name).Inc()
				delay := limiterRetryDelay(tv.Config.LimiterFailureRetryInterval, timeoutMs)
				if limiterRetried || delay <= 0 {
					return admission{limiterRetried: limiterRetried}, FailRefusedByRateLimiter
				}
				if !h.waitLimiterRetry(snap, delay, timerC) {
					return admission{limiterRetried: limiterRetried}, FailRefusedByRateLimiter
				}
				h.m.limiterRetry.WithLabelValues(tv.Name).Inc()
				limiterRetried = true
				continue
			}
		}
		cluster := chooseCluster(tv.Clusters, m)
		p, lease := h.producers.Acquire(cluster)
		if p == nil {
			return admission{limiterRetried: limiterRetried}, FailNoProducerForCluster
		}
		// Resolve answers from cached metadata; a refresh is bounded by
		// the adapter's metadata timeout.
		target, err := p.Resolve(ctx, m.Topic, sel)
		if err != nil {
			lease.Release()
			return admission{limiterRetried: limiterRetried}, h.outcome(m, err)
		}
		return admission{p: p, lease: lease, tv: tv, target: target, limiterRetried: limiterRetried}, OK
	}
}

// waitLimiterRetry waits delay for the one limiter retry, if the retry queue
// has room. It returns false when the retry is refused. A proxy-side timer
// firing meanwhile also ends the wait (the caller then answers per the retry,
// which re-checks admission immediately).
func (h *Handler) waitLimiterRetry(snap *config.PProxySnapshot, delay time.Duration, timerC <-chan time.Time) bool {
	limit := int64(snap.Node.CarreraConfiguration.LimiterFailureRetryQueueSize)
	if h.limiterRetries.Add(1) > limit {
		h.limiterRetries.Add(-1)
		return false
	}
	defer h.limiterRetries.Add(-1)
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-timerC:
		return false
	}
}

// chooseCluster picks one of the sorted candidate clusters (§1.4).
func chooseCluster(candidates []string, m *producer.Message) string {
	n := len(candidates)
	if n == 1 {
		return candidates[0]
	}
	if n == 0 {
		return ""
	}
	var idx int64
	switch {
	case m.PartitionId >= 0:
		idx = int64(m.PartitionId)
	case m.PartitionId == -1:
		idx = m.HashId
	case m.Key != "":
		idx = int64(javastr.HashCode(m.Key))
	default:
		idx = rand.Int64()
	}
	return candidates[mq.NonNegMod(idx, n)]
}
