// Command benchdelay measures the delay service (cmd/chronos) on a stack it
// starts itself: ZooKeeper (Debian jar), kfakeserver, pproxy, cproxy and the
// delay service, each a child process on free ports of 127.0.0.1 with its
// files in a temporary directory. Two phases, each with its own delay
// service process and store:
//
//	proxy   the real path: sendDelaySync from -conns Thrift connections to
//	        pproxy → inner topic → cproxy pull (chronos pullers) → store →
//	        seek loop → pproxy sendSync → user topic
//	direct  the store and seek loop alone: synthetic inner messages are fed
//	        to Engine.Ingest inside the delay-service process (this program
//	        re-executed as the service); deliveries still go through pproxy
//
// Each phase schedules its messages with fire times spread uniformly over
// -spread, starting -lead after the first send (auto: long enough for the
// ingestion to finish first), and reports: the ingest rate (messages / time
// until the service's pending gauge reached the number sent), the store's
// size on disk, the service's RSS sampled from /proc every second next to
// its pending count, and the fire lateness of every message (the user
// topic's record timestamp − the fire second, read back with sarama).
// The 1,000,000 messages over 10 minutes of fire times would take
// more than the 10-minute budget of this 2-core box in two phases, so the
// default spread is compressed to 2 minutes; -spread 10m restores it.
//
// Usage (from the repository root):
//
//	go run ./cmd/benchdelay [-n 1000000] [-direct-n 1000000] [-spread 2m] [-mode both|proxy|direct] [-json out.json]
//	make bench-delay BENCH_ARGS='-n 200000 -direct-n 200000 -spread 1m'
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
	bu "github.com/ddmq-go/carrera/internal/benchutil"
)

// Targets (issue 5).
const (
	targetIngest = 20000.0 // msgs/s
	targetP99Ms  = 1500
)

var logf = bu.Logf

type options struct {
	n, directN            int
	spread                time.Duration
	proxyLead, directLead time.Duration
	body, conns           int
	partitions            int
	pullThreads           int
	pullBatch             int
	sendThreads           int
	directWorkers         int
	mode                  string
	keep                  bool
	jsonPath              string
}

func main() {
	if child, code := runDirectChild(); child {
		os.Exit(code)
	}
	os.Exit(realMain())
}

func realMain() int {
	bu.SetProgram("benchdelay")
	var o options
	flag.IntVar(&o.n, "n", 1000000, "messages of the through-proxy phase")
	flag.IntVar(&o.directN, "direct-n", 1000000, "messages of the direct phase")
	flag.DurationVar(&o.spread, "spread", 2*time.Minute, "fire times are spread uniformly over this window")
	flag.DurationVar(&o.proxyLead, "lead", 0, "first fire time after the first send of the proxy phase (0 = auto: n/10000 s + 20 s: sends, then ingestion)")
	flag.DurationVar(&o.directLead, "direct-lead", 0, "the same for the direct phase (0 = auto: n/50000 s + 15 s)")
	flag.IntVar(&o.body, "body", 100, "message body bytes")
	flag.IntVar(&o.conns, "conns", 32, "sendDelaySync connections of the proxy phase")
	flag.IntVar(&o.partitions, "partitions", 8, "partitions of the inner and user topics")
	flag.IntVar(&o.pullThreads, "pull-threads", 8, "the delay service's pulling goroutines (threadNum)")
	flag.IntVar(&o.pullBatch, "pull-batch", 500, "maxBatchSize of its pulls (and the inner group's maxPullBatchSize)")
	flag.IntVar(&o.sendThreads, "send-threads", 128, "its sending goroutines (batchSendThreadNum)")
	flag.IntVar(&o.directWorkers, "direct-workers", 4, "concurrent Engine.Ingest callers of the direct phase")
	flag.StringVar(&o.mode, "mode", "both", "phases: both, proxy or direct")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (logs, stores)")
	flag.StringVar(&o.jsonPath, "json", "", "also write the results as JSON to this file")
	flag.Parse()
	if o.n <= 0 || o.directN <= 0 || o.spread < time.Second || o.body <= 0 || o.conns <= 0 || o.partitions <= 0 ||
		o.pullThreads <= 0 || o.pullBatch <= 0 || o.sendThreads <= 0 || o.directWorkers <= 0 ||
		(o.mode != "both" && o.mode != "proxy" && o.mode != "direct") {
		fmt.Fprintln(os.Stderr, "benchdelay: bad flags (counts > 0, -spread >= 1s, -mode both|proxy|direct)")
		return 2
	}
	if o.proxyLead == 0 {
		o.proxyLead = time.Duration(o.n/10000+20) * time.Second
	}
	if o.directLead == 0 {
		o.directLead = time.Duration(o.directN/50000+15) * time.Second
	}

	tmp, err := os.MkdirTemp("", "benchdelay-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchdelay:", err)
		return 1
	}
	return bu.Main(bu.MainOptions{Keep: o.keep, KeepWhat: "the logs", JSONPath: o.jsonPath},
		func(ctx context.Context, cl *bu.Cleanups) (*report, error) {
			cl.Push(func() {
				if o.keep {
					logf("kept %s", tmp)
					return
				}
				_ = os.RemoveAll(tmp)
			})
			return bench(ctx, &o, cl, tmp)
		}, printReport)
}

