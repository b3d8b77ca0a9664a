package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ddmq-go/carrera/internal/config"
	"github.com/ddmq-go/carrera/internal/mq"
)

var bg = context.Background()

func TestPullReturnsOneQIDRoundRobin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]int{"t": 3}, settings())
		for p := range int32(3) {
			h.appendN("t", p, 4)
		}
		seen := map[string]bool{}
		for range 3 {
			b := h.pull("", 100)
			if len(b.Messages) != 4 || b.Topic != "t" || b.Cluster != cluster {
				t.Fatalf("batch %+v", b)
			}
			for _, d := range b.Messages {
				if want := fmt.Sprintf("K_%d", d.Partition); b.QID != want {
					t.Fatalf("message of partition %d in a batch of %s", d.Partition, b.QID)
				}
			}
			seen[b.QID] = true
		}
		if len(seen) != 3 {
			t.Fatalf("qids served: %v", seen)
		}
		h.expectEmpty("")
	})
}

func TestBatchCaps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := settings()
		s.MaxPullBatchSize = 3
		h := newHarness(t, map[string]int{"t": 1}, s)
		h.appendN("t", 0, 10)
		h.expectPull("t", 0, 0, 1, 2)  // maxPullBatchSize
		h.expectPull("t", 2, 3, 4)     // the request's smaller max
		h.expectPull("t", 10, 5, 6, 7) // capped by maxPullBatchSize
	})
	synctest.Test(t, func(t *testing.T) {
		// maxRecvMsgsLength 10 with 3-byte bodies: the check is made before
		// adding, so the batch ends at 12 bytes.
		h := newHarness(t, map[string]int{"t": 1}, settings(), func(o *Options) { o.MaxRecvMsgsLength = 10 })
		h.appendN("t", 0, 6)
		h.expectPull("t", 0, 0, 1, 2, 3)
		h.c.Append("t", 0, "", make([]byte, 50))
		synctest.Wait()
		h.expectPull("t", 0, 4, 5, 6)
		h.expectEmpty("t")
		h.c.Append("t", 0, "", make([]byte, 50))
		h.c.Append("t", 0, "", make([]byte, 1))
		synctest.Wait()
		h.expectPull("t", 0, 7) // one large message is always deliverable
		h.expectPull("t", 0, 8)
	})
}

func TestLongPollWakesOnArrival(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]int{"t": 1}, settings())
		start := time.Now()
		got := make(chan Batch, 1)
		go func() {
			b, _ := h.e.Pull(bg, "", 10, 10*time.Second)
			got <- b
		}()
		synctest.Wait()
		if st := h.e.Stats(); st.Waiters != 1 {
			t.Fatalf("waiters %d, want 1", st.Waiters)
		}
		h.c.Append("t", 0, "", []byte("x"))
		b := <-got
		if len(b.Messages) != 1 || time.Since(start) != 0 {
			t.Fatalf("got %v after %v, want the message at once", offsets(b), time.Since(start))
		}
		if st := h.e.Stats(); st.Waiters != 0 || st.InFlight != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestLongPollTimesOutEmpty(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]int{"t": 1}, settings())
		for _, c := range []struct{ linger, want time.Duration }{
			{0, 20 * time.Millisecond}, {5 * time.Millisecond, 20 * time.Millisecond}, {50 * time.Millisecond, 50 * time.Millisecond},
		} {
			start := time.Now()
			b, err := h.e.Pull(bg, "t", 0, c.linger)
			if err != nil || len(b.Messages) != 0 || b.Topic != "" || b.QID != "" {
				t.Fatalf("linger %v: %+v, %v", c.linger, b, err)
			}
			if d := time.Since(start); d != c.want {
				t.Fatalf("linger %v answered after %v, want %v", c.linger, d, c.want)
			}
		}
		if h.e.LastPull().IsZero() {
			t.Fatal("LastPull not recorded")
		}
		// A cancelled pull returns the context's error.
		ctx, cancel := context.WithCancel(bg)
		go func() { time.Sleep(5 * time.Millisecond); cancel() }()
		if _, err := h.e.Pull(ctx, "t", 0, time.Second); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled pull: %v", err)
		}
		if st := h.e.Stats(); st.Waiters != 0 {
			t.Fatalf("waiters left: %d", st.Waiters)
		}
		// Topic names sent by clients leave nothing behind.
		for i := range 50 {
			if _, err := h.e.Pull(bg, fmt.Sprintf("junk-%d", i), 0, 0); err != nil {
				t.Fatal(err)
			}
		}
		h.e.mu.Lock()
		n := len(h.e.waiters)
		h.e.mu.Unlock()
		if n != 0 {
			t.Fatalf("%d wait queues left", n)
		}
	})
}

// parkPull starts a Pull and returns the channel of its result once it is
// parked.
func parkPull(h *harness, topic string) chan Batch {
	ch := make(chan Batch, 1)
	go func() {
		b, _ := h.e.Pull(bg, topic, 0, time.Hour)
		ch <- b
	}()
	synctest.Wait()
	return ch
}

func ready(ch chan Batch) (Batch, bool) {
	select {
	case b := <-ch:
		return b, true
	default:
		return Batch{}, false
	}
}

