package cproxy_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
	"github.com/ddmq-go/carrera/internal/testenv"
)

// TestKeyOrderingUnderRetries: with orderKey KEY, concurrent consumers that
// nack some messages never hold two messages of one key at once, and each
// key's messages are acknowledged in offset order.
func TestKeyOrderingUnderRetries(t *testing.T) {
	const group, topic, n = "cg_order", "ordered", 120
	s := startStack(t, map[string][]byte{group: groupJSON(group, topic, map[string]any{
		"orderKey": "KEY", "retryIntervals": []int{30, -1}, "maxRetry": -1, "timeout": 10000})})
	s.kafka.CreateTopic(topic, 4)
	c0 := dial(t, s.addr)
	bs, ml := int32(8), int32(50)
	if _, err := c0.Pull(context.Background(), &consumer.PullRequest{GroupId: group, MaxBatchSize: &bs, MaxLingerTime: &ml}); err != nil {
		t.Fatal(err)
	}
	// Six keys, each on its own partition (as a key partitioner would).
	specs := make([]kmsgSpec, n)
	for i := range specs {
		k := i % 6
		specs[i] = kmsgSpec{partition: int32(k % 4), key: fmt.Sprint("key", k), body: fmt.Sprint("o-", i)}
	}
	produceSpecs(t, s.kafka, topic, specs)

	var (
		mu       sync.Mutex
		inFlight = map[string]string{}  // key → body handed out and not yet answered
		ackSeq   = map[string][]int64{} // key → acknowledged offsets in ack order
		acked    = map[string]bool{}
		nacked   = map[string]bool{}
		failures []string
	)
	var done atomic.Bool
	var wg sync.WaitGroup
	for w := range 3 {
		c := dial(t, s.addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ack *consumer.ConsumeResult_
			var answered []string // keys of the batch answered by ack
			for i := 0; !done.Load(); i++ {
				// The previous batch stays in flight until its answer leaves
				// with this pull.
				mu.Lock()
				for _, k := range answered {
					delete(inFlight, k)
				}
				mu.Unlock()
				answered = answered[:0]
				resp, err := c.Pull(context.Background(), &consumer.PullRequest{GroupId: group, MaxBatchSize: &bs, MaxLingerTime: &ml, Result_: ack})
				if err != nil {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("worker %d pull: %v", w, err))
					mu.Unlock()
					return
				}
				ack = nil
				if len(resp.Messages) == 0 {
					continue
				}
				ack = &consumer.ConsumeResult_{Context: resp.Context}
				mu.Lock()
				for j, m := range resp.Messages {
					body := string(m.Value)
					if other, busy := inFlight[m.Key]; busy {
						failures = append(failures, fmt.Sprintf("%s handed out while %s of key %s is in flight", body, other, m.Key))
					}
					inFlight[m.Key] = body
					answered = append(answered, m.Key)
					// Nack every third message on its first delivery.
					if (i+j+w)%3 == 0 && !nacked[body] {
						nacked[body] = true
						ack.FailOffsets = append(ack.FailOffsets, m.Offset)
						continue
					}
					if acked[body] {
						failures = append(failures, body+" delivered again after its ack")
					}
					acked[body] = true
					ackSeq[m.Key] = append(ackSeq[m.Key], m.Offset)
					ack.SuccessOffsets = append(ack.SuccessOffsets, m.Offset)
				}
				mu.Unlock()
			}
			if ack != nil {
				_, _ = c.Submit(context.Background(), ack)
			}
		}()
	}
	testenv.Eventually(t, 30*time.Second, "every ordered message acknowledged", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) == n || len(failures) > 0
	})
	done.Store(true)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(failures) > 0 {
		t.Fatalf("%d violations, first: %v", len(failures), failures[:min(5, len(failures))])
	}
	if len(nacked) == 0 {
		t.Fatal("no message was nacked: the test did not exercise retries")
	}
	for key, seq := range ackSeq {
		for i := 1; i < len(seq); i++ {
			if seq[i] <= seq[i-1] {
				t.Fatalf("key %s acknowledged out of offset order: %v", key, seq)
			}
		}
		if len(seq) != n/6 {
			t.Fatalf("key %s: %d acks, want %d", key, len(seq), n/6)
		}
	}
	t.Logf("%d messages, %d nacked once", n, len(nacked))
}

