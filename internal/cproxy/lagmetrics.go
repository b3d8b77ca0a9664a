package cproxy

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
)

// GroupTopic is one subscribed topic of a running pull group.
type GroupTopic struct {
	Group, Topic string
}

// ConsumeStatsFunc answers the offsets of one group's topic, as
// StatsSource.ConsumeStats does.
type ConsumeStatsFunc func(ctx context.Context, group, topic string) ([]*consumer.ConsumeStats, error)

// DefaultLagScrapeTimeout bounds one scrape's broker queries.
const DefaultLagScrapeTimeout = 5 * time.Second

// lagScrapeParallelism is how many (group, topic) queries run at once.
const lagScrapeParallelism = 4

// LagCollector exports, on every scrape, the committed (consume) and
// log-end (produce) offsets and their difference per qid of every
// (group, topic) the groups function lists:
//
//	cproxy_consume_offset{group,topic,qid}
//	cproxy_produce_offset{group,topic,qid}
//	cproxy_lag{group,topic,qid}            produce − consume, ≥ 0
//
// A qid without a committed offset has no consume and no lag series. A
// (group, topic) whose query fails or times out is left out of that scrape
// and counted in cproxy_lag_scrape_errors_total.
type LagCollector struct {
	groups  func() []GroupTopic
	stats   ConsumeStatsFunc
	timeout time.Duration

	errors atomic.Uint64

	consumeDesc, produceDesc, lagDesc, errorsDesc *prometheus.Desc
}

var _ prometheus.Collector = (*LagCollector)(nil)

// NewLagCollector returns a collector querying stats for every entry of
// groups() with a scrape budget of timeout (<= 0: DefaultLagScrapeTimeout).
func NewLagCollector(groups func() []GroupTopic, stats ConsumeStatsFunc, timeout time.Duration) *LagCollector {
	if timeout <= 0 {
		timeout = DefaultLagScrapeTimeout
	}
	labels := []string{"group", "topic", "qid"}
	return &LagCollector{
		groups: groups, stats: stats, timeout: timeout,
		consumeDesc: prometheus.NewDesc("cproxy_consume_offset",
			"Committed offset of the group per queue (next offset to consume).", labels, nil),
		produceDesc: prometheus.NewDesc("cproxy_produce_offset",
			"Log-end offset (high watermark) per queue of a group's subscribed topic.", labels, nil),
		lagDesc: prometheus.NewDesc("cproxy_lag",
			"Messages not yet consumed by the group per queue: produce offset minus consume offset, at least 0.", labels, nil),
		errorsDesc: prometheus.NewDesc("cproxy_lag_scrape_errors_total",
			"Offset queries of the lag collector that failed or timed out.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *LagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.consumeDesc
	ch <- c.produceDesc
	ch <- c.lagDesc
	ch <- c.errorsDesc
}

type lagSeries struct{ group, topic, qid string }

// Collect implements prometheus.Collector.
func (c *LagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()

	var list []GroupTopic
	seen := map[GroupTopic]bool{}
	for _, gt := range c.groups() {
		if gt.Group == "" || seen[gt] {
			continue
		}
		seen[gt] = true
		list = append(list, gt)
	}
	results := make([][]*consumer.ConsumeStats, len(list))
	sem := make(chan struct{}, lagScrapeParallelism)
	var wg sync.WaitGroup
	for i, gt := range list {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			st, err := c.query(ctx, gt)
			if err != nil {
				c.errors.Add(1)
				return
			}
			results[i] = st
		}()
	}
	wg.Wait()

	// One series per (group, topic, qid) even if answers overlap (a
	// registry rejects a whole scrape with duplicate series).
	done := map[lagSeries]bool{}
	for i, sts := range results {
		for _, st := range sts {
			if st == nil {
				continue
			}
			group, topic := st.GetGroup(), st.GetTopic()
			if group == "" {
				group = list[i].Group
			}
			if topic == "" {
				topic = list[i].Topic
			}
			for qid, produced := range st.ProduceOffsets {
				key := lagSeries{group, topic, qid}
				if done[key] {
					continue
				}
				done[key] = true
				ch <- prometheus.MustNewConstMetric(c.produceDesc, prometheus.GaugeValue, float64(produced), group, topic, qid)
				if consumed, ok := st.ConsumeOffsets[qid]; ok {
					ch <- prometheus.MustNewConstMetric(c.consumeDesc, prometheus.GaugeValue, float64(consumed), group, topic, qid)
					ch <- prometheus.MustNewConstMetric(c.lagDesc, prometheus.GaugeValue, float64(max(produced-consumed, 0)), group, topic, qid)
				}
			}
			// Committed offsets of queues without a produce offset: no lag.
			for qid, consumed := range st.ConsumeOffsets {
				key := lagSeries{group, topic, qid}
				if _, ok := st.ProduceOffsets[qid]; ok || done[key] {
					continue
				}
				done[key] = true
				ch <- prometheus.MustNewConstMetric(c.consumeDesc, prometheus.GaugeValue, float64(consumed), group, topic, qid)
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(c.errorsDesc, prometheus.CounterValue, float64(c.errors.Load()))
}

// query runs one stats call; a call that ignores ctx is abandoned at the
// deadline (its goroutine finishes in the background).
func (c *LagCollector) query(ctx context.Context, gt GroupTopic) ([]*consumer.ConsumeStats, error) {
	type answer struct {
		st  []*consumer.ConsumeStats
		err error
	}
	ans := make(chan answer, 1)
	go func() {
		st, err := c.stats(ctx, gt.Group, gt.Topic)
		ans <- answer{st, err}
	}()
	select {
	case a := <-ans:
		return a.st, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
