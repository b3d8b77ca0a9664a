package testenv

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ddmq-go/carrera/internal/config"
)

// RunInProc runs a daemon in-process: run gets a context cancelled by stop
// and a ready function it must call with its address once it serves.
// RunInProc returns that address; it fails t if run returns first or is not
// ready within 30 s. stop cancels run and waits for it, reporting a non-nil
// result as a test error; it is idempotent and registered as t's cleanup.
func RunInProc(t testing.TB, name string, run func(ctx context.Context, ready func(addr string)) error) (addr string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, func(a string) { ready <- a }) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%s shutdown: %v", name, err)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case addr = <-ready:
	case err := <-done:
		once.Do(cancel)
		t.Fatalf("%s exited: %v", name, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not start", name)
	}
	return addr, stop
}

// ProxyBootstrap is the bootstrap of an in-process pproxy or cproxy whose
// instance is 127.0.0.1:port, configured from z under chroot, with its admin
// server on an ephemeral port, a temporary configuration cache, a 2 s
// ZooKeeper start timeout and a 5 s shutdown timeout.
func ProxyBootstrap(t testing.TB, z *ZooKeeper, chroot string, port int) *config.Bootstrap {
	t.Helper()
	y := fmt.Sprintf("zookeeperAddr: %s\nhost: 127.0.0.1\nport: %d\nadminAddr: 127.0.0.1:0\nconfigCacheDir: %s\nzkStartTimeout: 2s\nshutdownTimeout: 5s\n",
		z.ConnectString(chroot), port, t.TempDir())
	boot, err := config.ParseBootstrap([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return boot
}
