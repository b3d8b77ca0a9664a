package cproxy

import (
	"runtime/debug"
	"testing"
)

// TestApplyGCPercent: without GOGC the daemon's target becomes
// DefaultGCPercent; a GOGC from the environment is left alone.
func TestApplyGCPercent(t *testing.T) {
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig) })

	t.Setenv("GOGC", "")
	ApplyGCPercent()
	if got := debug.SetGCPercent(77); got != DefaultGCPercent {
		t.Fatalf("GC percent %d without GOGC; want %d", got, DefaultGCPercent)
	}
	t.Setenv("GOGC", "77")
	ApplyGCPercent()
	if got := debug.SetGCPercent(100); got != 77 {
		t.Fatalf("GC percent %d with GOGC=77 set; want it left at 77", got)
	}
}
