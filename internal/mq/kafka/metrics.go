package kafka

import (
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	metrics "github.com/rcrowley/go-metrics"
	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/promx"
)

// Metrics, labelled by Options.Cluster. All producers registered with one
// prometheus.Registerer share one collector (the hub below): a hot reload
// builds the new producer of a cluster before closing the old one, and two
// collectors with the same descriptors could not both be registered.
var (
	descRecordsPerRequest = prometheus.NewDesc(
		"carrera_kafka_producer_records_per_request",
		"Records per produce request (coalescing). Count and sum are totals since start; "+
			"quantiles come from sarama's recent sample.",
		[]string{"cluster"}, nil)
	descBufferBytes = prometheus.NewDesc(
		"carrera_kafka_producer_buffer_bytes",
		"Bytes of records handed to the producer and not yet completed (bounded by bufferMemory).",
		[]string{"cluster"}, nil)
	descBufferFull = prometheus.NewDesc(
		"carrera_kafka_producer_buffer_full_total",
		"Records refused because bufferMemory was exhausted.",
		[]string{"cluster"}, nil)
)

var quantiles = []float64{0.5, 0.9, 0.99}

// hub holds one collector per Registerer.
var hub = struct {
	mu sync.Mutex
	m  map[prometheus.Registerer]*collector
}{m: make(map[prometheus.Registerer]*collector)}

type collector struct {
	producers []*Producer // guarded by hub.mu
}

// registerMetrics adds p to reg's collector, registering it first if
// needed, and returns the function that removes p again.
func registerMetrics(reg prometheus.Registerer, p *Producer) (unregister func()) {
	if reg == nil {
		return func() {}
	}
	hub.mu.Lock()
	defer hub.mu.Unlock()
	c := hub.m[reg]
	if c == nil {
		c = &collector{}
		if err := reg.Register(c); err != nil {
			p.log.Warn("kafka producer metrics not registered", zap.Error(err))
			return func() {}
		}
		hub.m[reg] = c
	}
	c.producers = append(c.producers, p)
	var once sync.Once
	return func() {
		once.Do(func() {
			hub.mu.Lock()
			defer hub.mu.Unlock()
			c.producers = slices.DeleteFunc(c.producers, func(q *Producer) bool { return q == p })
			if len(c.producers) == 0 {
				reg.Unregister(c)
				delete(hub.m, reg)
			}
		})
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRecordsPerRequest
	ch <- descBufferBytes
	ch <- descBufferFull
}

type clusterSums struct {
	requests uint64
	records  float64
	quant    map[float64]float64
	buffer   float64
	full     float64
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	hub.mu.Lock()
	ps := slices.Clone(c.producers)
	hub.mu.Unlock()
	sums := map[string]*clusterSums{}
	var order []string
	for _, p := range ps {
		s := sums[p.opts.Cluster]
		if s == nil {
			s = &clusterSums{}
			sums[p.opts.Cluster] = s
			order = append(order, p.opts.Cluster)
		}
		s.buffer += float64(p.inflight.Load())
		s.full += float64(p.bufFull.Load())
		reqs, recs, q := saramaRecordsPerRequest(p.cfg.MetricRegistry)
		s.requests += reqs
		s.records += recs
		if reqs > 0 {
			s.quant = q // the newest producer's sample
		}
	}
	for _, cl := range order {
		s := sums[cl]
		ch <- prometheus.MustNewConstSummary(descRecordsPerRequest, s.requests, s.records, s.quant, cl)
		ch <- prometheus.MustNewConstMetric(descBufferBytes, prometheus.GaugeValue, s.buffer, cl)
		ch <- prometheus.MustNewConstMetric(descBufferFull, prometheus.CounterValue, s.full, cl)
	}
}

// saramaRecordsPerRequest reads sarama's go-metrics: the
// "records-per-request" histogram counts produce requests (its Count is a
// total; its sample is recent), the "record-send-rate" meter counts the
// records in them. Both stay 0 under metrics.UseNilMetrics.
func saramaRecordsPerRequest(r metrics.Registry) (requests uint64, records float64, q map[float64]float64) {
	if r == nil {
		return 0, 0, nil
	}
	h, _ := r.Get("records-per-request").(metrics.Histogram)
	m, _ := r.Get("record-send-rate").(metrics.Meter)
	if h == nil || m == nil {
		return 0, 0, nil
	}
	snap := h.Snapshot()
	if snap.Count() <= 0 {
		return 0, 0, nil
	}
	q = make(map[float64]float64, len(quantiles))
	for i, v := range snap.Percentiles(quantiles) {
		q[quantiles[i]] = v
	}
	return uint64(snap.Count()), float64(m.Snapshot().Count()), q
}

var sharedCopiesOpts = prometheus.CounterOpts{
	Name: "carrera_kafka_consumer_shared_copies_total",
	Help: "Fetched message bodies copied because a claim channel of the member held a body shared with " +
		"sarama's fetch response for more than mq.ShareWindow of the member's traffic (a claim reader stopped " +
		"by a limit or a slow consumer); otherwise bodies stay windows into the responses.",
}

// sharedCopies returns the increment of the (cluster, group) child of the
// shared-copies counter registered with reg (registered by the first
// consumer, shared by the others; local without reg).
func sharedCopies(reg prometheus.Registerer, cluster, group string) func() {
	v, _ := promx.Register(reg, prometheus.NewCounterVec(sharedCopiesOpts, []string{"cluster", "group"}))
	return v.WithLabelValues(cluster, group).Inc
}
