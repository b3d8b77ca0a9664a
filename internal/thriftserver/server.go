// Package thriftserver is the Thrift RPC server shared by pproxy and cproxy.
//
// Wire format (wire-contract.md §1): plain TCP, Thrift framed transport (a
// 4-byte big-endian length before every message). The protocol is detected
// per connection from the first bytes of the first frame's payload: 0x82 is
// the compact protocol (what every DDMQ SDK speaks), 0x80 0x01 is the strict
// binary protocol. Unframed clients are not supported.
//
// Framing is done here rather than by thrift.TFramedTransport because the
// server needs the payload's first bytes for detection and distinct reasons
// for refusing a frame; the message codecs are thrift's own
// (TCompactProtocol, TBinaryProtocol) and requests are dispatched through the
// generated processor's Process.
//
// Every connection has one goroutine that reads a frame, runs the processor
// and writes the reply before reading the next frame, so requests on one
// connection are served in order (clients send one request at a time; a
// long-poll pull holds its connection for its linger time).
//
// A reply is built in a per-connection buffer and sent by Flush as one
// vectored write (frame header, buffer). Encoders that know the transport
// (cproxy's pull reply) can add large slices by reference through RefWriter
// instead of copying them into the buffer; the generated codecs only use
// the ordinary writes.
//
// A bad frame (size <= 0 or > MaxFrameBytes, unknown protocol bytes, a
// payload the decoder rejects, a handler panic) closes that connection only,
// with a warning log and a counted reason. No other connection is affected.
//
// Lifecycle: New starts nothing. Start binds and starts the accept loop;
// Serve is Start plus "block until ctx is done, then drain". Shutdown closes
// the listener, closes connections that are between requests, lets in-flight
// requests finish and write their replies, and force-closes the rest when its
// context ends. Close is Shutdown with no grace. Both are idempotent and may
// be called concurrently.
package thriftserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Frame-size limits.
const (
	// DefaultMaxFrameBytes is the default largest accepted frame payload,
	// equal to the Thrift Go library's default maximum frame size.
	DefaultMaxFrameBytes = 16_384_000
	// MinMaxFrameBytes is the smallest MaxFrameBytes accepted outside tests:
	// DDMQ servers accept frames of up to 5 000 000 bytes
	// (maxReadBufferBytes in the shipped configs), so SDKs may send them.
	MinMaxFrameBytes = 5_000_000
	// DefaultDrainTimeout bounds the graceful drain that Serve performs when
	// its context ends.
	DefaultDrainTimeout = 10 * time.Second
)

// forceCloseWait is how long Shutdown waits, after force-closing every
// connection, for the connection goroutines to return. A handler that
// ignores its context can keep its goroutine alive past this; Shutdown then
// returns anyway (logging how many are left) instead of hanging.
var forceCloseWait = 2 * time.Second

// ErrServerClosed is returned by Start after Shutdown or Close.
var ErrServerClosed = errors.New("thriftserver: server closed")

// errAlreadyStarted is returned by Start when called twice.
var errAlreadyStarted = errors.New("thriftserver: already started")

func init() {
	// The generated processors start a goroutine per request that polls
	// the input transport's IsOpen every ServerConnectivityCheckInterval
	// (5 ms by default) to cancel the request context of a closed
	// connection. This server cancels request contexts itself when it
	// closes a connection, so the poller is pure overhead (1 000 parked
	// long-polls would mean 200 000 wake-ups a second). Disable it once,
	// before any server runs.
	thrift.ServerConnectivityCheckInterval = 0
}

// Options configures a Server. The zero value of every field except Addr
// has a usable default.
type Options struct {
	// Addr is the TCP listen address, e.g. ":9613" or "127.0.0.1:0".
	Addr string
	// MaxFrameBytes is the largest accepted frame payload; larger frames
	// close their connection. 0 means DefaultMaxFrameBytes. Values below
	// MinMaxFrameBytes are refused unless AllowSmallFrames is set.
	MaxFrameBytes int
	// AllowSmallFrames permits MaxFrameBytes < MinMaxFrameBytes. Tests only.
	AllowSmallFrames bool
	// IdleTimeout closes a connection that sends nothing for this long
	// between requests (DDMQ's clientTimeout); it also bounds reading the
	// rest of a frame once it has started, and writing a reply.
	// 0 means no timeout.
	IdleTimeout time.Duration
	// DrainTimeout bounds the graceful drain Serve performs when its context
	// ends. 0 means DefaultDrainTimeout.
	DrainTimeout time.Duration
	// Registerer receives the server's metrics; nil means no metrics.
	Registerer prometheus.Registerer
	// Name labels metrics (const label "server") and logs, e.g. "pproxy".
	Name string
}

