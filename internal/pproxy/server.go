package pproxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/gen-go/carrera/producer"
	"github.com/ddmq-go/carrera/internal/config"
	"github.com/ddmq-go/carrera/internal/daemon"
	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/mq/kafka"
	"github.com/ddmq-go/carrera/internal/mq/rocketmq"
	"github.com/ddmq-go/carrera/internal/thriftserver"
	"github.com/ddmq-go/carrera/internal/zkconf"
)

// Options configures Run.
type Options struct {
	Bootstrap *config.Bootstrap
	Logger    *zap.Logger
	// ListenAddr overrides the Thrift listen address (default ":<port>").
	ListenAddr string
	// Ready, if set, is called once the Thrift and admin servers listen.
	Ready func(thrift, admin net.Addr)
	// Watcher, if set, adjusts the ZooKeeper watcher settings (tests
	// shorten intervals).
	Watcher func(*zkconf.Config)
}

// Run starts pproxy and blocks until ctx is cancelled, then shuts down in
// order (DESIGN.md): lame duck, drain, stop the Thrift server, close
// producers, close ZooKeeper, stop the admin server.
func Run(ctx context.Context, o Options) error {
	boot, log := o.Bootstrap, o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	reg := daemon.NewRegistry()

	instance := boot.InstanceName()
	log = log.With(zap.String("instance", instance))
	wcfg := zkconf.WatcherConfigFromBootstrap(boot)
	if o.Watcher != nil {
		o.Watcher(&wcfg)
	}
	source, err := zkconf.NewPProxySource(zkconf.PProxySourceConfig{
		Watcher: wcfg, Instance: instance, Static: boot.DefaultTopicInfoConf.Topics,
		Logger: log.Named("zk"), Registerer: reg,
	})
	if err != nil {
		return err
	}
	defer source.Close()
	if err := source.Start(ctx); err != nil {
		return fmt.Errorf("pproxy: loading /pproxy/%s: %w", instance, err)
	}
	snap := source.Current()

	registry := NewRegistry(log.Named("producers"))
	if failed := registry.Apply(ctx, producerSpecs(snap, reg, log)); failed > 0 {
		log.Warn("some broker clusters have no producer yet; retrying in the background", zap.Int("clusters", failed))
	}
	m := newMetrics(reg)
	handler := NewHandler(log.Named("handler"), registry, m, snap)
	unsubscribe := source.Subscribe(func(_, next *config.PProxySnapshot) {
		// Producers first, so a topic moved to a new cluster finds one.
		registry.Apply(ctx, producerSpecs(next, reg, log))
		handler.Apply(next)
		log.Info("configuration applied", zap.Int("topics", len(next.Topics)))
	})
	defer unsubscribe()

	var maxRead int64
	var idle time.Duration
	zkPort := 0
	if ts := snap.Node.CarreraConfiguration.ThriftServer; ts != nil {
		maxRead, zkPort = ts.MaxReadBufferBytes, ts.Port
		idle = time.Duration(ts.ClientTimeout) * time.Millisecond
	}
	listen := daemon.ListenAddr(o.ListenAddr, boot.Port, zkPort, log)
	srv := thriftserver.New(thriftserver.Options{
		Addr: listen, MaxFrameBytes: int(boot.FrameLimit(maxRead)), IdleTimeout: idle,
		DrainTimeout: boot.ShutdownTimeout, Registerer: reg, Name: "pproxy",
	}, producer.NewProducerServiceProcessor(handler), log.Named("thrift"))
	admin := daemon.NewAdminServer(boot.AdminAddr, reg, log.Named("admin"))
	if err := daemon.StartAll(admin, srv); err != nil {
		registry.Close(context.Background())
		return fmt.Errorf("pproxy: %w", err)
	}
	rctx, stopRetry := context.WithCancel(context.Background())
	retryDone := make(chan struct{})
	go func() { defer close(retryDone); registry.Run(rctx, 5*time.Second) }()

	log.Info("pproxy started", zap.String("thrift", srv.Addr().String()), zap.String("admin", admin.Addr().String()),
		zap.Int("topics", len(snap.Topics)), zap.Bool("zkConnected", source.Connected()))
	if o.Ready != nil {
		o.Ready(srv.Addr(), admin.Addr())
	}
	return daemon.AwaitShutdown(ctx, boot.ShutdownTimeout, log,
		daemon.Step{Name: "lame duck and drain in-flight calls", Fn: func(ctx context.Context) error {
			admin.SetShuttingDown()
			return handler.Drain(ctx)
		}},
		daemon.Step{Name: "stop thrift server", Fn: srv.Shutdown},
		daemon.Step{Name: "close producers", Fn: func(ctx context.Context) error {
			stopRetry()
			<-retryDone
			registry.Close(ctx)
			return nil
		}},
		daemon.Step{Name: "close zookeeper", Fn: func(context.Context) error { return source.Close() }},
		daemon.Step{Name: "stop admin server", Fn: admin.Shutdown},
	)
}

