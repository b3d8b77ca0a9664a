// Command benchproduce measures the producer proxy against direct Kafka
// production, in one run, on a stack it starts itself:
//
//	ZooKeeper (Debian jar), kfakeserver (1 broker, topic "bench" with 16
//	partitions) and pproxy (built from ./cmd/pproxy), each a separate child
//	process on free ports of 127.0.0.1 with its files in a temporary
//	directory.
//
// With 1 KiB messages it measures, each phase for -duration after a
// -warmup, starting from an emptied topic:
//
//	direct sarama SyncProducer, C goroutines sharing one producer   vs
//	pproxy sendSync (3000 ms, partitionId -2), C connections         (C = 1, 64)
//	direct sarama AsyncProducer, in-flight window of batch × conns   vs
//	pproxy sendBatchSync (batches of -batch) from -batch-conns connections
//
// and prints msgs/s, per-call p50/p99 latency, the proxy/direct ratios,
// CPU per process, Kafka produce requests, pproxy's peak RSS (VmHWM) and
// verdicts against the targets. Missed targets are printed as MISSED but do
// not fail the run; the exit status is non-zero only when the harness itself
// fails (1) or is interrupted (130). Every child process is stopped
// (SIGTERM, then SIGKILL after 10 s) and the temporary directory removed on
// every exit path, Ctrl-C included.
//
// The broker runs in memory by default (-broker-persist makes kfakeserver
// fsync every produce batch, which turns every phase into a disk
// benchmark). kfake slows down as its log grows, so each phase starts from
// an emptied topic and retention.bytes (enforced every second, 1 MiB
// segments) bounds the log within a phase.
//
// -backend rocketmq runs the same pairs on RocketMQ: rmqbroker (the
// project's RocketMQ-protocol test broker: one NameServer, one broker, a
// topic of -partitions queues) instead of kfakeserver, and
// rocketmq-client-go v2.1.2 as the direct path (SendSync from C goroutines
// sharing one producer; SendAsync with the in-flight window) against
// pproxy on a RocketMQ cluster (sendBatchSync then becomes one
// SEND_BATCH_MESSAGE per call).
//
// On a small machine the proxy path pays for an extra process on the same
// cores; -pin gives pproxy a CPU of its own and confines everything else to
// the others. -profile-dir saves pproxy CPU profiles of the pproxy phases,
// -only selects phases, -pproxy-bin and -pproxy-env compare builds and
// runtime settings.
//
// Usage (from the repository root):
//
//	go run ./cmd/benchproduce [-backend kafka|rocketmq] [-duration 5s] [-pin] [-json results.json] [-profile-dir DIR]
//	make bench-produce BENCH_ARGS='-duration 3s'
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	bu "github.com/ddmq-go/carrera/internal/benchutil"
)

// Targets.
const (
	targetSyncRatio  = 0.7 // C=64 sendSync ≥ 0.7 × direct
	targetP99DiffMs  = 1.0 // C=1 p99 ≤ direct p99 + 1 ms
	targetBatchRatio = 0.7 // sendBatchSync ≥ 0.7 × direct async
	targetRSSMiB     = 150.0
)

// Backends (-backend).
const (
	backendKafka    = "kafka"
	backendRocketMQ = "rocketmq"
)

type options struct {
	backend       string
	duration      time.Duration
	warmup        time.Duration
	size          int
	partitions    int
	topic         string
	batch         int
	batchConns    int
	asyncWindow   int
	brokerPersist bool
	jsonPath      string
	profileDir    string
	keep          bool
	retention     int64
	pin           bool
	pproxyEnv     []string
	pproxyBin     string
	only          *regexp.Regexp
}

func main() {
	os.Exit(realMain())
}

