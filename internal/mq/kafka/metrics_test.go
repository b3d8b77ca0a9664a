package kafka

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	metrics "github.com/rcrowley/go-metrics"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ddmq-go/carrera/internal/testenv"
)

func gather(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "carrera_kafka_producer_") {
			out[mf.GetName()] = mf
		}
	}
	return out
}

// Two producers of one cluster (a hot reload's overlap) share one
// collector; it leaves the registry with the last of them.
func TestMetricsHub(t *testing.T) {
	k := testenv.StartKafka(t, kfake.SeedTopics(1, "m"))
	reg := prometheus.NewRegistry()
	opts := testOptions(k)
	opts.Registerer = reg
	p1 := newTestProducer(t, opts)
	p2 := newTestProducer(t, opts)
	p1.inflight.Store(100)
	p2.inflight.Store(23)
	p2.bufFull.Store(4)

	mfs := gather(t, reg)
	if len(mfs) != 3 {
		t.Fatalf("metric families %v, want 3", mfs)
	}
	buf := mfs["carrera_kafka_producer_buffer_bytes"].GetMetric()
	if len(buf) != 1 || buf[0].GetGauge().GetValue() != 123 || buf[0].GetLabel()[0].GetValue() != "K_test" {
		t.Fatalf("buffer gauge %v, want one series of 123 for K_test", buf)
	}
	if v := mfs["carrera_kafka_producer_buffer_full_total"].GetMetric()[0].GetCounter().GetValue(); v != 4 {
		t.Fatalf("buffer-full counter %v, want 4", v)
	}
	p1.inflight.Store(0)
	p2.inflight.Store(0)
	if err := p1.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if len(gather(t, reg)) != 3 {
		t.Fatal("metrics gone while a producer of the cluster is alive")
	}
	if err := p2.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if mfs := gather(t, reg); len(mfs) != 0 {
		t.Fatalf("metrics left after the last producer closed: %v", mfs)
	}
	hub.mu.Lock()
	defer hub.mu.Unlock()
	if len(hub.m) != 0 {
		t.Fatalf("hub holds %d collectors", len(hub.m))
	}
}

// fakeHistogram and fakeMeter stand in for sarama's go-metrics, which
// UseNilMetrics (set for goleak) turns into stubs.
type fakeHistogram struct {
	metrics.Histogram
	count int64
	p     []float64
}

func (h fakeHistogram) Snapshot() metrics.Histogram     { return h }
func (h fakeHistogram) Count() int64                    { return h.count }
func (h fakeHistogram) Percentiles([]float64) []float64 { return h.p }

type fakeMeter struct {
	metrics.Meter
	count int64
}

func (m fakeMeter) Snapshot() metrics.Meter { return m }
func (m fakeMeter) Count() int64            { return m.count }

func TestRecordsPerRequestFromSarama(t *testing.T) {
	r := metrics.NewRegistry()
	if reqs, recs, q := saramaRecordsPerRequest(r); reqs != 0 || recs != 0 || q != nil {
		t.Fatalf("empty registry: %d %v %v", reqs, recs, q)
	}
	if err := r.Register("records-per-request", fakeHistogram{count: 10, p: []float64{3, 8, 20}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Register("record-send-rate", fakeMeter{count: 57}); err != nil {
		t.Fatal(err)
	}
	reqs, recs, q := saramaRecordsPerRequest(r)
	if reqs != 10 || recs != 57 || q[0.5] != 3 || q[0.9] != 8 || q[0.99] != 20 {
		t.Fatalf("got requests %d records %v quantiles %v", reqs, recs, q)
	}
}
