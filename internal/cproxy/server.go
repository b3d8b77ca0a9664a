package cproxy

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/config"
	"github.com/ddmq-go/carrera/internal/daemon"
	"github.com/ddmq-go/carrera/internal/thriftserver"
	"github.com/ddmq-go/carrera/internal/zkconf"
)

// DefaultIdleTimeout stops a pull group after this long without a pull.
const DefaultIdleTimeout = 60 * time.Second

// DefaultGCPercent is cproxy's garbage-collection target (GOGC) when the
// environment sets none. Its heap is mostly short-lived fetch responses and
// message copies over a small live set that the configuration bounds, so
// collecting at 200 % of the live heap rather than Go's 100 % costs one more
// live heap of memory and ~10 % less CPU per message (bench-consume, Kafka,
// C=16: 2.10–2.49 against 2.49–2.65 µs/msg, three interleaved runs each).
const DefaultGCPercent = 200

// ApplyGCPercent sets DefaultGCPercent unless GOGC is set; daemons call it
// at start-up.
func ApplyGCPercent() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultGCPercent)
	}
}

// Options configures Run.
type Options struct {
	Bootstrap *config.Bootstrap
	Logger    *zap.Logger
	// ListenAddr overrides the Thrift listen address (default ":<port>").
	ListenAddr string
	// Ready, if set, is called once the Thrift and admin servers listen.
	Ready func(thrift, admin net.Addr)
	// Watcher, if set, adjusts the ZooKeeper watcher settings.
	Watcher func(*zkconf.Config)
	// IdleTimeout of pull groups (default 60 s).
	IdleTimeout time.Duration
	// FetcherIdleTimeout of low-level fetchers (default 30 s).
	FetcherIdleTimeout time.Duration
	// Timings of the broker group protocol (zero = the adapter defaults).
	Timings GroupTimings
}

// Run starts cproxy and blocks until ctx is cancelled or /cproxy/<instance>
// is deleted, then shuts down in order: stop accepting and finish in-flight
// calls, stop the groups (each commits what is committable and leaves its
// broker group), close ZooKeeper, stop the admin server.
func Run(ctx context.Context, o Options) error {
	boot, log := o.Bootstrap, o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	idle := o.IdleTimeout
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	reg := daemon.NewRegistry()
	instance := boot.InstanceName()
	log = log.With(zap.String("instance", instance))

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	wcfg := zkconf.WatcherConfigFromBootstrap(boot)
	if o.Watcher != nil {
		o.Watcher(&wcfg)
	}
	source, err := zkconf.NewCProxySource(zkconf.CProxySourceConfig{
		Watcher: wcfg, Instance: instance, Logger: log.Named("zk"), Registerer: reg,
		OnNodeDeleted: func() {
			log.Warn("/cproxy node deleted: shutting down (DDMQ drain procedure)")
			stop()
		},
	})
	if err != nil {
		return err
	}
	defer source.Close()
	if err := source.Start(ctx); err != nil {
		return fmt.Errorf("cproxy: loading /cproxy/%s: %w", instance, err)
	}
	snap := source.Current()
	backend := newBackends(log, reg, source.Current, o.Timings, instance)
	mgr := NewManager(log.Named("groups"), reg, backend, snap, idle)
	low := NewLowLevel(LowLevelOptions{Log: log.Named("lowlevel"), Snapshot: mgr.Snapshot,
		Consumer: backend.GroupConsumer, Reader: backend.reader, IdleTimeout: o.FetcherIdleTimeout, QID: backend.QID})
	unsubscribe := source.Subscribe(func(old, next *config.CProxySnapshot) {
		mgr.Apply(old, next)
		low.Apply(old, next)
	})
	defer unsubscribe()
	stats := &offsetStats{snapshot: mgr.Snapshot, reader: backend.reader, qid: backend.QID, offsetGroup: backend.offsetGroup}
	handler := NewHandler(log.Named("handler"), mgr, stats).WithLowLevel(low)
	reg.MustRegister(NewLagCollector(mgr.RunningGroupTopics, stats.ConsumeStats, 0))

	var maxRead int64
	zkPort := 0
	if ts := snap.Node.ThriftServer; ts != nil {
		maxRead, zkPort = ts.MaxReadBufferBytes, ts.Port
	}
	listen := daemon.ListenAddr(o.ListenAddr, boot.Port, zkPort, log)
	srv := thriftserver.New(thriftserver.Options{
		Addr: listen, MaxFrameBytes: int(boot.FrameLimit(maxRead)), DrainTimeout: boot.ShutdownTimeout,
		Registerer: reg, Name: "cproxy",
	}, NewProcessor(handler), log.Named("thrift"))
	admin := daemon.NewAdminServer(boot.AdminAddr, reg, log.Named("admin"))
	if err := daemon.StartAll(admin, srv); err != nil {
		return fmt.Errorf("cproxy: %w", err)
	}
	idleCtx, stopIdle := context.WithCancel(context.Background())
	idleDone := make(chan struct{})
	go func() { defer close(idleDone); mgr.RunIdle(idleCtx, min(idle/2, 5*time.Second)) }()
	fetcherIdle := o.FetcherIdleTimeout
	if fetcherIdle <= 0 {
		fetcherIdle = DefaultFetcherIdleTimeout
	}
	lowIdleDone := make(chan struct{})
	go func() { defer close(lowIdleDone); low.RunIdle(idleCtx, min(fetcherIdle/2, 5*time.Second)) }()

	log.Info("cproxy started", zap.String("thrift", srv.Addr().String()), zap.String("admin", admin.Addr().String()),
		zap.Int("groups", len(snap.Groups)), zap.Bool("zkConnected", source.Connected()))
	if o.Ready != nil {
		o.Ready(srv.Addr(), admin.Addr())
	}
	return daemon.AwaitShutdown(ctx, boot.ShutdownTimeout, log,
		daemon.Step{Name: "stop thrift server", Fn: func(ctx context.Context) error {
			admin.SetShuttingDown()
			return srv.Shutdown(ctx)
		}},
		daemon.Step{Name: "stop groups (commit, leave)", Fn: func(ctx context.Context) error {
			stopIdle()
			<-idleDone
			<-lowIdleDone
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { defer wg.Done(); low.Close() }()
			mgr.Close()
			wg.Wait()
			backend.Close(ctx)
			return nil
		}},
		daemon.Step{Name: "close zookeeper", Fn: func(context.Context) error { return source.Close() }},
		daemon.Step{Name: "stop admin server", Fn: admin.Shutdown},
	)
}
