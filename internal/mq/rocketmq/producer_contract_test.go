package rocketmq

import (
	"bytes"
	"compress/zlib"
	"context"
	"io"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/mq/mqtest"
	"github.com/ddmq-go/carrera/internal/mq/rocketmq/rmqfault"
	"github.com/ddmq-go/carrera/internal/rocketmq/remoting"
	"github.com/ddmq-go/carrera/internal/testenv"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// rig is a test broker with two broker names behind a fault proxy.
type rig struct {
	rmq   *testenv.RocketMQ
	proxy *rmqfault.Proxy
}

func newRig(t testing.TB, opts ...testenv.RocketMQOption) *rig {
	t.Helper()
	opts = append([]testenv.RocketMQOption{testenv.RocketMQBrokers("broker-a", "broker-b"), testenv.RocketMQNoAutoCreate()}, opts...)
	r := &rig{rmq: testenv.StartRocketMQ(t, opts...)}
	p, err := rmqfault.Start(r.rmq.NameServer, r.rmq.Brokers)
	if err != nil {
		t.Fatal(err)
	}
	r.proxy = p
	t.Cleanup(p.Close)
	return r
}

// testOptions are options against r's proxy.
func (r *rig) options() Options {
	return Options{
		Cluster:      "R_test",
		NameServers:  []string{r.proxy.NameServer()},
		RouteTimeout: 5 * time.Second,
	}
}

func newTestProducer(t testing.TB, opts Options) *Producer {
	t.Helper()
	p, err := NewProducer(opts, zaptest.NewLogger(t, zaptest.Level(zapcore.InfoLevel)))
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

// createTopic spreads n queues over the two brokers: broker-a gets the
// larger half.
func (r *rig) createTopic(t testing.TB, topic string, n int) {
	t.Helper()
	a, b := (n+1)/2, n/2
	r.rmq.CreateTopic(topic, a, "broker-a")
	if b > 0 {
		r.rmq.CreateTopic(topic, b, "broker-b")
	}
}

// stored is one message read back from the broker.
type stored struct {
	Queue Queue
	Index int // in the sorted queue list
	remoting.StoredMessage
	Props map[string]string
	Plain []byte // the body, inflated if compressed
}

// queues returns topic's sorted writable queues as the NameServer says.
func (r *rig) queues(t testing.TB, topic string) *Route {
	t.Helper()
	c, err := remoting.Dial(ctxT(t), r.rmq.NameServer)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := c.Invoke(ctxT(t), routeRequest(topic))
	if err != nil {
		t.Fatal(err)
	}
	route, err := routeFromResponse(topic, resp)
	if err != nil {
		t.Fatalf("route of %s: %v", topic, err)
	}
	return route
}

// readAll pulls every message of topic from the brokers directly, ordered
// by queue index and offset.
func (r *rig) readAll(t testing.TB, topic string) []stored {
	t.Helper()
	route := r.queues(t, topic)
	var out []stored
	clients := map[string]*remoting.Client{}
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	for i, q := range route.Queues {
		c := clients[q.Broker]
		if c == nil {
			var err error
			if c, err = remoting.Dial(ctxT(t), r.rmq.BrokerAddr(q.Broker)); err != nil {
				t.Fatal(err)
			}
			clients[q.Broker] = c
		}
		var off int64
		for {
			resp, err := c.Invoke(ctxT(t), remoting.NewRequest(remoting.PullMessage, map[string]string{
				"consumerGroup": "producer-test-reader", "topic": topic, "queueId": strconv.Itoa(q.ID),
				"queueOffset": strconv.FormatInt(off, 10), "maxMsgNums": "32", "sysFlag": "0",
				"commitOffset": "0", "suspendTimeoutMillis": "0", "subscription": "*", "subVersion": "0",
			}, nil))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Code != remoting.Success {
				break // 19: end of queue
			}
			msgs, err := remoting.DecodeStoredMessages(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				s := stored{Queue: q, Index: i, StoredMessage: m, Props: remoting.DecodeProperties(m.Properties), Plain: m.Body}
				if m.SysFlag&remoting.FlagCompressed != 0 {
					zr, err := zlib.NewReader(bytes.NewReader(m.Body))
					if err != nil {
						t.Fatalf("compressed body: %v", err)
					}
					if s.Plain, err = io.ReadAll(zr); err != nil {
						t.Fatalf("compressed body: %v", err)
					}
				}
				out = append(out, s)
			}
			next, _ := strconv.ParseInt(resp.Ext("nextBeginOffset"), 10, 64)
			if next <= off {
				break
			}
			off = next
		}
	}
	return out
}

// systemProps are the properties the client adds itself; the rest are the
// user's.
var systemProps = map[string]bool{
	remoting.PropertyTags: true, remoting.PropertyKeys: true, remoting.PropertyUniqKey: true,
	remoting.PropertyWaitStoreMsgOK: true,
}

// reader adapts a rig to mqtest.Reader, Blocker and ExplicitWrapper.
type reader struct {
	r        *rig
	maxBytes int
}

func (rd reader) CreateTopic(t testing.TB, topic string, n int) { rd.r.createTopic(t, topic, n) }
func (rd reader) MaxMessageBytes() int                          { return rd.maxBytes }
func (rd reader) ExplicitWraps() bool                           { return true }

func (rd reader) ReadAll(t testing.TB, topic string) []mqtest.Record {
	var out []mqtest.Record
	for _, s := range rd.r.readAll(t, topic) {
		rec := mqtest.Record{
			Partition: int32(s.Index), Offset: s.QueueOffset,
			Key: s.Props[remoting.PropertyKeys], Tags: s.Props[remoting.PropertyTags], Body: s.Plain,
		}
		for k, v := range s.Props {
			if systemProps[k] {
				continue
			}
			if rec.Properties == nil {
				rec.Properties = map[string]string{}
			}
			rec.Properties[k] = v
		}
		out = append(out, rec)
	}
	return out
}

// Block withholds every broker's send acknowledgements until release.
func (rd reader) Block(testing.TB) func() {
	ra := rd.r.proxy.Hold("broker-a")
	rb := rd.r.proxy.Hold("broker-b")
	return func() { ra(); rb() }
}

func TestContract(t *testing.T) {
	for _, c := range []struct {
		name      string
		instances int
	}{
		{"OneInstance", 1},
		{"ThreeInstances", 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			mqtest.Run(t, func(t *testing.T) (mq.Producer, mqtest.Reader) {
				r := newRig(t)
				opts := r.options()
				opts.Instances = c.instances
				opts.MaxMessageSize = 64 << 10
				return newTestProducer(t, opts), reader{r: r, maxBytes: opts.MaxMessageSize}
			})
		})
	}
}
