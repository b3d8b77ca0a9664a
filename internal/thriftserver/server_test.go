package thriftserver

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/gen-go/carrera/producer"
)

func TestDetectProtocol(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		want    protocolKind
	}{
		{"compact", []byte{0x82, 0x21, 0x01}, protoCompact},
		{"compact one byte", []byte{0x82}, protoCompact},
		{"strict binary", []byte{0x80, 0x01, 0x00, 0x01}, protoBinary},
		{"binary prefix only", []byte{0x80}, protoUnknown},
		{"binary wrong version", []byte{0x80, 0x02}, protoUnknown},
		{"non-strict binary", []byte{0x00, 0x00, 0x00, 0x08, 's'}, protoUnknown},
		{"json", []byte(`[1,"sendSync"`), protoUnknown},
		{"empty", nil, protoUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := detectProtocol(tt.payload); got != tt.want {
				t.Fatalf("detectProtocol(% x) = %v, want %v", tt.payload, got, tt.want)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr bool
	}{
		{"defaults", Options{Addr: ":0"}, false},
		{"no addr", Options{}, true},
		{"ddmq minimum", Options{Addr: ":0", MaxFrameBytes: MinMaxFrameBytes}, false},
		{"below minimum", Options{Addr: ":0", MaxFrameBytes: MinMaxFrameBytes - 1}, true},
		{"below minimum for tests", Options{Addr: ":0", MaxFrameBytes: 1024, AllowSmallFrames: true}, false},
		{"negative frame", Options{Addr: ":0", MaxFrameBytes: -1, AllowSmallFrames: true}, true},
		{"beyond int32", Options{Addr: ":0", MaxFrameBytes: 1 << 31}, true},
		{"negative idle", Options{Addr: ":0", IdleTimeout: -time.Second}, true},
		{"negative drain", Options{Addr: ":0", DrainTimeout: -time.Second}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.opts.Validate(); (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

func TestCompactAndBinaryOnOnePort(t *testing.T) {
	s := startServer(t, nil)
	compact := dial(t, s.Addr(), false)
	bin := dial(t, s.Addr(), true)
	for _, key := range []string{"a", "b", "c"} { // several requests per connection, interleaved
		sendOK(t, compact, "compact-"+key)
		sendOK(t, bin, "binary-"+key)
	}
	r, err := compact.SendBatchSync(context.Background(), []*producer.Message{producer.NewMessage(), producer.NewMessage()})
	if err != nil || r.GetMsg() != "batch" || r.GetKey() != "2" {
		t.Fatalf("SendBatchSync = %+v, %v", r, err)
	}
	dr, err := bin.SendDelaySync(context.Background(), producer.NewDelayMessage(), 10)
	if err != nil || dr.GetUniqDelayMsgId() != "id" {
		t.Fatalf("SendDelaySync = %+v, %v", dr, err)
	}
	if got := metricValue(t, s.reg, "carrera_thrift_connections_open", map[string]string{"server": "test"}); got != 2 {
		t.Fatalf("connections_open = %v, want 2", got)
	}
	eventually(t, "no call in flight", func() bool { return s.InFlight() == 0 })
}

func TestRemoteAddrInContext(t *testing.T) {
	s := startServer(t, nil)
	s.h.remote = make(chan net.Addr, 1)
	c := dial(t, s.Addr(), false)
	sendOK(t, c, "k")
	a := <-s.h.remote
	if a == nil || a.String() == "" {
		t.Fatalf("RemoteAddr missing from the request context")
	}
}

func TestHandlerErrorKeepsConnection(t *testing.T) {
	s := startServer(t, nil)
	c := dial(t, s.Addr(), false)
	m := producer.NewMessage()
	m.Topic = topicError
	_, err := c.SendSync(context.Background(), m, 100)
	var ae thrift.TApplicationException
	if !errors.As(err, &ae) || ae.TypeId() != thrift.INTERNAL_ERROR {
		t.Fatalf("SendSync error = %v, want INTERNAL_ERROR application exception", err)
	}
	sendOK(t, c, "after-error")
}

func TestUnknownMethodKeepsConnection(t *testing.T) {
	s := startServer(t, nil)
	c := rawDial(t, s.Addr())
	if _, err := c.Write(encodeCall(t, false, "noSuchMethod", sendSyncArgs("t", "k"))); err != nil {
		t.Fatal(err)
	}
	// Read the exception reply, then make a valid call on the same socket.
	cfg := &thrift.TConfiguration{SocketTimeout: 5 * time.Second}
	trans := thrift.NewTFramedTransportConf(thrift.NewTSocketFromConnConf(c, cfg), cfg)
	p := thrift.NewTCompactProtocolConf(trans, cfg)
	ctx := context.Background()
	name, typ, _, err := p.ReadMessageBegin(ctx)
	if err != nil || name != "noSuchMethod" || typ != thrift.EXCEPTION {
		t.Fatalf("ReadMessageBegin = %q %v %v", name, typ, err)
	}
	ae := thrift.NewTApplicationException(0, "")
	if err := ae.Read(ctx, p); err != nil || ae.TypeId() != thrift.UNKNOWN_METHOD {
		t.Fatalf("exception = %v (%v)", ae, err)
	}
	_ = p.ReadMessageEnd(ctx)
	cl := &client{ProducerServiceClient: producer.NewProducerServiceClientProtocol(trans, p, p), trans: trans}
	sendOK(t, cl, "after-unknown")
}

// TestBadFrames: each bad input closes only its own connection, is counted
// under its reason and logged; a connection opened before and one opened
// after keep working.
func TestBadFrames(t *testing.T) {
	const maxFrame = 1024
	header := func(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }
	validCompact := encodeCall(t, false, "sendSync", sendSyncArgs("t", "k"))
	validBinary := encodeCall(t, true, "sendSync", sendSyncArgs("t", "k"))
	tests := []struct {
		name   string
		input  []byte
		reason string
	}{
		{"too large", header(maxFrame + 1), reasonFrameTooLarge},
		{"huge", header(0x7fffffff), reasonFrameTooLarge},
		{"zero length", header(0), reasonFrameSizeInvalid},
		{"negative length", header(0xfffffff0), reasonFrameSizeInvalid},
		{"unframed binary", validBinary[4:], reasonFrameSizeInvalid},
		{"unframed compact", validCompact[4:], reasonFrameSizeInvalid},
		{"http", []byte("GET /metrics HTTP/1.1\r\n\r\n"), reasonFrameTooLarge},
		{"garbage protocol", append(header(5), "hello"...), reasonUnknownProtocol},
		{"non-strict binary", append(header(6), 0, 0, 0, 8, 's', 'e'), reasonUnknownProtocol},
		{"compact then garbage", append(header(4), 0x82, 0xff, 0xff, 0xff), reasonMalformed},
		{"binary cut short", append(header(6), validBinary[4:10]...), reasonMalformed},
		{"protocol switch", append(append([]byte{}, validCompact...), validBinary...), reasonProtocolMismatch},
		{"panic in handler", encodeCall(t, false, "sendSync", sendSyncArgs(topicPanic, "k")), reasonPanic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, func(o *Options) { o.MaxFrameBytes, o.AllowSmallFrames = maxFrame, true })
			before := dial(t, s.Addr(), false)
			sendOK(t, before, "before")

			bad := rawDial(t, s.Addr())
			if _, err := bad.Write(tt.input); err != nil {
				t.Fatal(err)
			}
			waitClosed(t, bad)

			eventually(t, "rejection counted", func() bool {
				return metricValue(t, s.reg, "carrera_thrift_frames_rejected_total",
					map[string]string{"reason": tt.reason}) == 1
			})
			logged := s.logs.FilterMessage("closing thrift connection").FilterField(zap.String("reason", tt.reason))
			if logged.Len() != 1 {
				t.Fatalf("want one log with reason %q, logs: %v", tt.reason, s.logs.All())
			}
			sendOK(t, before, "before-again")
			sendOK(t, dial(t, s.Addr(), true), "after")
		})
	}
}

func TestOversizeRequestFromClient(t *testing.T) {
	s := startServer(t, func(o *Options) { o.MaxFrameBytes, o.AllowSmallFrames = 1024, true })
	other := dial(t, s.Addr(), false)
	c := dial(t, s.Addr(), false)
	m := producer.NewMessage()
	m.Topic, m.Body = "t", make([]byte, 4096)
	if _, err := c.SendSync(context.Background(), m, 100); err == nil {
		t.Fatalf("oversize request succeeded")
	}
	sendOK(t, other, "other")
}

func TestTruncatedFrame(t *testing.T) {
	s := startServer(t, nil)
	c := rawDial(t, s.Addr())
	if _, err := c.Write(append(binary.BigEndian.AppendUint32(nil, 100), 0x82, 0x21)); err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).CloseWrite()
	waitClosed(t, c)
	eventually(t, "truncated counted", func() bool {
		return metricValue(t, s.reg, "carrera_thrift_frames_rejected_total", map[string]string{"reason": reasonTruncated}) == 1
	})
}

func TestIdleTimeout(t *testing.T) {
	s := startServer(t, func(o *Options) { o.IdleTimeout = 200 * time.Millisecond })
	c := rawDial(t, s.Addr())
	start := time.Now()
	waitClosed(t, c)
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("closed after %v, before the idle timeout", d)
	}
	// A frame stalled half way is cut too.
	c2 := rawDial(t, s.Addr())
	if _, err := c2.Write(binary.BigEndian.AppendUint32(nil, 100)); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, c2)
	eventually(t, "read timeout counted", func() bool {
		return metricValue(t, s.reg, "carrera_thrift_frames_rejected_total", map[string]string{"reason": reasonReadTimeout}) == 1
	})
	// An active client is not disturbed.
	c3 := dial(t, s.Addr(), false)
	for i := range 3 {
		sendOK(t, c3, string(rune('a'+i)))
		time.Sleep(50 * time.Millisecond)
	}
}

