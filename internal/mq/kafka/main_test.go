package kafka

import (
	"context"
	"sync"
	"testing"
	"time"

	metrics "github.com/rcrowley/go-metrics"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/mq/mqtest"
	"github.com/ddmq-go/carrera/internal/testenv"
)

func TestMain(m *testing.M) {
	// sarama's go-metrics meters would leave a goroutine behind.
	metrics.UseNilMetrics = true
	goleak.VerifyTestMain(m)
}

// testOptions are fast-failing options for tests against k.
func testOptions(k *testenv.Kafka) Options {
	return Options{
		Cluster:         "K_test",
		Brokers:         k.Addrs(),
		RetryBackoff:    10 * time.Millisecond,
		MetadataTimeout: 5 * time.Second,
		AckTimeout:      5 * time.Second,
	}
}

func newTestProducer(t testing.TB, opts Options) *Producer {
	t.Helper()
	p, err := NewProducer(opts, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// reader adapts testenv.Kafka to mqtest.Reader and mqtest.Blocker.
type reader struct {
	k        *testenv.Kafka
	maxBytes int
}

func (r reader) CreateTopic(_ testing.TB, topic string, n int) { r.k.CreateTopic(topic, int32(n)) }
func (r reader) MaxMessageBytes() int                          { return r.maxBytes }

func (r reader) ReadAll(_ testing.TB, topic string) []mqtest.Record {
	var out []mqtest.Record
	for _, kr := range r.k.ReadAll(topic) {
		rec := mqtest.Record{Partition: kr.Partition, Offset: kr.Offset, Key: string(kr.Key), Body: kr.Value}
		for _, h := range kr.Headers {
			if h.Key == TagsHeader {
				rec.Tags = string(h.Value)
				continue
			}
			if rec.Properties == nil {
				rec.Properties = map[string]string{}
			}
			rec.Properties[h.Key] = string(h.Value)
		}
		out = append(out, rec)
	}
	return out
}

// Block holds every produce request at the broker until release.
func (r reader) Block(testing.TB) func() { return blockProduce(r.k.Cluster) }

func blockProduce(c *kfake.Cluster) (release func()) {
	pk := newParker(c)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !pk.park() {
			c.DropControl()
		}
		return nil, nil, false // let the cluster handle the request
	})
	return pk.release
}

// parker parks kfake control functions (SleepControl) until release.
// release returns once every parked function has resumed: closing a kfake
// cluster while a woken control function waits to be continued deadlocks
// the cluster's run loop.
type parker struct {
	c        *kfake.Cluster
	ch       chan struct{}
	idle     chan struct{} // closed when released and nothing is parked
	mu       sync.Mutex
	parked   int
	released bool
}

func newParker(c *kfake.Cluster) *parker {
	return &parker{c: c, ch: make(chan struct{}), idle: make(chan struct{})}
}

// park sleeps the current control function until release; it returns
// false at once if release was called already. Call it only from a control
// function.
func (pk *parker) park() bool {
	pk.mu.Lock()
	if pk.released {
		pk.mu.Unlock()
		return false
	}
	pk.parked++
	pk.mu.Unlock()
	pk.c.SleepControl(func() { <-pk.ch })
	pk.mu.Lock()
	pk.parked--
	if pk.parked == 0 && pk.released {
		close(pk.idle)
	}
	pk.mu.Unlock()
	return true
}

// release wakes the parked functions and waits (up to 10s) until they
// resumed. Idempotent.
func (pk *parker) release() {
	pk.mu.Lock()
	if pk.released {
		pk.mu.Unlock()
		return
	}
	pk.released = true
	close(pk.ch)
	wait := pk.parked > 0
	if !wait {
		close(pk.idle)
	}
	pk.mu.Unlock()
	select {
	case <-pk.idle:
	case <-time.After(10 * time.Second):
	}
}

func TestContract(t *testing.T) {
	for _, c := range []struct {
		name               string
		brokers, instances int
	}{
		{"OneBrokerOneInstance", 1, 1},
		{"ThreeBrokersThreeInstances", 3, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			mqtest.Run(t, func(t *testing.T) (mq.Producer, mqtest.Reader) {
				k := testenv.StartKafka(t, kfake.NumBrokers(c.brokers))
				opts := testOptions(k)
				opts.Instances = c.instances
				opts.MaxMessageBytes = 64 << 10
				return newTestProducer(t, opts), reader{k: k, maxBytes: opts.MaxMessageBytes}
			})
		})
	}
}
