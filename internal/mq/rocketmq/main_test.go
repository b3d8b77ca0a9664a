package rocketmq

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks for leaked goroutines, ignoring the periodic tasks of
// rocketmq-client-go client instances, which sleep up to 10s before they
// notice a shutdown (LingeringGoroutines).
func TestMain(m *testing.M) {
	var opts []goleak.Option
	for _, f := range LingeringGoroutines() {
		opts = append(opts, goleak.IgnoreAnyFunction(f))
	}
	goleak.VerifyTestMain(m, opts...)
}
