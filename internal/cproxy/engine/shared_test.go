package engine

import (
	"bytes"
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ddmq-go/carrera/internal/mq"
)

// appendShared appends a message that the consumer hands out marked
// Shared (a window into a fetch response, as the Kafka backend does).
func (h *harness) appendShared(topic string, body []byte) int64 {
	off := h.c.AppendDelivery(mq.Delivery{Topic: topic, Body: body, Shared: true})
	synctest.Wait()
	return off
}

// jobDelivery is the delivery the engine holds for (topic, offset) of
// partition 0, nil when it holds none.
func (h *harness) jobDelivery(topic string, off int64) *mq.Delivery {
	h.e.mu.Lock()
	defer h.e.mu.Unlock()
	p := h.e.parts[partKey{topic: topic, qid: KafkaQID(cluster, topic, 0)}]
	if p == nil || p.jobs.get(off) == nil {
		return nil
	}
	return p.jobs.get(off).d
}

// passShared admits, pulls and acknowledges shared messages of topic until
// more than ShareWindow bytes went through the engine.
func (h *harness) passShared(topic string) {
	h.t.Helper()
	body := bytes.Repeat([]byte{'y'}, 256<<10)
	for total := int64(0); total <= ShareWindow; total += mq.ShareCost(len(body)) {
		off := h.appendShared(topic, body)
		b := h.pull(topic, 1)
		if len(b.Messages) != 1 || b.Messages[0].Offset != off {
			h.t.Fatalf("pulled %v, want offset %d", offsets(b), off)
		}
		h.e.Submit(topic, b.QID, []int64{off}, nil)
		synctest.Wait()
	}
}

// TestStaleSharedJobGetsItsOwnCopy: a message still unfinished after
// ShareWindow bytes of later shared messages went through gets its
// own copy of the body, so it no longer pins the fetch response; the
// delivery already handed out is left as it was (a reply may be writing
// it), and the redelivery carries the copy.
func TestStaleSharedJobGetsItsOwnCopy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := settings()
		s.Timeout = time.Hour
		h := newHarness(t, map[string]int{"t": 1}, s)
		h.appendShared("t", []byte("straggler"))
		b := h.expectPull("t", 1, 0)
		handed := b.Messages[0]
		if h.jobDelivery("t", 0) != handed {
			t.Fatal("the engine copied a fresh delivery")
		}

		h.passShared("t")

		held := h.jobDelivery("t", 0)
		if held == nil || held.Shared || string(held.Body) != "straggler" || aliases(held.Body, handed.Body) {
			t.Fatalf("engine holds %+v, want its own copy of the body", held)
		}
		if !handed.Shared || string(handed.Body) != "straggler" {
			t.Fatalf("the handed-out delivery was changed: %+v", handed)
		}
		h.e.Submit("t", b.QID, nil, []int64{0}) // nack: redelivered after 100 ms
		advance(100 * time.Millisecond)
		again := h.expectPull("t", 1, 0)
		if again.Messages[0] != held {
			t.Fatal("the redelivery is not the engine's copy")
		}
	})
}

// TestBlockedReaderOwnsItsPending: deliveries a reader holds behind a limit
// get their own copies once ShareWindow bytes of shared messages went
// through the engine since it blocked, and are delivered as such.
func TestBlockedReaderOwnsItsPending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := settings()
		s.Concurrency = 1
		h := newHarness(t, map[string]int{"t": 1, "u": 1}, s)
		for _, m := range []string{"a", "b", "c"} {
			h.appendShared("t", []byte(m))
		}
		first := h.expectPull("t", 1, 0) // b and c wait behind Concurrency 1
		h.passShared("u")
		h.e.Submit("t", first.QID, []int64{0}, nil)
		synctest.Wait()
		b := h.expectPull("t", 1, 1)
		h.e.Submit("t", b.QID, []int64{1}, nil)
		synctest.Wait()
		c := h.expectPull("t", 1, 2).Messages[0]
		if c.Shared || string(c.Body) != "c" {
			t.Fatalf("pending delivery %+v still shared after the window", c)
		}
	})
}

// TestDeadLetterGetsAnOwnedDelivery: the dead-letter worker, which holds
// the delivery without the engine lock for as long as publishing takes,
// gets it with its own body.
func TestDeadLetterGetsAnOwnedDelivery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := settings()
		s.MaxRetry = 0
		s.DeadLetterTopic = "dead"
		got := make(chan *mq.Delivery, 1)
		h := newHarness(t, map[string]int{"t": 1}, s, func(o *Options) {
			o.DeadLetterOn = func(_ context.Context, _, _ string, d *mq.Delivery) error {
				got <- d
				return nil
			}
		})
		h.appendShared("t", []byte("dead"))
		h.expectPull("t", 1, 0)
		advance(time.Second) // times out with maxRetry 0
		d := <-got
		if d.Shared || string(d.Body) != "dead" {
			t.Fatalf("dead-letter worker got %+v", d)
		}
	})
}

func aliases(a, b []byte) bool { return len(a) > 0 && len(b) > 0 && &a[0] == &b[0] }
