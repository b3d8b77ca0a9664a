package main

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/ddmq-go/carrera/internal/config"
)

func TestPercentile(t *testing.T) {
	var sorted []int64
	for i := int64(1); i <= 100; i++ {
		sorted = append(sorted, i)
	}
	for _, c := range []struct {
		p    float64
		want int64
	}{{50, 50}, {99, 99}, {100, 100}, {0.1, 1}} {
		if got := percentile(sorted, c.p); got != c.want {
			t.Errorf("p%v = %d, want %d", c.p, got, c.want)
		}
	}
	if got := percentile([]int64{7}, 99); got != 7 {
		t.Errorf("single sample p99 = %d", got)
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("empty p50 = %d", got)
	}
}

func TestMergeAndSummarize(t *testing.T) {
	a, b := &recorder{}, &recorder{}
	for i := 1; i <= 50; i++ {
		a.ok(time.Duration(i)*time.Millisecond, 1)
		b.ok(time.Duration(50+i)*time.Millisecond, 100)
	}
	b.fail(errors.New("boom"), true)
	b.fail(errors.New("later"), false)
	m := merge([]*recorder{a, b})
	var p phaseResult
	p.summarize(m, 2*time.Second)
	if p.Calls != 100 || p.Messages != 50+50*100 || p.Errors != 1 || p.FirstError != "boom" {
		t.Fatalf("counts %+v", p)
	}
	if p.MsgsPerSec != 2525 || p.CallsPerSec != 50 {
		t.Errorf("rates %v msgs/s %v calls/s", p.MsgsPerSec, p.CallsPerSec)
	}
	if p.P50Ms != 50 || p.P99Ms != 99 || p.MaxMs != 100 {
		t.Errorf("latency p50 %v p99 %v max %v", p.P50Ms, p.P99Ms, p.MaxMs)
	}
}

func TestWindow(t *testing.T) {
	w := newWindow(time.Hour, time.Minute)
	if w.contains(time.Now()) || !w.contains(w.start) || w.contains(w.end) {
		t.Fatal("window bounds: [start, end)")
	}
}

// The seeded nodes must pass the proxies' own parsers.
func TestNodesParse(t *testing.T) {
	node, err := config.ParsePProxyConfig(pproxyNode("127.0.0.1:9613", 9613, []string{"127.0.0.1:19092"}, "bench"))
	if err != nil {
		t.Fatal(err)
	}
	cc := node.CarreraConfiguration
	if cc.UseRequestLimiter || cc.KafkaProducers != 1 || cc.KafkaConfigurationMap["K_bench"].Acks != "all" {
		t.Errorf("node %+v", cc)
	}
	topic, err := config.ParseTopicConfig(topicNode("bench", "127.0.0.1:9613"))
	if err != nil {
		t.Fatal(err)
	}
	if !topic.TopicUnits[0].ListsProxy("127.0.0.1:9613") {
		t.Error("topic not bound to the instance")
	}
}

func TestProcParsers(t *testing.T) {
	self := os.Getpid()
	if kib, err := procStatusKiB(self, "VmHWM"); err != nil || kib <= 0 {
		t.Fatalf("VmHWM %d, %v", kib, err)
	}
	if _, err := procStatusKiB(self, "NoSuchField"); err == nil {
		t.Error("missing field accepted")
	}
	busy := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(busy) { //nolint:revive // burn CPU so cpuTime moves
	}
	if cpuTime(self) <= 0 {
		t.Error("cpuTime of this process is 0")
	}
	if machineBusy() <= 0 {
		t.Error("machineBusy is 0")
	}
}
