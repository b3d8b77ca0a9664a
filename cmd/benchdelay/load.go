package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ddmq-go/carrera/gen-go/carrera/producer"
	bu "github.com/ddmq-go/carrera/internal/benchutil"
)

// Message i of a phase has the uuid "<phase 8 hex>-0000-4000-8000-<i 12 hex>"
// and fire second first + fireOffset(i): the consumer recovers both from the
// delivered key alone.

func uuidOf(phase uint32, i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", phase, i) }

// fireOffset spreads message i pseudo-randomly (fixed seed) over [0, spread).
func fireOffset(i int, spread int64) int64 {
	r := rand.New(rand.NewPCG(uint64(i), 0x5eed))
	return r.Int64N(spread)
}

// parseKey returns the phase, index and fire second of a delivered key.
func parseKey(key string) (phase uint32, idx int, fire int64, ok bool) {
	if len(key) < 10+36 {
		return 0, 0, 0, false
	}
	f, err1 := strconv.ParseInt(key[:10], 10, 64)
	u := key[len(key)-36:]
	p, err2 := strconv.ParseUint(u[:8], 16, 32)
	i, err3 := strconv.ParseUint(u[24:], 16, 63)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, 0, false
	}
	return uint32(p), int(i), f, true
}

// sendLoad calls sendDelaySync for n messages from conns connections; it
// marks the messages answered OK in c and returns their number and the
// first error.
func sendLoad(ctx context.Context, addr string, conns, n int, phase uint32, topic string, first, spread int64, body []byte, c *collector) (int64, error) {
	var next, ok atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range conns {
		cfg := &thrift.TConfiguration{ConnectTimeout: 5 * time.Second, SocketTimeout: 30 * time.Second}
		trans := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(addr, cfg), cfg)
		if err := trans.Open(); err != nil {
			return 0, err
		}
		p := thrift.NewTCompactProtocolConf(trans, cfg)
		pc := producer.NewProducerServiceClient(thrift.NewTStandardClient(p, p))
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer trans.Close()
			typ := int32(2)
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				ts, u := first+fireOffset(i, spread), uuidOf(phase, i)
				r, err := pc.SendDelaySync(ctx, &producer.DelayMessage{Topic: topic, Body: body, Action: 1,
					Timestamp: &ts, Dmsgtype: &typ, UUID: &u}, 3000)
				if err == nil && r.Code != 0 {
					err = fmt.Errorf("code %d %s", r.Code, r.Msg)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				ok.Add(1)
				c.scheduled(i)
			}
		}()
	}
	wg.Wait()
	return ok.Load(), firstErr
}

// collector reads a user topic and records, per message, the lateness of
// its first delivery (record timestamp − fire second) and duplicates.
type collector struct {
	phase uint32
	n     int

	mu       sync.Mutex
	ok       []bool // scheduled (answered OK); nil = all
	seen     []uint8
	lateMs   []int64
	distinct int
	dups     int
	early    int
	foreign  int
	last     time.Time
}

func newCollector(phase uint32, n int) *collector {
	return &collector{phase: phase, n: n, seen: make([]uint8, n), lateMs: make([]int64, 0, n)}
}

func (c *collector) add(m *sarama.ConsumerMessage) {
	phase, i, fire, ok := parseKey(string(m.Key))
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ok || phase != c.phase || i >= c.n {
		c.foreign++
		return
	}
	if c.seen[i] < 255 {
		c.seen[i]++
	}
	if c.seen[i] > 1 {
		c.dups++
		return
	}
	c.distinct++
	late := m.Timestamp.Sub(time.Unix(fire, 0)).Milliseconds()
	if late < 0 {
		c.early++
	}
	c.lateMs = append(c.lateMs, late)
	c.last = time.Now()
}

// scheduled marks message i as answered OK (only these are expected).
func (c *collector) scheduled(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ok == nil {
		c.ok = make([]bool, c.n)
	}
	c.ok[i] = true
}

// missing counts scheduled messages never delivered, and deliveries of
// messages that were not answered OK (a timeout that was stored anyway).
func (c *collector) missing() (missing, extra int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.n {
		want := c.ok == nil || c.ok[i]
		switch {
		case want && c.seen[i] == 0:
			missing++
		case !want && c.seen[i] > 0:
			extra++
		}
	}
	return missing, extra
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.distinct
}

// consume reads every partition of topic from the oldest offset into c
// until ctx ends.
func consume(ctx context.Context, brokers, topic string, c *collector) (func(), error) {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.ClientID = "benchdelay-consumer"
	cfg.Consumer.Return.Errors = true
	client, err := sarama.NewClient([]string{brokers}, cfg)
	if err != nil {
		return nil, err
	}
	cons, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	parts, err := client.Partitions(topic)
	if err != nil {
		_ = cons.Close()
		_ = client.Close()
		return nil, err
	}
	var wg sync.WaitGroup
	for _, p := range parts {
		pc, err := cons.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			_ = cons.Close()
			_ = client.Close()
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case m := <-pc.Messages():
					c.add(m)
				case err := <-pc.Errors():
					logf("consumer %s/%d: %v", topic, p, err)
				case <-ctx.Done():
					_ = pc.Close()
					return
				}
			}
		}()
	}
	return func() { wg.Wait(); _ = cons.Close(); _ = client.Close() }, nil
}

// sample is one reading of the delay service process.
type sample struct {
	at         time.Time
	rssKiB     int64
	pending    float64
	storeBytes float64
}

// sampler reads the delay service's RSS (/proc) and metrics every second.
type sampler struct {
	mu      sync.Mutex
	samples []sample
}

func (s *sampler) run(ctx context.Context, pid int, admin string) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		rss, err := bu.ProcStatusKiB(pid, "VmRSS")
		if err == nil {
			m := scrape(admin)
			s.mu.Lock()
			s.samples = append(s.samples, sample{at: time.Now(), rssKiB: rss, pending: m["chronos_pending_messages"],
				storeBytes: m["chronos_store_disk_bytes"]})
			s.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *sampler) all() []sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sample(nil), s.samples...)
}

// scrape reads the samples of a Prometheus endpoint (none if it does not
// answer); an unlabelled metric is found under its name.
func scrape(admin string) bu.Metrics {
	m, err := bu.ScrapeMetrics(&http.Client{Timeout: 2 * time.Second}, admin)
	if err != nil {
		return bu.Metrics{}
	}
	return m
}

// waitFor polls cond every 100 ms until it holds, ctx ends or timeout.
func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// dirBytes is the total size of the files under dir.
func dirBytes(dir string) int64 {
	var n int64
	var walk func(string)
	walk = func(d string) {
		entries, err := os.ReadDir(d)
		if err != nil {
			return
		}
		for _, e := range entries {
			p := d + "/" + e.Name()
			if e.IsDir() {
				walk(p)
			} else if info, err := e.Info(); err == nil {
				n += info.Size()
			}
		}
	}
	walk(dir)
	return n
}

// percentiles of lateness in ms.
func latencyStats(ms []int64) (p50, p99, maxv int64) {
	if len(ms) == 0 {
		return 0, 0, 0
	}
	s := append([]int64(nil), ms...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return bu.Percentile(s, 50), bu.Percentile(s, 99), s[len(s)-1]
}

var errChildFailed = errors.New("direct child failed")
