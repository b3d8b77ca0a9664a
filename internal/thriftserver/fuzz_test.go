package thriftserver

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ddmq-go/carrera/gen-go/carrera/producer"
)

// FuzzConnection feeds arbitrary bytes to one server connection and checks
// that the connection goroutine finishes (it must reach EOF or close the
// connection) without panicking or hanging, and that the server still
// serves a real client afterwards.
//
// The connection is an in-memory net.Conn whose reads return the input and
// then EOF, so every input is processed completely and deterministically,
// and no loopback ports are used up.
func FuzzConnection(f *testing.F) {
	header := func(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }
	valid := encodeCall(f, false, "sendSync", sendSyncArgs("t", "k"))
	validBin := encodeCall(f, true, "sendSync", sendSyncArgs("t", "k"))
	seeds := [][]byte{
		nil,
		valid,
		validBin,
		append(append([]byte{}, valid...), valid...),
		append(append([]byte{}, validBin...), validBin...),
		append(append([]byte{}, valid...), validBin...),
		encodeCall(f, false, "sendSync", sendSyncArgs(topicPanic, "k")),
		encodeCall(f, false, "sendSync", sendSyncArgs(topicError, "k")),
		encodeCall(f, false, "sendSync", sendSyncArgs(topicBlock, "k")),
		encodeCall(f, true, "unknown", sendSyncArgs("t", "k")),
		valid[:len(valid)-3],
		header(0),
		header(0xffffffff),
		header(1 << 20),
		append(header(3), 0x82, 0x21, 0xff),
		append(header(4), 0x80, 0x01, 0x00, 0x01),
		[]byte("GET / HTTP/1.0\r\n\r\n"),
	}
	for _, s := range seeds {
		f.Add(s)
	}

	// One server per fuzzing process, logging nowhere (an observer would
	// keep every entry). Blocking calls are released at once.
	h := newFakeProducer()
	close(h.release)
	s := New(Options{Addr: "127.0.0.1:0", MaxFrameBytes: 64 << 10, AllowSmallFrames: true},
		producer.NewProducerServiceProcessor(h), nil)
	if err := s.Start(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = s.Close() })

	f.Fuzz(func(t *testing.T, data []byte) {
		fc := &fakeConn{r: bytes.NewReader(data)}
		c := s.serveConn(fc)
		if c == nil {
			t.Fatal("server is shutting down")
		}
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("connection goroutine still running after 10s (%d input bytes)", len(data))
		}
		if !fc.isClosed() {
			t.Fatalf("connection not closed after serving")
		}
		if s.InFlight() != 0 {
			t.Fatalf("InFlight = %d after the connection ended", s.InFlight())
		}
	})
	// The server survived everything above.
	sendOK(f, dial(f, s.Addr(), false), "after-fuzz")
}

// fakeConn is a net.Conn whose reads return r's bytes and then io.EOF and
// whose writes are discarded. Deadlines are accepted and ignored.
type fakeConn struct {
	mu     sync.Mutex
	r      *bytes.Reader
	closed bool
}

func (c *fakeConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	return c.r.Read(p) // io.EOF once drained
}

func (c *fakeConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	return len(p), nil
}

func (c *fakeConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

func (c *fakeConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (c *fakeConn) LocalAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9613} }
func (c *fakeConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (c *fakeConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

var _ io.ReadWriteCloser = (*fakeConn)(nil)
