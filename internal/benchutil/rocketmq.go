package benchutil

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// RMQBrokerName is the one broker name StartRocketMQ runs.
const RMQBrokerName = "broker-a"

// RMQGoGC is the broker's GOGC. Its messages sit in large pointer-free
// segments that the collector does not scan, so a small heap headroom
// costs little CPU and keeps its RSS near the bytes it stores.
const RMQGoGC = 25

// RMQGoMemLimit is the broker's GOMEMLIMIT for a retention bound: the
// retained bytes plus room for requests in flight and the runtime.
func RMQGoMemLimit(retention int64) int64 { return retention + retention/4 + 256<<20 }

// StartRocketMQ starts the RocketMQ test broker (the rmqbroker binary bin,
// built from ./cmd/rmqbroker): its NameServer on nsPort, RMQBrokerName on
// brokerPort, no auto-created topics, GOGC RMQGoGC and, with retention > 0
// (-retention-bytes: the oldest messages beyond it are dropped), GOMEMLIMIT
// RMQGoMemLimit(retention). The log is dir/rmqbroker.log; cpus as
// StartProc. It returns once the broker's ready line is in the log.
func StartRocketMQ(ctx context.Context, bin, dir string, nsPort, brokerPort int, retention int64, cpus string) (*Proc, error) {
	env := []string{"GOGC=" + strconv.Itoa(RMQGoGC)}
	if retention > 0 {
		env = append(env, fmt.Sprintf("GOMEMLIMIT=%d", RMQGoMemLimit(retention)))
	}
	p, err := StartProc("rmqbroker", dir, filepath.Join(dir, "rmqbroker.log"), cpus, env, bin,
		"-listen", "127.0.0.1:"+strconv.Itoa(nsPort), "-brokers", RMQBrokerName,
		"-broker-listen", "127.0.0.1:"+strconv.Itoa(brokerPort), "-no-auto-create",
		"-retention-bytes", strconv.FormatInt(retention, 10), "-log", "warn")
	if err != nil {
		return nil, err
	}
	ready := func() bool {
		b, _ := os.ReadFile(p.LogPath)
		return strings.Contains(string(b), "rmqbroker listening")
	}
	if err := WaitReady(ctx, p, 30*time.Second, "listening", ready); err != nil {
		p.Stop(StopGrace)
		return nil, err
	}
	return p, nil
}
