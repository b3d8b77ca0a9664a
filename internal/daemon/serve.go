package daemon

import (
	"context"
	"net"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
)

// NewRegistry returns a metrics registry with the Go runtime and process
// collectors, the base of every daemon's /metrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// ListenAddr is the Thrift listen address: override if set, else all
// interfaces on the bootstrap port. zkPort is thriftServer.port from the
// ZooKeeper node (0 if absent); a different value is only warned about, as
// both proxies listen on the bootstrap port.
func ListenAddr(override string, port, zkPort int, log *zap.Logger) string {
	if zkPort != 0 && zkPort != port {
		log.Warn("thriftServer.port in ZooKeeper differs from the bootstrap port; listening on the bootstrap port",
			zap.Int("zkPort", zkPort), zap.Int("port", port))
	}
	if override != "" {
		return override
	}
	return ":" + strconv.Itoa(port)
}

// Server is a listener a daemon starts and shuts down.
type Server interface {
	Start() error
	Addr() net.Addr
	Shutdown(ctx context.Context) error
}

// StartAll starts servers in order; if one fails, the ones already started
// are shut down and its error is returned.
func StartAll(servers ...Server) error {
	for i, s := range servers {
		if err := s.Start(); err != nil {
			for _, started := range servers[:i] {
				_ = started.Shutdown(context.Background())
			}
			return err
		}
	}
	return nil
}

// AwaitShutdown blocks until ctx is done, then runs the ordered shutdown
// steps within timeout (see RunSteps).
func AwaitShutdown(ctx context.Context, timeout time.Duration, log *zap.Logger, steps ...Step) error {
	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return RunSteps(sctx, log, steps...)
}
