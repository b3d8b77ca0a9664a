package engine

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ddmq-go/carrera/internal/promx"
)

// Reasons of the redelivered and dropped counters.
const (
	ReasonTimeout = "timeout" // not acknowledged within the timeout
	ReasonNack    = "nack"    // failed by the client
)

// metrics of one engine. The group is a constant label added by wrapping
// the registerer, so engines of different groups (and a restarted engine
// of the same group) share the collectors; gauges are therefore only ever
// changed by deltas, never Set.
type metrics struct {
	pulled        *prometheus.CounterVec // topic
	acked         *prometheus.CounterVec // topic
	nacked        *prometheus.CounterVec // topic
	redelivered   *prometheus.CounterVec // topic, reason
	dropped       *prometheus.CounterVec // topic, reason
	deadLettered  *prometheus.CounterVec // topic
	deadLetterErr *prometheus.CounterVec // topic
	truncated     *prometheus.CounterVec // topic
	filtered      *prometheus.CounterVec // topic
	inFlight      *prometheus.GaugeVec   // topic
	buffered      *prometheus.GaugeVec   // topic
	ignored       prometheus.Counter
	bufferedBytes prometheus.Gauge
	pullBatch     prometheus.Observer
}

func newMetrics(group string, reg prometheus.Registerer) *metrics {
	if reg != nil {
		reg = prometheus.WrapRegistererWith(prometheus.Labels{"group": group}, reg)
	}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels))
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels))
	}
	return &metrics{
		pulled:        counter("cproxy_pulled_total", "Messages handed out by pull (first deliveries and redeliveries).", "topic"),
		acked:         counter("cproxy_acked_total", "Messages acknowledged as successful by submit.", "topic"),
		nacked:        counter("cproxy_nacked_total", "Messages failed by submit.", "topic"),
		redelivered:   counter("cproxy_redelivered_total", "Redeliveries by reason (timeout, nack).", "topic", "reason"),
		dropped:       counter("cproxy_dropped_total", "Messages dropped after their retries were exhausted, by reason (timeout, nack).", "topic", "reason"),
		deadLettered:  counter("cproxy_dead_lettered_total", "Exhausted messages published to the dead-letter topic.", "topic"),
		deadLetterErr: counter("cproxy_dead_letter_failures_total", "Failed dead-letter publish attempts (retried).", "topic"),
		truncated:     counter("cproxy_commit_metadata_truncated_total", "Commits whose finished-offset metadata did not fit (duplicates possible after a restart).", "topic"),
		filtered:      counter("cproxy_filtered_total", "Messages finished without delivery (isPressureTraffic=true on a subscription without pressureTraffic).", "topic"),
		inFlight:      gauge("cproxy_pull_in_flight", "Messages handed out and not yet acknowledged.", "topic"),
		buffered:      gauge("cproxy_pull_buffered", "Unfinished messages not in flight (ready, waiting for a retry, for their key, or for the dead-letter topic).", "topic"),
		ignored: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cproxy_submit_ignored_total",
			Help: "Submitted offsets that were not in flight (unknown topic/qid/offset, acked twice, revoked partition).",
		})),
		bufferedBytes: register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cproxy_pull_buffered_bytes", Help: "Body bytes of the group's unfinished messages.",
		})),
		pullBatch: register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cproxy_pull_batch_messages",
			Help: "Messages per answered pull (0 = the linger expired empty); small batches at a high pull rate cost CPU per message.",
			// 0 has a bucket of its own so empty answers stand apart.
			Buckets: []float64{0, 1, 2, 4, 8, 16, 32, 64, 128, 256},
		})),
	}
}

// register registers c, or returns the equal collector registered before
// (another engine of the same group). Without a registerer c stays local;
// a collector inconsistent with a foreign one of the same name stays
// unregistered rather than fail the engine.
func register[T prometheus.Collector](reg prometheus.Registerer, c T) T {
	c, _ = promx.Register(reg, c)
	return c
}

// topicMetrics caches the children of one topic label.
type topicMetrics struct {
	pulled, acked, nacked           prometheus.Counter
	redeliverTimeout, redeliverNack prometheus.Counter
	dropTimeout, dropNack           prometheus.Counter
	deadLettered, deadLetterErr     prometheus.Counter
	truncated, filtered             prometheus.Counter
	inFlight, buffered              prometheus.Gauge
}

func (m *metrics) topic(t string) *topicMetrics {
	return &topicMetrics{
		pulled:           m.pulled.WithLabelValues(t),
		acked:            m.acked.WithLabelValues(t),
		nacked:           m.nacked.WithLabelValues(t),
		redeliverTimeout: m.redelivered.WithLabelValues(t, ReasonTimeout),
		redeliverNack:    m.redelivered.WithLabelValues(t, ReasonNack),
		dropTimeout:      m.dropped.WithLabelValues(t, ReasonTimeout),
		dropNack:         m.dropped.WithLabelValues(t, ReasonNack),
		deadLettered:     m.deadLettered.WithLabelValues(t),
		deadLetterErr:    m.deadLetterErr.WithLabelValues(t),
		truncated:        m.truncated.WithLabelValues(t),
		filtered:         m.filtered.WithLabelValues(t),
		inFlight:         m.inFlight.WithLabelValues(t),
		buffered:         m.buffered.WithLabelValues(t),
	}
}

func (tm *topicMetrics) redelivered(reason string) prometheus.Counter {
	if reason == ReasonNack {
		return tm.redeliverNack
	}
	return tm.redeliverTimeout
}

func (tm *topicMetrics) dropped(reason string) prometheus.Counter {
	if reason == ReasonNack {
		return tm.dropNack
	}
	return tm.dropTimeout
}

// markDirtyLocked notes that ut's metrics changed since unlock last
// published them.
func (e *Engine) markDirtyLocked(ut *unitTopic) {
	if !ut.dirty {
		ut.dirty = true
		e.dirty = append(e.dirty, ut)
	}
}

// unlock publishes the metrics changed under the lock, then releases it.
// Every critical section ends here, so the exported values are exact
// whenever the lock is free, while the hot paths (admit, pull, submit)
// touch each shared Prometheus value once per call rather than several
// times per message.
func (e *Engine) unlock() {
	for i, ut := range e.dirty {
		ut.dirty = false
		e.dirty[i] = nil
		if d := ut.inFlight - ut.pubInFlight; d != 0 {
			ut.tm.inFlight.Add(float64(d))
			ut.pubInFlight = ut.inFlight
		}
		if d := ut.buffered - ut.pubBuffered; d != 0 {
			ut.tm.buffered.Add(float64(d))
			ut.pubBuffered = ut.buffered
		}
		if ut.pulled != 0 {
			ut.tm.pulled.Add(float64(ut.pulled))
			ut.pulled = 0
		}
		if ut.acked != 0 {
			ut.tm.acked.Add(float64(ut.acked))
			ut.acked = 0
		}
	}
	e.dirty = e.dirty[:0]
	if d := e.bytes - e.pubBytes; d != 0 {
		e.m.bufferedBytes.Add(float64(d))
		e.pubBytes = e.bytes
	}
	e.mu.Unlock()
}