// withDefaults returns o with zero fields replaced by their defaults.
func (o Options) withDefaults() Options {
	if o.MaxFrameBytes == 0 {
		o.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if o.Name == "" {
		o.Name = "thrift"
	}
	return o
}

// Validate reports whether the options (after defaults) are usable.
func (o Options) Validate() error {
	o = o.withDefaults()
	switch {
	case o.Addr == "":
		return errors.New("thriftserver: empty listen address")
	case o.MaxFrameBytes < 0:
		return fmt.Errorf("thriftserver: negative MaxFrameBytes %d", o.MaxFrameBytes)
	case o.MaxFrameBytes < MinMaxFrameBytes && !o.AllowSmallFrames:
		return fmt.Errorf("thriftserver: MaxFrameBytes %d is below %d", o.MaxFrameBytes, MinMaxFrameBytes)
	case int64(o.MaxFrameBytes) > int64(1<<31-1):
		return fmt.Errorf("thriftserver: MaxFrameBytes %d exceeds the int32 frame header", o.MaxFrameBytes)
	case o.IdleTimeout < 0:
		return fmt.Errorf("thriftserver: negative IdleTimeout %v", o.IdleTimeout)
	case o.DrainTimeout < 0:
		return fmt.Errorf("thriftserver: negative DrainTimeout %v", o.DrainTimeout)
	}
	return nil
}

// Server is a framed Thrift server for one service (one processor) on one
// port. All methods are safe for concurrent use.
type Server struct {
	opts      Options
	processor thrift.TProcessor
	log       *zap.Logger
	metrics   *metrics
	tconf     *thrift.TConfiguration

	// baseCtx is the parent of every request context; cancelBase is called
	// when connections are force-closed.
	baseCtx    context.Context
	cancelBase context.CancelFunc

	inFlight atomic.Int64

	// wg counts the accept loop and every connection goroutine.
	wg sync.WaitGroup

	mu           sync.Mutex
	ln           net.Listener
	started      bool
	shuttingDown bool               // set once by the first Shutdown/Close
	conns        map[*conn]struct{} // open connections
	acceptDone   chan struct{}      // closed when the accept loop returns
	acceptErr    error              // fatal accept error, if any
	stopped      chan struct{}      // closed when wg reaches zero after shutdown began
	stopOnce     sync.Once          // starts the goroutine that closes stopped
	forceOnce    sync.Once          // force-close runs once
	finished     chan struct{}      // closed when stopped is, or when a forced Shutdown gives up waiting
	finishOnce   sync.Once          // closes finished
}

// New returns a Server for processor. It starts nothing; call Start or
// Serve. log may be nil (no logging).
func New(opts Options, processor thrift.TProcessor, log *zap.Logger) *Server {
	opts = opts.withDefaults()
	if log == nil {
		log = zap.NewNop()
	}
	log = log.With(zap.String("server", opts.Name))
	baseCtx, cancel := context.WithCancel(context.Background())
	return &Server{
		opts:      opts,
		processor: processor,
		log:       log,
		metrics:   newMetrics(opts.Name, opts.Registerer, log),
		tconf: &thrift.TConfiguration{
			// A message never exceeds its frame, so both limits are the
			// frame limit (Validate keeps it within int32).
			MaxFrameSize:       int32(min(opts.MaxFrameBytes, 1<<31-1)), //nolint:gosec // bounded by min
			MaxMessageSize:     int32(min(opts.MaxFrameBytes, 1<<31-1)), //nolint:gosec // bounded by min
			TBinaryStrictRead:  thrift.BoolPtr(true),
			TBinaryStrictWrite: thrift.BoolPtr(true),
		},
		baseCtx:    baseCtx,
		cancelBase: cancel,
		conns:      make(map[*conn]struct{}),
		acceptDone: make(chan struct{}),
		stopped:    make(chan struct{}),
		finished:   make(chan struct{}),
	}
}

// Start validates the options, binds the listen address and starts the
// accept loop. It returns ErrServerClosed after Shutdown/Close and an error
// if called twice.
func (s *Server) Start() error {
	if err := s.opts.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shuttingDown {
		return ErrServerClosed
	}
	if s.started {
		return errAlreadyStarted
	}
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("thriftserver %s: listen %s: %w", s.opts.Name, s.opts.Addr, err)
	}
	s.ln = ln
	s.started = true
	s.wg.Add(1)
	go s.acceptLoop(ln)
	s.log.Info("thrift server listening", zap.Stringer("addr", ln.Addr()),
		zap.Int("max_frame_bytes", s.opts.MaxFrameBytes), zap.Duration("idle_timeout", s.opts.IdleTimeout))
	return nil
}

// Serve starts the server if it is not started yet and blocks until ctx is
// done, the accept loop fails, or another caller shuts the server down.
// If another caller's Shutdown/Close is under way, Serve waits for it to
// finish (that caller owns the deadline). Otherwise Serve itself drains
// gracefully for up to Options.DrainTimeout, then force-closes. It returns
// the fatal accept error, or nil. Suits an errgroup member; a daemon with an
// ordered shutdown calls Start and Shutdown itself instead.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Start(); err != nil && !errors.Is(err, errAlreadyStarted) {
		return err
	}
	select {
	case <-ctx.Done():
	case <-s.acceptDone:
	}
	s.mu.Lock()
	byOther := s.shuttingDown
	acceptErr := s.acceptErr
	s.mu.Unlock()
	if byOther && acceptErr == nil {
		// Someone else owns the shutdown (and its deadline): wait for it.
		<-s.finished
		return nil
	}
	dctx, cancel := context.WithTimeout(context.Background(), s.opts.DrainTimeout)
	defer cancel()
	_ = s.Shutdown(dctx) // a forced close is logged by Shutdown
	return acceptErr
}