func realMain() int {
	bu.SetProgram("benchproduce")
	var o options
	flag.StringVar(&o.backend, "backend", backendKafka, "broker backend: kafka (kfakeserver, sarama direct) or rocketmq (rmqbroker test broker, rocketmq-client-go direct)")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "measured time per phase")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured warm-up before each phase")
	flag.IntVar(&o.size, "size", 1024, "message body bytes")
	flag.IntVar(&o.partitions, "partitions", 16, "partitions of the bench topic")
	flag.StringVar(&o.topic, "topic", "bench", "topic name")
	flag.IntVar(&o.batch, "batch", 100, "messages per sendBatchSync")
	flag.IntVar(&o.batchConns, "batch-conns", 16, "connections sending sendBatchSync concurrently")
	flag.IntVar(&o.asyncWindow, "async-window", 0, "in-flight messages of the direct async producer (0 = batch × batch-conns, the same bound as the batch phase)")
	flag.BoolVar(&o.brokerPersist, "broker-persist", false, "kfakeserver persists to a temp data dir (it then fsyncs every produce batch: disk-bound); default in memory")
	flag.Int64Var(&o.retention, "retention-bytes", 8<<20, "retention.bytes per partition, enforced every second (bounds the broker's memory)")
	flag.StringVar(&o.jsonPath, "json", "", "also write the results as JSON to this file")
	flag.StringVar(&o.profileDir, "profile-dir", "", "save a pproxy CPU profile of each pproxy phase's measured window here")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (logs, configs, broker data)")
	flag.BoolVar(&o.pin, "pin", false, "give pproxy a CPU of its own (taskset) and confine ZooKeeper, the broker and the load generator to the others, in every phase")
	flag.Func("pproxy-env", "extra environment variable KEY=VALUE for pproxy only, e.g. GOGC=400 (repeatable)", func(v string) error {
		if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
			return errors.New("want KEY=VALUE")
		}
		o.pproxyEnv = append(o.pproxyEnv, v)
		return nil
	})
	flag.StringVar(&o.pproxyBin, "pproxy-bin", "", "use this pproxy binary instead of building ./cmd/pproxy (e.g. to compare builds)")
	only := flag.String("only", "", "run only the phases whose name matches this regexp (e.g. 'sync-64')")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: go run ./cmd/benchproduce [flags]\n\n"+
			"Starts ZooKeeper, kfakeserver and pproxy, measures pproxy against direct sarama production and\n"+
			"prints a table with verdicts. Exit status 0 unless the harness fails; missed targets print MISSED.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := o.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "benchproduce:", err)
		return 2
	}
	if *only != "" {
		re, err := regexp.Compile(*only)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchproduce: -only:", err)
			return 2
		}
		o.only = re
	}
	if o.asyncWindow == 0 {
		o.asyncWindow = o.batch * o.batchConns
	}

	return bu.Main(bu.MainOptions{Keep: o.keep, KeepWhat: "the logs and configurations", JSONPath: o.jsonPath},
		func(ctx context.Context, cl *bu.Cleanups) (*report, error) { return bench(ctx, &o, cl) }, printTable)
}

func (o *options) validate() error {
	switch {
	case o.duration <= 0:
		return errors.New("-duration must be > 0")
	case o.warmup < 0:
		return errors.New("-warmup must be >= 0")
	case o.size <= 0:
		return errors.New("-size must be > 0")
	case o.partitions <= 0:
		return errors.New("-partitions must be > 0")
	case o.batch <= 0 || o.batchConns <= 0:
		return errors.New("-batch and -batch-conns must be > 0")
	case o.retention <= 0:
		return errors.New("-retention-bytes must be > 0")
	case o.asyncWindow < 0:
		return errors.New("-async-window must be >= 0")
	case o.backend != backendKafka && o.backend != backendRocketMQ:
		return fmt.Errorf("-backend %q: want %s or %s", o.backend, backendKafka, backendRocketMQ)
	case o.backend == backendRocketMQ && o.brokerPersist:
		return errors.New("-broker-persist is for the Kafka backend")
	}
	return nil
}

var logf = bu.Logf

// stack is the running system under test.
type stack struct {
	zk, broker, pproxy *bu.Proc // broker: kfakeserver or rmqbroker
	brokers            []string // Kafka bootstrap addresses (Kafka backend)
	nameServer         string   // RocketMQ NameServer (RocketMQ backend)
	proxyAddr          string
	adminAddr          string
	admin              topicAdmin
}

