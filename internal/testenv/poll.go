package testenv

import (
	"testing"
	"time"
)

// Eventually polls cond every 20 ms until it holds; it fails t after
// timeout, describing the last state with each last() given.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool, last ...func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			detail := ""
			for _, f := range last {
				detail += " " + f()
			}
			t.Fatalf("timed out after %v waiting for %s%s", timeout, what, detail)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
