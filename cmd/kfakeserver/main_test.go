package main

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	metrics "github.com/rcrowley/go-metrics"
	"go.uber.org/goleak"

	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/mq/kafka"
)

func TestMain(m *testing.M) {
	metrics.UseNilMetrics = true
	goleak.VerifyTestMain(m)
}

// serve runs the server until the returned stop is called and returns its
// bootstrap addresses.
func serve(t *testing.T, args ...string) (addrs []string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, args, pw)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	go io.Copy(io.Discard, pr) //nolint:errcheck // drains until the pipe closes
	if err != nil {
		cancel()
		t.Fatalf("no ready line: %v (run: %v)", err, <-errc)
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), "kfakeserver listening on ")
	if !ok {
		cancel()
		t.Fatalf("ready line %q", line)
	}
	return strings.Split(rest, ","), func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("run: %v", err)
		}
	}
}

func newestOffset(t *testing.T, addrs []string, topic string) int64 {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	c, err := sarama.NewClient(addrs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	off, err := c.GetOffset(topic, 0, sarama.OffsetNewest)
	if err != nil {
		t.Fatal(err)
	}
	return off
}

// Topics are auto-created, and with -data-dir records survive a restart.
func TestAutoCreateAndPersistence(t *testing.T) {
	dir := t.TempDir()
	addrs, stop := serve(t, "-ports", "0,0", "-data-dir", dir, "-partitions", "2", "-seed-topics", "seeded")
	if len(addrs) != 2 {
		t.Fatalf("addrs %v, want 2 brokers", addrs)
	}
	p, err := kafka.NewProducer(kafka.Options{Brokers: addrs, RetryBackoff: 20 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, topic := range []string{"seeded", "auto"} {
		tg, err := p.Resolve(ctx, topic, mq.Selector{PartitionID: 0})
		if err != nil {
			t.Fatalf("Resolve %q: %v", topic, err)
		}
		for range 3 {
			if err := mq.ProduceSync(ctx, p, &mq.Record{Topic: topic, Target: tg, Body: []byte("x")}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := p.Resolve(ctx, topic, mq.Selector{PartitionID: 1}); err != nil {
			t.Fatalf("%q has no partition 1: %v", topic, err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	stop()

	addrs, stop = serve(t, "-ports", "0", "-data-dir", dir)
	defer stop()
	if got := newestOffset(t, addrs, "auto"); got != 3 {
		t.Fatalf("after restart, auto/0 ends at offset %d, want 3", got)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-ports", "x"}, {"-ports", "70000"}, {"-partitions", "0"}, {"-nope"}} {
		if err := run(context.Background(), args, io.Discard); err == nil {
			t.Errorf("run %v succeeded", args)
		}
	}
}
