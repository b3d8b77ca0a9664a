package rocketmq

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/promx"
)

// Metric vectors, labelled by cluster. Every producer registered with one
// prometheus.Registerer shares the vectors (a hot reload builds the new
// producer of a cluster before closing the old one; registering the same
// descriptors twice would fail, so an AlreadyRegisteredError hands back
// the vector registered first). Counters keep counting across rebuilds.
type producerMetrics struct {
	requests   *prometheus.CounterVec   // cluster, kind, result
	perRequest *prometheus.HistogramVec // cluster, kind
	latency    *prometheus.HistogramVec // cluster, kind
	recordsVec *prometheus.CounterVec   // cluster, result
	inflightG  *prometheus.GaugeVec     // cluster
	routes     *prometheus.CounterVec   // cluster, result

	inflight prometheus.Gauge
	cluster  string
}

func newProducerMetrics(reg prometheus.Registerer, cluster string, log *zap.Logger) *producerMetrics {
	m := &producerMetrics{
		cluster: cluster,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "carrera_rocketmq_producer_requests_total",
			Help: "Send requests to RocketMQ brokers by kind (single, batch: sendBatchSync, auto: auto-batch) and result (ok, error).",
		}, []string{"cluster", "kind", "result"}),
		perRequest: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "carrera_rocketmq_producer_messages_per_request",
			Help:    "Messages per send request (1 = SEND_MESSAGE, more = SEND_BATCH_MESSAGE).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}, []string{"cluster", "kind"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "carrera_rocketmq_producer_request_duration_seconds",
			Help:    "Time from handing a request to the client until the broker's answer.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
		}, []string{"cluster", "kind"}),
		recordsVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "carrera_rocketmq_producer_records_total",
			Help: "Records completed by result: ok, timeout, topic_not_exist, too_large, illegal, closed, error.",
		}, []string{"cluster", "result"}),
		inflightG: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "carrera_rocketmq_producer_records_in_flight",
			Help: "Records handed to the client and not yet answered.",
		}, []string{"cluster"}),
		routes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "carrera_rocketmq_producer_route_lookups_total",
			Help: "Topic route lookups at the NameServer by result (ok, not_exist, error).",
		}, []string{"cluster", "result"}),
	}
	if reg != nil {
		m.requests = registerCollector(reg, m.requests, log)
		m.perRequest = registerCollector(reg, m.perRequest, log)
		m.latency = registerCollector(reg, m.latency, log)
		m.recordsVec = registerCollector(reg, m.recordsVec, log)
		m.inflightG = registerCollector(reg, m.inflightG, log)
		m.routes = registerCollector(reg, m.routes, log)
	}
	m.inflight = m.inflightG.WithLabelValues(cluster)
	return m
}

// registerCollector registers c through promx.Register, logging a
// refusal.
func registerCollector[C prometheus.Collector](reg prometheus.Registerer, c C, log *zap.Logger) C {
	c, err := promx.Register(reg, c)
	if err != nil {
		log.Warn("rocketmq producer metric not registered", zap.Error(err))
	}
	return c
}

// request counts one request's outcome.
func (m *producerMetrics) request(kind sendKind, msgs int, took time.Duration, err error) {
	k := kind.String()
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.requests.WithLabelValues(m.cluster, k, result).Inc()
	m.perRequest.WithLabelValues(m.cluster, k).Observe(float64(msgs))
	if took > 0 {
		m.latency.WithLabelValues(m.cluster, k).Observe(took.Seconds())
	}
}

// records counts n completed records by outcome.
func (m *producerMetrics) records(n int, err error) {
	m.recordsVec.WithLabelValues(m.cluster, resultLabel(err)).Add(float64(n))
}

func resultLabel(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, mq.ErrTimeout):
		return "timeout"
	case errors.Is(err, mq.ErrTopicNotExist):
		return "topic_not_exist"
	case errors.Is(err, mq.ErrMessageTooLarge):
		return "too_large"
	case errors.Is(err, mq.ErrMessageIllegal):
		return "illegal"
	case errors.Is(err, mq.ErrClosed):
		return "closed"
	default:
		return "error"
	}
}

func (m *producerMetrics) routeLookup(err error) {
	r := "ok"
	switch {
	case err == nil:
	case errors.Is(err, mq.ErrTopicNotExist):
		r = "not_exist"
	default:
		r = "error"
	}
	m.routes.WithLabelValues(m.cluster, r).Inc()
}

// unregister is a no-op: the vectors are shared by the cluster's
// producers and their counters must keep counting across rebuilds. The
// in-flight gauge returns to zero by itself.
func (m *producerMetrics) unregister() {}
