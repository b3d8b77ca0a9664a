package cproxy_test

import (
	"testing"

	metrics "github.com/rcrowley/go-metrics"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	metrics.UseNilMetrics = true // sarama's go-metrics meters leak a goroutine
	goleak.VerifyTestMain(m,
		// rocketmq-client-go (linked through internal/mq/rocketmq's producer)
		// starts a cache janitor in a package initialiser; it lives as long as
		// the process.
		goleak.IgnoreTopFunction("github.com/patrickmn/go-cache.(*janitor).Run"))
}
