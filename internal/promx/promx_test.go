package promx

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegister(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "x_total", Help: "x"}
	first, err := Register(reg, prometheus.NewCounterVec(opts, []string{"l"}))
	if err != nil {
		t.Fatal(err)
	}
	second, err := Register(reg, prometheus.NewCounterVec(opts, []string{"l"}))
	if err != nil || second != first {
		t.Fatalf("second registration: %v, same collector %v", err, second == first)
	}
	// Same name, other labels: refused, returned unregistered.
	other := prometheus.NewCounterVec(opts, []string{"m"})
	got, err := Register(reg, other)
	if err == nil || got != other {
		t.Fatalf("conflicting registration: err %v, returned own %v", err, got == other)
	}
	if c, err := Register(nil, other); err != nil || c != other {
		t.Fatal("nil registerer")
	}
}
