package thriftserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// protocolKind is the Thrift protocol a connection speaks.
type protocolKind uint8

const (
	protoUnknown protocolKind = iota
	protoCompact
	protoBinary
)

func (k protocolKind) String() string {
	switch k {
	case protoCompact:
		return "compact"
	case protoBinary:
		return "binary"
	default:
		return "unknown"
	}
}

// detectProtocol classifies a frame payload by its first bytes: 0x82 is the
// compact protocol id; 0x80 0x01 is the strict binary protocol's version
// prefix. Anything else (including non-strict binary) is unknown.
func detectProtocol(payload []byte) protocolKind {
	switch {
	case len(payload) >= 1 && payload[0] == 0x82:
		return protoCompact
	case len(payload) >= 2 && payload[0] == 0x80 && payload[1] == 0x01:
		return protoBinary
	default:
		return protoUnknown
	}
}

// Reasons for refusing a frame or closing a connection; the label values of
// the frames-rejected counter.
const (
	reasonFrameTooLarge    = "frame_too_large"    // length > MaxFrameBytes
	reasonFrameSizeInvalid = "frame_size_invalid" // length <= 0
	reasonUnknownProtocol  = "unknown_protocol"   // payload starts with neither 0x82 nor 0x80 0x01
	reasonProtocolMismatch = "protocol_mismatch"  // later frame in another protocol than the first
	reasonMalformed        = "malformed"          // the decoder rejected the payload
	reasonTruncated        = "truncated"          // connection ended inside a frame
	reasonReadTimeout      = "read_timeout"       // IdleTimeout expired inside a frame
	reasonPanic            = "panic"              // the processor panicked
)

// bufRetainBytes is the largest buffer capacity a connection keeps between
// requests; bigger buffers (after a large frame) are dropped.
const bufRetainBytes = 256 << 10

// aLongTimeAgo is a read deadline that wakes a blocked read at once.
var aLongTimeAgo = time.Unix(1, 0)

// conn is one client connection, served by one goroutine (serve).
type conn struct {
	s     *Server
	nc    net.Conn
	br    *bufio.Reader
	log   *zap.Logger
	ctx   context.Context // parent of the request contexts; cancelled on close
	stop  context.CancelFunc
	trans *connTransport
	done  chan struct{} // closed when serve returns

	closed atomic.Bool // the socket was closed (by us, or forcibly)

	// idle is true while the connection waits for the first byte of a
	// request; woken is set when Shutdown found it idle and woke its read.
	// Both guarded by s.mu.
	idle, woken bool

	// Owned by the serve goroutine.
	kind         protocolKind
	iprot, oprot thrift.TProtocol
	requests     int
}

type remoteAddrKey struct{}

// RemoteAddr returns the client address of the connection that carried the
// request whose context is ctx.
func RemoteAddr(ctx context.Context) (net.Addr, bool) {
	a, ok := ctx.Value(remoteAddrKey{}).(net.Addr)
	return a, ok
}

func (s *Server) newConn(nc net.Conn) *conn {
	ctx, stop := context.WithCancel(context.WithValue(s.baseCtx, remoteAddrKey{}, nc.RemoteAddr()))
	c := &conn{
		s:    s,
		nc:   nc,
		br:   bufio.NewReader(nc),
		log:  s.log.With(zap.Stringer("remote", nc.RemoteAddr())),
		ctx:  ctx,
		stop: stop,
		done: make(chan struct{}),
	}
	c.trans = &connTransport{c: c}
	return c
}

// closeNet closes the socket and cancels request contexts. Idempotent.
func (c *conn) closeNet() {
	if c.closed.CompareAndSwap(false, true) {
		c.stop()
		_ = c.nc.Close() // nothing useful to do with a close error
	}
}

// wakeIdle makes a read blocked waiting for the next request return, so the
// serve goroutine notices the shutdown, and marks c so that it serves no
// further request even if one arrives at the same moment (a past deadline
// does not reliably beat data that is already arriving). Called with s.mu
// held.
func (c *conn) wakeIdle() {
	c.woken = true
	_ = c.nc.SetReadDeadline(aLongTimeAgo) // fails only if already closed
}

// deadline returns the read/write deadline for the next I/O step.
func (c *conn) deadline() time.Time {
	if t := c.s.opts.IdleTimeout; t > 0 {
		return time.Now().Add(t)
	}
	return time.Time{}
}