func TestWaitersTopicFirstThenAny(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]int{"a": 1, "b": 1}, settings())
		any1 := parkPull(h, "") // older, topic-less
		onA := parkPull(h, "a")
		h.appendN("a", 0, 1)
		if b, ok := ready(onA); !ok || b.Topic != "a" {
			t.Fatalf("topic waiter not served first: %+v %v", b, ok)
		}
		if _, ok := ready(any1); ok {
			t.Fatal("topic-less waiter answered although the topic waiter took the message")
		}
		// Defect #12: a message of b wakes the topic-less waiter although a
		// waiter (for another topic) exists.
		onA2 := parkPull(h, "a")
		h.appendN("b", 0, 1)
		if b, ok := ready(any1); !ok || b.Topic != "b" {
			t.Fatalf("topic-less waiter not woken by b: %+v %v", b, ok)
		}
		if _, ok := ready(onA2); ok {
			t.Fatal("waiter for a got a message of b")
		}
		// Once a topic has a waiter queue (now empty), topic-less waiters
		// are still woken for it.
		h.appendN("a", 0, 1)
		if b, ok := ready(onA2); !ok || b.Topic != "a" {
			t.Fatalf("second waiter for a: %+v %v", b, ok)
		}
		any2 := parkPull(h, "")
		h.appendN("a", 0, 1)
		if b, ok := ready(any2); !ok || b.Topic != "a" {
			t.Fatalf("topic-less waiter with an empty queue for a: %+v %v", b, ok)
		}
	})
}

func TestSubmitSuccessCommitsLowestUnfinished(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]int{"t": 1}, settings())
		h.appendN("t", 0, 5)
		b := h.expectPull("t", 0, 0, 1, 2, 3, 4)
		if got := h.metric("cproxy_pull_in_flight", map[string]string{"group": "g", "topic": "t"}); got != 5 {
			t.Fatalf("in-flight gauge %v", got)
		}
		if n := len(h.c.Commits("t", 0)); n != 0 {
			t.Fatalf("%d commits before any ack", n)
		}
		h.e.Submit("t", b.QID, []int64{1, 2, 4}, nil)
		co := h.committed("t", 0)
		if co.Offset != 0 || !slices.Equal(finished(t, co, 0, 5), []int64{1, 2, 4}) {
			t.Fatalf("commit %+v finished %v", co, finished(t, co, 0, 5))
		}
		if n := len(h.c.Commits("t", 0)); n != 1 {
			t.Fatalf("%d commits for one batch of acks", n)
		}
		h.e.Submit("t", b.QID, []int64{0}, nil)
		co = h.committed("t", 0)
		if co.Offset != 3 || !slices.Equal(finished(t, co, 0, 5), []int64{0, 1, 2, 4}) {
			t.Fatalf("commit %+v", co)
		}
		h.e.Submit("t", b.QID, []int64{3}, nil)
		if co = h.committed("t", 0); co.Offset != 5 || co.Metadata != "" {
			t.Fatalf("commit %+v", co)
		}
		if got := h.metric("cproxy_acked_total", map[string]string{"topic": "t"}); got != 5 {
			t.Fatalf("acked %v", got)
		}
		if got := h.metric("cproxy_pull_in_flight", nil); got != 0 {
			t.Fatalf("in-flight gauge %v", got)
		}
		// Nothing changes: no further commit.
		n := len(h.c.Commits("t", 0))
		advance(time.Second)
		if len(h.c.Commits("t", 0)) != n {
			t.Fatal("commit without a change")
		}
	})
}

func TestGapIsCommittedOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]int{"t": 1}, settings())
		h.c.Append("t", 0, "", []byte("a"))
		h.c.Skip("t", 0, 5)
		h.c.Append("t", 0, "", []byte("b"))
		synctest.Wait()
		b := h.expectPull("t", 0, 0, 6)
		h.e.Submit("t", b.QID, []int64{6}, nil)
		if co := h.committed("t", 0); co.Offset != 0 || !slices.Equal(finished(t, co, 0, 7), []int64{1, 2, 3, 4, 5, 6}) {
			t.Fatalf("commit %+v", co)
		}
		h.e.Submit("t", b.QID, []int64{0}, nil)
		if co := h.committed("t", 0); co.Offset != 7 {
			t.Fatalf("commit %+v", co)
		}
	})
}

func TestNackRedeliveredAfterInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]int{"t": 1}, settings()) // intervals [100 200]
		h.c.Append("t", 0, "k9", []byte("x"))
		synctest.Wait()
		b := h.expectPull("t", 0, 0)
		for _, want := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond} {
			h.e.Submit("t", b.QID, nil, []int64{0})
			start := time.Now()
			got, err := h.e.Pull(bg, "t", 0, time.Hour)
			if err != nil || !slices.Equal(offsets(got), []int64{0}) || time.Since(start) != want {
				t.Fatalf("redelivery after %v: %v %v, want after %v", time.Since(start), offsets(got), err, want)
			}
		}
		if co := h.c.Committed("t", 0); co.Offset >= 1 {
			t.Fatalf("committed while the message is retried: %+v", co)
		}
		h.e.Submit("t", b.QID, nil, []int64{0}) // intervals exhausted: drop
		if co := h.committed("t", 0); co.Offset != 1 {
			t.Fatalf("commit after drop %+v", co)
		}
		for name, want := range map[string]float64{
			"cproxy_nacked_total": 3, "cproxy_redelivered_total": 2, "cproxy_dropped_total": 1,
		} {
			if got := h.metric(name, map[string]string{"topic": "t"}); got != want {
				t.Errorf("%s = %v, want %v", name, got, want)
			}
		}
		if got := h.metric("cproxy_dropped_total", map[string]string{"reason": ReasonNack}); got != 1 {
			t.Errorf("drop reason: %v", got)
		}
		drops := h.logs.FilterLoggerName("drop").All()
		if len(drops) != 1 || drops[0].ContextMap()["key"] != "k9" || drops[0].ContextMap()["offset"] != int64(0) {
			t.Fatalf("drop log %+v", drops)
		}
		h.expectEmpty("t")
	})
}

func TestTimeoutRedeliveredThenDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]int{"t": 1}, settings()) // timeout 1 s, maxRetry 2
		h.c.Append("t", 0, "key", []byte("x"))
		synctest.Wait()
		h.expectPull("t", 0, 0)
		for range 2 {
			start := time.Now()
			got, _ := h.e.Pull(bg, "t", 0, time.Hour)
			if !slices.Equal(offsets(got), []int64{0}) || time.Since(start) != time.Second {
				t.Fatalf("redelivery %v after %v", offsets(got), time.Since(start))
			}
		}
		// The third timeout spends maxRetry: dropped, offset released.
		advance(time.Second)
		if co := h.committed("t", 0); co.Offset != 1 {
			t.Fatalf("commit after drop %+v", co)
		}
		if got := h.metric("cproxy_redelivered_total", map[string]string{"reason": ReasonTimeout}); got != 2 {
			t.Errorf("redelivered %v", got)
		}
		if got := h.metric("cproxy_dropped_total", map[string]string{"reason": ReasonTimeout, "group": "g"}); got != 1 {
			t.Errorf("dropped %v", got)
		}
		h.expectEmpty("t")
	})
}

func TestTimedOutMessageAckedByFirstReceiver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]int{"t": 1}, settings())
		h.appendN("t", 0, 1)
		b := h.expectPull("t", 0, 0)
		advance(time.Second) // timed out, waiting for redelivery
		h.e.Submit("t", b.QID, []int64{0}, nil)
		if co := h.committed("t", 0); co.Offset != 1 {
			t.Fatalf("commit %+v", co)
		}
		h.expectEmpty("t")
		if got := h.metric("cproxy_submit_ignored_total", nil); got != 0 {
			t.Fatalf("ack of a timed-out message ignored")
		}
	})
}

func TestUnlimitedRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := settings()
		s.MaxRetry = -1
		s.RetryIntervals = []int{50, -1}
		h := newHarness(t, map[string]int{"t": 1}, s)
		h.appendN("t", 0, 1)
		b := h.expectPull("t", 0, 0)
		for range 20 {
			advance(time.Second)
			h.expectPull("t", 0, 0)
			h.e.Submit("t", b.QID, nil, []int64{0})
			advance(50 * time.Millisecond)
			h.expectPull("t", 0, 0)
		}
		if got := h.metric("cproxy_dropped_total", nil); got != 0 {
			t.Fatalf("dropped %v", got)
		}
	})
}

// deadLetters records dead-letter publishes; the first failures calls fail.
type deadLetters struct {
	mu       sync.Mutex
	failures int
	calls    []string // "topic:offset"
	ok       []string
}

func (d *deadLetters) publish(_ context.Context, topic string, m *mq.Delivery) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := fmt.Sprintf("%s:%d", topic, m.Offset)
	d.calls = append(d.calls, c)
	if d.failures > 0 {
		d.failures--
		return errors.New("broker down")
	}
	d.ok = append(d.ok, c)
	return nil
}

func (d *deadLetters) published() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.ok)
}

func TestDeadLetterBeforeCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dl := &deadLetters{}
		s := settings()
		s.MaxRetry = 0
		s.DeadLetterTopic = "dead"
		var clusters []string
		h := newHarness(t, map[string]int{"t": 1}, s, func(o *Options) {
			o.DeadLetter = func(context.Context, string, *mq.Delivery) error { return errors.New("not this one") }
			o.DeadLetterOn = func(ctx context.Context, cl, topic string, d *mq.Delivery) error {
				clusters = append(clusters, cl) // one worker: no concurrent calls
				return dl.publish(ctx, topic, d)
			}
		})
		h.appendN("t", 0, 2)
		b := h.expectPull("t", 0, 0, 1)
		h.e.Submit("t", b.QID, []int64{1}, nil)
		advance(time.Second) // 0 times out with maxRetry 0: dead-lettered
		if got := dl.published(); !slices.Equal(got, []string{"dead:0"}) || !slices.Equal(clusters, []string{cluster}) {
			t.Fatalf("published %v on %v", got, clusters)
		}
		if co := h.committed("t", 0); co.Offset != 2 {
			t.Fatalf("commit %+v", co)
		}
		if got := h.metric("cproxy_dead_lettered_total", map[string]string{"topic": "t"}); got != 1 {
			t.Fatalf("dead_lettered %v", got)
		}
		if got := h.metric("cproxy_dropped_total", nil); got != 0 {
			t.Fatalf("dropped %v", got)
		}
	})
}

func TestDeadLetterFailureKeepsOffsetUncommitted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dl := &deadLetters{failures: 3}
		s := settings()
		s.RetryIntervals = []int{}
		s.DeadLetterTopic = "dead"
		h := newHarness(t, map[string]int{"t": 1}, s, func(o *Options) { o.DeadLetter = dl.publish })
		h.appendN("t", 0, 2)
		b := h.expectPull("t", 0, 0, 1)
		h.e.Submit("t", b.QID, []int64{0}, []int64{1}) // empty intervals: 1 is exhausted at once
		// Failures retried after 250 ms, 500 ms, 1 s; meanwhile offset 1
		// stays uncommitted.
		for _, d := range []time.Duration{0, 250 * time.Millisecond, 500 * time.Millisecond} {
			advance(d)
			if co := h.committed("t", 0); co.Offset != 1 {
				t.Fatalf("commit %+v while the dead-letter publish fails", co)
			}
		}
		advance(time.Second)
		if co := h.committed("t", 0); co.Offset != 2 {
			t.Fatalf("commit %+v after the publish succeeded", co)
		}
		if got := h.metric("cproxy_dead_letter_failures_total", nil); got != 3 {
			t.Fatalf("failures %v", got)
		}
		if len(dl.calls) != 4 || len(dl.published()) != 1 {
			t.Fatalf("calls %v", dl.calls)
		}
	})
}