// TestShutdownDrains: Shutdown closes the listener and idle connections at
// once, waits for the in-flight call, which gets its answer, then returns nil.
func TestShutdownDrains(t *testing.T) {
	s := startServer(t, nil)
	busy := dial(t, s.Addr(), false)
	idle := rawDial(t, s.Addr())
	idleUsed := dial(t, s.Addr(), true)
	sendOK(t, idleUsed, "used") // idle between requests, not just new

	type answer struct {
		r   *producer.Result_
		err error
	}
	answered := make(chan answer, 1)
	go func() {
		m := producer.NewMessage()
		m.Topic, m.Key = topicBlock, "slow"
		r, err := busy.SendSync(context.Background(), m, 100)
		answered <- answer{r, err}
	}()
	<-s.h.entered
	// The "used" call's bookkeeping ends just after its reply is sent.
	eventually(t, "one call in flight", func() bool {
		return s.InFlight() == 1 && metricValue(t, s.reg, "carrera_thrift_requests_in_flight", nil) == 1
	})

	shutdownDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutdownDone <- s.Shutdown(ctx)
	}()

	waitClosed(t, idle)
	// A connection that was between requests serves no further request.
	if r, err := idleUsed.SendSync(context.Background(), sendSyncArgs("t", "x").Message, 1); err == nil {
		t.Fatalf("idle connection still served after Shutdown began: %+v", r)
	}
	eventually(t, "listener closed", func() bool {
		c, err := net.DialTimeout("tcp", s.Addr().String(), time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err != nil
	})
	select {
	case err := <-shutdownDone:
		t.Fatalf("Shutdown returned %v while a call was in flight", err)
	default:
	}

	close(s.h.release)
	a := <-answered
	if a.err != nil || a.r.GetMsg() != "OK:slow" {
		t.Fatalf("in-flight call got %+v, %v", a.r, a.err)
	}
	if err := <-shutdownDone; err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if s.InFlight() != 0 {
		t.Fatalf("InFlight = %d after drain", s.InFlight())
	}
	if got := metricValue(t, s.reg, "carrera_thrift_connections_open", nil); got != 0 {
		t.Fatalf("connections_open = %v after drain", got)
	}
	if err := s.Start(); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Start after Shutdown = %v", err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown = %v", err)
	}
}

