// Command cproxy is the DDMQ-compatible consumer proxy: a Thrift
// ConsumerService (pull/submit, getConsumeStats) over Kafka consumer groups,
// with its configuration in ZooKeeper.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/config"
	"github.com/ddmq-go/carrera/internal/cproxy"
	"github.com/ddmq-go/carrera/internal/daemon"
	"github.com/ddmq-go/carrera/internal/logx"
	"github.com/ddmq-go/carrera/internal/mq/kafka"
)

var version = "dev"

func main() {
	conf := flag.String("conf", "conf/cproxy.yaml", "bootstrap configuration file")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println("cproxy", version)
		return
	}
	if err := run(*conf); err != nil {
		fmt.Fprintln(os.Stderr, "cproxy:", err)
		os.Exit(1)
	}
}

func run(conf string) error {
	boot, err := config.LoadBootstrap(conf)
	if err != nil {
		return err
	}
	log, _, err := logx.New(boot.LogLevel, boot.LogDir, "cproxy")
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	kafka.RouteSaramaLog(log) // before any Kafka client exists
	cproxy.ApplyGCPercent()
	log.Info("starting cproxy", zap.String("version", version), zap.String("conf", conf))
	ctx, stop := daemon.SignalContext(context.Background())
	defer stop()
	cg := boot.ConsumerGroup
	opts := cproxy.Options{Bootstrap: boot, Logger: log, IdleTimeout: cg.PullIdleTimeout,
		Timings: cproxy.GroupTimings{SessionTimeout: cg.SessionTimeout, HeartbeatInterval: cg.HeartbeatInterval,
			RebalanceTimeout: cg.RebalanceTimeout, CommitInterval: cg.CommitInterval}}
	if err := cproxy.Run(ctx, opts); err != nil {
		log.Error("cproxy failed", zap.Error(err))
		return err
	}
	log.Info("cproxy stopped")
	return nil
}