// up builds the binaries and starts ZooKeeper, kfakeserver and pproxy.
func up(ctx context.Context, o *options, cl *bu.Cleanups, tmp string) (*stack, error) {
	bin, pproxyBin, err := bu.BuildStack(ctx, tmp, "pproxy", o.pproxyBin)
	if err != nil {
		return nil, err
	}
	ports, err := bu.FreePorts(5)
	if err != nil {
		return nil, fmt.Errorf("free ports: %w", err)
	}
	zkPort, kafkaPort, proxyPort, adminPort, rmqBrokerPort := ports[0], ports[1], ports[2], ports[3], ports[4]
	plan, err := bu.NewCPUPlan(o.pin, runtime.NumCPU())
	if err != nil {
		return nil, err
	}
	if o.pin {
		if err := bu.PinSelf(plan.OtherIDs); err != nil {
			return nil, err
		}
		logf("pinned: pproxy on CPU %s; ZooKeeper, broker and load generator on CPU %s", plan.Proxy, plan.Others)
	}
	s := &stack{
		brokers:   []string{"127.0.0.1:" + strconv.Itoa(kafkaPort)},
		proxyAddr: "127.0.0.1:" + strconv.Itoa(proxyPort),
		adminAddr: "127.0.0.1:" + strconv.Itoa(adminPort),
	}
	zkAddr := "127.0.0.1:" + strconv.Itoa(zkPort)

	dir := func(name string) (string, error) {
		d := filepath.Join(tmp, name)
		return d, os.MkdirAll(d, 0o755)
	}
	zkDir, err := dir("zookeeper")
	if err != nil {
		return nil, err
	}
	if s.zk, err = bu.StartZooKeeper(ctx, zkDir, zkPort, plan.Others); err != nil {
		return nil, err
	}
	cl.StopOnCleanup(s.zk)
	logf("ZooKeeper serving on %s (pid %d)", zkAddr, s.zk.PID())

	instance := s.proxyAddr
	var nodes map[string][]byte
	if o.backend == backendRocketMQ {
		rDir, err := dir("rmqbroker")
		if err != nil {
			return nil, err
		}
		root, err := bu.ModuleRoot(ctx)
		if err != nil {
			return nil, err
		}
		if err := bu.BuildBinaries(ctx, root, bin, "./cmd/rmqbroker"); err != nil {
			return nil, err
		}
		nsPort := kafkaPort
		if s.broker, err = startRMQBroker(ctx, filepath.Join(bin, "rmqbroker"), rDir, nsPort, rmqBrokerPort, plan.Others); err != nil {
			return nil, err
		}
		cl.StopOnCleanup(s.broker)
		s.nameServer = "127.0.0.1:" + strconv.Itoa(nsPort)
		brokerAddr := "127.0.0.1:" + strconv.Itoa(rmqBrokerPort)
		adm, err := newRMQAdmin(ctx, brokerAddr, o.topic, o.partitions)
		if err != nil {
			return nil, s.broker.Failure(fmt.Errorf("admin client: %w", err))
		}
		cl.Push(adm.Close)
		if err := adm.CreateTopic(); err != nil {
			return nil, s.broker.Failure(err)
		}
		s.admin = adm
		logf("rmqbroker (test broker) NameServer %s, %s on %s (pid %d), topic %q with %d queues",
			s.nameServer, rmqBrokerName, brokerAddr, s.broker.PID(), o.topic, o.partitions)
		nodes = map[string][]byte{
			"/pproxy/" + instance: rmqPProxyNode(instance, proxyPort, s.nameServer, o.topic),
			"/topic/" + o.topic:   rmqTopicNode(o.topic, instance),
		}
	} else {
		kDir, err := dir("kafka")
		if err != nil {
			return nil, err
		}
		data := ""
		if o.brokerPersist {
			data = filepath.Join(kDir, "data")
		}
		if s.broker, err = bu.StartKafka(ctx, filepath.Join(bin, "kfakeserver"), kDir, kafkaPort, o.partitions, data, plan.Others); err != nil {
			return nil, err
		}
		cl.StopOnCleanup(s.broker)
		adm, err := bu.NewBrokerAdmin(s.brokers, o.topic)
		if err != nil {
			return nil, s.broker.Failure(fmt.Errorf("admin client: %w", err))
		}
		cl.Push(adm.Close)
		if err := adm.CreateTopic(o.partitions, o.retention); err != nil {
			return nil, s.broker.Failure(err)
		}
		s.admin = adm
		logf("kfakeserver listening on %s (pid %d), topic %q with %d partitions (retention.bytes %d each), persist=%v",
			s.brokers[0], s.broker.PID(), o.topic, o.partitions, o.retention, o.brokerPersist)
		nodes = map[string][]byte{
			"/pproxy/" + instance: pproxyNode(instance, proxyPort, s.brokers, o.topic),
			"/topic/" + o.topic:   topicNode(o.topic, instance),
		}
	}
	if err := bu.SeedZK(zkAddr, bu.ZKChroot, nodes); err != nil {
		return nil, fmt.Errorf("seeding ZooKeeper: %w", err)
	}

	pDir, err := dir("pproxy")
	if err != nil {
		return nil, err
	}
	if s.pproxy, err = startPProxy(ctx, pproxyBin, pDir, zkAddr, proxyPort, s.adminAddr, plan.Proxy, o.pproxyEnv); err != nil {
		return nil, err
	}
	cl.StopOnCleanup(s.pproxy)
	logf("pproxy %s serving on %s, admin http://%s (pid %d)", pproxyBin, s.proxyAddr, s.adminAddr, s.pproxy.PID())
	if len(o.pproxyEnv) > 0 {
		logf("pproxy environment additions: %s", strings.Join(o.pproxyEnv, " "))
	}
	return s, nil
}