// rssPoint is the service's RSS at a pending level.
type rssPoint struct {
	When    string  `json:"when"`
	Pending float64 `json:"pending"`
	RSSMiB  float64 `json:"rssMiB"`
}

type phaseReport struct {
	Name          string     `json:"name"`
	Path          string     `json:"path"`
	Messages      int        `json:"messages"`
	Scheduled     int64      `json:"scheduled"`
	SendRate      float64    `json:"sendDelaySyncMsgsPerSec,omitempty"`
	SendError     string     `json:"firstSendError,omitempty"`
	IngestSecs    float64    `json:"ingestSeconds"`
	IngestRate    float64    `json:"ingestMsgsPerSec"`
	IngestLate    bool       `json:"ingestEndedAfterFirstFire"`
	LeadSecs      float64    `json:"leadSeconds"`
	SpreadSecs    float64    `json:"spreadSeconds"`
	StoreMiB      float64    `json:"storeDiskMiB"`
	StoreDirMiB   float64    `json:"storeDirMiB"`
	Delivered     int        `json:"delivered"`
	Missing       int        `json:"missing"`
	Extra         int        `json:"deliveredAfterTimeoutAnswer"`
	Duplicates    int        `json:"duplicates"`
	Early         int        `json:"early"`
	LateP50Ms     int64      `json:"latenessP50Ms"`
	LateP99Ms     int64      `json:"latenessP99Ms"`
	LateMaxMs     int64      `json:"latenessMaxMs"`
	PeakRSSMiB    float64    `json:"peakRssMiB"`
	RSSLowMiB     float64    `json:"rssAtLowPendingMiB"`
	RSSHighMiB    float64    `json:"rssAtHighPendingMiB"`
	RSSByPending  []rssPoint `json:"rssByPending"`
	ServiceCPUPct float64    `json:"serviceCpuPct"`
}

type report struct {
	Started   time.Time     `json:"started"`
	GoVersion string        `json:"goVersion"`
	CPUs      int           `json:"cpus"`
	Body      int           `json:"bodyBytes"`
	Phases    []phaseReport `json:"phases"`
	Verdicts  []bu.Verdict  `json:"verdicts"`
	Notes     []string      `json:"notes"`
}

