package chronos

import (
	"testing"

	gometrics "github.com/rcrowley/go-metrics"
	"go.uber.org/goleak"

	"github.com/ddmq-go/carrera/internal/mq/rocketmq"
)

func TestMain(m *testing.M) {
	gometrics.UseNilMetrics = true // sarama's go-metrics meters leak a goroutine
	// rocketmq-client-go (pproxy's RocketMQ producer, in-process in the
	// end-to-end tests) leaves periodic tasks behind a closed producer for
	// up to 10 s, and a cache janitor from a package init.
	var opts []goleak.Option
	for _, f := range rocketmq.LingeringGoroutines() {
		opts = append(opts, goleak.IgnoreAnyFunction(f))
	}
	goleak.VerifyTestMain(m, opts...)
}