// phaseSpec is one measured configuration: a closed-loop phase has
// prepare (connections and producers are set up before the clock starts),
// the async phase has open (it sets up and measures itself).
type phaseSpec struct {
	res     phaseResult
	counter produceCounter                                         // produce requests and records so far
	prepare func() ([]callFunc, func(), error)                     // closed-loop phases
	open    func(ctx context.Context, w window) (*recorder, error) // the async phase
}

func bench(ctx context.Context, o *options, cl *bu.Cleanups) (*report, error) {
	tmp, err := os.MkdirTemp("", "benchproduce-")
	if err != nil {
		return nil, err
	}
	cl.Push(func() {
		if o.keep {
			logf("kept %s", tmp)
			return
		}
		_ = os.RemoveAll(tmp)
	})
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return nil, err
		}
	}
	s, err := up(ctx, o, cl, tmp)
	if err != nil {
		return nil, err
	}

	body := make([]byte, o.size)
	_, _ = rand.Read(body) // incompressible (no compression is configured anyway)

	rep := &report{
		RunInfo: bu.NewRunInfo(o.backend, o.size, o.partitions), Warmup: o.warmup.String(), Duration: o.duration.String(),
		BrokerPersist: o.brokerPersist, LoadAvgAtStart: bu.LoadAvg(),
	}
	var specs []phaseSpec
	if o.backend == backendRocketMQ {
		var err error
		if specs, err = rmqSpecs(o, s, body, cl); err != nil {
			return nil, err
		}
	} else {
		specs = kafkaSpecs(o, s, body)
	}

	ran := 0
	for i := range specs {
		sp := &specs[i]
		if o.only != nil && !o.only.MatchString(sp.res.Name) {
			continue
		}
		ran++
		if err := runPhase(ctx, o, s, sp); err != nil {
			return nil, fmt.Errorf("phase %s: %w", sp.res.Name, err)
		}
		rep.Phases = append(rep.Phases, sp.res)
	}

	if ran == 0 {
		return nil, fmt.Errorf("-only %q matches no phase", o.only)
	}
	if kib, err := bu.ProcStatusKiB(s.pproxy.PID(), "VmHWM"); err == nil {
		rep.PProxyPeakRSSMiB = float64(kib) / 1024
	} else {
		return nil, fmt.Errorf("pproxy peak RSS: %w", err)
	}
	if kib, err := bu.ProcStatusKiB(s.broker.PID(), "VmHWM"); err == nil {
		rep.BrokerPeakRSSMiB = float64(kib) / 1024
	}
	finish(rep, o)
	return rep, nil
}

