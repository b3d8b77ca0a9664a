// Command pproxy is the DDMQ-compatible producer proxy: a Thrift
// ProducerService that forwards messages to Kafka (and, later, RocketMQ)
// with its configuration in ZooKeeper.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/debug"

	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/config"
	"github.com/ddmq-go/carrera/internal/daemon"
	"github.com/ddmq-go/carrera/internal/logx"
	"github.com/ddmq-go/carrera/internal/mq/kafka"
	"github.com/ddmq-go/carrera/internal/pproxy"
)

var version = "dev"

func main() {
	conf := flag.String("conf", "conf/carrera.yaml", "bootstrap configuration file (carrera.yaml)")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println("pproxy", version)
		return
	}
	if err := run(*conf); err != nil {
		fmt.Fprintln(os.Stderr, "pproxy:", err)
		os.Exit(1)
	}
}

// defaultGCPercent trades memory for CPU: pproxy's heap is small (tens of
// MiB) and short-lived per request, so collecting less often cuts GC CPU
// noticeably under load. defaultMemoryLimit is the soft limit at which the
// collector works harder again, so the trade never costs more than that.
// The GOGC and GOMEMLIMIT environment variables override them.
const (
	defaultGCPercent   = 400
	defaultMemoryLimit = 96 << 20
)

func run(conf string) error {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	boot, err := config.LoadBootstrap(conf)
	if err != nil {
		return err
	}
	log, _, err := logx.New(boot.LogLevel, boot.LogDir, "pproxy")
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	kafka.RouteSaramaLog(log) // before any Kafka client exists
	log.Info("starting pproxy", zap.String("version", version), zap.String("conf", conf))
	ctx, stop := daemon.SignalContext(context.Background())
	defer stop()
	if err := pproxy.Run(ctx, pproxy.Options{Bootstrap: boot, Logger: log}); err != nil {
		log.Error("pproxy failed", zap.Error(err))
		return err
	}
	log.Info("pproxy stopped")
	return nil
}
