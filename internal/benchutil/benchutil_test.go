package benchutil

import (
	"os"
	"testing"
	"time"
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
		if got := Percentile(sorted, c.p); got != c.want {
			t.Errorf("p%v = %d, want %d", c.p, got, c.want)
		}
	}
	if got := Percentile([]int64{7}, 99); got != 7 {
		t.Errorf("single sample p99 = %d", got)
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("empty p50 = %d", got)
	}
}

func TestProcParsers(t *testing.T) {
	self := os.Getpid()
	if kib, err := ProcStatusKiB(self, "VmHWM"); err != nil || kib <= 0 {
		t.Fatalf("VmHWM %d, %v", kib, err)
	}
	if _, err := ProcStatusKiB(self, "NoSuchField"); err == nil {
		t.Error("missing field accepted")
	}
	busy := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(busy) { //nolint:revive // burn CPU so CPUTime moves
	}
	if CPUTime(self) <= 0 {
		t.Error("CPUTime of this process is 0")
	}
	if MachineBusy() <= 0 {
		t.Error("MachineBusy is 0")
	}
}