// kafkaSpecs are the phases of the Kafka backend.
func kafkaSpecs(o *options, s *stack, body []byte) []phaseSpec {
	var specs []phaseSpec
	proxyCounter := pproxyCounter(s.adminAddr)
	for _, c := range []int{1, 64} {
		cfg := directConfig()
		specs = append(specs,
			phaseSpec{
				res: phaseResult{Name: fmt.Sprintf("direct-sync-%d", c), Path: "direct", API: "sarama SyncProducer.SendMessage",
					Concurrency: c, LatencyUnit: "call"},
				counter: saramaCounter(cfg),
				prepare: func() ([]callFunc, func(), error) { return directSync(cfg, s.brokers, o.topic, body, c) },
			},
			phaseSpec{
				res: phaseResult{Name: fmt.Sprintf("proxy-sync-%d", c), Path: "pproxy", API: "sendSync",
					Concurrency: c, LatencyUnit: "call"},
				counter: proxyCounter,
				prepare: func() ([]callFunc, func(), error) { return proxySync(s.proxyAddr, o.topic, body, c) },
			})
	}
	asyncCfg := directConfig()
	specs = append(specs,
		phaseSpec{
			res: phaseResult{Name: "direct-async", Path: "direct", API: "sarama AsyncProducer",
				Concurrency: 1, Window: o.asyncWindow, LatencyUnit: "message"},
			counter: saramaCounter(asyncCfg),
			open: func(ctx context.Context, w window) (*recorder, error) {
				return runDirectAsync(ctx, w, asyncCfg, s.brokers, o.topic, body, o.asyncWindow)
			},
		},
		phaseSpec{
			res: phaseResult{Name: fmt.Sprintf("proxy-batch-%d", o.batch), Path: "pproxy", API: "sendBatchSync",
				Concurrency: o.batchConns, Batch: o.batch, LatencyUnit: "batch call"},
			counter: proxyCounter,
			prepare: func() ([]callFunc, func(), error) {
				return proxyBatch(s.proxyAddr, o.topic, body, o.batchConns, o.batch)
			},
		})

	return specs
}

// rmqSpecs are the phases of the RocketMQ backend: the same pairs against
// rocketmq-client-go (SendSync from C goroutines sharing one producer;
// SendAsync with the same in-flight bound as the batch phase).
func rmqSpecs(o *options, s *stack, body []byte, cl *bu.Cleanups) ([]phaseSpec, error) {
	var specs []phaseSpec
	proxyCounter := rmqPProxyCounter(s.adminAddr)
	for _, c := range []int{1, 64} {
		d, err := newRMQDirect(s.nameServer)
		if err != nil {
			return nil, fmt.Errorf("rocketmq-client-go producer: %w", err)
		}
		cl.Push(d.close)
		specs = append(specs,
			phaseSpec{
				res: phaseResult{Name: fmt.Sprintf("direct-sync-%d", c), Path: "direct", API: "rocketmq-client-go SendSync",
					Concurrency: c, LatencyUnit: "call"},
				counter: d.counter(),
				prepare: func() ([]callFunc, func(), error) { return rmqDirectSync(d, o.topic, body, c) },
			},
			phaseSpec{
				res: phaseResult{Name: fmt.Sprintf("proxy-sync-%d", c), Path: "pproxy", API: "sendSync",
					Concurrency: c, LatencyUnit: "call"},
				counter: proxyCounter,
				prepare: func() ([]callFunc, func(), error) { return proxySync(s.proxyAddr, o.topic, body, c) },
			})
	}
	d, err := newRMQDirect(s.nameServer)
	if err != nil {
		return nil, fmt.Errorf("rocketmq-client-go producer: %w", err)
	}
	cl.Push(d.close)
	specs = append(specs,
		phaseSpec{
			res: phaseResult{Name: "direct-async", Path: "direct", API: "rocketmq-client-go SendAsync",
				Concurrency: 1, Window: o.asyncWindow, LatencyUnit: "message"},
			counter: d.counter(),
			open: func(ctx context.Context, w window) (*recorder, error) {
				return runRMQDirectAsync(ctx, w, d, o.topic, body, o.asyncWindow)
			},
		},
		phaseSpec{
			res: phaseResult{Name: fmt.Sprintf("proxy-batch-%d", o.batch), Path: "pproxy", API: "sendBatchSync",
				Concurrency: o.batchConns, Batch: o.batch, LatencyUnit: "batch call"},
			counter: proxyCounter,
			prepare: func() ([]callFunc, func(), error) {
				return proxyBatch(s.proxyAddr, o.topic, body, o.batchConns, o.batch)
			},
		})
	return specs, nil
}

