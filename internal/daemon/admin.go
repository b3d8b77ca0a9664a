// Package daemon holds process-lifecycle helpers shared by the pproxy and
// cproxy binaries: the admin HTTP server (/metrics, /healthz, /debug/pprof),
// a signal-cancelled context, PID files and an ordered shutdown runner.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// AdminServer is the operator-facing HTTP server:
//
//	/metrics        Prometheus exposition of the given Gatherer
//	/healthz        200 "ok", or 503 "shutting down" after SetShuttingDown
//	/debug/pprof/*  net/http/pprof
//
// New starts nothing; Start binds and serves; Shutdown stops it.
// All methods are safe for concurrent use.
type AdminServer struct {
	addr string
	log  *zap.Logger
	mux  *http.ServeMux
	srv  *http.Server

	shuttingDown atomic.Bool

	mu      sync.Mutex
	ln      net.Listener
	started bool
	closed  bool
	done    chan struct{} // closed when the serve goroutine returns
}

// NewAdminServer returns an admin server for addr (e.g. ":9614" or
// "127.0.0.1:0") exposing g on /metrics. A nil g exposes
// prometheus.DefaultGatherer. log may be nil.
func NewAdminServer(addr string, g prometheus.Gatherer, log *zap.Logger) *AdminServer {
	if g == nil {
		g = prometheus.DefaultGatherer
	}
	if log == nil {
		log = zap.NewNop()
	}
	a := &AdminServer{addr: addr, log: log, mux: http.NewServeMux(), done: make(chan struct{})}
	a.mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:      zap.NewStdLog(log),
		ErrorHandling: promhttp.ContinueOnError,
	}))
	a.mux.HandleFunc("/healthz", a.healthz)
	a.mux.HandleFunc("/debug/pprof/", pprof.Index)
	a.mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	a.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	a.mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	a.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	a.srv = &http.Server{
		Handler:           a.mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// No WriteTimeout: /debug/pprof/profile and trace stream for as
		// many seconds as asked.
		ErrorLog: zap.NewStdLog(log),
	}
	return a
}

// Handle registers an extra handler (e.g. a component's debug page). Call
// it before Start.
func (a *AdminServer) Handle(pattern string, h http.Handler) { a.mux.Handle(pattern, h) }

// Handler returns the server's HTTP handler (for tests and embedding).
func (a *AdminServer) Handler() http.Handler { return a.mux }

// SetShuttingDown makes /healthz answer 503 from now on, so load balancers
// and probes stop sending traffic before the proxy drains.
func (a *AdminServer) SetShuttingDown() { a.shuttingDown.Store(true) }

func (a *AdminServer) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if a.shuttingDown.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("shutting down\n"))
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// Start binds the address and serves in a goroutine owned by the server
// (stopped by Shutdown).
func (a *AdminServer) Start() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.closed:
		return errors.New("daemon: admin server closed")
	case a.started:
		return errors.New("daemon: admin server already started")
	}
	ln, err := net.Listen("tcp", a.addr)
	if err != nil {
		return fmt.Errorf("daemon: admin listen %s: %w", a.addr, err)
	}
	a.ln, a.started = ln, true
	go func() {
		defer close(a.done)
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("admin server stopped", zap.Error(err))
		}
	}()
	a.log.Info("admin server listening", zap.Stringer("addr", ln.Addr()))
	return nil
}

// Addr returns the bound address, or nil before Start.
func (a *AdminServer) Addr() net.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ln == nil {
		return nil
	}
	return a.ln.Addr()
}

// Shutdown marks the server unhealthy, stops accepting, waits for active
// requests up to ctx, then closes what is left. Idempotent.
func (a *AdminServer) Shutdown(ctx context.Context) error {
	a.SetShuttingDown()
	a.mu.Lock()
	started := a.started
	a.closed = true
	a.mu.Unlock()
	if !started {
		return nil
	}
	err := a.srv.Shutdown(ctx)
	if err != nil {
		_ = a.srv.Close() // deadline passed: drop remaining requests (e.g. a long profile)
	}
	<-a.done
	return err
}
