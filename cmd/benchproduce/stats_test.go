package main

import (
	"errors"
	"testing"
	"time"

	"github.com/ddmq-go/carrera/internal/config"
)

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
