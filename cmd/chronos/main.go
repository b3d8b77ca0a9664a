// Command chronos is the delay service: it consumes the delay inner topic
// through cproxy, stores pending messages on disk and delivers each at its
// time through pproxy. Several replicas elect a master through ZooKeeper.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/chronos"
	"github.com/ddmq-go/carrera/internal/daemon"
	"github.com/ddmq-go/carrera/internal/logx"
	"github.com/ddmq-go/carrera/internal/mq/kafka"
)

var version = "dev"

func main() {
	conf := flag.String("conf", "conf/chronos.yaml", "configuration file (chronos.yaml)")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println("chronos", version)
		return
	}
	if err := run(*conf); err != nil {
		fmt.Fprintln(os.Stderr, "chronos:", err)
		os.Exit(1)
	}
}

func run(conf string) error {
	cfg, err := chronos.LoadConfig(conf)
	if err != nil {
		return err
	}
	log, _, err := logx.New(cfg.LogLevel, cfg.LogDir, "chronos")
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	kafka.RouteSaramaLog(log) // before any Kafka client exists
	log.Info("starting chronos", zap.String("version", version), zap.String("conf", conf))
	ctx, stop := daemon.SignalContext(context.Background())
	defer stop()
	if err := chronos.Run(ctx, chronos.Options{Config: cfg, Logger: log}); err != nil {
		log.Error("chronos failed", zap.Error(err))
		return err
	}
	log.Info("chronos stopped")
	return nil
}
