package pproxy

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/gen-go/carrera/producer"
	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/mq/memory"
)

// watched is a memory producer whose Close can be awaited, and which can
// run a hook (a hot reload) at the start of every send.
type watched struct {
	*memory.Producer
	closed    chan struct{}
	onProduce func()
}

func newWatched(t *testing.T) *watched {
	p := &watched{Producer: memory.New(memory.Options{Topics: map[string]int{"t": 4}, Brokers: 2}), closed: make(chan struct{})}
	t.Cleanup(func() { _ = p.Producer.Close(context.Background()) })
	return p
}

func (p *watched) Close(ctx context.Context) error {
	err := p.Producer.Close(ctx)
	close(p.closed)
	return err
}

func (p *watched) Produce(ctx context.Context, rec *mq.Record, done func(error)) {
	if p.onProduce != nil {
		p.onProduce()
	}
	p.Producer.Produce(ctx, rec, done)
}

func (p *watched) isClosed() bool {
	select {
	case <-p.closed:
		return true
	default:
		return false
	}
}

func (p *watched) awaitClosed(t *testing.T) {
	t.Helper()
	select {
	case <-p.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("replaced producer never closed")
	}
}

func specOf(fingerprint string, p mq.Producer) map[string]ClusterSpec {
	return map[string]ClusterSpec{"K_a": {Fingerprint: fingerprint,
		Build: func(context.Context) (mq.Producer, error) { return p, nil }}}
}

// TestRegistryClosesAReplacedProducerAfterItsLeases: a producer replaced
// by a hot reload stays open while a request or one of its records holds
// it, and is closed when the last of them is released.
func TestRegistryClosesAReplacedProducerAfterItsLeases(t *testing.T) {
	ctx := context.Background()
	r := NewRegistry(zap.NewNop())
	old, repl := newWatched(t), newWatched(t)
	r.Apply(ctx, specOf("v1", old))
	p, lease := r.Acquire("K_a")
	if p != old {
		t.Fatalf("Acquire = %v, want the applied producer", p)
	}
	inFlight := lease.Track(func(error) {}) // a record sent and not answered yet

	r.Apply(ctx, specOf("v2", repl))
	if q, l := r.Acquire("K_a"); q != repl {
		t.Fatalf("after the reload Acquire = %v, want the replacement", q)
	} else {
		l.Release()
	}
	if n := lease.refs.Load(); n != 2 || old.isClosed() {
		t.Fatalf("replaced producer: %d references (want 2: the request and its record), closed %v", n, old.isClosed())
	}
	lease.Release() // the request answered
	if old.isClosed() {
		t.Fatal("closed while a record was still in flight")
	}
	inFlight(nil) // the record answered
	old.awaitClosed(t)

	r.Close(ctx)
	if !repl.isClosed() {
		t.Fatal("Close returned before closing the current producer")
	}
	if q, _ := r.Acquire("K_a"); q != nil {
		t.Fatalf("Acquire after Close = %v, want nil", q)
	}
}

// TestSendDuringHotReloadIsAnsweredByItsProducer: a hot reload that
// replaces the cluster's producer in the middle of a send (single or
// batch) does not close it under the request: the records are stored and
// answered OK, and the old producer is closed afterwards.
func TestSendDuringHotReloadIsAnsweredByItsProducer(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	for _, batch := range []bool{false, true} {
		ctx := context.Background()
		r := NewRegistry(zap.NewNop())
		t.Cleanup(func() { r.Close(ctx) })
		old, repl := newWatched(t), newWatched(t)
		old.onProduce = func() { r.Apply(ctx, specOf("v2", repl)) }
		r.Apply(ctx, specOf("v1", old))
		h := NewHandler(zap.NewNop(), r, newMetrics(nil), f.h.snap.Load())

		var res *producer.Result_
		var err error
		want := int64(1)
		if batch {
			want = 3
			res, err = h.SendBatchSync(ctx, []*producer.Message{msg("t", "a"), msg("t", "b"), msg("t", "c")})
		} else {
			res, err = h.SendSync(ctx, msg("t", "during reload"), 1000)
		}
		if err != nil {
			t.Fatal(err)
		}
		expect(t, res, OK)
		if n := len(old.Messages("t")); int64(n) != want || repl.Produced() != 0 {
			t.Fatalf("batch %v: old producer stored %d (want %d), replacement got %d (want 0)", batch, n, want, repl.Produced())
		}
		old.awaitClosed(t)
	}
}
