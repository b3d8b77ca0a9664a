package cproxy_test

import (
	"testing"

	metrics "github.com/rcrowley/go-metrics"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	metrics.UseNilMetrics = true // sarama's go-metrics meters leak a goroutine
	goleak.VerifyTestMain(m)
}
