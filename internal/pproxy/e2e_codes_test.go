package pproxy_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ddmq-go/carrera/gen-go/carrera/producer"
	"github.com/ddmq-go/carrera/internal/testenv"
)

// TestE2EResultCodesOverTheWire drives the broker-dependent result codes
// through a real Thrift client, a real ZooKeeper and kfake over TCP.
func TestE2EResultCodesOverTheWire(t *testing.T) {
	r := newRig(t)
	var delayed map[string]any
	_ = json.Unmarshal(topicJSON("delayed", []string{e2eInstance}, 100000), &delayed)
	delayed["delayTopic"] = true
	delayedJSON, _ := json.Marshal(delayed)
	other := strings.ReplaceAll(string(topicJSON("other", []string{e2eInstance}, 100000)), "K_e2e", "K_nowhere")
	r.kafka.CreateTopic("delayed", 1)
	r.kafka.CreateTopic("other", 1)
	testenv.SeedZK(t, r.zk.Addr, chroot, map[string][]byte{
		"/pproxy/" + e2eInstance: pproxyNodeJSON(r.kafka.Addrs(), []string{"orders", "clicks", "ghost", "delayed", "other", "inner_0"}, true),
		// from_chronos re-deliveries are rate-limited under <prefix>0.
		"/topic/inner_0": topicJSON("inner_0", []string{e2eInstance}, 100000),
		"/topic/ghost":   topicJSON("ghost", []string{e2eInstance}, 100000), // bound, not on the broker
		"/topic/delayed": delayedJSON,
		"/topic/other":   []byte(other), // cluster without producer
	})
	r.start()
	c := dial(t, r.addr, false)
	cases := []struct {
		name string
		m    *producer.Message
		code int32
		msg  string
	}{
		{"topic not on broker", &producer.Message{Topic: "ghost", Body: []byte("x"), PartitionId: -1}, 14, "FAILED: Topic do not exist!"},
		{"record too large for the client", &producer.Message{Topic: "orders", Body: make([]byte, 1536<<10), PartitionId: -1}, 11,
			"FAILED: Message is too large or illegal or the length is 0"},
		{"body over the 2 MiB topic limit", &producer.Message{Topic: "orders", Body: make([]byte, 2<<20+1), PartitionId: -1}, 11,
			"FAILED: Message is too large or illegal or the length is 0"},
		{"partition does not exist", &producer.Message{Topic: "orders", Body: []byte("x"), PartitionId: 7}, 14, "FAILED: Topic do not exist!"},
		{"delay topic", &producer.Message{Topic: "delayed", Body: []byte("x"), PartitionId: -1}, 19, "FAILED: Topic is delay"},
		{"delay topic from chronos", &producer.Message{Topic: "delayed", Body: []byte("x"), PartitionId: -1,
			Properties: map[string]string{"from_chronos": "from_chronos"}}, 0, "OK"},
		{"no producer for cluster", &producer.Message{Topic: "other", Body: []byte("x"), PartitionId: -1}, 21, "FAILED: no producer for cluster."},
		{"inner delay topic", &producer.Message{Topic: "inner_0", Body: []byte("x"), PartitionId: -1}, 11,
			"FAILED: Message is too large or illegal or the length is 0"},
		{"reserved property", &producer.Message{Topic: "orders", Body: []byte("x"), PartitionId: -1,
			Properties: map[string]string{"UNIQ_KEY": "u"}}, 11, "FAILED: Message is too large or illegal or the length is 0"},
	}
	for _, cs := range cases {
		t.Run(cs.name, func(t *testing.T) {
			res := send(t, c, cs.m)
			if res.Code != cs.code || res.Msg != cs.msg {
				t.Fatalf("got %d %q, want %d %q", res.Code, res.Msg, cs.code, cs.msg)
			}
		})
	}

	// 12: the broker holds every produce for 400 ms; timeout 50 ms plus
	// the 30 ms retry both expire.
	// Once hold is set, produces wait for it to close instead (bounded),
	// so the shutdown phase below does not race a fixed delay.
	var started, finished atomic.Int32
	var hold atomic.Pointer[chan struct{}]
	r.kafka.Cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		r.kafka.Cluster.KeepControl()
		started.Add(1)
		r.kafka.Cluster.SleepControl(func() {
			if ch := hold.Load(); ch != nil {
				select {
				case <-*ch:
				case <-time.After(5 * time.Second):
				}
				return
			}
			time.Sleep(400 * time.Millisecond)
		})
		finished.Add(1)
		return nil, nil, false
	})
	// await polls cond (the broker-side counters) until it holds.
	await := func(what string, cond func() bool) {
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	start := time.Now()
	res, err := c.SendSync(context.Background(), &producer.Message{Topic: "orders", Body: []byte("slow"), PartitionId: -1}, 50)
	if err != nil || res.Code != 12 || res.Msg != "FAILED: Send timeout" {
		t.Fatalf("slow broker: %v %v", res, err)
	}
	if d := time.Since(start); d > 300*time.Millisecond {
		t.Fatalf("timeout answer took %v, want about timeout+30ms", d)
	}

	// 20: a call in flight keeps the drain waiting; new calls meanwhile get 20.
	await("earlier produces to finish", func() bool { return started.Load() > 0 && finished.Load() == started.Load() })
	s0 := started.Load()
	release := make(chan struct{})
	hold.Store(&release)
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	defer unblock()
	inflight := make(chan *producer.Result_, 1)
	go func() {
		res, _ := c.SendSync(context.Background(), &producer.Message{Topic: "orders", Body: []byte("last"), PartitionId: -1}, 0)
		inflight <- res
	}()
	await("the in-flight call's produce", func() bool { return started.Load() > s0 })
	stopped := make(chan struct{})
	go func() { r.stop(); close(stopped) }()
	c2 := dial(t, r.addr, false)
	deadline := time.Now().Add(5 * time.Second)
	for {
		// A topic that is not on the broker: a call that gets in before the
		// lame duck starts is answered 14 at once instead of producing (and
		// waiting behind the held produce until the drain gives up).
		res, err := c2.SendSync(context.Background(), &producer.Message{Topic: "ghost", Body: []byte("late"), PartitionId: -1}, 0)
		if err == nil && res.Code == 20 {
			if res.Msg != "FAILED: Server is shutting down." {
				t.Fatalf("msg %q", res.Msg)
			}
			unblock() // now let the in-flight call finish and the drain end
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never refused during shutdown: %v %v", res, err)
		}
	}
	if res := <-inflight; res == nil || res.Code != 0 {
		t.Fatalf("in-flight call during shutdown: %v", res)
	}
	<-stopped
}
