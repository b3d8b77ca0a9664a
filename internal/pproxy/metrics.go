package pproxy

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the producer proxy. Topic labels are only ever served topic
// names (or "_unserved"), so clients cannot blow up label cardinality.
type metrics struct {
	calls         *prometheus.CounterVec   // method, topic, code
	latency       *prometheus.HistogramVec // method
	batchSize     prometheus.Histogram
	limiterReject *prometheus.CounterVec // topic
	limiterWarn   *prometheus.CounterVec // topic
	limiterRetry  *prometheus.CounterVec // topic
	timeoutRetry  *prometheus.CounterVec // topic
	inflight      prometheus.Gauge

	callCache    sync.Map // callKey → prometheus.Counter
	latencyCache sync.Map // method → prometheus.Observer
}

const unservedTopic = "_unserved"

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pproxy_calls_total", Help: "ProducerService calls by method, topic and result code.",
		}, []string{"method", "topic", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pproxy_call_duration_seconds",
			Help:    "ProducerService call latency by method.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 5, 10},
		}, []string{"method"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pproxy_send_batch_messages", Help: "Messages per sendBatchSync call.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		limiterReject: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pproxy_limiter_rejections_total", Help: "Rate-limiter rejections (before the one retry) by topic.",
		}, []string{"topic"}),
		limiterWarn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pproxy_limiter_warnings_total", Help: "Admissions from a warning bucket by topic.",
		}, []string{"topic"}),
		limiterRetry: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pproxy_limiter_retries_total", Help: "Requests rescheduled once after a limiter rejection.",
		}, []string{"topic"}),
		timeoutRetry: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pproxy_timeout_retries_total", Help: "Proxy-side timeout re-sends by topic.",
		}, []string{"topic"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pproxy_calls_in_flight", Help: "ProducerService calls being processed.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.calls, m.latency, m.batchSize, m.limiterReject, m.limiterWarn,
			m.limiterRetry, m.timeoutRetry, m.inflight)
	}
	return m
}

type callKey struct {
	method, topic string
	code          Code
}

// call counts one call. Counters are cached per label set: the label
// values are bounded (served topics × methods × codes).
func (m *metrics) call(method, topic string, c Code) {
	k := callKey{method, topic, c}
	if ctr, ok := m.callCache.Load(k); ok {
		ctr.(prometheus.Counter).Inc()
		return
	}
	ctr := m.calls.WithLabelValues(method, topic, strconv.Itoa(int(c)))
	m.callCache.Store(k, ctr)
	ctr.Inc()
}

// observe records a call's latency.
func (m *metrics) observe(method string, d time.Duration) {
	if o, ok := m.latencyCache.Load(method); ok {
		o.(prometheus.Observer).Observe(d.Seconds())
		return
	}
	o := m.latency.WithLabelValues(method)
	m.latencyCache.Store(method, o)
	o.Observe(d.Seconds())
}