// runPhase measures one phase and fills sp.res.
func runPhase(ctx context.Context, o *options, s *stack, sp *phaseSpec) error {
	res := &sp.res
	desc := fmt.Sprintf("concurrency %d", res.Concurrency)
	switch {
	case res.Batch > 0:
		desc = fmt.Sprintf("%d connections × batches of %d", res.Concurrency, res.Batch)
	case res.Window > 0:
		desc = fmt.Sprintf("one producer, ≤ %d messages in flight", res.Window)
	}
	logf("phase %-16s %s (%s): %s warm-up + %s", res.Name, res.API, desc, o.warmup, o.duration)

	if held, written, err := s.admin.Empty(o.partitions); err != nil {
		return err
	} else if held > 0 {
		logf("  emptied the topic: it held %d records (%d written so far)", held, written)
	}
	var calls []callFunc
	teardown := func() {}
	if sp.prepare != nil {
		var err error
		if calls, teardown, err = sp.prepare(); err != nil {
			return err
		}
	}
	defer teardown()

	type sample struct {
		pproxy, broker, zk, self, machine time.Duration
		reqs, recs                        float64
		counted                           bool
	}
	take := func() sample {
		smp := sample{pproxy: bu.CPUTime(s.pproxy.PID()), broker: bu.CPUTime(s.broker.PID()), zk: bu.CPUTime(s.zk.PID()),
			self: bu.CPUTime(os.Getpid()), machine: bu.MachineBusy()}
		if sp.counter != nil {
			smp.reqs, smp.recs, smp.counted = sp.counter()
		}
		return smp
	}
	res.LoadAvg = bu.LoadAvg()
	var before, after sample
	var profErr error
	profDone := make(chan struct{})
	close(profDone)
	w := newWindow(o.warmup, o.duration)
	wait := schedule(ctx, w, func() {
		before = take()
		if o.profileDir != "" && res.Path == "pproxy" {
			res.Profile = filepath.Join(o.profileDir, "pproxy-"+res.Name+".pprof")
			profDone = make(chan struct{})
			go func() {
				defer close(profDone)
				profErr = bu.FetchProfile(ctx, s.adminAddr, o.duration, res.Profile)
			}()
		}
	}, func() { after = take() })

	var rec *recorder
	if sp.open != nil {
		var err error
		if rec, err = sp.open(ctx, w); err != nil {
			return err
		}
	} else {
		rec = runClosed(ctx, w, calls)
	}
	wait()
	<-profDone
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if s.pproxy.Exited() {
		return s.pproxy.Failure(fmt.Errorf("exited during the phase: %v", s.pproxy.WaitErr))
	}
	if s.broker.Exited() {
		return s.broker.Failure(fmt.Errorf("exited during the phase: %v", s.broker.WaitErr))
	}
	if profErr != nil {
		logf("  CPU profile: %v", profErr)
		res.Profile = ""
	}
	res.summarize(rec, o.duration)
	if rec.calls == 0 {
		first := "none"
		if rec.first != nil {
			first = rec.first.Error()
		}
		return fmt.Errorf("%w (errors %d, first: %s)", errNoSuccess, rec.errs, first)
	}
	pct := func(d time.Duration) float64 { return 100 * d.Seconds() / o.duration.Seconds() }
	stackCPU := (after.pproxy - before.pproxy) + (after.broker - before.broker) + (after.zk - before.zk) + (after.self - before.self)
	if res.Path == "direct" { // pproxy idles meanwhile; its few ticks are not part of the direct path
		stackCPU -= after.pproxy - before.pproxy
	}
	res.CPU = cpuShare{
		PProxy: pct(after.pproxy - before.pproxy), Broker: pct(after.broker - before.broker),
		ZK: pct(after.zk - before.zk), Bench: pct(after.self - before.self),
		Machine: pct(after.machine - before.machine),
		Other:   max(0, pct(after.machine-before.machine)-pct((after.pproxy-before.pproxy)+(after.broker-before.broker)+(after.zk-before.zk)+(after.self-before.self))),
	}
	if before.counted && after.counted && after.reqs > before.reqs {
		res.ProduceReqsPerSec = (after.reqs - before.reqs) / o.duration.Seconds()
		res.RecordsPerRequest = (after.recs - before.recs) / (after.reqs - before.reqs)
	}
	if res.Messages > 0 {
		res.StackCPUPerMsgUs = float64(stackCPU.Microseconds()) / float64(res.Messages)
	}
	if res.Path == "pproxy" && res.Messages > 0 {
		res.PProxyCPUPerMsgUs = float64((after.pproxy - before.pproxy).Microseconds()) / float64(res.Messages)
	}
	line := fmt.Sprintf("  %.0f msgs/s, p50 %.2f ms, p99 %.2f ms (per %s)", res.MsgsPerSec, res.P50Ms, res.P99Ms, res.LatencyUnit)
	if res.Errors > 0 {
		line += fmt.Sprintf(", %d ERRORS (first: %s)", res.Errors, res.FirstError)
	}
	logf("%s", line)
	return nil
}

