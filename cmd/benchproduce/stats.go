package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	bu "github.com/ddmq-go/carrera/internal/benchutil"
)

// recorder collects the latencies (ns) and counts of one load generator
// goroutine. It is not shared: each worker owns one and they are merged
// after the phase.
type recorder struct {
	lat   []int64 // ns, one per successful call (or message, for async)
	calls int64   // successful calls inside the window
	msgs  int64   // messages of those calls
	errs  int64   // failed calls inside the window
	first error   // first failure seen (any time)
}

func (r *recorder) ok(d time.Duration, msgs int) {
	r.lat = append(r.lat, int64(d))
	r.calls++
	r.msgs += int64(msgs)
}

func (r *recorder) fail(err error, inWindow bool) {
	if inWindow {
		r.errs++
	}
	if r.first == nil {
		r.first = err
	}
}

// merge folds the recorders into one, latencies concatenated.
func merge(rs []*recorder) *recorder {
	out := &recorder{}
	n := 0
	for _, r := range rs {
		n += len(r.lat)
	}
	out.lat = make([]int64, 0, n)
	for _, r := range rs {
		out.lat = append(out.lat, r.lat...)
		out.calls += r.calls
		out.msgs += r.msgs
		out.errs += r.errs
		if out.first == nil {
			out.first = r.first
		}
	}
	return out
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

// cpuShare is the CPU a process used during a window, in percent of one
// core (200 = both cores of a 2-core machine busy).
type cpuShare struct {
	PProxy float64 `json:"pproxyPct"`
	Broker float64 `json:"brokerPct"`
	ZK     float64 `json:"zookeeperPct"`
	Bench  float64 `json:"benchPct"`
	// Other is the rest of the machine's busy time: other programs, and
	// interrupt time not charged to a process.
	Other float64 `json:"otherPct"`
	// Machine is the whole machine's busy time (/proc/stat).
	Machine float64 `json:"machinePct"`
}

// phaseResult is one measured configuration.
type phaseResult struct {
	Name        string   `json:"name"`
	Path        string   `json:"path"` // "direct" or "pproxy"
	API         string   `json:"api"`
	Concurrency int      `json:"concurrency"`
	Batch       int      `json:"batch,omitempty"`
	Window      int      `json:"window,omitempty"` // async in-flight bound (messages)
	LatencyUnit string   `json:"latencyUnit"`      // what one latency sample is
	Seconds     float64  `json:"seconds"`
	Messages    int64    `json:"messages"`
	Calls       int64    `json:"calls"`
	Errors      int64    `json:"errors"`
	FirstError  string   `json:"firstError,omitempty"`
	MsgsPerSec  float64  `json:"msgsPerSec"`
	CallsPerSec float64  `json:"callsPerSec"`
	P50Ms       float64  `json:"p50Ms"`
	P99Ms       float64  `json:"p99Ms"`
	MaxMs       float64  `json:"maxMs"`
	CPU         cpuShare `json:"cpu"`
	// PProxyCPUPerMsgUs is pproxy's CPU time per message in µs (pproxy
	// phases only).
	PProxyCPUPerMsgUs float64 `json:"pproxyCpuPerMsgUs,omitempty"`
	// StackCPUPerMsgUs is the CPU time per message of all processes of the
	// stack together (load generator, pproxy, broker, ZooKeeper).
	StackCPUPerMsgUs float64 `json:"stackCpuPerMsgUs"`
	LoadAvg          float64 `json:"loadAvg1mAtStart"`
	// ProduceReqsPerSec and RecordsPerRequest describe the Kafka produce
	// requests of the phase's producer (sarama's metrics; pproxy's via
	// /metrics): how well concurrent sends coalesce.
	ProduceReqsPerSec float64 `json:"produceRequestsPerSec"`
	RecordsPerRequest float64 `json:"recordsPerProduceRequest"`
	Profile           string  `json:"profile,omitempty"`
}

// summarize turns a merged recorder into a phaseResult's numbers.
func (p *phaseResult) summarize(r *recorder, window time.Duration) {
	slices.Sort(r.lat)
	p.Seconds = window.Seconds()
	p.Messages, p.Calls, p.Errors = r.msgs, r.calls, r.errs
	if r.first != nil {
		p.FirstError = r.first.Error()
	}
	p.MsgsPerSec = float64(r.msgs) / window.Seconds()
	p.CallsPerSec = float64(r.calls) / window.Seconds()
	p.P50Ms = ms(bu.Percentile(r.lat, 50))
	p.P99Ms = ms(bu.Percentile(r.lat, 99))
	if len(r.lat) > 0 {
		p.MaxMs = ms(r.lat[len(r.lat)-1])
	}
}

type comparison struct {
	Name              string  `json:"name"`
	Direct            string  `json:"direct"`
	Proxy             string  `json:"proxy"`
	Ratio             float64 `json:"throughputRatio"` // proxy msgs/s ÷ direct msgs/s
	P99DiffMs         float64 `json:"p99DiffMs"`       // proxy p99 − direct p99
	P50DiffMs         float64 `json:"p50DiffMs"`
	LatencyComparable bool    `json:"latencyComparable"`
}

type report struct {
	bu.RunInfo
	Warmup           string        `json:"warmup"`
	Duration         string        `json:"duration"`
	BrokerPersist    bool          `json:"brokerPersist"`
	Pinned           bool          `json:"pinned"`
	Phases           []phaseResult `json:"phases"`
	Comparisons      []comparison  `json:"comparisons"`
	LoadAvgAtStart   float64       `json:"loadAvg1mAtStart"`
	PProxyPeakRSSMiB float64       `json:"pproxyPeakRssMiB"`
	BrokerPeakRSSMiB float64       `json:"brokerPeakRssMiB"`
	Verdicts         []bu.Verdict  `json:"verdicts"`
	Notes            []string      `json:"notes"`
}

func (r *report) phase(name string) *phaseResult {
	for i := range r.Phases {
		if r.Phases[i].Name == name {
			return &r.Phases[i]
		}
	}
	return nil
}

func compare(name string, direct, proxy *phaseResult, latencyComparable bool) comparison {
	c := comparison{Name: name, Direct: direct.Name, Proxy: proxy.Name, LatencyComparable: latencyComparable}
	if direct.MsgsPerSec > 0 {
		c.Ratio = proxy.MsgsPerSec / direct.MsgsPerSec
	}
	c.P99DiffMs = proxy.P99Ms - direct.P99Ms
	c.P50DiffMs = proxy.P50Ms - direct.P50Ms
	return c
}

func printTable(w io.Writer, r *report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tpath\tconc\tmsgs/s\tcalls/s\tp50 ms\tp99 ms\tmax ms\terrors\tCPU% pproxy\tbroker\tbench\tzk\tidle\tCPU µs/msg\treq/s\tmsg/req\tlatency of\t")
	for _, p := range r.Phases {
		conc := fmt.Sprint(p.Concurrency)
		if p.Batch > 0 {
			conc = fmt.Sprintf("%d×%d", p.Concurrency, p.Batch)
		}
		if p.Window > 0 {
			conc = fmt.Sprintf("win %d", p.Window)
		}
		pp := "-"
		if p.Path == "pproxy" {
			pp = fmt.Sprintf("%.0f", p.CPU.PProxy)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%.0f\t%.2f\t%.2f\t%.1f\t%d\t%s\t%.0f\t%.0f\t%.0f\t%.0f\t%.1f\t%.0f\t%.1f\t%s\t\n",
			p.Name, p.Path, conc, p.MsgsPerSec, p.CallsPerSec, p.P50Ms, p.P99Ms, p.MaxMs, p.Errors,
			pp, p.CPU.Broker, p.CPU.Bench, p.CPU.ZK, max(0, float64(r.CPUs)*100-p.CPU.Machine), p.StackCPUPerMsgUs,
			p.ProduceReqsPerSec, p.RecordsPerRequest, p.LatencyUnit)
	}
	_ = tw.Flush()
	for _, p := range r.Phases {
		if p.FirstError != "" {
			fmt.Fprintf(w, "  %s: first error: %s\n", p.Name, p.FirstError)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "proxy vs direct:")
	for _, c := range r.Comparisons {
		line := fmt.Sprintf("  %-16s throughput %.2f× direct", c.Name, c.Ratio)
		if c.LatencyComparable {
			line += fmt.Sprintf(", p50 %+.2f ms, p99 %+.2f ms (proxy − direct)", c.P50DiffMs, c.P99DiffMs)
		}
		fmt.Fprintln(w, line)
	}
	for _, p := range r.Phases {
		if p.PProxyCPUPerMsgUs > 0 {
			fmt.Fprintf(w, "  %-16s pproxy CPU %.1f µs/message\n", p.Name, p.PProxyCPUPerMsgUs)
		}
	}
	fmt.Fprintf(w, "  peak RSS (VmHWM): pproxy %.1f MiB, broker %.1f MiB\n", r.PProxyPeakRSSMiB, r.BrokerPeakRSSMiB)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "targets:")
	bu.PrintVerdicts(w, r.Verdicts)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "notes:")
	for _, n := range r.Notes {
		fmt.Fprintln(w, "  - "+strings.ReplaceAll(n, "\n", "\n    "))
	}
}