// TestShutdownForceCloses: a call still running at the deadline has its
// context cancelled and its connection closed; Shutdown returns the
// context's error.
func TestShutdownForceCloses(t *testing.T) {
	s := startServer(t, nil)
	c := dial(t, s.Addr(), false)
	errc := make(chan error, 1)
	go func() {
		m := producer.NewMessage()
		m.Topic = topicBlock
		_, err := c.SendSync(context.Background(), m, 100)
		errc <- err
	}()
	<-s.h.entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
	if err := <-errc; err == nil {
		t.Fatalf("force-closed call succeeded")
	}
	if !errors.Is(s.h.ctxError(), context.Canceled) {
		t.Fatalf("handler context error = %v, want canceled", s.h.ctxError())
	}
	if s.InFlight() != 0 {
		t.Fatalf("InFlight = %d after force close", s.InFlight())
	}
}

func TestCloseIdempotentAndConcurrent(t *testing.T) {
	s := startServer(t, nil)
	c := dial(t, s.Addr(), false)
	sendOK(t, c, "k")
	done := make(chan struct{})
	for range 3 {
		go func() {
			_ = s.Close()
			done <- struct{}{}
		}()
	}
	for range 3 {
		<-done
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestStartErrors(t *testing.T) {
	s := New(Options{Addr: "127.0.0.1:0"}, producer.NewProducerServiceProcessor(newFakeProducer()), nil)
	if s.Addr() != nil {
		t.Fatalf("Addr before Start = %v", s.Addr())
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Start(); err == nil {
		t.Fatalf("second Start succeeded")
	}
	busy := New(Options{Addr: s.Addr().String()}, producer.NewProducerServiceProcessor(newFakeProducer()), nil)
	if err := busy.Start(); err == nil {
		t.Fatalf("Start on a used port succeeded")
		_ = busy.Close()
	}
	bad := New(Options{Addr: "127.0.0.1:0", MaxFrameBytes: 10}, nil, nil)
	if err := bad.Start(); err == nil {
		t.Fatalf("Start with a tiny frame limit succeeded")
	}
	closed := New(Options{Addr: "127.0.0.1:0"}, nil, nil)
	_ = closed.Close()
	if err := closed.Start(); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Start after Close = %v", err)
	}
}

func TestServe(t *testing.T) {
	s := New(Options{Addr: "127.0.0.1:0"}, producer.NewProducerServiceProcessor(newFakeProducer()), nil)
	if err := s.Start(); err != nil { // Serve after Start is fine
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	sendOK(t, dial(t, s.Addr(), false), "k")
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if _, err := net.DialTimeout("tcp", s.Addr().String(), time.Second); err == nil {
		t.Fatalf("still accepting after Serve returned")
	}
}

func TestServeReturnsOnOtherShutdown(t *testing.T) {
	s := New(Options{Addr: "127.0.0.1:0"}, producer.NewProducerServiceProcessor(newFakeProducer()), nil)
	served := make(chan error, 1)
	go func() { served <- s.Serve(context.Background()) }()
	eventually(t, "started", func() bool { return s.Addr() != nil })
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve = %v", err)
	}
}

func TestMetricsSharedRegistry(t *testing.T) {
	s1 := startServer(t, nil)
	// A second server with another name registers beside the first.
	s2 := New(Options{Addr: "127.0.0.1:0", Registerer: s1.reg, Name: "other"},
		producer.NewProducerServiceProcessor(newFakeProducer()), nil)
	if err := s2.Start(); err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	sendOK(t, dial(t, s2.Addr(), false), "k")
	if got := metricValue(t, s1.reg, "carrera_thrift_connections_accepted_total", map[string]string{"server": "other"}); got != 1 {
		t.Fatalf("other accepted = %v", got)
	}
	if got := metricValue(t, s1.reg, "carrera_thrift_connections_accepted_total", map[string]string{"server": "test"}); got != 0 {
		t.Fatalf("test accepted = %v", got)
	}
	// Same name again reuses the collectors instead of failing.
	s3 := New(Options{Addr: "127.0.0.1:0", Registerer: s1.reg, Name: "other"}, nil, nil)
	if s3.metrics.connsAccepted != s2.metrics.connsAccepted {
		t.Fatalf("same-name server did not reuse the registered collector")
	}
}

// TestPipelinedRequests: two requests written back to back on one
// connection are answered in order.
func TestPipelinedRequests(t *testing.T) {
	s := startServer(t, nil)
	c := rawDial(t, s.Addr())
	in := append(encodeCall(t, false, "sendSync", sendSyncArgs("t", "one")),
		encodeCall(t, false, "sendSync", sendSyncArgs("t", "two"))...)
	if _, err := c.Write(in); err != nil {
		t.Fatal(err)
	}
	cfg := &thrift.TConfiguration{SocketTimeout: 5 * time.Second}
	trans := thrift.NewTFramedTransportConf(thrift.NewTSocketFromConnConf(c, cfg), cfg)
	p := thrift.NewTCompactProtocolConf(trans, cfg)
	for _, want := range []string{"OK:one", "OK:two"} {
		if _, _, _, err := p.ReadMessageBegin(context.Background()); err != nil {
			t.Fatal(err)
		}
		var res producer.ProducerServiceSendSyncResult
		if err := res.Read(context.Background(), p); err != nil {
			t.Fatal(err)
		}
		_ = p.ReadMessageEnd(context.Background())
		if res.GetSuccess().GetMsg() != want {
			t.Fatalf("got %+v, want %s", res.GetSuccess(), want)
		}
	}
}