func TestDeadLetterPolicyWithoutProducerDrops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := settings()
		s.RetryIntervals = []int{}
		s.DeadLetterTopic = "dead"
		h := newHarness(t, map[string]int{"t": 1}, s) // no Options.DeadLetter
		h.appendN("t", 0, 1)
		b := h.expectPull("t", 0, 0)
		h.e.Submit("t", b.QID, nil, []int64{0})
		if co := h.committed("t", 0); co.Offset != 1 {
			t.Fatalf("commit %+v", co)
		}
		if got := h.metric("cproxy_dropped_total", nil); got != 1 {
			t.Fatalf("dropped %v", got)
		}
	})
}

func TestOrderQIDOneBatchAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := settings()
		s.Order = config.OrderQID
		s.MaxPullBatchSize = 3
		h := newHarness(t, map[string]int{"t": 1}, s)
		h.appendN("t", 0, 6)
		b := h.expectPull("t", 0, 0, 1, 2)
		h.expectEmpty("t") // 3..5 wait for the outstanding batch
		h.e.Submit("t", b.QID, []int64{0}, []int64{1})
		h.expectEmpty("t") // 1 waits for its retry; 2 in flight
		advance(100 * time.Millisecond)
		h.expectPull("t", 0, 1) // retry of a batch member only
		h.e.Submit("t", b.QID, []int64{2}, nil)
		advance(time.Second) // 1 times out: redelivered, still the same batch
		h.expectPull("t", 0, 1)
		h.e.Submit("t", b.QID, []int64{1}, nil)
		h.expectPull("t", 0, 3, 4, 5)
	})
}

func TestOrderKeyOneInFlightPerKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := settings()
		s.Order = config.OrderKey
		h := newHarness(t, map[string]int{"t": 2}, s)
		for _, k := range []string{"a", "a", "b", "a", ""} {
			h.c.Append("t", 0, k, []byte("x"))
		}
		synctest.Wait()
		b := h.expectPull("t", 0, 0, 2, 4)
		h.e.Submit("t", b.QID, []int64{2, 4}, []int64{0})
		h.expectEmpty("t")
		advance(100 * time.Millisecond)
		h.expectPull("t", 0, 0) // the retry, not 1
		advance(time.Second)    // timeout: redelivered, 1 still held back
		h.expectPull("t", 0, 0)
		h.e.Submit("t", b.QID, []int64{0}, nil)
		h.expectPull("t", 0, 1)
		h.e.Submit("t", b.QID, []int64{1}, nil)
		h.expectPull("t", 0, 3)

		// The key chain spans the unit's partitions: a in partition 1
		// waits for a in flight in partition 0.
		h.c.Append("t", 1, "a", []byte("y"))
		synctest.Wait()
		h.expectEmpty("t")
		h.e.Submit("t", b.QID, []int64{3}, nil)
		if got := h.pull("t", 0); got.QID != "K_1" || !slices.Equal(offsets(got), []int64{0}) {
			t.Fatalf("pull %s %v", got.QID, offsets(got))
		}
		// Revoking the partition of a key's head releases the next one.
		h.c.Append("t", 0, "a", []byte("z"))
		synctest.Wait()
		h.expectEmpty("t")
		h.c.Revoke("t", 1)
		h.expectPull("t", 0, 5)
	})
}

func TestRevokeDiscardsAndNewClaimResumes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]int{"t": 1}, settings())
		h.appendN("t", 0, 5)
		b := h.expectPull("t", 0, 0, 1, 2, 3, 4)
		h.e.Submit("t", b.QID, []int64{1, 3}, nil)
		h.c.Rebalance(map[string][]int32{}) // partition revoked
		// Final commit before the claim returned, without waiting for the
		// commit interval.
		co := h.c.Committed("t", 0)
		if co.Offset != 0 || !slices.Equal(finished(t, co, 0, 5), []int64{1, 3}) {
			t.Fatalf("final commit %+v", co)
		}
		if st := h.e.Stats(); st != (Stats{}) {
			t.Fatalf("stats after revoke %+v", st)
		}
		h.e.Submit("t", b.QID, []int64{0, 2}, nil) // acks of a revoked partition: ignored
		if got := h.metric("cproxy_submit_ignored_total", nil); got != 2 {
			t.Fatalf("ignored %v", got)
		}
		for _, g := range []string{"cproxy_pull_in_flight", "cproxy_pull_buffered", "cproxy_pull_buffered_bytes"} {
			if v := h.metric(g, nil); v != 0 {
				t.Fatalf("%s = %v after revoke", g, v)
			}
		}
		h.expectEmpty("t")

		h.c.Rebalance(nil) // claimed again from the committed state
		synctest.Wait()
		b = h.expectPull("t", 0, 0, 2, 4) // 1 and 3 are not redelivered
		h.e.Submit("t", b.QID, []int64{0, 2, 4}, nil)
		if co := h.committed("t", 0); co.Offset != 5 || co.Metadata != "" {
			t.Fatalf("commit %+v", co)
		}
	})
}

func TestRestartedEngineResumes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		topics := map[string]int{"t": 1}
		h := newHarness(t, topics, settings())
		h.appendN("t", 0, 5)
		b := h.expectPull("t", 0, 0, 1, 2, 3, 4)
		h.e.Submit("t", b.QID, []int64{0, 2, 3}, nil)
		h.stop() // the member dies after its last commit
		if co := h.c.Committed("t", 0); co.Offset != 1 || !slices.Equal(finished(t, co, 0, 5), []int64{0, 2, 3}) {
			t.Fatalf("commit %+v", co)
		}
		h2 := startHarness(t, h.c, topics, settings())
		h2.expectPull("t", 0, 1, 4)
	})
}