func bench(ctx context.Context, o *options, cl *bu.Cleanups, tmp string) (*report, error) {
	rep := &report{Started: time.Now(), GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), Body: o.body}
	est := 30 * time.Second
	if o.mode != "direct" {
		est += o.proxyLead + o.spread + 20*time.Second
	}
	if o.mode != "proxy" {
		est += o.directLead + o.spread + 20*time.Second
	}
	logf("plan: proxy n=%d lead %v, direct n=%d lead %v, spread %v, body %d B: about %v",
		o.n, o.proxyLead, o.directN, o.directLead, o.spread, o.body, est.Round(time.Second))
	s, err := up(ctx, o, cl, tmp)
	if err != nil {
		return nil, err
	}
	if o.mode != "direct" {
		p, err := runPhase(ctx, o, s, "proxy")
		if err != nil {
			return nil, err
		}
		rep.Phases = append(rep.Phases, *p)
	}
	if o.mode != "proxy" {
		p, err := runPhase(ctx, o, s, "direct")
		if err != nil {
			return nil, err
		}
		rep.Phases = append(rep.Phases, *p)
	}
	for _, p := range rep.Phases {
		rep.Verdicts = append(rep.Verdicts,
			bu.Verdict{Target: p.Name + ": ingest >= 20000 msgs/s", Actual: fmt.Sprintf("%.0f msgs/s", p.IngestRate), Met: p.IngestRate >= targetIngest},
			bu.Verdict{Target: p.Name + ": fire lateness p99 <= 1.5 s", Actual: fmt.Sprintf("%d ms (max %d ms)", p.LateP99Ms, p.LateMaxMs),
				Met: p.LateP99Ms <= targetP99Ms && p.Delivered > 0},
			bu.Verdict{Target: p.Name + ": every message delivered, none early", Actual: fmt.Sprintf("%d missing, %d early, %d duplicates", p.Missing, p.Early, p.Duplicates),
				Met: p.Missing == 0 && p.Early == 0},
			bu.Verdict{Target: p.Name + ": RSS independent of pending (high <= 1.25 x low + 16 MiB)",
				Actual: fmt.Sprintf("%.0f MiB at %s pending vs %.0f MiB near 0", p.RSSHighMiB, humanCount(float64(p.Scheduled)), p.RSSLowMiB),
				Met:    p.RSSHighMiB <= 1.25*p.RSSLowMiB+16})
	}
	rep.Notes = append(rep.Notes,
		fmt.Sprintf("Fire times compressed: %v spread per phase (the issue's 10 minutes with -spread 10m).", o.spread),
		"Lateness = user-topic record timestamp (set by pproxy's producer at send) − fire second; ingestion = time until the service's pending gauge reached the number scheduled.",
		"Everything (ZooKeeper, kfakeserver, pproxy, cproxy, the delay service, this load generator and consumer) shares the same CPUs.")
	return rep, nil
}

