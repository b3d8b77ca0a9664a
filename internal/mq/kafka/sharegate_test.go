package kafka

import (
	"bytes"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/promx"
)

// stallHandler never reads partition 0 (a reader stopped by a limit) and
// forwards partition 1's deliveries.
type stallHandler struct {
	got chan *mq.Delivery
}

func (h *stallHandler) Setup(map[string][]int32) {}
func (h *stallHandler) Cleanup()                 {}
func (h *stallHandler) Claim(c mq.Claim) {
	if c.Partition() == 0 {
		<-c.Context().Done()
		return
	}
	for {
		select {
		case d, ok := <-c.Messages():
			if !ok {
				return
			}
			h.got <- d
		case <-c.Context().Done():
			return
		}
	}
}

// TestStalledClaimMakesTheMemberCopy: while a claim's channel holds an
// unread body that shares a fetch response, the member keeps handing its
// other claims windows for mq.ShareWindow bytes, then copies, and counts
// the copies in carrera_kafka_consumer_shared_copies_total; every body
// arrives intact either way.
func TestStalledClaimMakesTheMemberCopy(t *testing.T) {
	k := startGroupKafka(t)
	k.CreateTopic("gate-c", 2)
	p := newTestProducer(t, testOptions(k))
	if err := mq.ProduceSync(ctxT(t), p, &mq.Record{Topic: "gate-c", Target: mq.Target{Partition: 0}, Body: []byte("stalled")}); err != nil {
		t.Fatal(err)
	}
	const size, n = 256 << 10, 128 // 32 MiB: twice the window
	for i := range n {
		body := bytes.Repeat([]byte{byte(i)}, size)
		if err := mq.ProduceSync(ctxT(t), p, &mq.Record{Topic: "gate-c", Target: mq.Target{Partition: 1}, Body: body}); err != nil {
			t.Fatal(err)
		}
	}

	reg := prometheus.NewRegistry()
	opts := consumerOptions(k, "g-gate", "gate-c")
	opts.Registerer = reg
	h := &stallHandler{got: make(chan *mq.Delivery, n)}
	defer runMember(t, opts, h)()

	shared, copied := 0, 0
	for i := range n {
		var d *mq.Delivery
		select {
		case d = <-h.got:
		case <-time.After(waitFor):
			t.Fatalf("%d of %d messages received", i, n)
		}
		if d.Offset != int64(i) || len(d.Body) != size || d.Body[0] != byte(i) || d.Body[size-1] != byte(i) {
			t.Fatalf("message %d: offset %d, %d bytes", i, d.Offset, len(d.Body))
		}
		if d.Shared {
			shared++
		} else {
			copied++
		}
	}
	t.Logf("%d shared, %d copied", shared, copied)
	if shared < (mq.ShareWindow/size)/2 || copied < n/4 {
		t.Fatalf("%d shared, %d copied: want the first ones shared and copies once the window passed", shared, copied)
	}
	// The consumer's counter, found by registering an equal one.
	counter, _ := promx.Register(reg, prometheus.NewCounterVec(sharedCopiesOpts, []string{"cluster", "group"}))
	var m dto.Metric
	if err := counter.WithLabelValues("K_test", "g-gate").Write(&m); err != nil {
		t.Fatal(err)
	}
	if metric := m.GetCounter().GetValue(); int(metric) != copied {
		t.Fatalf("carrera_kafka_consumer_shared_copies_total = %v, want %d", m.GetCounter().GetValue(), copied)
	}
}
