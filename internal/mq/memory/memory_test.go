package memory_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/mq/memory"
	"github.com/ddmq-go/carrera/internal/mq/mqtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// reader adapts a memory.Producer to mqtest.Reader and mqtest.Blocker.
type reader struct{ p *memory.Producer }

func (r reader) CreateTopic(_ testing.TB, topic string, n int) { r.p.CreateTopic(topic, n) }
func (r reader) MaxMessageBytes() int                          { return 4096 }

func (r reader) ReadAll(_ testing.TB, topic string) []mqtest.Record {
	var out []mqtest.Record
	for _, m := range r.p.Messages(topic) {
		out = append(out, mqtest.Record{
			Partition: m.Partition, Offset: m.Offset, Key: m.Key, Tags: m.Tags,
			Body: m.Body, Properties: m.Properties,
		})
	}
	return out
}

func (r reader) Block(testing.TB) func() {
	ch := make(chan struct{})
	r.p.SetDelay(func(ctx context.Context, _ *mq.Record) {
		select {
		case <-ch:
		case <-ctx.Done():
		}
	})
	var once sync.Once
	return func() { once.Do(func() { r.p.SetDelay(nil); close(ch) }) }
}

func newMemory(brokers int) func(t *testing.T) (mq.Producer, mqtest.Reader) {
	return func(t *testing.T) (mq.Producer, mqtest.Reader) {
		p := memory.New(memory.Options{Brokers: brokers, MaxMessageBytes: 4096})
		t.Cleanup(func() { _ = p.Close(context.Background()) })
		return p, reader{p}
	}
}

func TestContract(t *testing.T) {
	t.Run("OneBroker", func(t *testing.T) { mqtest.Run(t, newMemory(1)) })
	t.Run("ThreeBrokers", func(t *testing.T) { mqtest.Run(t, newMemory(3)) })
}

func TestFaultHook(t *testing.T) {
	boom := errors.New("boom")
	p := memory.New(memory.Options{
		Topics: map[string]int{"t": 2},
		Fault: func(rec *mq.Record) error {
			if rec.Key == "bad" {
				return errors.Join(mq.ErrTimeout, boom)
			}
			return nil
		},
	})
	defer p.Close(context.Background())
	ctx := context.Background()
	if err := mq.ProduceSync(ctx, p, &mq.Record{Topic: "t", Key: "bad", Body: []byte("x")}); !errors.Is(err, mq.ErrTimeout) || !errors.Is(err, boom) {
		t.Fatalf("faulted record: %v", err)
	}
	if err := mq.ProduceSync(ctx, p, &mq.Record{Topic: "t", Key: "good", Body: []byte("y")}); err != nil {
		t.Fatal(err)
	}
	msgs := p.Messages("t")
	if len(msgs) != 1 || msgs[0].Key != "good" || msgs[0].Offset != 0 {
		t.Fatalf("stored %+v, want only the good record at offset 0", msgs)
	}
	p.SetFault(nil)
	if err := mq.ProduceSync(ctx, p, &mq.Record{Topic: "t", Key: "bad", Body: []byte("z")}); err != nil {
		t.Fatalf("after SetFault(nil): %v", err)
	}
	if p.Produced() != 3 {
		t.Fatalf("Produced() = %d, want 3", p.Produced())
	}
}

// A Delay hook lets a caller's timeout fire while the record is held; the
// record completes later and done still runs exactly once.
func TestDelayHookCallerTimeout(t *testing.T) {
	gate := make(chan struct{})
	p := memory.New(memory.Options{Topics: map[string]int{"t": 1}})
	defer p.Close(context.Background())
	p.SetDelay(func(ctx context.Context, _ *mq.Record) {
		select {
		case <-gate:
		case <-ctx.Done():
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the caller's deadline has passed
	done := make(chan error, 2)
	p.Produce(context.Background(), &mq.Record{Topic: "t", Body: []byte("x")}, func(err error) { done <- err })
	if err := mq.ProduceSync(ctx, p, &mq.Record{Topic: "t", Body: []byte("y")}); !errors.Is(err, context.Canceled) {
		t.Fatalf("ProduceSync with a dead ctx while held: %v", err)
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(p.Partition("t", 0)); n != 2 {
		t.Fatalf("stored %d records, want 2", n)
	}
}

func TestRejectsAtProduce(t *testing.T) {
	p := memory.New(memory.Options{Topics: map[string]int{"t": 2}, MaxMessageBytes: 3})
	defer p.Close(context.Background())
	ctx := context.Background()
	cases := []struct {
		name string
		rec  mq.Record
		want error
	}{
		{"unknown topic", mq.Record{Topic: "nope", Body: []byte("x")}, mq.ErrTopicNotExist},
		{"partition too big", mq.Record{Topic: "t", Target: mq.Target{Partition: 2}, Body: []byte("x")}, mq.ErrTopicNotExist},
		{"negative partition", mq.Record{Topic: "t", Target: mq.Target{Partition: -1}, Body: []byte("x")}, mq.ErrTopicNotExist},
		{"too large", mq.Record{Topic: "t", Body: []byte("xxxx")}, mq.ErrMessageTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := mq.ProduceSync(ctx, p, &c.rec); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestCloseReleasesDelayHook(t *testing.T) {
	p := memory.New(memory.Options{Topics: map[string]int{"t": 1}})
	p.SetDelay(func(ctx context.Context, _ *mq.Record) { <-ctx.Done() })
	done := make(chan error, 1)
	p.Produce(context.Background(), &mq.Record{Topic: "t", Body: []byte("x")}, func(err error) { done <- err })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v, want DeadlineExceeded", err)
	}
	if err := <-done; !errors.Is(err, mq.ErrClosed) {
		t.Fatalf("held record: %v, want ErrClosed", err)
	}
	if n := len(p.Partition("t", 0)); n != 0 {
		t.Fatalf("record failed with ErrClosed was stored anyway")
	}
}

func BenchmarkResolveHash(b *testing.B) {
	p := memory.New(memory.Options{Topics: map[string]int{"t": 16}})
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		if _, err := p.Resolve(ctx, "t", mq.Selector{PartitionID: -1, HashID: int64(i)}); err != nil {
			b.Fatal(err)
		}
	}
}