// serve is the connection goroutine: wait for a request, serve it, repeat.
func (c *conn) serve() {
	defer func() {
		c.closeNet()
		c.s.removeConn(c)
		close(c.done)
		c.s.wg.Done()
	}()
	for {
		if !c.enterIdle() {
			c.log.Debug("closing idle connection at shutdown")
			return
		}
		if _, err := c.br.Peek(1); err != nil {
			c.logIdleEnd(err)
			return
		}
		if !c.enterActive() {
			c.log.Debug("closing idle connection at shutdown; request arrived too late")
			return
		}
		keep := c.serveRequest()
		c.s.inFlight.Add(-1)
		c.s.metrics.requestDone()
		if !keep {
			return
		}
	}
}

// enterIdle marks c idle (so Shutdown may wake and close it) and arms the
// idle read deadline. It returns false when the server is shutting down.
func (c *conn) enterIdle() bool {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.s.shuttingDown {
		return false
	}
	_ = c.nc.SetReadDeadline(c.deadline()) // fails only if already closed
	c.idle = true
	return true
}

// enterActive marks c busy with a request and arms the deadline for
// reading the rest of the frame. It returns false when Shutdown found c idle
// (the connection is closed without reading the request: from the server's
// point of view it arrived after shutdown began, and the client sees a
// connection error, not a lost reply).
func (c *conn) enterActive() bool {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.woken {
		return false
	}
	c.idle = false
	_ = c.nc.SetReadDeadline(c.deadline()) // fails only if already closed
	c.s.inFlight.Add(1)
	c.s.metrics.requestStarted()
	return true
}

// logIdleEnd logs why a connection waiting for a request ended.
func (c *conn) logIdleEnd(err error) {
	switch {
	case errors.Is(err, io.EOF):
		c.log.Debug("client closed connection", zap.Int("requests", c.requests))
	case c.closed.Load():
		c.log.Debug("connection closed at shutdown")
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.s.mu.Lock()
		closing := c.s.shuttingDown
		c.s.mu.Unlock()
		if closing {
			c.log.Debug("closed idle connection at shutdown")
		} else {
			c.log.Info("closing idle connection", zap.Duration("idle_timeout", c.s.opts.IdleTimeout))
		}
	default:
		c.log.Debug("connection read failed", zap.Error(err))
	}
}

// reject counts reason and logs it; the caller closes the connection.
func (c *conn) reject(level zapcore.Level, reason string, fields ...zap.Field) {
	c.s.metrics.rejected(reason)
	c.log.Log(level, "closing thrift connection", append([]zap.Field{zap.String("reason", reason)}, fields...)...)
}

// serveRequest reads one frame, runs the processor on it and writes the
// reply. It returns false when the connection must be closed.
func (c *conn) serveRequest() (keep bool) {
	defer func() {
		if r := recover(); r != nil {
			c.reject(zapcore.ErrorLevel, reasonPanic, zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
			keep = false
		}
	}()
	if !c.readFrame() {
		return false
	}
	payload := c.trans.in.Bytes()
	kind := detectProtocol(payload)
	switch {
	case kind == protoUnknown:
		c.reject(zapcore.WarnLevel, reasonUnknownProtocol, zap.String("first_bytes", hexPrefix(payload, 8)))
		return false
	case c.kind == protoUnknown:
		c.kind = kind
		if kind == protoCompact {
			c.iprot = thrift.NewTCompactProtocolConf(c.trans, c.s.tconf)
			c.oprot = thrift.NewTCompactProtocolConf(c.trans, c.s.tconf)
		} else {
			c.iprot = thrift.NewTBinaryProtocolConf(c.trans, c.s.tconf)
			c.oprot = thrift.NewTBinaryProtocolConf(c.trans, c.s.tconf)
		}
	case kind != c.kind:
		c.reject(zapcore.WarnLevel, reasonProtocolMismatch,
			zap.Stringer("protocol", c.kind), zap.Stringer("frame_protocol", kind))
		return false
	}
	c.requests++

	c.trans.resetReply()
	c.trans.writeErr = nil
	ok, err := c.s.processor.Process(c.ctx, c.iprot, c.oprot)
	c.trans.trim()

	var appErr thrift.TApplicationException
	switch {
	case c.trans.writeErr != nil:
		if !c.closed.Load() {
			c.log.Debug("writing reply failed", zap.Error(c.trans.writeErr))
		}
		return false
	case errors.Is(err, thrift.ErrAbandonRequest):
		c.log.Debug("request abandoned", zap.Error(err))
		return false
	case errors.As(err, &appErr) && appErr.TypeId() == thrift.UNKNOWN_METHOD:
		// The processor has answered with an application exception; the
		// stream is still in step, so keep the connection.
		c.log.Warn("unknown thrift method", zap.Error(err))
		return true
	case !ok:
		c.reject(zapcore.WarnLevel, reasonMalformed, zap.Stringer("protocol", c.kind),
			zap.Int("frame_bytes", len(payload)), zap.Error(err))
		return false
	case err != nil:
		// The handler returned an undeclared error; the processor answered
		// INTERNAL_ERROR and the connection stays usable.
		c.log.Debug("handler returned an undeclared error", zap.Error(err))
	}
	return true
}

// readFrame reads one frame into c.trans.in. It returns false (after
// logging and counting) when the frame is refused or the read failed.
func (c *conn) readFrame() bool {
	var hdr [4]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		c.readFailed(err, 0)
		return false
	}
	size := int32(binary.BigEndian.Uint32(hdr[:])) //nolint:gosec // the wire length is a signed i32
	switch {
	case size <= 0:
		c.reject(zapcore.WarnLevel, reasonFrameSizeInvalid, zap.Int32("frame_bytes", size),
			zap.String("first_bytes", hexPrefix(hdr[:], 4)), zap.String("hint", unframedHint(hdr)))
		return false
	case int(size) > c.s.opts.MaxFrameBytes:
		c.reject(zapcore.WarnLevel, reasonFrameTooLarge, zap.Int32("frame_bytes", size),
			zap.Int("max_frame_bytes", c.s.opts.MaxFrameBytes),
			zap.String("first_bytes", hexPrefix(hdr[:], 4)), zap.String("hint", unframedHint(hdr)))
		return false
	}
	c.trans.in.Reset()
	// Copying grows the buffer with the bytes that actually arrive, so a
	// large declared length costs nothing until the data is sent.
	if _, err := io.CopyN(&c.trans.in, c.br, int64(size)); err != nil {
		c.readFailed(err, int(size))
		return false
	}
	return true
}

