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
	ch := make(chan struct{})
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		select {
		case <-ch:
			c.DropControl()
			return nil, nil, false
		default:
		}
		c.SleepControl(func() { <-ch })
		return nil, nil, false // then let the cluster handle it
	})
	return sync.OnceFunc(func() { close(ch) })
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
