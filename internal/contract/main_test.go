package contract_test

import (
	"testing"

	metrics "github.com/rcrowley/go-metrics"
	"go.uber.org/goleak"

	"github.com/ddmq-go/carrera/internal/mq/rocketmq"
)

func TestMain(m *testing.M) {
	// sarama's go-metrics meters would leave a goroutine behind.
	metrics.UseNilMetrics = true
	// rocketmq-client-go (pproxy's RocketMQ producer) leaves periodic tasks
	// running up to 10 s after a producer closed, and a cache janitor
	// started by a package initialiser.
	var opts []goleak.Option
	for _, f := range rocketmq.LingeringGoroutines() {
		opts = append(opts, goleak.IgnoreAnyFunction(f))
	}
	goleak.VerifyTestMain(m, opts...)
}
