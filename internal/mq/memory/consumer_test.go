package memory_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/mq/memory"
)

// recorder is a ClaimHandler that collects what it receives and commits
// on request.
type recorder struct {
	mu      sync.Mutex
	setups  []map[string][]int32
	claims  map[string]mq.Claim // "topic/partition" → live claim
	got     map[string][]int64
	ended   int
	cleanup int
}

func newRecorder() *recorder {
	return &recorder{claims: map[string]mq.Claim{}, got: map[string][]int64{}}
}

func key(topic string, p int32) string { return topic + "/" + string(rune('0'+p)) }

func (r *recorder) Setup(a map[string][]int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.setups = append(r.setups, a)
}

func (r *recorder) Cleanup() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanup++
}

func (r *recorder) Claim(c mq.Claim) {
	k := key(c.Topic(), c.Partition())
	r.mu.Lock()
	r.claims[k] = c
	r.mu.Unlock()
	for {
		select {
		case d, ok := <-c.Messages():
			if !ok {
				return
			}
			r.mu.Lock()
			r.got[k] = append(r.got[k], d.Offset)
			r.mu.Unlock()
		case <-c.Context().Done():
			// final commit before returning is accepted
			c.Commit(mq.CommittedOffset{Offset: 100, Metadata: "final"})
			r.mu.Lock()
			r.ended++
			delete(r.claims, k)
			r.mu.Unlock()
			return
		}
	}
}

func (r *recorder) offsets(k string) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.got[k]...)
}

func (r *recorder) claim(k string) mq.Claim {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.claims[k]
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestConsumerDeliversAndCommits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := memory.NewConsumer(memory.ConsumerOptions{Topics: map[string]int{"t": 2}})
		c.Append("t", 0, "k", []byte("a"))
		c.Skip("t", 0, 3) // gap 1..3
		c.Append("t", 0, "", []byte("b"))
		r := newRecorder()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx, r) }()
		synctest.Wait()

		if got := r.offsets("t/0"); !equal(got, []int64{0, 4}) {
			t.Fatalf("t/0 delivered %v, want [0 4]", got)
		}
		if hw := c.HighWatermark("t", 0); hw != 5 {
			t.Fatalf("high watermark %d, want 5", hw)
		}
		c.Append("t", 1, "", nil)
		synctest.Wait()
		if got := r.offsets("t/1"); !equal(got, []int64{0}) {
			t.Fatalf("t/1 delivered %v", got)
		}
		cl := r.claim("t/0")
		if cl.Initial().Offset != -1 {
			t.Fatalf("initial %+v, want -1 (nothing committed)", cl.Initial())
		}
		cl.Commit(mq.CommittedOffset{Offset: 4, Metadata: "m"})
		if co := c.Committed("t", 0); co.Offset != 4 || co.Metadata != "m" {
			t.Fatalf("committed %+v", co)
		}
		if err := c.Run(ctx, r); !errors.Is(err, memory.ErrRunning) {
			t.Fatalf("second Run: %v", err)
		}

		// Rebalance: old claims end (their final commit counts), the new
		// generation starts from the committed state.
		c.Rebalance(map[string][]int32{"t": {0}})
		if co := c.Committed("t", 0); co.Offset != 100 || co.Metadata != "final" {
			t.Fatalf("final commit not recorded: %+v", co)
		}
		cl.Commit(mq.CommittedOffset{Offset: 7}) // claim ended: ignored
		if co := c.Committed("t", 0); co.Offset != 100 {
			t.Fatalf("commit after the claim ended was recorded: %+v", co)
		}
		synctest.Wait()
		if r.claim("t/1") != nil {
			t.Fatal("t/1 claimed although not assigned")
		}
		if got := r.claim("t/0").Initial(); got.Offset != 100 || got.Metadata != "final" {
			t.Fatalf("new claim initial %+v", got)
		}
		if c.Generation() != 2 || len(r.setups) != 2 || r.cleanup != 1 {
			t.Fatalf("generation %d setups %d cleanups %d", c.Generation(), len(r.setups), r.cleanup)
		}
		if hist := c.Commits("t", 0); len(hist) != 2 {
			t.Fatalf("commit history %+v", hist)
		}

		// Revoke ends one claim only; it is not reclaimed in this generation.
		if !c.Revoke("t", 0) || c.Revoke("t", 0) || c.Revoke("t", 1) {
			t.Fatal("Revoke results")
		}
		synctest.Wait()
		if r.claim("t/0") != nil || r.ended != 3 {
			t.Fatalf("revoked claim still running (ended %d)", r.ended)
		}
		c.Rebalance(nil)
		synctest.Wait()
		if r.claim("t/0") == nil || r.claim("t/1") == nil {
			t.Fatal("not reclaimed by the next generation")
		}

		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if c.Revoke("t", 0) {
			t.Fatal("Revoke while not running")
		}
		// Not running: Rebalance only stores the assignment.
		c.Rebalance(nil)
	})
}

func TestConsumerWaitCommitted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := memory.NewConsumer(memory.ConsumerOptions{Topics: map[string]int{"t": 1}})
		c.SetCommitted("t", 0, mq.CommittedOffset{Offset: 3})
		r := newRecorder()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx, r) }()
		synctest.Wait()
		got := make(chan mq.CommittedOffset, 1)
		go func() {
			co, _ := c.WaitCommitted(context.Background(), "t", 0, func(co mq.CommittedOffset) bool { return co.Offset >= 5 })
			got <- co
		}()
		synctest.Wait()
		r.claim("t/0").Commit(mq.CommittedOffset{Offset: 4})
		r.claim("t/0").Commit(mq.CommittedOffset{Offset: 5})
		if co := <-got; co.Offset != 5 {
			t.Fatalf("WaitCommitted returned %+v", co)
		}
		wctx, wcancel := context.WithTimeout(context.Background(), time.Second)
		defer wcancel()
		if _, err := c.WaitCommitted(wctx, "t", 0, func(co mq.CommittedOffset) bool { return co.Offset > 1000 }); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitCommitted: %v", err)
		}
		cancel()
		<-done
	})
}
