package engine

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/mq/memory"
	"github.com/ddmq-go/carrera/internal/offset"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const cluster = "K"

// harness runs one engine on a memory consumer inside a synctest bubble:
// time is virtual, advance moves it, and synctest.Wait is the barrier after
// which every engine goroutine is idle.
type harness struct {
	t      *testing.T
	e      *Engine
	c      *memory.Consumer
	reg    *prometheus.Registry
	logs   *observer.ObservedLogs
	cancel context.CancelFunc
	done   chan error
}

type harnessOpt func(*Options)

func newHarness(t *testing.T, topics map[string]int, s Settings, opts ...harnessOpt) *harness {
	t.Helper()
	c := memory.NewConsumer(memory.ConsumerOptions{Topics: topics})
	return startHarness(t, c, topics, s, opts...)
}

func startHarness(t *testing.T, c *memory.Consumer, topics map[string]int, s Settings, opts ...harnessOpt) *harness {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	reg := prometheus.NewRegistry()
	o := Options{Group: "g", Log: zap.New(core), Registerer: reg}
	for _, f := range opts {
		f(&o)
	}
	h := &harness{t: t, c: c, reg: reg, logs: logs, e: New(o)}
	subs := map[UnitTopic]Settings{}
	for tp := range topics {
		subs[UnitTopic{Cluster: cluster, Topic: tp}] = s
	}
	h.e.Configure(subs)
	h.run()
	t.Cleanup(h.stop)
	return h
}

// run starts the consumer's Run with the engine's handler.
func (h *harness) run() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- h.c.Run(ctx, h.e.Handler(cluster)) }()
	synctest.Wait()
}

// stopConsumer ends the consumer's Run (claims end, final commits).
func (h *harness) stopConsumer() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	if err := <-h.done; err != nil {
		h.t.Errorf("consumer Run: %v", err)
	}
	h.cancel = nil
}

func (h *harness) stop() {
	h.stopConsumer()
	h.e.Close()
}

// settings returns test settings: generous limits, no retries, no order.
func settings() Settings {
	return Settings{
		Timeout:          time.Second,
		MaxRetry:         2,
		RetryIntervals:   []int{100, 200},
		Concurrency:      1000,
		MaxConsumeLag:    -1,
		MaxPullBatchSize: 100,
	}
}

// advance moves virtual time forward and waits until everything settled.
func advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// appendN appends n messages with bodies "m<i>" to (topic, partition).
func (h *harness) appendN(topic string, partition int32, n int) {
	for range n {
		h.c.Append(topic, partition, "", []byte("msg"))
	}
	synctest.Wait()
}

// pull pulls without lingering beyond the minimum (20 ms of virtual time
// when nothing is there).
func (h *harness) pull(topic string, maxMsgs int) Batch {
	h.t.Helper()
	b, err := h.e.Pull(context.Background(), topic, maxMsgs, 0)
	if err != nil {
		h.t.Fatalf("Pull: %v", err)
	}
	return b
}

func offsets(b Batch) []int64 {
	out := make([]int64, len(b.Messages))
	for i, d := range b.Messages {
		out[i] = d.Offset
	}
	return out
}

func (h *harness) expectPull(topic string, maxMsgs int, want ...int64) Batch {
	h.t.Helper()
	b := h.pull(topic, maxMsgs)
	if got := offsets(b); !slices.Equal(got, want) {
		h.t.Fatalf("pull(%q, %d) = %s %v, want %v", topic, maxMsgs, b.QID, got, want)
	}
	return b
}

func (h *harness) expectEmpty(topic string) {
	h.t.Helper()
	if b := h.pull(topic, 0); len(b.Messages) != 0 {
		h.t.Fatalf("pull(%q) = %s %v, want nothing", topic, b.QID, offsets(b))
	}
}

// committed waits out the commit interval and returns the commit state.
func (h *harness) committed(topic string, partition int32) mq.CommittedOffset {
	advance(DefaultCommitInterval)
	return h.c.Committed(topic, partition)
}

// finished decodes a commit and returns which of the offsets in [lo, hi)
// it records as finished (below the committed offset or in the metadata).
func finished(t *testing.T, co mq.CommittedOffset, lo, hi int64) []int64 {
	t.Helper()
	if co.Offset < 0 {
		return nil
	}
	tr, err := offset.Decode(co.Offset, co.Metadata)
	if err != nil {
		t.Fatalf("decode %+v: %v", co, err)
	}
	var out []int64
	for o := lo; o < hi; o++ {
		if o < co.Offset || !tr.Start(o) {
			out = append(out, o)
		}
	}
	return out
}

// metric returns the value of the counter or gauge name whose labels
// include want (summed over matches).
func (h *harness) metric(name string, want map[string]string) float64 {
	h.t.Helper()
	return gather(h.t, h.reg, name, want)
}

// histogram returns the sample count and sum of the engine histogram name.
func (h *harness) histogram(name string) (count uint64, sum float64) {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hg := m.GetHistogram(); hg != nil {
				count += hg.GetSampleCount()
				sum += hg.GetSampleSum()
			}
		}
	}
	return count, sum
}

func gather(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for k, v := range want {
				if !hasLabel(m, k, v) {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

func hasLabel(m *dto.Metric, k, v string) bool {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == k && lp.GetValue() == v {
			return true
		}
	}
	return false
}

func newTestConsumer(topics map[string]int) *memory.Consumer {
	return memory.NewConsumer(memory.ConsumerOptions{Topics: topics})
}

// timers returns how many timers of kind the engine has scheduled.
func (h *harness) timers(kind timerKind) int {
	h.e.mu.Lock()
	defer h.e.mu.Unlock()
	n := 0
	for _, t := range h.e.timers {
		if t.kind == kind {
			n++
		}
	}
	return n
}