// runPhase starts a delay service (process), schedules the phase's
// messages and measures it; the service is stopped at the end.
func runPhase(ctx context.Context, o *options, s *stack, name string) (*phaseReport, error) {
	n, lead, topic, phaseID := o.n, o.proxyLead, proxyTopic, uint32(1)
	if name == "direct" {
		n, lead, topic, phaseID = o.directN, o.directLead, directTopic, 2
	}
	pr := &phaseReport{Name: name, Messages: n, LeadSecs: lead.Seconds(), SpreadSecs: o.spread.Seconds()}
	dir := dirOf(s.tmp, "chronos-"+name)
	ports, err := bu.FreePorts(1)
	if err != nil {
		return nil, err
	}
	admin := "127.0.0.1:" + strconv.Itoa(ports[0])
	conf := filepath.Join(dir, "chronos.yaml")
	if err := os.WriteFile(conf, []byte(s.chronosYAML(o, dir, admin, name == "proxy")), 0o644); err != nil {
		return nil, err
	}
	goFile := filepath.Join(dir, "go")
	startService := func() (*bu.Proc, error) {
		var proc *bu.Proc
		var err error
		if name == "proxy" {
			proc, err = bu.StartProc("chronos-proxy", dir, filepath.Join(dir, "chronos.log"), "", nil, filepath.Join(s.binDir, "chronos"), "-conf", conf)
		} else {
			self, err2 := os.Executable()
			if err2 != nil {
				return nil, err2
			}
			params, _ := json.Marshal(directParams{Conf: conf, GoFile: goFile, N: n, Phase: phaseID, Topic: topic,
				Spread: int64(o.spread.Seconds()), Body: o.body, Workers: o.directWorkers, Batch: o.pullBatch})
			proc, err = bu.StartProc("chronos-direct", dir, filepath.Join(dir, "chronos.log"), "", []string{directEnv + "=" + string(params)}, self)
		}
		if err != nil {
			return nil, err
		}
		if err := bu.WaitHealthy(ctx, proc, admin, 60*time.Second); err != nil {
			proc.Stop(bu.StopGrace)
			return nil, err
		}
		logf("%s phase: delay service pid %d, admin http://%s", name, proc.PID(), admin)
		return proc, nil
	}

	body := make([]byte, o.body)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	spread := int64(o.spread.Seconds())
	mctx, stopMeasure := context.WithCancel(ctx)
	defer stopMeasure()
	col := newCollector(phaseID, n)
	closeConsumer, err := consume(mctx, s.brokers, topic, col)
	if err != nil {
		return nil, err
	}
	var closeOnce sync.Once
	closeAll := func() { closeOnce.Do(func() { stopMeasure(); closeConsumer() }) }
	defer closeAll()
	pending := func() float64 { return scrape(admin)["chronos_pending_messages"] }

	var proc *bu.Proc
	var smp sampler
	var start, ingestStart, ingested time.Time
	var first int64
	var cpu0 time.Duration
	if name == "proxy" {
		pr.Path = "sendDelaySync → pproxy → inner topic → cproxy pull → store → seek loop → pproxy → user topic"
		// The service's first pull creates the inner group (it starts at
		// the newest offset); then it is stopped so the sends and the
		// ingestion through cproxy are measured separately.
		if proc, err = startService(); err != nil {
			return nil, err
		}
		if err := waitFor(ctx, 60*time.Second, "the inner group to join", func() bool { return groupReady(s.caddr, o.partitions) }); err != nil {
			return nil, proc.Failure(err)
		}
		proc.Stop(bu.StopGrace)
		start = time.Now()
		first = start.Add(lead).Unix()
		logf("%s phase: sending %d delay messages (service stopped), fire times %s .. %s", name, n,
			time.Unix(first, 0).Format("15:04:05"), time.Unix(first+spread-1, 0).Format("15:04:05"))
		ok, serr := sendLoad(ctx, s.paddr, o.conns, n, phaseID, topic, first, spread, body, col)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		pr.Scheduled = ok
		pr.SendRate = float64(ok) / time.Since(start).Seconds()
		if serr != nil {
			pr.SendError = serr.Error()
		}
		logf("proxy phase: %d sendDelaySync OK at %.0f msgs/s (first error: %v)", ok, pr.SendRate, serr)
		ingestStart = time.Now()
		if proc, err = startService(); err != nil {
			return nil, err
		}
		cpu0 = bu.CPUTime(proc.PID())
		go smp.run(mctx, proc.PID(), admin)
		if err := waitFor(ctx, time.Duration(n/1000+120)*time.Second, "ingestion", func() bool {
			return pending() >= float64(ok) || time.Now().Unix() >= first
		}); err != nil {
			return nil, proc.Failure(err)
		}
		ingested = time.Now()
	} else {
		pr.Path = "synthetic inner messages → Engine.Ingest (in the service process) → store → seek loop → pproxy → user topic"
		if proc, err = startService(); err != nil {
			return nil, err
		}
		go smp.run(mctx, proc.PID(), admin)
		time.Sleep(2 * time.Second) // a baseline RSS sample at pending 0
		cpu0 = bu.CPUTime(proc.PID())
		start = time.Now()
		first = start.Add(lead).Unix()
		logf("%s phase: ingesting %d messages, fire times %s .. %s", name, n,
			time.Unix(first, 0).Format("15:04:05"), time.Unix(first+spread-1, 0).Format("15:04:05"))
		if err := os.WriteFile(goFile, []byte(strconv.FormatInt(first, 10)), 0o644); err != nil {
			return nil, err
		}
		var secs float64
		if err := waitFor(ctx, time.Duration(n/1000+120)*time.Second, "direct ingestion", func() bool {
			b, _ := os.ReadFile(proc.LogPath)
			i := strings.Index(string(b), directDone+" ")
			if i < 0 {
				return false
			}
			f := strings.Fields(string(b[i:]))
			if len(f) >= 3 {
				secs, _ = strconv.ParseFloat(f[2], 64)
			}
			return true
		}); err != nil {
			return nil, proc.Failure(err)
		}
		pr.Scheduled = int64(n)
		ingestStart = start
		ingested = start.Add(time.Duration(secs * float64(time.Second)))
	}
	stopped := false
	defer func() {
		if !stopped {
			proc.Stop(bu.StopGrace)
		}
	}()
	pr.IngestSecs = ingested.Sub(ingestStart).Seconds()
	pr.IngestRate = float64(pr.Scheduled) / pr.IngestSecs
	pr.IngestLate = ingested.Unix() >= first
	m := scrape(admin)
	pr.StoreMiB = m["chronos_store_disk_bytes"] / (1 << 20)
	pr.StoreDirMiB = float64(dirBytes(filepath.Join(dir, "db"))) / (1 << 20)
	logf("%s phase: %d ingested in %.1f s = %.0f msgs/s; pending %.0f; store %.1f MiB on disk",
		name, pr.Scheduled, pr.IngestSecs, pr.IngestRate, m["chronos_pending_messages"], pr.StoreDirMiB)

	// Fires: wait for every message (or the window's end + 60 s).
	deadline := time.Unix(first+spread, 0).Add(60 * time.Second)
	lastLog := time.Now()
	for col.count() < int(pr.Scheduled) && time.Now().Before(deadline) { // count() includes "extra": see missing()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Since(lastLog) > 15*time.Second {
			lastLog = time.Now()
			logf("%s phase: %d of %d delivered, pending %.0f", name, col.count(), pr.Scheduled, pending())
		}
	}
	time.Sleep(2 * time.Second) // late duplicates and a final RSS sample at pending 0
	pr.ServiceCPUPct = 100 * (bu.CPUTime(proc.PID()) - cpu0).Seconds() / time.Since(ingestStart).Seconds()
	stopped = true
	proc.Stop(bu.StopGrace)
	closeAll()

	col.mu.Lock()
	pr.Delivered, pr.Duplicates, pr.Early = col.distinct, col.dups, col.early
	pr.LateP50Ms, pr.LateP99Ms, pr.LateMaxMs = latencyStats(col.lateMs)
	col.mu.Unlock()
	pr.Missing, pr.Extra = col.missing()
	rssStats(pr, smp.all(), float64(pr.Scheduled))
	logf("%s phase: delivered %d (missing %d, duplicates %d, early %d); lateness p50 %d ms p99 %d ms max %d ms; peak RSS %.0f MiB",
		name, pr.Delivered, pr.Missing, pr.Duplicates, pr.Early, pr.LateP50Ms, pr.LateP99Ms, pr.LateMaxMs, pr.PeakRSSMiB)
	return pr, nil
}

