package chronos

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the delay service's Prometheus series (prefix chronos_).
type metrics struct {
	pending      prometheus.Gauge
	lateness     prometheus.Histogram
	cancels      *prometheus.CounterVec // result: stored, late, matched, unmatched_loop_moved
	sendFailures *prometheus.CounterVec // code: failed attempts (retried)
	discarded    *prometheus.CounterVec // reason: permanent send codes, corrupt store entries
	ingested     *prometheus.CounterVec // kind: add_delay, add_loop, cancel, invalid
	delivered    *prometheus.CounterVec // path: seek (stored, fired by the seek loop), ingest (due at ingestion)
	catchUp      prometheus.Counter
	backupHeld   prometheus.Counter
	seek         prometheus.Gauge
	seekLag      prometheus.Gauge
	master       prometheus.Gauge
	batches      prometheus.Counter
	storeErrors  prometheus.Counter
	retention    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chronos_pending_messages",
			Help: "Stored occurrences not yet fired (data keys at or after the seek second)."}),
		lateness: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "chronos_fire_lateness_seconds",
			Help:    "Time from an occurrence's fire second to pproxy's OK for its delivery (seek-loop deliveries).",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.25, 1.5, 2, 3, 5, 10, 30, 60, 300}}),
		cancels: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chronos_cancels_total",
			Help: "CANCEL handling: stored (tombstone written), late (occurrence already fired), matched (an occurrence was suppressed), moved (an unmatched loop tombstone re-inserted at its next occurrence)."},
			[]string{"result"}),
		sendFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chronos_send_failures_total",
			Help: "Failed delivery attempts by pproxy result code (\"transport\" for connection errors); retried unless permanent."},
			[]string{"code"}),
		discarded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chronos_discarded_total",
			Help: "Deliveries given up: permanent pproxy codes (11, 13, 14), client-side missing parameters (102), undecodable store entries (corrupt)."},
			[]string{"reason"}),
		ingested: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chronos_ingested_total",
			Help: "Inner messages ingested, by kind (add_delay, add_loop, cancel, invalid)."}, []string{"kind"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chronos_delivered_total",
			Help: "Occurrences delivered (pproxy answered OK), by path: seek (fired from the store), ingest (already due when ingested)."},
			[]string{"path"}),
		catchUp: prometheus.NewCounter(prometheus.CounterOpts{Name: "chronos_catchup_skipped_total",
			Help: "Already-due loop occurrences skipped at ingestion beyond maxCatchUp per message."}),
		backupHeld: prometheus.NewCounter(prometheus.CounterOpts{Name: "chronos_backup_held_total",
			Help: "Inner messages a backup left un-acknowledged because they were beyond the master's published offset."}),
		seek: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chronos_seek_timestamp_seconds",
			Help: "The next second the seek loop will process (epoch seconds)."}),
		seekLag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chronos_seek_lag_seconds",
			Help: "Wall-clock second minus the last completed second (0 when on time)."}),
		master: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chronos_master",
			Help: "1 while this node acts as master (delivers and publishes), 0 as backup."}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{Name: "chronos_ingest_batches_total",
			Help: "Pulled batches written to the store (one synchronous commit each)."}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "chronos_store_errors_total",
			Help: "Failed store commits (the batch is not acknowledged and is redelivered)."}),
		retention: prometheus.NewCounter(prometheus.CounterOpts{Name: "chronos_retention_runs_total",
			Help: "Retention runs (range deletion of keys older than seek - saveHours)."}),
	}
	reg.MustRegister(m.pending, m.lateness, m.cancels, m.sendFailures, m.discarded, m.ingested, m.delivered,
		m.catchUp, m.backupHeld, m.seek, m.seekLag, m.master, m.batches, m.storeErrors, m.retention)
	return m
}