// readFailed classifies a read error inside a frame.
func (c *conn) readFailed(err error, size int) {
	switch {
	case c.closed.Load():
		c.log.Debug("connection closed while reading a frame")
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.reject(zapcore.WarnLevel, reasonReadTimeout, zap.Int("frame_bytes", size),
			zap.Duration("idle_timeout", c.s.opts.IdleTimeout))
	default:
		c.reject(zapcore.WarnLevel, reasonTruncated, zap.Int("frame_bytes", size), zap.Error(err))
	}
}

// unframedHint explains a bad frame header that looks like the start of an
// unframed Thrift message or of an HTTP request.
func unframedHint(hdr [4]byte) string {
	switch {
	case hdr[0] == 0x80 && hdr[1] == 0x01:
		return "looks like unframed binary protocol; use the framed transport"
	case hdr[0] == 0x82:
		return "looks like unframed compact protocol; use the framed transport"
	case bytes.HasPrefix(hdr[:], []byte("GET ")) || bytes.HasPrefix(hdr[:], []byte("POST")) ||
		bytes.HasPrefix(hdr[:], []byte("HEAD")) || bytes.HasPrefix(hdr[:], []byte("PUT ")):
		return "looks like HTTP"
	default:
		return ""
	}
}

// hexPrefix renders at most n leading bytes of b for logs.
func hexPrefix(b []byte, n int) string {
	return hex.EncodeToString(b[:min(len(b), n)])
}

// MinRefBytes is the smallest slice worth sending as its own iovec: WriteRef
// copies shorter slices into the reply buffer (a short copy is cheaper than
// the iovec and the bookkeeping of another segment).
const MinRefBytes = 256

// refsRetain is the largest number of segments whose bookkeeping a
// connection keeps between requests.
const refsRetain = 4096

// RefWriter is implemented by the server's transport (what the protocols'
// Transport returns): WriteRef appends b to the reply being built without
// copying it; b must not change until the reply is flushed. Bytes written
// before and after (Write, WriteByte, WriteString) keep their order around
// b. Encoders use it for large payloads (message bodies) that would
// otherwise be copied into the reply buffer only to be written to the
// socket once.
type RefWriter interface {
	WriteRef(b []byte)
}

// replyRef is a slice referenced by the reply: it follows the first at
// bytes of connTransport.out (and any earlier refs).
type replyRef struct {
	at int
	b  []byte
}

