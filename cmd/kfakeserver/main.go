// Command kfakeserver runs an in-memory (optionally persisted) Kafka-protocol
// broker built on kfake, for development and tests only: it is NOT a Kafka
// replacement and must never hold production data.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

const warning = "development/test broker, not for production"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log.SetPrefix("kfakeserver: ")
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// run serves until ctx is done. It writes "kfakeserver listening on
// <addrs>" to stdout once the brokers accept connections.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("kfakeserver", flag.ContinueOnError)
	ports := fs.String("ports", "19092", "comma-separated ports on 127.0.0.1, one broker each (0 = any free port)")
	dataDir := fs.String("data-dir", "", "persist topics and offsets here (synchronous writes); empty = in memory only")
	partitions := fs.Int("partitions", 4, "partitions of seeded and auto-created topics")
	seed := fs.String("seed-topics", "", "comma-separated topics to create at start")
	pprofAddr := fs.String("pprof", os.Getenv("KFAKESERVER_PPROF"), "serve net/http/pprof on this address (default $KFAKESERVER_PPROF; empty = off), for profiling the broker in benchmarks")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "kfakeserver: a Kafka-protocol %s.\nTopics are auto-created on first use.\n\nUsage:\n", warning)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	var ps []int
	for _, s := range strings.Split(*ports, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || p < 0 || p > 65535 {
			return fmt.Errorf("-ports: bad port %q", s)
		}
		ps = append(ps, p)
	}
	if *partitions <= 0 {
		return fmt.Errorf("-partitions must be > 0, got %d", *partitions)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(len(ps)), kfake.Ports(ps...),
		kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(*partitions),
	}
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir), kfake.SyncWrites())
	}
	if *seed != "" {
		opts = append(opts, kfake.SeedTopics(int32(*partitions), strings.Split(*seed, ",")...))
	}

	log.Print(warning)
	if *pprofAddr != "" {
		ln, err := net.Listen("tcp", *pprofAddr)
		if err != nil {
			return fmt.Errorf("-pprof: %w", err)
		}
		srv := &http.Server{Handler: http.DefaultServeMux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		log.Printf("pprof on http://%s/debug/pprof/", ln.Addr())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(stdout, "kfakeserver listening on %s\n", strings.Join(c.ListenAddrs(), ","))
	<-ctx.Done()
	log.Print("shutting down")
	return nil
}
