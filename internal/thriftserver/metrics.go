package thriftserver

import (
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/promx"
)

// metrics are the server's Prometheus collectors. Every metric carries the
// const label server=<Options.Name>, so pproxy and cproxy servers can share
// one registry. A nil *metrics (no Registerer) records nothing.
type metrics struct {
	connsOpen     prometheus.Gauge
	connsAccepted prometheus.Counter
	inFlight      prometheus.Gauge
	rejects       *prometheus.CounterVec
}

// newMetrics registers the collectors with reg; nil reg means no metrics.
// A collector already registered under the same name and label (a second
// server with the same Name) is reused; any other registration error is
// logged and that collector stays unregistered but usable.
func newMetrics(name string, reg prometheus.Registerer, log *zap.Logger) *metrics {
	if reg == nil {
		return nil
	}
	labels := prometheus.Labels{"server": name}
	m := &metrics{
		connsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "carrera", Subsystem: "thrift", Name: "connections_open",
			Help: "Open client connections.", ConstLabels: labels,
		}),
		connsAccepted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "carrera", Subsystem: "thrift", Name: "connections_accepted_total",
			Help: "Client connections accepted.", ConstLabels: labels,
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "carrera", Subsystem: "thrift", Name: "requests_in_flight",
			Help: "Requests being read, processed or answered.", ConstLabels: labels,
		}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "carrera", Subsystem: "thrift", Name: "frames_rejected_total",
			Help:        "Connections closed because of a bad frame or request, by reason.",
			ConstLabels: labels,
		}, []string{"reason"}),
	}
	m.connsOpen = register(reg, m.connsOpen, log)
	m.connsAccepted = register(reg, m.connsAccepted, log)
	m.inFlight = register(reg, m.inFlight, log)
	m.rejects = register(reg, m.rejects, log)
	// Pre-create every reason so dashboards see zeros.
	for _, r := range []string{
		reasonFrameTooLarge, reasonFrameSizeInvalid, reasonUnknownProtocol, reasonProtocolMismatch,
		reasonMalformed, reasonTruncated, reasonReadTimeout, reasonPanic,
	} {
		m.rejects.WithLabelValues(r)
	}
	return m
}

// register registers c through promx.Register, logging a refusal.
func register[C prometheus.Collector](reg prometheus.Registerer, c C, log *zap.Logger) C {
	c, err := promx.Register(reg, c)
	if err != nil {
		log.Warn("thrift server: metric registration failed", zap.Error(err))
	}
	return c
}

func (m *metrics) connOpened() {
	if m != nil {
		m.connsOpen.Inc()
		m.connsAccepted.Inc()
	}
}

func (m *metrics) connClosed() {
	if m != nil {
		m.connsOpen.Dec()
	}
}

func (m *metrics) requestStarted() {
	if m != nil {
		m.inFlight.Inc()
	}
}

func (m *metrics) requestDone() {
	if m != nil {
		m.inFlight.Dec()
	}
}

func (m *metrics) rejected(reason string) {
	if m != nil {
		m.rejects.WithLabelValues(reason).Inc()
	}
}
