package cproxy_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"go.uber.org/zap/zaptest"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
	"github.com/ddmq-go/carrera/internal/config"
	"github.com/ddmq-go/carrera/internal/cproxy"
	"github.com/ddmq-go/carrera/internal/testenv"
)

// groupMembers returns the broker-side member count of group ("" state if
// the group is unknown).
func groupMembers(t *testing.T, k *testenv.Kafka, group string) (string, int) {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	admin, err := sarama.NewClusterAdmin(k.Addrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ds, err := admin.DescribeConsumerGroups([]string{group})
	if err != nil || len(ds) == 0 {
		return "", 0
	}
	return ds[0].State, len(ds[0].Members)
}

// TestPullGroupIdleStopAndRestart: a pull-only group joins the broker group
// on its first pull, leaves it after the idle timeout without pulls, and
// joins again on the next pull, resuming from its committed offsets.
func TestPullGroupIdleStopAndRestart(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	k := startKafka(t)
	k.CreateTopic("idle", 4)
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{
		"/cproxy/" + instance: cproxyNode(k.Addrs(), []string{"cg_idle"}),
		"/group/cg_idle":      groupJSON("cg_idle", "idle", nil),
	})
	y := fmt.Sprintf("zookeeperAddr: %s\nhost: 127.0.0.1\nport: 9713\nadminAddr: 127.0.0.1:0\nconfigCacheDir: %s\nzkStartTimeout: 2s\nshutdownTimeout: 5s\n",
		z.ConnectString(chroot), t.TempDir())
	boot, err := config.ParseBootstrap([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- cproxy.Run(ctx, cproxy.Options{Bootstrap: boot, Logger: zaptest.NewLogger(t), ListenAddr: "127.0.0.1:0",
			Ready: func(th, _ net.Addr) { ready <- th.String() }, IdleTimeout: time.Second, Timings: fastTimings})
	}()
	defer func() { cancel(); <-done }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("cproxy exited: %v", err)
	}
	c := dial(t, addr)
	await := func(what string, cond func() bool) {
		deadline := time.Now().Add(15 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if _, n := groupMembers(t, k, "cg_idle"); n != 0 {
		t.Fatalf("pull-only group joined before its first pull (%d members)", n)
	}
	bs, ml := int32(8), int32(50)
	pull := func() {
		_, _ = c.Pull(context.Background(), &consumer.PullRequest{GroupId: "cg_idle", MaxBatchSize: &bs, MaxLingerTime: &ml})
	}
	pull()
	await("the group to join on the first pull", func() bool { _, n := groupMembers(t, k, "cg_idle"); return n == 1 })
	// Messages flow and are acknowledged.
	produce(t, k, "idle", 6, "x")
	if got := pullAll(t, c, "cg_idle", 6, false); len(got) != 6 {
		t.Fatalf("got %d", len(got))
	}
	// No pulls: the group leaves the broker group after the idle timeout.
	await("the idle group to leave", func() bool { _, n := groupMembers(t, k, "cg_idle"); return n == 0 })
	// Produced while stopped; the next pull restarts it from the committed offsets.
	produce(t, k, "idle", 4, "y")
	pull()
	got := pullAll(t, c, "cg_idle", 4, false)
	for body := range got {
		if body[0] != 'y' {
			t.Fatalf("acknowledged message %s redelivered after the idle restart", body)
		}
	}
}
