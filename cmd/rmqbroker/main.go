// Command rmqbroker runs the RocketMQ-protocol test broker
// (internal/testbroker/rocketmq) standalone: one NameServer and one or more
// brokers in one process. It is for development and tests only — NOT a
// RocketMQ replacement, never for production data.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ddmq-go/carrera/internal/logx"
	rmqtb "github.com/ddmq-go/carrera/internal/testbroker/rocketmq"
)

const warning = "development/test broker, not for production"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "rmqbroker:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done. Once every listener is up it writes one
// line to stdout: "rmqbroker listening nameserver=<addr> <broker>=<addr> ...".
func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("rmqbroker", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:9876", "NameServer listen address (port 0 = any free port)")
	brokers := fs.String("brokers", "broker-a", "comma-separated broker names, one listener each")
	brokerListen := fs.String("broker-listen", "", "comma-separated broker listen addresses (default: the NameServer's port +1, +2, ... or any free port when it is 0)")
	dataDir := fs.String("data", "", "persist topics, messages and offsets here; empty = in memory only")
	syncWrites := fs.Bool("sync", false, "fsync every message append (with -data)")
	queues := fs.Int("queues", 4, "queues of auto-created topics")
	noAuto := fs.Bool("no-auto-create", false, "refuse sends to unknown topics (code 17)")
	expiry := fs.Duration("client-expiry", 120*time.Second, "drop consumers whose heartbeats stop for this long")
	realDelays := fs.Bool("real-delays", false, "use RocketMQ's delay levels (1s ... 2h) instead of 1/100 of them")
	retention := fs.Int64("retention-bytes", 0, "keep at most about this many message bytes in memory per broker, dropping the oldest (0 = keep everything)")
	level := fs.String("log", "info", "log level (debug, info, warn, error)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "rmqbroker: a RocketMQ-protocol %s.\n\nUsage:\n", warning)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *retention < 0 {
		return fmt.Errorf("-retention-bytes %d is negative", *retention)
	}
	log, _, err := logx.New(*level, "", "rmqbroker")
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // best effort at exit

	opts := rmqtb.Options{
		NameServerAddr: *listen, DataDir: *dataDir, SyncWrites: *syncWrites, DefaultQueues: *queues,
		DisableAutoCreateTopics: *noAuto, ClientExpiry: *expiry, RetentionBytes: *retention, Logger: log,
	}
	if *realDelays {
		opts.DelayLevels = rmqtb.RealDelayLevels
	}
	names := strings.Split(*brokers, ",")
	addrs, err := brokerAddrs(*listen, *brokerListen, len(names))
	if err != nil {
		return err
	}
	for i, n := range names {
		opts.Brokers = append(opts.Brokers, rmqtb.BrokerConfig{Name: strings.TrimSpace(n), Addr: addrs[i]})
	}

	log.Warn(warning)
	s, err := rmqtb.Start(opts)
	if err != nil {
		return err
	}
	line := "rmqbroker listening nameserver=" + s.NameServerAddr()
	for _, n := range s.BrokerNames() {
		line += " " + n + "=" + s.BrokerAddrs()[n]
	}
	fmt.Fprintln(stdout, line)
	<-ctx.Done()
	log.Info("shutting down")
	return s.Close()
}

// brokerAddrs returns n broker listen addresses: the explicit list, or
// consecutive ports after the NameServer's (any free port when it is 0).
func brokerAddrs(nsAddr, explicit string, n int) ([]string, error) {
	if explicit != "" {
		list := strings.Split(explicit, ",")
		if len(list) != n {
			return nil, fmt.Errorf("-broker-listen has %d addresses for %d brokers", len(list), n)
		}
		return list, nil
	}
	host, portStr, err := net.SplitHostPort(nsAddr)
	if err != nil {
		return nil, fmt.Errorf("-listen: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port+n > 65535 {
		return nil, fmt.Errorf("-listen: bad port %q", portStr)
	}
	out := make([]string, n)
	for i := range out {
		p := 0
		if port != 0 {
			p = port + 1 + i
		}
		out[i] = net.JoinHostPort(host, strconv.Itoa(p))
	}
	return out, nil
}
