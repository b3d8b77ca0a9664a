package pproxy_test

import (
	"testing"

	metrics "github.com/rcrowley/go-metrics"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// sarama's go-metrics meters would leave a goroutine behind.
	metrics.UseNilMetrics = true
	goleak.VerifyTestMain(m)
}
