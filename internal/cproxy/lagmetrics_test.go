package cproxy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
)

func TestLagCollector(t *testing.T) {
	groups := func() []GroupTopic {
		return []GroupTopic{{"g1", "orders"}, {"g1", "orders"}, {"g2", "clicks"}, {"g3", "broken"}, {"g4", "slow"}}
	}
	stats := func(ctx context.Context, group, topic string) ([]*consumer.ConsumeStats, error) {
		switch group {
		case "g1":
			return []*consumer.ConsumeStats{{Group: group, Topic: topic,
				ConsumeOffsets: map[string]int64{"K_0": 3, "K_1": 9},
				ProduceOffsets: map[string]int64{"K_0": 5, "K_1": 7, "K_2": 4}}}, nil
		case "g2":
			return []*consumer.ConsumeStats{{Group: "", Topic: "",
				ConsumeOffsets: map[string]int64{"K_0": 1},
				ProduceOffsets: map[string]int64{"K_0": 1}}}, nil
		case "g3":
			return nil, errors.New("broker down")
		default:
			<-ctx.Done()
			time.Sleep(10 * time.Millisecond) // ignores the deadline a bit
			return nil, ctx.Err()
		}
	}
	c := NewLagCollector(groups, stats, 200*time.Millisecond)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)

	want := `cproxy_consume_offset{group="g1",qid="K_0",topic="orders"} 3
cproxy_consume_offset{group="g1",qid="K_1",topic="orders"} 9
cproxy_consume_offset{group="g2",qid="K_0",topic="clicks"} 1
cproxy_lag_scrape_errors_total{} 2
cproxy_lag{group="g1",qid="K_0",topic="orders"} 2
cproxy_lag{group="g1",qid="K_1",topic="orders"} 0
cproxy_lag{group="g2",qid="K_0",topic="clicks"} 0
cproxy_produce_offset{group="g1",qid="K_0",topic="orders"} 5
cproxy_produce_offset{group="g1",qid="K_1",topic="orders"} 7
cproxy_produce_offset{group="g1",qid="K_2",topic="orders"} 4
cproxy_produce_offset{group="g2",qid="K_0",topic="clicks"} 1
`
	start := time.Now()
	if got := gather(t, reg); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("scrape took %v, want about the 200ms timeout", d)
	}
	// The error counter accumulates over scrapes.
	if got := gather(t, reg); !strings.Contains(got, "cproxy_lag_scrape_errors_total{} 4\n") {
		t.Fatalf("second scrape:\n%s", got)
	}
	if got := c.errors.Load(); got != 4 {
		t.Fatalf("errors after two scrapes: %d, want 4", got)
	}
}

func TestLagCollectorNoGroups(t *testing.T) {
	calls := 0
	c := NewLagCollector(func() []GroupTopic { return nil },
		func(context.Context, string, string) ([]*consumer.ConsumeStats, error) { calls++; return nil, nil }, 0)
	if c.timeout != DefaultLagScrapeTimeout {
		t.Fatalf("timeout %v", c.timeout)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	if got := gather(t, reg); got != "cproxy_lag_scrape_errors_total{} 0\n" || calls != 0 {
		t.Fatalf("got %q, %d calls", got, calls)
	}
}

// gather renders every sample as `name{label="v",...} value`, sorted.
func gather(t *testing.T, g prometheus.Gatherer) string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			v := m.GetGauge().GetValue()
			if m.GetCounter() != nil {
				v = m.GetCounter().GetValue()
			}
			lines = append(lines, fmt.Sprintf("%s{%s} %v\n", mf.GetName(), strings.Join(ls, ","), v))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "")
}