func TestConcurrencyBlocksReading(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := settings()
		s.Concurrency = 2
		h := newHarness(t, map[string]int{"t": 1, "u": 1}, s)
		h.appendN("t", 0, 5)
		h.appendN("u", 0, 1)
		if st := h.e.Stats(); st.Unfinished != 3 {
			t.Fatalf("unfinished %d, want 2 of t + 1 of u", st.Unfinished)
		}
		b := h.expectPull("t", 0, 0, 1)
		h.expectEmpty("t")
		h.e.Submit("t", b.QID, []int64{0}, nil)
		synctest.Wait()
		h.expectPull("t", 0, 2)
		// Live reconfiguration releases the reader.
		s.Concurrency = 10
		h.e.Configure(map[UnitTopic]Settings{{Cluster: cluster, Topic: "t"}: s})
		synctest.Wait()
		h.expectPull("t", 0, 3, 4)
	})
}

func (h *harness) unfinished(topic, qid string) int {
	h.e.mu.Lock()
	defer h.e.mu.Unlock()
	p := h.e.parts[partKey{topic: topic, qid: qid}]
	if p == nil {
		return -1
	}
	return p.jobs.len()
}

func TestLagBlocksOnlyItsPartition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := settings()
		s.MaxConsumeLag = 2
		h := newHarness(t, map[string]int{"t": 2}, s)
		h.appendN("t", 0, 10)
		h.appendN("t", 1, 10)
		// maxStarted − committable < 2 admits offsets 0, 1, 2.
		if a, b := h.unfinished("t", "K_0"), h.unfinished("t", "K_1"); a != 3 || b != 3 {
			t.Fatalf("unfinished %d/%d, want 3/3", a, b)
		}
		b0 := h.expectPull("t", 0, 0, 1, 2)
		b1 := h.expectPull("t", 0, 0, 1, 2)
		if b0.QID == b1.QID {
			t.Fatal("same qid twice")
		}
		h.e.Submit("t", b1.QID, []int64{0, 1, 2}, nil)
		synctest.Wait()
		if got := h.unfinished("t", b1.QID); got != 3 {
			t.Fatalf("%s unfinished %d after acks, want 3 more", b1.QID, got)
		}
		h.e.Submit("t", b0.QID, []int64{1, 2}, nil) // committable still 0
		synctest.Wait()
		if got := h.unfinished("t", b0.QID); got != 1 {
			t.Fatalf("%s unfinished %d, want 1 (blocked by lag)", b0.QID, got)
		}
		h.e.Submit("t", b0.QID, []int64{0}, nil)
		synctest.Wait()
		if got := h.unfinished("t", b0.QID); got != 3 {
			t.Fatalf("%s unfinished %d after the lowest ack", b0.QID, got)
		}
	})
}

func TestByteBudgetBlocksReading(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]int{"t": 1}, settings(), func(o *Options) { o.MaxBufferedBytes = 7 })
		h.appendN("t", 0, 3) // 3 bytes each
		if st := h.e.Stats(); st.Unfinished != 2 || st.BufferedBytes != 6 {
			t.Fatalf("stats %+v", st)
		}
		b := h.expectPull("t", 0, 0, 1)
		h.e.Submit("t", b.QID, []int64{0, 1}, nil)
		synctest.Wait()
		h.c.Append("t", 0, "", make([]byte, 100))
		synctest.Wait()
		h.expectPull("t", 0, 2) // 3 waits: 3 + 100 > 7
		h.e.Submit("t", b.QID, []int64{2}, nil)
		synctest.Wait()
		h.expectPull("t", 0, 3) // alone it is admitted although larger than the budget
		if got := h.metric("cproxy_pull_buffered_bytes", map[string]string{"group": "g"}); got != 100 {
			t.Fatalf("buffered bytes gauge %v", got)
		}
	})
}

func TestRateLimiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := settings()
		s.MaxTps = 10
		h := newHarness(t, map[string]int{"t": 1}, s)
		h.appendN("t", 0, 30)
		if st := h.e.Stats(); st.Unfinished != 10 {
			t.Fatalf("unfinished %d, want the burst of 10", st.Unfinished)
		}
		advance(100 * time.Millisecond)
		if st := h.e.Stats(); st.Unfinished != 11 {
			t.Fatalf("unfinished %d after 100 ms", st.Unfinished)
		}
		advance(time.Second)
		if st := h.e.Stats(); st.Unfinished != 21 {
			t.Fatalf("unfinished %d after 1.1 s", st.Unfinished)
		}
	})
}

func TestRateShareOfTotalMaxTps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := settings()
		s.TotalMaxTps = 40
		c := newTestConsumer(map[string]int{"t": 4})
		c.Rebalance(map[string][]int32{"t": {0}}) // this member owns 1 of 4
		h := startHarness(t, c, map[string]int{"t": 4}, s, func(o *Options) {
			o.Partitions = func(_ context.Context, cl, topic string) (int, error) {
				if cl != cluster || topic != "t" {
					return 0, errors.New("unknown")
				}
				return 4, nil
			}
		})
		if got := h.limit("t"); got != 10 {
			t.Fatalf("rate %v, want 40 × 1/4", got)
		}
		c.Rebalance(nil)
		if got := h.limit("t"); got != 40 {
			t.Fatalf("rate %v, want 40 × 4/4", got)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		s := settings()
		s.TotalMaxTps = 40
		h := newHarness(t, map[string]int{"t": 4}, s) // share unknown
		if got := h.limit("t"); got != 40 {
			t.Fatalf("rate %v", got)
		}
		s.MaxTps = 7
		h.e.Configure(map[UnitTopic]Settings{{Cluster: cluster, Topic: "t"}: s})
		if got := h.limit("t"); got != 7 {
			t.Fatalf("rate %v", got)
		}
	})
}