// connTransport is the thrift transport under a connection's protocols:
// reads come from the current frame's payload, writes build the reply, and
// Flush sends the reply as one frame.
//
// The reply is out (the small writes, in order) interleaved with refs
// (slices passed to WriteRef, not copied): each ref goes after out[:ref.at].
// Positions are kept rather than sub-slices of out because out may be
// reallocated while the reply grows.
type connTransport struct {
	c        *conn
	in       bytes.Buffer // payload of the frame being processed
	out      bytes.Buffer // small writes of the reply being built
	refs     []replyRef   // referenced slices of the reply being built, in order
	refBytes int          // total length of refs
	writeErr error        // first socket write error of the current request

	// Reused by Flush so that a reply costs no allocation: the frame
	// header, the iovec list and the copy of it that WriteTo consumes.
	hdr  [4]byte
	iov  net.Buffers
	send net.Buffers
}

var (
	_ thrift.TRichTransport = (*connTransport)(nil)
	_ RefWriter             = (*connTransport)(nil)
)

func (t *connTransport) Read(p []byte) (int, error)        { return t.in.Read(p) }
func (t *connTransport) ReadByte() (byte, error)           { return t.in.ReadByte() }
func (t *connTransport) Write(p []byte) (int, error)       { return t.out.Write(p) }
func (t *connTransport) WriteByte(b byte) error            { return t.out.WriteByte(b) }
func (t *connTransport) WriteString(s string) (int, error) { return t.out.WriteString(s) }
func (t *connTransport) RemainingBytes() uint64            { return uint64(t.in.Len()) }
func (t *connTransport) Open() error                       { return nil }
func (t *connTransport) Close() error                      { return nil } // the conn owns the socket
func (t *connTransport) IsOpen() bool                      { return !t.c.closed.Load() }

// WriteRef implements RefWriter. Slices shorter than MinRefBytes are
// copied.
func (t *connTransport) WriteRef(b []byte) {
	if len(b) < MinRefBytes {
		_, _ = t.out.Write(b) // bytes.Buffer writes cannot fail
		return
	}
	t.refs = append(t.refs, replyRef{at: t.out.Len(), b: b})
	t.refBytes += len(b)
}

// Flush writes the buffered reply as one frame (header, small writes and
// referenced slices in one vectored write) and empties the reply.
func (t *connTransport) Flush(context.Context) error {
	defer t.resetReply()
	if t.writeErr != nil {
		return thrift.NewTTransportExceptionFromError(t.writeErr)
	}
	size := t.out.Len() + t.refBytes
	if size > 1<<31-1 {
		t.writeErr = fmt.Errorf("reply of %d bytes does not fit a frame", size)
		return thrift.NewTTransportExceptionFromError(t.writeErr)
	}
	binary.BigEndian.PutUint32(t.hdr[:], uint32(size)) //nolint:gosec // checked above
	t.iov = append(t.iov[:0], t.hdr[:])
	out, prev := t.out.Bytes(), 0
	for _, r := range t.refs {
		if r.at > prev {
			t.iov = append(t.iov, out[prev:r.at])
			prev = r.at
		}
		t.iov = append(t.iov, r.b)
	}
	if prev < len(out) {
		t.iov = append(t.iov, out[prev:])
	}
	_ = t.c.nc.SetWriteDeadline(t.c.deadline()) // a closed socket fails the write below
	// WriteTo consumes the slice it is called on (and may shorten its
	// elements), so it works on a copy of the slice header in a field (no
	// allocation); t.iov keeps the backing array for the next reply.
	t.send = t.iov
	_, err := t.send.WriteTo(t.c.nc)
	if err != nil {
		t.writeErr = err
		return thrift.NewTTransportExceptionFromError(err)
	}
	return nil
}

// resetReply empties the reply being built and drops the references to
// slices passed to WriteRef (so that message bodies can be collected while
// the connection waits for its next request).
func (t *connTransport) resetReply() {
	t.out.Reset()
	clear(t.refs)
	t.refs = t.refs[:0]
	t.refBytes = 0
	// WriteTo nils the elements it has consumed, but not those left after a
	// failed write; beyond len(t.iov) everything was cleared before.
	clear(t.iov)
	t.iov = t.iov[:0]
	t.send = nil
}

// trim drops buffers that grew large for one request.
func (t *connTransport) trim() {
	if t.in.Cap() > bufRetainBytes {
		t.in = bytes.Buffer{}
	}
	if t.out.Cap() > bufRetainBytes {
		t.out = bytes.Buffer{}
	}
	if cap(t.refs) > refsRetain {
		t.refs = nil
	}
	if cap(t.iov) > 2*refsRetain+2 {
		t.iov = nil
	}
}

// isTemporaryAcceptErr reports accept errors worth retrying after a pause:
// running out of descriptors or memory, or a connection aborted before it
// was accepted.
func isTemporaryAcceptErr(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ECONNRESET)
}