// producerSpecs derives the wanted producers from a snapshot: one per Kafka
// cluster when useKafka, one per RocketMQ cluster when useRocketmq. The
// fingerprint is the cluster's JSON plus the instance count (RocketMQ: plus
// the auto-batch settings).
func producerSpecs(snap *config.PProxySnapshot, reg prometheus.Registerer, log *zap.Logger) map[string]ClusterSpec {
	cc := snap.Node.CarreraConfiguration
	specs := map[string]ClusterSpec{}
	if cc.UseRocketmq {
		rocketmqSpecs(snap, specs, reg, log)
	}
	if !cc.UseKafka {
		return specs
	}
	for name, kc := range cc.KafkaConfigurationMap {
		fp, _ := json.Marshal(struct {
			C config.KafkaConfiguration
			N int
		}{kc, cc.KafkaProducers})
		topics := servedOn(snap, name)
		opts := kafka.Options{
			Cluster: name, Brokers: kc.BootstrapServers, Acks: kc.Acks, Retries: kc.Retries,
			BatchBytes: kc.BatchSize, ClientID: kc.ClientID,
			RetryBackoff:    time.Duration(kc.RetryBackoff) * time.Millisecond,
			MetadataMaxAge:  time.Duration(kc.MetadataMaxAge) * time.Millisecond,
			MetadataTimeout: time.Duration(kc.MetadataFetchTimeout) * time.Millisecond,
			AckTimeout:      time.Duration(kc.AckTimeout) * time.Millisecond,
			BufferMemory:    kc.BufferMemory, Instances: cc.KafkaProducers, Registerer: reg,
		}
		specs[name] = ClusterSpec{Fingerprint: string(fp), Build: func(ctx context.Context) (mq.Producer, error) {
			p, err := kafka.NewProducer(opts, log.Named("kafka"))
			if err != nil {
				return nil, err
			}
			if cc.WarmUpFetchTopicRouteInfo {
				for _, t := range topics {
					wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					if _, err := p.Resolve(wctx, t, mq.Selector{PartitionID: -2}); err != nil {
						log.Warn("warm-up: no metadata for topic", zap.String("cluster", name), zap.String("topic", t), zap.Error(err))
					}
					cancel()
				}
			}
			return p, nil
		}}
	}
	return specs
}

// rocketmqSpecs adds one spec per RocketMQ cluster to specs.
func rocketmqSpecs(snap *config.PProxySnapshot, specs map[string]ClusterSpec, reg prometheus.Registerer, log *zap.Logger) {
	cc := snap.Node.CarreraConfiguration
	var ab *rocketmq.AutoBatchOptions
	if cc.UseAutoBatch && cc.AutoBatch != nil {
		a := cc.AutoBatch
		ab = &rocketmq.AutoBatchOptions{
			MaxBytes: a.MaxBathBytes, ThresholdBytes: a.DoBatchThresholdBytes, MaxMessages: a.MaxBatchMessagesNumber,
			Wait: time.Duration(a.BatchWaitMills) * time.Millisecond, MaxInflight: a.MaxEncodeWorkerForEachBroker,
			Timeout: batchTimeout,
		}
	}
	for name, rc := range cc.RocketmqConfigurationMap {
		fp, _ := json.Marshal(struct {
			C  config.RocketmqConfiguration
			N  int
			AB *rocketmq.AutoBatchOptions
		}{rc, cc.RocketmqProducers, ab})
		topics := servedOn(snap, name)
		group := "" // the adapter's default prefix
		if rc.GroupPrefix != "" {
			group = rc.GroupPrefix + name
		}
		opts := rocketmq.Options{
			Cluster: name, NameServers: rc.NamesrvAddrs, Group: group,
			Instances:      cc.RocketmqProducers,
			SendTimeout:    time.Duration(rc.SendMsgTimeout) * time.Millisecond,
			BatchTimeout:   batchTimeout,
			CompressOver:   rc.CompressMsgBodyOverHowmuch,
			MaxMessageSize: rc.MaxMessageSize,
			RouteRefresh:   time.Duration(rc.PollNameServerInterval) * time.Millisecond,
			AutoBatch:      ab,
			Registerer:     reg,
		}
		if rc.RetryTimesWhenSendFailed != 0 {
			log.Info("rocketmq: retryTimesWhenSendFailed is ignored: the proxy's own single retry replaces client retries",
				zap.String("cluster", name), zap.Int("retryTimesWhenSendFailed", rc.RetryTimesWhenSendFailed))
		}
		specs[name] = ClusterSpec{Fingerprint: string(fp), Build: func(ctx context.Context) (mq.Producer, error) {
			p, err := rocketmq.NewProducer(opts, log.Named("rocketmq"))
			if err != nil {
				return nil, err
			}
			if cc.WarmUpFetchTopicRouteInfo {
				warmUp(ctx, p, name, topics, log)
			}
			return p, nil
		}}
	}
}

// warmUp fetches the metadata/route of every topic (behaviour.md §1.1 step 5).
func warmUp(ctx context.Context, p mq.Producer, cluster string, topics []string, log *zap.Logger) {
	for _, t := range topics {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if _, err := p.Resolve(wctx, t, mq.Selector{PartitionID: -2}); err != nil {
			log.Warn("warm-up: no metadata for topic", zap.String("cluster", cluster), zap.String("topic", t), zap.Error(err))
		}
		cancel()
	}
}

// servedOn lists the served topics that have cluster among their candidates.
func servedOn(snap *config.PProxySnapshot, cluster string) []string {
	var out []string
	for name, tv := range snap.Topics {
		for _, c := range tv.Clusters {
			if c == cluster {
				out = append(out, name)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}
