package thriftserver

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ddmq-go/carrera/gen-go/carrera/producer"
)

// Topics that make fakeProducer misbehave.
const (
	topicBlock = "block" // wait for release (or ctx) before answering
	topicPanic = "panic" // panic inside the handler
	topicError = "error" // return an undeclared error
)

// fakeProducer is a tiny ProducerService: SendSync answers OK with the key
// echoed in Msg unless the topic asks for trouble.
type fakeProducer struct {
	entered  chan struct{} // receives once per blocking call, when it starts
	release  chan struct{} // closed by the test to let blocking calls answer
	ctxErrMu sync.Mutex
	ctxErr   error         // ctx.Err() seen by a blocking call released by its context
	remote   chan net.Addr // receives the RemoteAddr of each non-blocking call, if non-nil
}

func newFakeProducer() *fakeProducer {
	return &fakeProducer{entered: make(chan struct{}, 16), release: make(chan struct{})}
}

func (f *fakeProducer) SendSync(ctx context.Context, m *producer.Message, _ int64) (*producer.Result_, error) {
	switch m.GetTopic() {
	case topicBlock:
		select {
		case f.entered <- struct{}{}:
		default: // nobody is counting (fuzzing)
		}
		select {
		case <-f.release:
		case <-ctx.Done():
			f.ctxErrMu.Lock()
			f.ctxErr = ctx.Err()
			f.ctxErrMu.Unlock()
			return nil, ctx.Err()
		}
	case topicPanic:
		panic("boom")
	case topicError:
		return nil, errors.New("handler failed")
	}
	if f.remote != nil {
		a, _ := RemoteAddr(ctx)
		f.remote <- a
	}
	return &producer.Result_{Code: 0, Msg: "OK:" + m.GetKey()}, nil
}

func (f *fakeProducer) SendBatchSync(_ context.Context, ms []*producer.Message) (*producer.Result_, error) {
	return &producer.Result_{Code: 0, Msg: "batch", Key: thrift.StringPtr(string(rune('0' + len(ms))))}, nil
}

func (f *fakeProducer) SendAsync(ctx context.Context, m *producer.Message) (*producer.Result_, error) {
	return f.SendSync(ctx, m, 0)
}

func (f *fakeProducer) SendDelaySync(context.Context, *producer.DelayMessage, int64) (*producer.DelayResult_, error) {
	return &producer.DelayResult_{Code: 0, Msg: "OK", UniqDelayMsgId: "id"}, nil
}

func (f *fakeProducer) ctxError() error {
	f.ctxErrMu.Lock()
	defer f.ctxErrMu.Unlock()
	return f.ctxErr
}

// testServer is a started Server with its fake handler, registry and logs.
type testServer struct {
	*Server
	h    *fakeProducer
	reg  *prometheus.Registry
	logs *observer.ObservedLogs
}

// startServer starts a server on 127.0.0.1:0; mod may adjust the options.
// The server is closed when the test ends.
func startServer(t testing.TB, mod func(*Options)) *testServer {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	reg := prometheus.NewRegistry()
	opts := Options{Addr: "127.0.0.1:0", Registerer: reg, Name: "test"}
	if mod != nil {
		mod(&opts)
	}
	h := newFakeProducer()
	s := New(opts, producer.NewProducerServiceProcessor(h), zap.New(core))
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return &testServer{Server: s, h: h, reg: reg, logs: logs}
}

// client is a generated ProducerService client over framed transport.
type client struct {
	*producer.ProducerServiceClient
	trans thrift.TTransport
}

// dial opens a framed client speaking compact (binary=false) or strict
// binary protocol. Closed when the test ends.
func dial(t testing.TB, addr net.Addr, binary bool) *client {
	t.Helper()
	cfg := &thrift.TConfiguration{ConnectTimeout: 5 * time.Second, SocketTimeout: 10 * time.Second}
	trans := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(addr.String(), cfg), cfg)
	if err := trans.Open(); err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = trans.Close() })
	var pf thrift.TProtocolFactory = thrift.NewTCompactProtocolFactoryConf(cfg)
	if binary {
		pf = thrift.NewTBinaryProtocolFactoryConf(cfg)
	}
	return &client{ProducerServiceClient: producer.NewProducerServiceClientFactory(trans, pf), trans: trans}
}

// rawDial opens a plain TCP connection. Closed when the test ends.
func rawDial(t testing.TB, addr net.Addr) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitClosed reads from c until the server closes it (EOF or reset) and
// fails the test if that takes longer than a few seconds.
func waitClosed(t testing.TB, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection was not closed by the server")
	}
}

// sendOK makes one SendSync call and checks the echoed answer.
func sendOK(t testing.TB, c *client, key string) {
	t.Helper()
	m := producer.NewMessage()
	m.Topic, m.Key, m.Body = "t", key, []byte("body")
	r, err := c.SendSync(context.Background(), m, 100)
	if err != nil {
		t.Fatalf("SendSync(%q): %v", key, err)
	}
	if r.GetCode() != 0 || r.GetMsg() != "OK:"+key {
		t.Fatalf("SendSync(%q) = %+v", key, r)
	}
}

// encodeCall returns one framed call of method with args in the given
// protocol, as a client would put it on the wire.
func encodeCall(t testing.TB, binary bool, method string, args thrift.TStruct) []byte {
	t.Helper()
	mem := thrift.NewTMemoryBuffer()
	cfg := &thrift.TConfiguration{}
	framed := thrift.NewTFramedTransportConf(mem, cfg)
	var p thrift.TProtocol = thrift.NewTCompactProtocolConf(framed, cfg)
	if binary {
		p = thrift.NewTBinaryProtocolConf(framed, cfg)
	}
	ctx := context.Background()
	must := func(err error) {
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
	}
	must(p.WriteMessageBegin(ctx, method, thrift.CALL, 1))
	must(args.Write(ctx, p))
	must(p.WriteMessageEnd(ctx))
	must(p.Flush(ctx))
	return mem.Bytes()
}

// sendSyncArgs is the argument struct of a SendSync call for topic/key.
func sendSyncArgs(topic, key string) *producer.ProducerServiceSendSyncArgs {
	m := producer.NewMessage()
	m.Topic, m.Key, m.Body = topic, key, []byte("body")
	return &producer.ProducerServiceSendSyncArgs{Message: m, Timeout: 100}
}

// metricValue returns the value of the gauge or counter name whose labels
// include want, or -1 when absent.
func metricValue(t testing.TB, reg prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue next
				}
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

// eventually polls cond until it holds or a few seconds pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
