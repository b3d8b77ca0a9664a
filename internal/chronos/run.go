package chronos

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/chronos/store"
	"github.com/ddmq-go/carrera/internal/daemon"
)

// Options configures Run.
type Options struct {
	Config *Config
	Logger *zap.Logger
	// Clock defaults to the real clock.
	Clock Clock
	// Ready, if set, is called once the service runs, with the admin
	// address (nil when the admin server is disabled).
	Ready func(admin net.Addr)
	// OnEngine, if set, receives the engine before Ready: a benchmark with
	// pullOn false feeds Engine.Ingest directly (store and seek loop
	// without cproxy).
	OnEngine func(*Engine)
}

// Run starts the delay service and blocks until ctx is cancelled, then
// shuts down in order (DESIGN.md "Delay service"): healthz 503; stop
// pulling (each puller finishes its batch and submits its last ack); flush
// the store; stop the seek loop after its current second; stop retention;
// resign from the election; close the pproxy clients; close the store;
// stop the admin server. Deliveries still retrying at the shutdown
// deadline are aborted (their second is not committed and is processed
// again at the next start).
func Run(ctx context.Context, o Options) error {
	cfg, log := o.Config, o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	clock := o.Clock
	if clock == nil {
		clock = realClock{}
	}
	reg := daemon.NewRegistry()
	m := newMetrics(reg)

	st, err := store.Open(store.Options{Dir: cfg.DB.DBPath, CacheBytes: int64(cfg.DB.CacheMB) << 20,
		MemTableBytes: uint64(cfg.DB.MemTableMB) << 20, Logger: log.Named("store")})
	if err != nil {
		return err
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chronos_store_disk_bytes",
		Help: "On-disk size of the delay store."}, func() float64 { return float64(st.DiskBytes()) }))

	hard, hardCancel := context.WithCancel(context.Background())
	defer hardCancel()
	pool := newSendPool(hard, cfg.Push.BatchSendThreadNum, senderConfig{
		addrs: cfg.Push.PproxyAddrs, proxyTimeout: ms(cfg.Push.ProxyTimeoutMs), clientTimeout: cfg.clientTimeout(),
		clientRetry: cfg.Push.ClientRetry, retryInterval: ms(cfg.Push.RetryIntervalMs), fakeSend: cfg.FakeSend,
	}, m, log.Named("send"))
	r := newRole(cfg.StandAlone, func(master bool) {
		if master {
			m.master.Set(1)
		} else {
			m.master.Set(0)
		}
	})
	engine, err := newEngine(hard, st, pool, r, clock, m, log.Named("engine"),
		engineConfig{deliver: cfg.PushOn, maxCatchUp: cfg.Pull.MaxCatchUp})
	if err != nil {
		pool.Close()
		_ = st.Close()
		return err
	}

	var admin *daemon.AdminServer
	if cfg.AdminAddr != "-" {
		admin = daemon.NewAdminServer(cfg.AdminAddr, reg, log.Named("admin"))
		if err := admin.Start(); err != nil {
			pool.Close()
			_ = st.Close()
			return fmt.Errorf("chronos: %w", err)
		}
	}

	var h *ha
	if !cfg.StandAlone {
		if h, err = startHA(cfg, r, engine, log.Named("ha")); err != nil {
			pool.Close()
			_ = st.Close()
			if admin != nil {
				_ = admin.Shutdown(context.Background())
			}
			return err
		}
	}

	seekCtx, stopSeek := context.WithCancel(context.Background())
	seekDone := make(chan struct{})
	go func() { defer close(seekDone); engine.RunSeek(seekCtx) }()

	retCtx, stopRetention := context.WithCancel(context.Background())
	var retWG sync.WaitGroup
	if cfg.DeleteOn {
		retWG.Add(1)
		go func() {
			defer retWG.Done()
			engine.RunRetention(retCtx, time.Duration(cfg.Delete.IntervalMinutes)*time.Minute, cfg.Delete.SaveHours)
		}()
	}

	pullCtx, stopPull := context.WithCancel(context.Background())
	var pullWG sync.WaitGroup
	if cfg.PullOn {
		for i := range cfg.Pull.ThreadNum {
			p := &puller{log: log.Named("pull"), m: m, engine: engine, role: r, clock: clock,
				addr: cfg.Pull.CproxyAddrs[i%len(cfg.Pull.CproxyAddrs)], group: cfg.Pull.InnerGroup,
				topic: cfg.Pull.InnerTopic, batch: int32(cfg.Pull.MaxBatchSize), linger: cfg.linger(),
				timeout: ms(cfg.Pull.TimeoutMs), retry: ms(max(cfg.Pull.RetryIntervalMs, 10)),
				hold: ms(cfg.Pull.BackupHoldMs)}
			pullWG.Add(1)
			go func() { defer pullWG.Done(); p.run(pullCtx) }()
		}
	}

	var adminAddr net.Addr
	if admin != nil {
		adminAddr = admin.Addr()
	}
	log.Info("chronos started", zap.Int64("seek", engine.Seek()), zap.Int64("pending", engine.Pending()),
		zap.Bool("standAlone", cfg.StandAlone), zap.Stringer("admin", adminAddr))
	if o.OnEngine != nil {
		o.OnEngine(engine)
	}
	if o.Ready != nil {
		o.Ready(adminAddr)
	}

	// waitOrAbort waits for done; at the deadline it aborts deliveries
	// (which lets the waiting stage finish) and waits again.
	waitOrAbort := func(ctx context.Context, done <-chan struct{}) error {
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			hardCancel()
			<-done
			return ctx.Err()
		}
	}
	return daemon.AwaitShutdown(ctx, cfg.ShutdownTimeout, log,
		daemon.Step{Name: "healthz 503, stop pulling", Fn: func(ctx context.Context) error {
			if admin != nil {
				admin.SetShuttingDown()
			}
			stopPull()
			done := make(chan struct{})
			go func() { pullWG.Wait(); close(done) }()
			return waitOrAbort(ctx, done)
		}},
		daemon.Step{Name: "flush store", Fn: func(context.Context) error { return st.Flush() }},
		daemon.Step{Name: "stop seek loop after its current second", Fn: func(ctx context.Context) error {
			stopSeek()
			return waitOrAbort(ctx, seekDone)
		}},
		daemon.Step{Name: "stop retention", Fn: func(context.Context) error {
			stopRetention()
			retWG.Wait()
			return nil
		}},
		daemon.Step{Name: "resign and close zookeeper", Fn: func(context.Context) error {
			if h != nil {
				h.Close()
			}
			return nil
		}},
		daemon.Step{Name: "close pproxy clients", Fn: func(context.Context) error {
			hardCancel()
			pool.Close()
			return nil
		}},
		daemon.Step{Name: "close store", Fn: func(context.Context) error { return st.Close() }},
		daemon.Step{Name: "stop admin server", Fn: func(ctx context.Context) error {
			if admin == nil {
				return nil
			}
			return admin.Shutdown(ctx)
		}},
	)
}