// TestGroupHotReload: removing this instance from the group's proxies stops
// serving the group (pulls stay empty), binding it again resumes from the
// committed offsets; both within seconds.
func TestGroupHotReload(t *testing.T) {
	const group, topic = "cg_hot", "hot"
	s := startStack(t, map[string][]byte{group: groupJSON(group, topic, nil)})
	s.kafka.CreateTopic(topic, 4)
	c := dial(t, s.addr)
	bs, ml := int32(8), int32(50)
	if _, err := c.Pull(context.Background(), &consumer.PullRequest{GroupId: group, MaxBatchSize: &bs, MaxLingerTime: &ml}); err != nil {
		t.Fatal(err)
	}
	produce(t, s.kafka, topic, 20, "h")
	pullAll(t, c, group, 20, false)
	testenv.Eventually(t, 10*time.Second, "offsets committed", func() bool { ok, _ := statsCaughtUp(c, group, topic, 4); return ok })

	// Unbind: the group lists another proxy only.
	testenv.SeedZK(t, s.zk.Addr, chroot, map[string][]byte{"/group/" + group: groupJSON(group, topic,
		map[string]any{"proxies": proxies("127.0.0.1:1")})})
	testenv.Eventually(t, 5*time.Second, "group unbound (stats empty)", func() bool {
		st, err := c.GetConsumeStats(context.Background(), &consumer.ConsumeStatsRequest{Group: group})
		return err == nil && len(st) == 0
	})
	produce(t, s.kafka, topic, 12, "u")
	ml = 300
	end := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(end) { // negative check over a bounded period
		resp, err := c.Pull(context.Background(), &consumer.PullRequest{GroupId: group, MaxBatchSize: &bs, MaxLingerTime: &ml})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Messages) != 0 {
			t.Fatalf("unbound group delivered %s", resp.Messages[0].Value)
		}
	}

	// Rebind: messages flow again from the committed offsets.
	testenv.SeedZK(t, s.zk.Addr, chroot, map[string][]byte{"/group/" + group: groupJSON(group, topic,
		map[string]any{"maxPullBatchSize": 2})})
	start := time.Now()
	seen := map[string]bool{}
	deadline := start.Add(10 * time.Second)
	var ack *consumer.ConsumeResult_
	for len(seen) < 12 {
		if time.Now().After(deadline) {
			t.Fatalf("after rebinding got %d of 12", len(seen))
		}
		resp, err := c.Pull(context.Background(), &consumer.PullRequest{GroupId: group, MaxBatchSize: &bs, MaxLingerTime: &ml, Result_: ack})
		if err != nil {
			t.Fatal(err)
		}
		ack = nil
		if len(resp.Messages) == 0 {
			continue
		}
		if len(resp.Messages) > 2 {
			t.Fatalf("batch of %d above the new maxPullBatchSize 2", len(resp.Messages))
		}
		ack = &consumer.ConsumeResult_{Context: resp.Context}
		for _, m := range resp.Messages {
			if seen[string(m.Value)] {
				t.Fatalf("%s delivered twice", m.Value)
			}
			seen[string(m.Value)] = true
			ack.SuccessOffsets = append(ack.SuccessOffsets, m.Offset)
		}
	}
	for b := range seen {
		if b[0] != 'u' {
			t.Fatalf("acknowledged %s redelivered after rebinding", b)
		}
	}
	t.Logf("rebound group delivered 12 messages in %v", time.Since(start))
}

// TestZooKeeperOutage: with ZooKeeper down, a running group and a group
// started during the outage (from the cached configuration) keep serving
// pulls; after ZooKeeper returns, pulls still work.
func TestZooKeeperOutage(t *testing.T) {
	const topic = "zkout"
	s := startStack(t, map[string][]byte{
		"cg_z1": groupJSON("cg_z1", topic, nil),
		"cg_z2": groupJSON("cg_z2", topic, nil),
	})
	s.kafka.CreateTopic(topic, 4)
	c := dial(t, s.addr)
	bs, ml := int32(8), int32(50)
	if _, err := c.Pull(context.Background(), &consumer.PullRequest{GroupId: "cg_z1", MaxBatchSize: &bs, MaxLingerTime: &ml}); err != nil {
		t.Fatal(err)
	}
	produce(t, s.kafka, topic, 12, "a")
	pullAll(t, c, "cg_z1", 12, false)

	s.zk.Stop()
	produce(t, s.kafka, topic, 12, "b")
	for b := range pullAll(t, c, "cg_z1", 12, true) {
		if b[0] != 'b' {
			t.Fatalf("redelivered %s during the outage", b)
		}
	}
	// A group's first pull during the outage starts it from the cache (at
	// the newest offsets): probe until a message produced after the start
	// arrives.
	probes := 0
	testenv.Eventually(t, 15*time.Second, "cg_z2 serving during the outage", func() bool {
		produceSpecs(t, s.kafka, topic, []kmsgSpec{{partition: int32(probes % 4), key: "p", body: fmt.Sprint("p-", probes)}})
		probes++
		ml := int32(200)
		resp, err := c.Pull(context.Background(), &consumer.PullRequest{GroupId: "cg_z2", MaxBatchSize: &bs, MaxLingerTime: &ml})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Messages) == 0 {
			return false
		}
		r := &consumer.ConsumeResult_{Context: resp.Context}
		for _, m := range resp.Messages {
			r.SuccessOffsets = append(r.SuccessOffsets, m.Offset)
		}
		_, _ = c.Submit(context.Background(), r)
		return true
	})

	s.zk.Restart()
	produce(t, s.kafka, topic, 8, "c")
	for b := range pullAll(t, c, "cg_z1", 8+probes, false) {
		if b[0] == 'a' || b[0] == 'b' {
			t.Fatalf("redelivered %s after the outage", b)
		}
	}
	// cg_z2 gets every message produced after it started serving.
	got := map[string]bool{}
	var ack *consumer.ConsumeResult_
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < 8; {
		if time.Now().After(deadline) {
			t.Fatalf("cg_z2 missed c-%d: %v", i, got)
		}
		resp, err := c.Pull(context.Background(), &consumer.PullRequest{GroupId: "cg_z2", MaxBatchSize: &bs, MaxLingerTime: &ml, Result_: ack})
		if err != nil {
			t.Fatal(err)
		}
		ack = nil
		if len(resp.Messages) > 0 {
			ack = &consumer.ConsumeResult_{Context: resp.Context}
			for _, m := range resp.Messages {
				got[string(m.Value)] = true
				ack.SuccessOffsets = append(ack.SuccessOffsets, m.Offset)
			}
		}
		for i < 8 && got[fmt.Sprint("c-", i)] {
			i++
		}
	}
}