// finish adds comparisons, verdicts and notes.
func finish(rep *report, o *options) {
	pairs := []struct {
		name, direct, proxy string
		latency             bool
	}{
		{"sendSync C=1", "direct-sync-1", "proxy-sync-1", true},
		{"sendSync C=64", "direct-sync-64", "proxy-sync-64", true},
		{"batch vs async", "direct-async", fmt.Sprintf("proxy-batch-%d", o.batch), false},
	}
	cmp := map[string]comparison{}
	for _, p := range pairs {
		d, x := rep.phase(p.direct), rep.phase(p.proxy)
		if d == nil || x == nil {
			continue
		}
		c := compare(p.name, d, x, p.latency)
		cmp[p.name] = c
		rep.Comparisons = append(rep.Comparisons, c)
	}
	if c, ok := cmp["sendSync C=64"]; ok {
		rep.Verdicts = append(rep.Verdicts, bu.Verdict{
			Target: fmt.Sprintf("C=64 sendSync throughput ≥ %.2f× direct", targetSyncRatio),
			Actual: fmt.Sprintf("%.3f×", c.Ratio), Met: c.Ratio >= targetSyncRatio})
	}
	if c, ok := cmp["sendSync C=1"]; ok {
		d := rep.phase(c.Direct)
		rep.Verdicts = append(rep.Verdicts, bu.Verdict{
			Target: fmt.Sprintf("C=1 sendSync p99 ≤ direct p99 + %.0f ms", targetP99DiffMs),
			Actual: fmt.Sprintf("%+.2f ms (direct p99 %.2f ms, proxy p99 %.2f ms)", c.P99DiffMs, d.P99Ms, d.P99Ms+c.P99DiffMs),
			Met:    c.P99DiffMs <= targetP99DiffMs})
	}
	if c, ok := cmp["batch vs async"]; ok {
		rep.Verdicts = append(rep.Verdicts, bu.Verdict{
			Target: fmt.Sprintf("sendBatchSync(%d) throughput ≥ %.2f× direct async", o.batch, targetBatchRatio),
			Actual: fmt.Sprintf("%.3f×", c.Ratio), Met: c.Ratio >= targetBatchRatio})
	}
	rep.Verdicts = append(rep.Verdicts, bu.Verdict{
		Target: fmt.Sprintf("pproxy peak RSS ≤ %.0f MiB", targetRSSMiB),
		Actual: fmt.Sprintf("%.1f MiB (VmHWM)", rep.PProxyPeakRSSMiB), Met: rep.PProxyPeakRSSMiB <= targetRSSMiB})

	persist := "in memory"
	if o.brokerPersist {
		persist = "persisted to a temp dir with an fsync per produce batch (kfakeserver -data-dir)"
	}
	layout := fmt.Sprintf("%d CPU cores shared by ZooKeeper, the broker, pproxy and this load generator: the figures are "+
		"for the whole stack on one box. The direct path has no pproxy competing for the cores, so ratios\n"+
		"understate what pproxy would reach on a machine of its own (try -pin); the CPU%% columns (100 = one core) "+
		"show where the time went.", rep.CPUs)
	if o.pin {
		layout = fmt.Sprintf("-pin: pproxy alone on CPU %d; ZooKeeper, the broker and this load generator share the "+
			"other %d CPU(s) in every phase, so client and broker capacity is the same on both paths.\n"+
			"pproxy runs with GOMAXPROCS=1 then. Caveat: the direct path stays on one CPU while pproxy's traffic "+
			"crosses CPUs (wake-ups by inter-processor interrupt, costly in a VM).", rep.CPUs-1, rep.CPUs-1)
	}
	rep.Pinned = o.pin
	rep.Notes = []string{
		layout,
		fmt.Sprintf("Broker: kfakeserver (franz-go kfake, a Go Kafka-protocol fake, not Kafka), 1 broker, %s.", persist),
		fmt.Sprintf("Messages: %d B random bodies, no key; direct uses sarama's random partitioner, pproxy partitionId -2 "+
			"(random). sarama %s, acks all, no retries, on both paths (pproxy: kafkaProducers 1).", o.size, "V2_8_0_0"),
		fmt.Sprintf("Batch vs async: pproxy sendBatchSync(%d) from %d connections (≤ %d messages in flight) against one "+
			"sarama AsyncProducer with the same in-flight bound (%d). Batch latency is per batch call, async latency\n"+
			"per message (hand-over → ack), so only throughput is compared. pproxy sends a whole -2 batch to one random "+
			"partition; the async producer spreads messages over all partitions.",
			o.batch, o.batchConns, o.batch*o.batchConns, o.asyncWindow),
		"Latency: per call, from the recorded durations of calls completing in the measured window (nearest-rank percentiles).",
		"CPU µs/msg: CPU time of the stack's processes (generator, broker, ZooKeeper, and pproxy on pproxy phases) per message " +
			"delivered. idle: approximate (tick-sampled /proc/stat).\n" +
			"req/s, msg/req: produce requests of the phase's producer and messages per request (sarama's metrics or the " +
			"load generator's count; pproxy's /metrics).",
	}
	if o.backend == backendRocketMQ {
		rep.Notes[1] = "Broker: rmqbroker (the project's RocketMQ-protocol TEST broker, in memory; not RocketMQ), one NameServer " +
			"and one broker name in one process; the topic is deleted and recreated between phases."
		rep.Notes[2] = fmt.Sprintf("Messages: %d B random bodies, no key; %d queues. Direct: rocketmq-client-go v2.1.2 with a random "+
			"queue selector, no client retries; pproxy partitionId -2 (random), rocketmqProducers 1, auto-batch off.", o.size, o.partitions)
		rep.Notes[3] = fmt.Sprintf("Batch vs async: pproxy sendBatchSync(%d) from %d connections (≤ %d messages in flight; each call "+
			"is one SEND_BATCH_MESSAGE to one random queue) against one rocketmq-client-go producer's SendAsync with the same "+
			"in-flight bound (%d),\none SEND_MESSAGE per message. Batch latency is per batch call, async latency per message, "+
			"so only throughput is compared.", o.batch, o.batchConns, o.batch*o.batchConns, o.asyncWindow)
	}
	for _, p := range rep.Phases {
		if p.CPU.Other > 25 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("WARNING: during %s other programs used %.0f%% CPU (of %d00%%): "+
				"its figures are disturbed; rerun on an idle machine.", p.Name, p.CPU.Other, rep.CPUs))
		}
	}
}
