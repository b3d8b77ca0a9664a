package rocketmq_test

import (
	"os"
	"testing"

	"github.com/apache/rocketmq-client-go/v2/rlog"
	"go.uber.org/goleak"
)

// This package starts rocketmq-client-go consumers, which race internally:
// run it WITHOUT -race (Makefile NORACE_PKGS). The broker's own logic is
// covered with -race by ./protocoltest.
func TestMain(m *testing.M) {
	if os.Getenv("ROCKETMQ_GO_LOG_LEVEL") == "" {
		rlog.SetLogLevel("fatal") // the library logs every rebalance and reconnect
	}
	goleak.VerifyTestMain(m,
		// rocketmq-client-go leaves goroutines behind after Shutdown: its
		// package init starts a go-cache janitor; its client and consumer
		// loops (all wrapped in primitive.WithRecover) sleep up to minutes
		// before checking for shutdown, and its statistics loops never stop;
		// calls in flight when a connection closes wait for their timeout.
		// The broker's own goroutines are not ignored.
		goleak.IgnoreTopFunction("github.com/patrickmn/go-cache.(*janitor).Run"),
		goleak.IgnoreAnyFunction("github.com/apache/rocketmq-client-go/v2/primitive.WithRecover"),
		goleak.IgnoreAnyFunction("github.com/apache/rocketmq-client-go/v2/internal/remote.(*ResponseFuture).waitResponse"),
	)
}
