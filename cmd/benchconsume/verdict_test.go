package main

import (
	"strings"
	"testing"
)

// TestLatencyVerdictNeedsEveryMessage: a p99 within the target is not met
// when some sent message was never pulled (it has no latency to count).
func TestLatencyVerdictNeedsEveryMessage(t *testing.T) {
	for _, tc := range []struct {
		name       string
		sent       int64
		recv       int
		p99        float64
		wantMet    bool
		wantActual string
	}{
		{"all received, fast", 1000, 1000, 5, true, "1000 of 1000 sent received"},
		{"one lost", 1000, 999, 5, false, "999 of 1000 sent received"},
		{"all received, slow", 1000, 1000, targetP99Ms + 1, false, "1000 of 1000"},
		{"nothing", 0, 0, 0, false, "0 of 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := &report{LatencySent: tc.sent, LatencyRecv: tc.recv, LatencyP99Ms: tc.p99, Ratios: map[string]float64{}}
			o := &options{fetchThreads: 1}
			finish(rep, o, &kafkaBackend{}, 1, 1)
			for _, v := range rep.Verdicts {
				if !strings.HasPrefix(v.Target, "produce→pull p99") {
					continue
				}
				if v.Met != tc.wantMet || !strings.Contains(v.Actual, tc.wantActual) {
					t.Fatalf("verdict %+v, want met=%v with %q", v, tc.wantMet, tc.wantActual)
				}
				return
			}
			t.Fatalf("no latency verdict in %+v", rep.Verdicts)
		})
	}
}
