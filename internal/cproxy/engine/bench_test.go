package engine

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ddmq-go/carrera/internal/mq"
)

// genClaim is an mq.Claim that generates messages on the fly (an endless
// partition), so the benchmark measures the engine, not a stored log.
type genClaim struct {
	topic string
	part  int32
	ctx   context.Context
	ch    chan *mq.Delivery
	mu    sync.Mutex
	last  mq.CommittedOffset
}

func (c *genClaim) Topic() string                 { return c.topic }
func (c *genClaim) Partition() int32              { return c.part }
func (c *genClaim) Context() context.Context      { return c.ctx }
func (c *genClaim) Initial() mq.CommittedOffset   { return mq.CommittedOffset{Offset: -1} }
func (c *genClaim) Messages() <-chan *mq.Delivery { return c.ch }
func (c *genClaim) HighWatermark() int64          { return 0 }
func (c *genClaim) Commit(co mq.CommittedOffset) {
	c.mu.Lock()
	c.last = co
	c.mu.Unlock()
}

func (c *genClaim) generate() {
	body := []byte("benchmark message body, about 64 bytes long ................")
	for off := int64(0); ; off++ {
		d := &mq.Delivery{Topic: c.topic, Partition: c.part, Offset: off, Body: body}
		select {
		case c.ch <- d:
		case <-c.ctx.Done():
			close(c.ch)
			return
		}
	}
}

// benchEngine runs an engine over n generated partitions of topic "t".
func benchEngine(b *testing.B, partitions int) (*Engine, func()) {
	e := New(Options{Group: "bench"})
	s := DefaultSettings()
	s.Concurrency = 4096
	s.MaxPullBatchSize = 8
	e.Configure(map[UnitTopic]Settings{{Cluster: "K", Topic: "t"}: s})
	ctx, cancel := context.WithCancel(context.Background())
	h := e.Handler("K")
	assigned := map[string][]int32{}
	for p := range int32(partitions) {
		assigned["t"] = append(assigned["t"], p)
	}
	h.Setup(assigned)
	var wg sync.WaitGroup
	for p := range int32(partitions) {
		c := &genClaim{topic: "t", part: p, ctx: ctx, ch: make(chan *mq.Delivery, 256)}
		wg.Add(2)
		go func() { defer wg.Done(); c.generate() }()
		go func() { defer wg.Done(); h.Claim(c) }()
	}
	return e, func() {
		cancel()
		wg.Wait()
		e.Close()
	}
}

// BenchmarkPullSubmit: one pull of up to 8 messages and the submit of all
// of them, per iteration (the SDK's steady state).
func BenchmarkPullSubmit(b *testing.B) {
	e, stop := benchEngine(b, 4)
	defer stop()
	ctx := context.Background()
	msgs := 0
	offs := make([]int64, 0, 8)
	b.ReportAllocs()
	for b.Loop() {
		bt, err := e.Pull(ctx, "t", 8, time.Second)
		if err != nil {
			b.Fatal(err)
		}
		offs = offs[:0]
		for _, d := range bt.Messages {
			offs = append(offs, d.Offset)
		}
		e.Submit(bt.Topic, bt.QID, offs, nil)
		msgs += len(offs)
	}
	b.ReportMetric(float64(msgs)/float64(b.N), "msgs/op")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(max(msgs, 1)), "ns/msg")
}

// BenchmarkPullSubmitParallel: concurrent pullers on 8 partitions.
func BenchmarkPullSubmitParallel(b *testing.B) {
	e, stop := benchEngine(b, 8)
	defer stop()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		offs := make([]int64, 0, 8)
		for pb.Next() {
			bt, err := e.Pull(ctx, "", 8, time.Second)
			if err != nil {
				b.Error(err)
				return
			}
			offs = offs[:0]
			for _, d := range bt.Messages {
				offs = append(offs, d.Offset)
			}
			e.Submit(bt.Topic, bt.QID, offs, nil)
		}
	})
}