func (h *harness) limit(topic string) float64 {
	h.e.mu.Lock()
	defer h.e.mu.Unlock()
	return float64(h.e.units[UnitTopic{Cluster: cluster, Topic: topic}].lim.Limit())
}

func TestSubmitIgnoresUnknown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]int{"t": 1}, settings())
		h.appendN("t", 0, 3)
		b := h.expectPull("t", 2, 0, 1)
		h.e.Submit("t", "K_9", []int64{0}, nil)                           // unknown qid
		h.e.Submit("nope", b.QID, []int64{0}, nil)                        // unknown topic
		h.e.Submit("t", b.QID, []int64{2, -1, math.MaxInt64}, []int64{7}) // never handed out
		h.e.Submit("t", b.QID, []int64{0}, nil)
		h.e.Submit("t", b.QID, []int64{0}, []int64{0}) // acked before
		h.e.Submit("t", b.QID, nil, nil)
		if got := h.metric("cproxy_submit_ignored_total", map[string]string{"group": "g"}); got != 8 {
			t.Fatalf("ignored %v", got)
		}
		if co := h.committed("t", 0); co.Offset != 1 {
			t.Fatalf("commit %+v", co)
		}
		h.expectPull("t", 0, 2)
	})
}

func TestCloseAnswersParkedPullsAndCommits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]int{"t": 1}, settings())
		h.appendN("t", 0, 3)
		b := h.expectPull("t", 0, 0, 1, 2)
		h.e.Submit("t", b.QID, []int64{1}, nil)
		errc := make(chan error, 1)
		go func() {
			_, err := h.e.Pull(bg, "t", 0, time.Hour)
			errc <- err
		}()
		synctest.Wait()
		h.e.Close()
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Fatalf("parked pull: %v", err)
		}
		if _, err := h.e.Pull(bg, "", 0, 0); !errors.Is(err, ErrClosed) {
			t.Fatalf("pull after close: %v", err)
		}
		// The final commit happened on the way out.
		if co := h.c.Committed("t", 0); co.Offset != 0 || !slices.Equal(finished(t, co, 0, 3), []int64{1}) {
			t.Fatalf("commit %+v", co)
		}
		h.e.Submit("t", b.QID, []int64{0}, nil) // ignored
		h.e.Close()                             // idempotent
		// A claim offered after Close returns at once.
		h.c.Rebalance(nil)
		synctest.Wait()
		if st := h.e.Stats(); st.Partitions != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestPutBackWhenPullerLeaves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]int{"t": 1}, settings())
		h.appendN("t", 0, 2)
		e := h.e
		e.mu.Lock()
		b, seq := e.pollLocked("t", 0, e.now())
		e.requeueLocked(pullResult{b: b, seq: seq})
		e.mu.Unlock()
		if st := e.Stats(); st.InFlight != 0 {
			t.Fatalf("stats %+v", st)
		}
		h.expectPull("t", 0, 0, 1)
	})
}

func TestTwoClustersSameTopic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]int{"t": 1}, settings())
		c2 := newTestConsumer(map[string]int{"t": 1})
		h.e.Configure(map[UnitTopic]Settings{{Cluster: "K2", Topic: "t"}: settings()})
		ctx, cancel := context.WithCancel(bg)
		done := make(chan error, 1)
		go func() { done <- c2.Run(ctx, h.e.Handler("K2")) }()
		defer func() { cancel(); <-done }()
		synctest.Wait()
		h.appendN("t", 0, 1)
		c2.Append("t", 0, "", []byte("z"))
		synctest.Wait()
		got := map[string]bool{}
		for range 2 {
			b := h.pull("t", 0)
			got[b.Cluster+" "+b.QID] = true
			h.e.Submit("t", b.QID, offsets(b), nil)
		}
		if !got["K K_0"] || !got["K2 K2_0"] {
			t.Fatalf("batches %v", got)
		}
		if co := h.committed("t", 0); co.Offset != 1 {
			t.Fatalf("K commit %+v", co)
		}
		if co := c2.Committed("t", 0); co.Offset != 1 {
			t.Fatalf("K2 commit %+v", co)
		}
	})
}

// An injected clock (Options.Now) drives every deadline; the scheduler is
// ticked by hand here.
func TestInjectedClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
		h := newHarness(t, map[string]int{"t": 1}, settings(), func(o *Options) { o.Now = clk.Now })
		h.appendN("t", 0, 1)
		h.expectPull("t", 0, 0)
		clk.Advance(999 * time.Millisecond)
		h.e.tick()
		if st := h.e.Stats(); st.InFlight != 1 {
			t.Fatalf("expired early: %+v", st)
		}
		clk.Advance(time.Millisecond)
		h.e.tick()
		if st := h.e.Stats(); st.InFlight != 0 {
			t.Fatalf("not expired: %+v", st)
		}
		h.expectPull("t", 0, 0)
		if got := h.e.LastPull(); !got.Equal(clk.Now()) {
			t.Fatalf("LastPull %v, want %v", got, clk.Now())
		}
	})
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// tick fires the due timers now (tests with an injected clock).
func (e *Engine) tick() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tickLocked()
}

func TestNextRetryDelay(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		name      string
		intervals []int
		want      []time.Duration
	}{
		{"default", []int{100, 150, 300}, []time.Duration{100 * ms, 150 * ms, 300 * ms, -1}},
		{"repeat", []int{1000, -1}, []time.Duration{1000 * ms, 1000 * ms, 1000 * ms, 1000 * ms}},
		{"repeatLast", []int{10, 20, -1}, []time.Duration{10 * ms, 20 * ms, 20 * ms, 20 * ms}},
		{"leadingMinusOne", []int{-1}, []time.Duration{-1}},
		{"empty", []int{}, []time.Duration{-1}},
		{"zero", []int{0}, []time.Duration{0, -1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			idx := -1
			for i, w := range c.want {
				if got := nextRetryDelay(c.intervals, &idx); (got < 0) != (w < 0) || (w >= 0 && got != w) {
					t.Fatalf("call %d: %v, want %v", i, got, w)
				}
			}
		})
	}
}

