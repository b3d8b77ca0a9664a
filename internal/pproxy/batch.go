package pproxy

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/gen-go/carrera/producer"
	"github.com/ddmq-go/carrera/internal/config"
	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/ratelimit"
)

// batchProducer is implemented by producers that send the records of one
// (topic, queue) as batch requests (RocketMQ's SEND_BATCH_MESSAGE,
// behaviour.md §1.10): recs share a topic and a target; done is called once
// with the first failure (nothing after it is sent) or nil.
type batchProducer interface {
	ProduceBatch(ctx context.Context, recs []*mq.Record, done func(error))
}

// groupKey identifies one ordered stream of a batch: (cluster, topic, partition).
type groupKey struct {
	cluster string
	topic   string
	target  int32
}

// leased is a producer taken from the registry for one batch.
type leased struct {
	p     mq.Producer
	lease *Lease
}

type batchGroup struct {
	leased
	recs []*mq.Record
}

// SendBatchSync implements ProducerService.sendBatchSync (behaviour.md
// §1.10): validate all, resolve all, then send per (cluster, topic,
// partition) group in request order; one result for the whole batch.
func (h *Handler) SendBatchSync(ctx context.Context, msgs []*producer.Message) (res *producer.Result_, _ error) {
	const method = "sendBatchSync"
	start := time.Now()
	snap := h.snap.Load()
	code := FailServerShutdown
	topic := ""
	if len(msgs) > 0 && msgs[0] != nil {
		topic = msgs[0].Topic
	}
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
		return result(code), nil
	}
	defer h.leave()
	h.m.batchSize.Observe(float64(len(msgs)))
	code = h.sendBatch(ctx, snap, msgs)
	return result(code), nil
}

func (h *Handler) sendBatch(ctx context.Context, snap *config.PProxySnapshot, msgs []*producer.Message) Code {
	if len(msgs) == 0 {
		return OK
	}
	prefix, _ := delayPrefix(snap)
	bodies := make([][]byte, len(msgs))
	for i, m := range msgs {
		body, ok := validateMessage(m, prefix, snap.MaxBodyBytes(topicOf(m)))
		if !ok {
			return FailIllegalMsg
		}
		bodies[i] = body
	}
	ctx, cancel := context.WithTimeout(ctx, batchTimeout)
	defer cancel()

	// Resolve everything before sending anything.
	var order []groupKey
	groups := map[groupKey]*batchGroup{}
	randomTarget := map[[2]string]mq.Target{} // (cluster, topic) → shared random target
	// One producer per cluster for the whole batch, leased until every
	// record is answered (a hot reload closes it only after that).
	taken := map[string]leased{}
	defer func() {
		for _, l := range taken {
			l.lease.Release()
		}
	}()
	lim := h.limiter.Load()
	for i, m := range msgs {
		tv, ok := snap.Topics[m.Topic]
		if !ok {
			return FailTopicNotAllowed
		}
		if tv.Config.DelayTopic {
			if _, ok := m.Properties[fromChronosKey]; !ok {
				return FailTopicIsDelay
			}
		}
		cluster := chooseCluster(tv.Clusters, m)
		l, ok := taken[cluster]
		if !ok {
			l.p, l.lease = h.producers.Acquire(cluster)
			if l.p == nil {
				return FailNoProducerForCluster
			}
			taken[cluster] = l
		}
		p := l.p
		var target mq.Target
		var err error
		if m.PartitionId < -1 {
			k := [2]string{cluster, m.Topic}
			t, ok := randomTarget[k]
			if !ok {
				t, err = p.Resolve(ctx, m.Topic, mq.Selector{PartitionID: m.PartitionId})
				randomTarget[k] = t
			}
			target = t
		} else {
			target, err = p.Resolve(ctx, m.Topic, mq.Selector{PartitionID: m.PartitionId, HashID: m.HashId})
		}
		if err != nil {
			return h.outcome(m, err)
		}
		if lim != nil {
			switch lim.TryEnter(limiterKey(snap, tv)) {
			case ratelimit.Rejected:
				h.m.limiterReject.WithLabelValues(tv.Name).Inc()
				return FailRefusedByRateLimiter
			case ratelimit.AdmittedWarning:
				h.m.limiterWarn.WithLabelValues(tv.Name).Inc()
			}
		}
		k := groupKey{cluster: cluster, topic: m.Topic, target: target.Partition}
		g, ok := groups[k]
		if !ok {
			g = &batchGroup{leased: l}
			groups[k] = g
			order = append(order, k)
		}
		g.recs = append(g.recs, &mq.Record{Topic: m.Topic, Target: target, Key: m.Key, Tags: m.Tags,
			Body: bodies[i], Properties: m.Properties})
	}

	// Each group's records are handed to its producer in request order;
	// the adapter stores records of one (topic, partition) in call order.
	// A producer with batch requests (RocketMQ) gets the whole group at
	// once and sends it as SEND_BATCH_MESSAGE requests, each after the
	// previous succeeded. Groups proceed concurrently. Every record is
	// awaited (bounded by the batch timeout) so the answer reflects what
	// was stored.
	type outcome struct {
		idx int
		err error
	}
	total := 0
	for _, k := range order {
		total += len(groups[k].recs)
	}
	results := make(chan outcome, total)
	idx, expected := 0, 0
	for _, k := range order {
		g := groups[k]
		if bp, ok := g.p.(batchProducer); ok {
			i := idx
			idx += len(g.recs)
			expected++
			bp.ProduceBatch(ctx, g.recs, g.lease.Track(func(err error) { results <- outcome{i, err} }))
			continue
		}
		for _, rec := range g.recs {
			i := idx
			idx++
			expected++
			g.p.Produce(ctx, rec, g.lease.Track(func(err error) { results <- outcome{i, err} }))
		}
	}
	errs := make([]error, total)
	for range expected {
		select {
		case o := <-results:
			errs[o.idx] = o.err
		case <-ctx.Done():
			h.log.Warn("batch send failed", zap.Int("messages", total), zap.String("reason", "timeout"))
			return FailTimeout
		}
	}
	for _, err := range errs {
		if err != nil {
			return h.outcome(msgs[0], err)
		}
	}
	return OK
}

// SendDelaySync implements ProducerService.sendDelaySync.
func (h *Handler) SendDelaySync(ctx context.Context, dm *producer.DelayMessage, timeout int64) (*producer.DelayResult_, error) {
	return h.sendDelay(ctx, dm, timeout), nil
}