// Addr returns the bound listen address, or nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// InFlight returns the number of requests being read, processed or
// answered right now.
func (s *Server) InFlight() int64 { return s.inFlight.Load() }

// Shutdown stops the server gracefully: it closes the listener (no new
// connections), closes connections that are between requests, and waits for
// in-flight requests to finish and write their replies; each such
// connection is closed after its reply. When ctx ends first, every remaining
// connection is force-closed and request contexts are cancelled; Shutdown
// then waits briefly for the connection goroutines and returns ctx.Err().
// It returns nil when everything drained in time. Safe to call repeatedly
// and concurrently; every call waits for the drain.
func (s *Server) Shutdown(ctx context.Context) error {
	s.beginShutdown()
	select {
	case <-s.stopped:
		return nil
	case <-ctx.Done():
	}
	s.forceClose()
	t := time.NewTimer(forceCloseWait)
	defer t.Stop()
	select {
	case <-s.stopped:
	case <-t.C:
		s.log.Warn("thrift server: handlers still running after force close",
			zap.Int64("in_flight", s.inFlight.Load()))
	}
	s.finish()
	return ctx.Err()
}

// Close force-closes the server at once: the listener and every
// connection, cancelling request contexts. Idempotent; returns nil.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.Shutdown(ctx) // always context.Canceled here
	return nil
}

// beginShutdown runs the first phase of Shutdown once: mark shutting down,
// close the listener, wake idle connections so they close, and start the
// goroutine that closes s.stopped when everything has returned.
func (s *Server) beginShutdown() {
	s.mu.Lock()
	first := !s.shuttingDown
	s.shuttingDown = true
	if first {
		if s.ln != nil {
			_ = s.ln.Close() // the accept loop sees net.ErrClosed and returns
		}
		n := 0
		for c := range s.conns {
			if c.idle {
				c.wakeIdle()
				n++
			}
		}
		s.log.Info("thrift server shutting down",
			zap.Int("connections", len(s.conns)), zap.Int("idle_closed", n),
			zap.Int64("in_flight", s.inFlight.Load()))
	}
	s.mu.Unlock()
	// wg.Add never runs after shuttingDown is set (the accept loop checks it
	// under mu), so waiting here is safe.
	s.stopOnce.Do(func() {
		go func() {
			s.wg.Wait()
			close(s.stopped)
			s.finish()
		}()
	})
}

// finish marks the server finished for Serve.
func (s *Server) finish() { s.finishOnce.Do(func() { close(s.finished) }) }

// forceClose closes every remaining connection and cancels request contexts.
func (s *Server) forceClose() {
	s.forceOnce.Do(func() {
		s.cancelBase()
		s.mu.Lock()
		n := len(s.conns)
		for c := range s.conns {
			c.closeNet()
		}
		s.mu.Unlock()
		if n > 0 {
			s.log.Warn("thrift server: force-closed connections", zap.Int("connections", n),
				zap.Int64("in_flight", s.inFlight.Load()))
		}
	})
}

// acceptLoop accepts connections until the listener is closed or fails.
func (s *Server) acceptLoop(ln net.Listener) {
	defer s.wg.Done()
	defer close(s.acceptDone)
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.shuttingDown
			s.mu.Unlock()
			if closing || errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporaryAcceptErr(err) {
				// E.g. EMFILE/ENFILE/ECONNABORTED: back off and retry, as
				// net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("thrift server: accept error; retrying", zap.Error(err),
					zap.Duration("backoff", backoff))
				time.Sleep(backoff)
				continue
			}
			s.mu.Lock()
			s.acceptErr = fmt.Errorf("thriftserver %s: accept: %w", s.opts.Name, err)
			s.mu.Unlock()
			s.log.Error("thrift server: accept failed", zap.Error(err))
			return
		}
		backoff = 0
		if s.serveConn(nc) == nil {
			return // shutting down
		}
	}
}

// serveConn registers nc and starts its goroutine. It returns nil (and
// closes nc) when the server is shutting down.
func (s *Server) serveConn(nc net.Conn) *conn {
	c := s.newConn(nc)
	s.mu.Lock()
	if s.shuttingDown {
		s.mu.Unlock()
		_ = nc.Close()
		return nil
	}
	s.conns[c] = struct{}{}
	c.idle = true // until its first byte arrives
	s.wg.Add(1)
	s.mu.Unlock()
	s.metrics.connOpened()
	go c.serve()
	return c
}

// removeConn forgets c once its goroutine is done with it.
func (s *Server) removeConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.metrics.connClosed()
}
