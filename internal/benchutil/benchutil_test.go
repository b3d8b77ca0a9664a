package benchutil

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
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

func TestScrapeMetrics(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "# HELP x_total things\n# TYPE x_total counter\nx_total 3\n"+
			"y_count{kind=\"a\"} 2\ny_count{kind=\"b b\"} 5\ny_sum{kind=\"a\"} 1.5e+01\nbroken line\n")
	}))
	defer srv.Close()
	m, err := ScrapeMetrics(srv.Client(), strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	if m["x_total"] != 3 || len(m) != 4 {
		t.Fatalf("scraped %v", m)
	}
	if sum, ok := m.Sum("y_count"); !ok || sum != 7 {
		t.Errorf("Sum(y_count) = %v, %v; want 7, true", sum, ok)
	}
	if sum, ok := m.Sum("y_sum"); !ok || sum != 15 {
		t.Errorf("Sum(y_sum) = %v, %v; want 15, true", sum, ok)
	}
	if _, ok := m.Sum("y"); ok {
		t.Error("Sum of a name prefix found series")
	}
	if _, err := ScrapeMetrics(srv.Client(), "127.0.0.1:1"); err == nil {
		t.Error("scrape of a closed port succeeded")
	}
}

func TestPrintVerdicts(t *testing.T) {
	var b strings.Builder
	PrintVerdicts(&b, []Verdict{{Target: "a", Actual: "1", Met: true}, {Target: "b", Actual: "2"}})
	want := "  [ OK   ] a: 1\n  [MISSED] b: 2\n  => 1 of 2 targets MISSED\n"
	if b.String() != want {
		t.Fatalf("got %q, want %q", b.String(), want)
	}
	b.Reset()
	PrintVerdicts(&b, []Verdict{{Target: "a", Actual: "1", Met: true}})
	if !strings.HasSuffix(b.String(), "  => all 1 targets met\n") {
		t.Fatalf("got %q", b.String())
	}
}