// rssStats summarises the samples: RSS at rising and falling pending
// levels, peak, and the RSS at high (>= 90 %) vs low (<= 10 %) pending.
func rssStats(pr *phaseReport, samples []sample, n float64) {
	if len(samples) == 0 || n <= 0 {
		return
	}
	mib := func(s sample) float64 { return float64(s.rssKiB) / 1024 }
	peakIdx := 0
	for i, s := range samples {
		pr.PeakRSSMiB = max(pr.PeakRSSMiB, mib(s))
		if s.pending > samples[peakIdx].pending {
			peakIdx = i
		}
		switch {
		case s.pending >= 0.9*n:
			pr.RSSHighMiB = max(pr.RSSHighMiB, mib(s))
		case s.pending <= 0.1*n:
			pr.RSSLowMiB = max(pr.RSSLowMiB, mib(s))
		}
	}
	pr.RSSByPending = append(pr.RSSByPending, rssPoint{When: "start", Pending: samples[0].pending, RSSMiB: mib(samples[0])})
	for _, q := range []float64{0.25, 0.5, 0.75} {
		for _, s := range samples[:peakIdx+1] {
			if s.pending >= q*n {
				pr.RSSByPending = append(pr.RSSByPending, rssPoint{When: "ingesting", Pending: s.pending, RSSMiB: mib(s)})
				break
			}
		}
	}
	pr.RSSByPending = append(pr.RSSByPending, rssPoint{When: "peak pending", Pending: samples[peakIdx].pending, RSSMiB: mib(samples[peakIdx])})
	for _, q := range []float64{0.5, 0.1, 0} {
		for _, s := range samples[peakIdx:] {
			if s.pending <= q*n {
				pr.RSSByPending = append(pr.RSSByPending, rssPoint{When: "firing", Pending: s.pending, RSSMiB: mib(s)})
				break
			}
		}
	}
}

