package pproxy_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ddmq-go/carrera/gen-go/carrera/producer"
	"github.com/ddmq-go/carrera/internal/testenv"
)

// TestKill9UnderLoad: kill -9 of a pproxy process under sendSync load; every
// message answered OK must be in the broker.
func TestKill9UnderLoad(t *testing.T) {
	bin := testenv.BuildCmd(t, "pproxy")
	zkSrv := testenv.StartZooKeeper(t)
	k := testenv.StartKafka(t)
	k.CreateTopic("orders", 3)
	port, adminPort := testenv.FreePort(t), testenv.FreePort(t)
	instance := "127.0.0.1:" + strconv.Itoa(port)
	node := pproxyNodeJSON(k.Addrs(), []string{"orders"}, false)
	topic := topicJSON("orders", []string{instance}, 100000)
	testenv.SeedZK(t, zkSrv.Addr, chroot, map[string][]byte{"/pproxy/" + instance: node, "/topic/orders": topic})

	dir := t.TempDir()
	conf := filepath.Join(dir, "carrera.yaml")
	y := fmt.Sprintf("zookeeperAddr: %s\nhost: 127.0.0.1\nport: %d\nadminAddr: 127.0.0.1:%d\nconfigCacheDir: %s\nlogLevel: warn\n",
		zkSrv.ConnectString(chroot), port, adminPort, filepath.Join(dir, "cache"))
	if err := os.WriteFile(conf, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-conf", conf)
	testenv.KillWithParent(cmd)
	logf, _ := os.Create(filepath.Join(dir, "pproxy.log"))
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	// Ready when /healthz answers.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", adminPort))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(filepath.Join(dir, "pproxy.log"))
			t.Fatalf("pproxy exited:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("pproxy not healthy")
		}
		time.Sleep(20 * time.Millisecond)
	}

	var mu sync.Mutex
	acked := map[string]bool{}
	var okCount atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		c := dial(t, "127.0.0.1:"+strconv.Itoa(port), false)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				body := fmt.Sprintf("g%02d-%06d", g, i)
				res, err := c.SendSync(context.Background(), &producer.Message{Topic: "orders", Body: []byte(body), PartitionId: -2}, 1000)
				if err != nil {
					return // the process is gone
				}
				if res.Code == 0 {
					mu.Lock()
					acked[body] = true
					mu.Unlock()
					okCount.Add(1)
				}
			}
		}()
	}
	for okCount.Load() < 500 {
		select {
		case <-exited:
			t.Fatal("pproxy died before the kill")
		default:
			time.Sleep(5 * time.Millisecond)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	wg.Wait()

	stored := map[string]bool{}
	for _, rec := range k.ReadAll("orders") {
		stored[string(rec.Value)] = true
	}
	mu.Lock()
	defer mu.Unlock()
	for body := range acked {
		if !stored[body] {
			t.Fatalf("message %s was answered OK but is not in the broker", body)
		}
	}
	t.Logf("killed after %d acknowledged sends; broker holds %d (extra = unanswered in flight)", len(acked), len(stored))
}