func TestSettingsFor(t *testing.T) {
	u := &config.UpstreamTopic{
		Topic: "t", BrokerCluster: "K", Enabled: true, Actions: []string{config.ActionPullServer},
		Timeout: 3000, MaxRetry: -1, RetryIntervals: []int{5, -1}, Concurrency: 10, MaxConsumeLag: 0,
		MaxPullBatchSize: 4, MaxTps: 1, TotalMaxTps: 2, OrderKey: "KEY",
		DeadLetterTopic: "dlq", DeadLetterPolicy: "DLQ",
	}
	s := SettingsFor(u)
	if s.Timeout != 3*time.Second || s.MaxRetry != -1 || !slices.Equal(s.RetryIntervals, []int{5, -1}) ||
		s.Concurrency != 10 || s.MaxConsumeLag != 30 || s.MaxPullBatchSize != 4 || s.Order != config.OrderKey ||
		s.DeadLetterTopic != "dlq" {
		t.Fatalf("settings %+v", s)
	}
	u.DeadLetterPolicy = "drop"
	if s := SettingsFor(u); s.DeadLetterTopic != "" {
		t.Fatal("drop policy with a dead-letter topic")
	}
	n := Settings{RetryIntervals: nil}.normalized()
	if n.Concurrency != config.DefaultConcurrency || !slices.Equal(n.RetryIntervals, config.DefaultRetryIntervals) ||
		n.MaxConsumeLag != int64(config.DefaultConcurrency)*3 || n.Timeout != 5*time.Second {
		t.Fatalf("normalized %+v", n)
	}
	uv := &config.UnitView{
		Key: config.UnitKey{Group: "g", Cluster: "K"},
		Subscriptions: []*config.Subscription{
			{Topic: "t", Config: u, MaxConsumeLag: 30},
			{Topic: "h", Config: &config.UpstreamTopic{Topic: "h", Actions: []string{config.ActionAsyncHTTP}}},
		},
	}
	m := SettingsForUnits(uv, nil)
	if len(m) != 1 || m[UnitTopic{Cluster: "K", Topic: "t"}].MaxConsumeLag != 30 {
		t.Fatalf("units %+v", m)
	}
}

func TestEnginesShareRegisterer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]int{"t": 1}, settings())
		// A restarted engine of the same group and an engine of another
		// group register on the same registry without conflict.
		same := New(Options{Group: "g", Registerer: h.reg})
		other := New(Options{Group: "g2", Registerer: h.reg})
		defer same.Close()
		defer other.Close()
		h.appendN("t", 0, 1)
		b := h.expectPull("t", 0, 0)
		h.e.Submit("t", b.QID, []int64{0}, nil)
		same.m.topic("t").acked.Inc()
		other.m.topic("t").acked.Inc()
		if got := h.metric("cproxy_acked_total", map[string]string{"group": "g"}); got != 2 {
			t.Fatalf("acked for g: %v", got)
		}
		if got := h.metric("cproxy_acked_total", map[string]string{"group": "g2"}); got != 1 {
			t.Fatalf("acked for g2: %v", got)
		}
	})
}

func TestCorruptCommitMetadataFallsBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestConsumer(map[string]int{"t": 1})
		for range 3 {
			c.Append("t", 0, "", []byte("x"))
		}
		c.SetCommitted("t", 0, mq.CommittedOffset{Offset: 1, Metadata: "not-ours"})
		h := startHarness(t, c, map[string]int{"t": 1}, settings())
		h.expectPull("t", 0, 1, 2) // everything from the committed offset
		if n := h.logs.FilterMessageSnippet("ignoring commit metadata").Len(); n != 1 {
			t.Fatalf("%d warnings", n)
		}
	})
}

func TestOffsetResetByBackend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestConsumer(map[string]int{"t": 1})
		for range 3 {
			c.Append("t", 0, "", []byte("x"))
		}
		c.SetCommitted("t", 0, mq.CommittedOffset{Offset: 100}) // beyond the log end
		h := startHarness(t, c, map[string]int{"t": 1}, settings())
		b := h.expectPull("t", 0, 0, 1, 2)
		h.e.Submit("t", b.QID, offsets(b), nil)
		if co := h.committed("t", 0); co.Offset != 3 {
			t.Fatalf("commit %+v", co)
		}
	})
}

func TestZeroRetryIntervalRedeliversAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := settings()
		s.RetryIntervals = []int{0}
		h := newHarness(t, map[string]int{"t": 1}, s)
		h.appendN("t", 0, 1)
		b := h.expectPull("t", 0, 0)
		h.e.Submit("t", b.QID, nil, []int64{0})
		start := time.Now()
		h.expectPull("t", 0, 0)
		if time.Since(start) != 0 {
			t.Fatal("not redelivered at once")
		}
	})
}