// groupReady reports whether the inner group has committed offsets on
// every partition (a new Kafka group starts at the newest offset).
func groupReady(caddr string, partitions int) bool {
	cfg := &thrift.TConfiguration{ConnectTimeout: 2 * time.Second, SocketTimeout: 5 * time.Second}
	trans := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(caddr, cfg), cfg)
	if err := trans.Open(); err != nil {
		return false
	}
	defer trans.Close()
	p := thrift.NewTCompactProtocolConf(trans, cfg)
	c := consumer.NewConsumerServiceClient(thrift.NewTStandardClient(p, p))
	topic := innerTopic
	stats, err := c.GetConsumeStats(context.Background(), &consumer.ConsumeStatsRequest{Group: innerGroup, Topic: &topic})
	return err == nil && len(stats) == 1 && len(stats[0].ConsumeOffsets) == partitions
}

func humanCount(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.3gk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func printReport(w io.Writer, rep *report) {
	fmt.Fprintf(w, "benchdelay — %s, %d CPUs, %s, body %d B\n\n", rep.Started.Format(time.RFC3339), rep.CPUs, rep.GoVersion, rep.Body)
	for _, p := range rep.Phases {
		fmt.Fprintf(w, "phase %s: %s\n", p.Name, p.Path)
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "  scheduled\t%d of %d (fire times over %.0f s, first %.0f s after the first send)\n", p.Scheduled, p.Messages, p.SpreadSecs, p.LeadSecs)
		if p.SendRate > 0 {
			fmt.Fprintf(tw, "  sendDelaySync rate\t%.0f msgs/s\n", p.SendRate)
		}
		if p.SendError != "" {
			fmt.Fprintf(tw, "  first send error\t%s\n", p.SendError)
		}
		late := ""
		if p.IngestLate {
			late = " (still ingesting at the first fire time)"
		}
		fmt.Fprintf(tw, "  ingest\t%.1f s = %.0f msgs/s%s\n", p.IngestSecs, p.IngestRate, late)
		fmt.Fprintf(tw, "  store on disk\t%.1f MiB (gauge %.1f MiB) after ingestion\n", p.StoreDirMiB, p.StoreMiB)
		fmt.Fprintf(tw, "  delivered\t%d (missing %d, duplicates %d, early %d; %d answered 12 but stored anyway)\n",
			p.Delivered, p.Missing, p.Duplicates, p.Early, p.Extra)
		fmt.Fprintf(tw, "  fire lateness\tp50 %d ms, p99 %d ms, max %d ms\n", p.LateP50Ms, p.LateP99Ms, p.LateMaxMs)
		fmt.Fprintf(tw, "  service RSS\tpeak %.0f MiB; %.0f MiB at >= 90%% pending, %.0f MiB at <= 10%%; CPU %.0f%% of one core\n",
			p.PeakRSSMiB, p.RSSHighMiB, p.RSSLowMiB, p.ServiceCPUPct)
		for _, r := range p.RSSByPending {
			fmt.Fprintf(tw, "    %s\tpending %s\tRSS %.0f MiB\n", r.When, humanCount(r.Pending), r.RSSMiB)
		}
		_ = tw.Flush()
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "verdicts:")
	for _, v := range rep.Verdicts {
		mark := "met"
		if !v.Met {
			mark = "MISSED"
		}
		fmt.Fprintf(w, "  %-7s %s — %s\n", mark, v.Target, v.Actual)
	}
	fmt.Fprintln(w)
	for _, n := range rep.Notes {
		fmt.Fprintln(w, "note:", n)
	}
}