func TestSupersededClaim(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]int{"t": 1}, settings())
		h.appendN("t", 0, 2)
		old := h.expectPull("t", 0, 0, 1)
		h.e.Submit("t", old.QID, []int64{1}, nil)
		// A second consumer of the same cluster claims the same partition
		// before the first one's claim ended (an overlapping restart).
		c2 := newTestConsumer(map[string]int{"t": 1})
		c2.Append("t", 0, "", []byte("a"))
		c2.Append("t", 0, "", []byte("b"))
		ctx, cancel := context.WithCancel(bg)
		done := make(chan error, 1)
		go func() { done <- c2.Run(ctx, h.e.Handler(cluster)) }()
		t.Cleanup(func() { cancel(); <-done })
		synctest.Wait()
		h.e.Submit("t", old.QID, []int64{0}, nil) // in flight on the replaced claim: ignored
		if got := h.metric("cproxy_submit_ignored_total", nil); got != 1 {
			t.Fatalf("ignored %v", got)
		}
		b := h.expectPull("t", 0, 0, 1)
		h.e.Submit("t", b.QID, offsets(b), nil)
		// The replaced claim stops committing (its ack of 1 was still
		// within the commit interval); the new one commits.
		if co := h.committed("t", 0); co.Offset != -1 {
			t.Fatalf("replaced claim committed %+v", co)
		}
		if co := c2.Committed("t", 0); co.Offset != 2 {
			t.Fatalf("new consumer's commit %+v", co)
		}
	})
}

// One pull's messages share one deadline: acknowledging or failing some of
// them leaves the others' deadline in place, and once every message of a
// pull has left, its timer is gone from the heap.
func TestPullBatchSharesOneDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := settings() // timeout 1 s, maxRetry 2
		s.RetryIntervals = []int{int((time.Hour).Milliseconds())}
		h := newHarness(t, map[string]int{"t": 1}, s)
		h.appendN("t", 0, 4)
		b := h.expectPull("t", 0, 0, 1, 2, 3)
		if n := h.timers(tHandoutDeadline); n != 1 {
			t.Fatalf("%d deadline timers for one pull", n)
		}
		h.e.Submit("t", b.QID, []int64{0}, []int64{1})
		advance(500 * time.Millisecond)
		h.e.Submit("t", b.QID, []int64{2}, nil)
		start := time.Now()
		got, _ := h.e.Pull(bg, "t", 0, time.Hour)
		if !slices.Equal(offsets(got), []int64{3}) || time.Since(start) != 500*time.Millisecond {
			t.Fatalf("redelivered %v after %v; want [3] at the pull's deadline", offsets(got), time.Since(start))
		}
		h.e.Submit("t", got.QID, []int64{3}, nil)
		if n := h.timers(tHandoutDeadline); n != 0 {
			t.Fatalf("%d deadline timers left after every pulled message left", n)
		}
		if n := h.timers(tJobRetry); n != 1 {
			t.Fatalf("%d retry timers; want offset 1's", n)
		}
		if got := h.metric("cproxy_pull_in_flight", map[string]string{"topic": "t"}); got != 0 {
			t.Fatalf("in flight gauge %v", got)
		}
		if got := h.metric("cproxy_pull_buffered", map[string]string{"topic": "t"}); got != 1 {
			t.Fatalf("buffered gauge %v (offset 1 waits for its retry)", got)
		}
		if got := h.metric("cproxy_pulled_total", map[string]string{"topic": "t"}); got != 5 {
			t.Fatalf("pulled %v", got)
		}
		if got := h.metric("cproxy_acked_total", map[string]string{"topic": "t"}); got != 3 {
			t.Fatalf("acked %v", got)
		}
		if n, sum := h.histogram("cproxy_pull_batch_messages"); n != 2 || sum != 5 {
			t.Fatalf("pull batch histogram: %d pulls, %v messages; want 2 pulls of 4 and 1", n, sum)
		}
	})
}

// Readers blocked on a unit's Concurrency are woken only once a useful
// amount of it is free (wakeSlack), and then only as many as that capacity
// can keep busy, oldest first; every message still flows.
func TestConcurrencyWakesReadersInProportion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := settings()
		s.Concurrency = 8 // wakeSlack 2
		s.MaxPullBatchSize = 8
		h := newHarness(t, map[string]int{"t": 4}, s)
		for p := range int32(4) {
			h.appendN("t", p, 4)
		}
		if st := h.e.Stats(); st.Unfinished != 8 {
			t.Fatalf("unfinished %d, want the concurrency limit 8", st.Unfinished)
		}
		blocked := func() int {
			h.e.mu.Lock()
			defer h.e.mu.Unlock()
			for _, ut := range h.e.units {
				return len(ut.concWait)
			}
			return 0
		}
		if n := blocked(); n < 2 {
			t.Fatalf("%d readers blocked on concurrency, want at least 2", n)
		}
		var pulled []Batch
		for range 8 {
			b, _ := h.e.Pull(bg, "t", 1, time.Millisecond)
			if len(b.Messages) != 1 {
				t.Fatalf("pull %v", offsets(b))
			}
			pulled = append(pulled, b)
		}
		before := blocked()
		// One free slot (< wakeSlack): nobody is woken, so it stays free.
		h.e.Submit("t", pulled[0].QID, offsets(pulled[0]), nil)
		synctest.Wait()
		if st := h.e.Stats(); st.Unfinished != 7 || blocked() != before {
			t.Fatalf("one free slot: unfinished %d (want 7), %d of %d readers still blocked", st.Unfinished, blocked(), before)
		}
		// Two free slots: one reader (one admit batch covers them).
		h.e.Submit("t", pulled[1].QID, offsets(pulled[1]), nil)
		synctest.Wait()
		if st := h.e.Stats(); st.Unfinished != 8 {
			t.Fatalf("unfinished %d after the woken reader admitted, want 8", st.Unfinished)
		}
		// Everything flows to the end.
		for _, b := range pulled[2:] {
			h.e.Submit("t", b.QID, offsets(b), nil)
		}
		got := 8
		for got < 16 {
			synctest.Wait()
			b, _ := h.e.Pull(bg, "t", 0, time.Millisecond)
			if len(b.Messages) == 0 {
				t.Fatalf("stalled after %d of 16 messages", got)
			}
			got += len(b.Messages)
			h.e.Submit("t", b.QID, offsets(b), nil)
		}
	})
}
