package rocketmq

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/ddmq-go/carrera/internal/mq"
)

// ProduceAutoBatch is Produce for a record that may be coalesced with
// other records of the same (topic, queue) into one SEND_BATCH_MESSAGE
// (auto-batch, behaviour.md §1.11). Without Options.AutoBatch, for a body
// of at least AutoBatchOptions.ThresholdBytes, or when the topic's route is
// not cached yet, it is exactly Produce. Every record of a batch completes
// with the batch's result. The caller decides eligibility otherwise (the
// pproxy: useAutoBatch, the topic's autoBatch flag, first attempts of
// single sends only).
func (p *Producer) ProduceAutoBatch(ctx context.Context, rec *mq.Record, done func(error)) {
	if p.ab == nil || len(rec.Body) >= p.ab.opts.ThresholdBytes {
		p.Produce(ctx, rec, done)
		return
	}
	r := p.routes.cached(rec.Topic)
	if r == nil {
		p.Produce(ctx, rec, done)
		return
	}
	if p.closing.Load() {
		p.reject(&sendOp{done: done}, mq.ErrClosed)
		return
	}
	if err := p.checkRecord(rec); err != nil {
		p.reject(&sendOp{done: done}, err)
		return
	}
	q, err := queueAt(r, rec.Topic, rec.Target.Partition)
	if err != nil {
		p.reject(&sendOp{done: done}, err)
		return
	}
	it := &abItem{msg: toMessage(rec), size: len(rec.Body), done: done}
	if err := p.ab.add(queueKey{topic: rec.Topic, q: q}, it); err != nil {
		p.reject(&sendOp{done: done}, err)
	}
}

// abItem is one record waiting in an auto-batch.
type abItem struct {
	msg   *primitive.Message
	size  int // body bytes
	done  func(error)
	added time.Time
}

// batcher is the passive part of auto-batching for one (topic, queue): a
// FIFO of records and the rules of when a batch is due. It has no clock
// and no goroutine; its owner asks Next after every event and arms a timer
// for Deadline.
type batcher struct {
	maxMsgs  int
	maxBytes int
	wait     time.Duration
	items    []*abItem
}

// Add queues it.
func (b *batcher) Add(it *abItem) { b.items = append(b.items, it) }

// Len is the number of queued records.
func (b *batcher) Len() int { return len(b.items) }

// Next returns the next batch if one is due at now, and removes it: the
// longest prefix of at most maxMsgs records whose bodies stay below
// maxBytes (at least one record). It is due when it is full (maxMsgs
// records, or the next record would make it reach maxBytes) or when its
// oldest record has waited wait. force returns whatever is queued.
func (b *batcher) Next(now time.Time, force bool) []*abItem {
	if len(b.items) == 0 {
		return nil
	}
	n, bytes, full := 0, 0, false
	for _, it := range b.items {
		if n == b.maxMsgs || (n > 0 && bytes+it.size >= b.maxBytes) {
			full = true
			break
		}
		n++
		bytes += it.size
	}
	if n == b.maxMsgs {
		full = true
	}
	if !full && !force && now.Sub(b.items[0].added) < b.wait {
		return nil
	}
	out := b.items[:n:n]
	b.items = b.items[n:]
	if len(b.items) == 0 {
		b.items = nil
	}
	return out
}

// Deadline is when the oldest queued record is due; false when none is
// queued.
func (b *batcher) Deadline() (time.Time, bool) {
	if len(b.items) == 0 {
		return time.Time{}, false
	}
	return b.items[0].added.Add(b.wait), true
}

// Drain removes and returns everything queued.
func (b *batcher) Drain() []*abItem {
	out := b.items
	b.items = nil
	return out
}

// autoBatcher owns one worker goroutine per (topic, queue) with records
// queued or in flight; a worker exits after abIdle without either.
type autoBatcher struct {
	p    *Producer
	opts AutoBatchOptions

	mu      sync.Mutex // before abWorker.mu
	workers map[queueKey]*abWorker
	closed  bool
}

// abIdle is how long an idle worker lives.
const abIdle = time.Minute

// abMaxQueued bounds the records waiting for one queue; more fail with
// mq.ErrBufferFull.
const abMaxQueued = 1 << 16

func newAutoBatcher(p *Producer, opts AutoBatchOptions) *autoBatcher {
	return &autoBatcher{p: p, opts: opts, workers: map[queueKey]*abWorker{}}
}

// abWorker feeds one (topic, queue)'s batches to the producer.
type abWorker struct {
	ab   *autoBatcher
	key  queueKey
	wake chan struct{} // capacity 1: something arrived or completed
	mu   sync.Mutex
	in   []*abItem // arrived, not yet taken by the worker
	dead bool      // the worker exited; add must start a new one
	// completions of requests in flight; guarded by mu
	completed int
	stopping  bool
	drained   chan struct{} // closed once stopping and nothing is queued
}

func (ab *autoBatcher) add(key queueKey, it *abItem) error {
	for {
		ab.mu.Lock()
		if ab.closed {
			ab.mu.Unlock()
			return mq.ErrClosed
		}
		w := ab.workers[key]
		if w == nil {
			w = &abWorker{ab: ab, key: key, wake: make(chan struct{}, 1), drained: make(chan struct{})}
			ab.workers[key] = w
			ab.p.goBG(w.run)
		}
		ab.mu.Unlock()

		w.mu.Lock()
		if w.dead {
			w.mu.Unlock()
			continue
		}
		if len(w.in) >= abMaxQueued {
			w.mu.Unlock()
			return fmt.Errorf("%w: %d records queued for auto-batching", mq.ErrBufferFull, len(w.in))
		}
		it.added = time.Now()
		w.in = append(w.in, it)
		w.mu.Unlock()
		w.signal()
		return nil
	}
}

func (w *abWorker) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// close makes every worker send what it holds at once (and exit once its
// requests completed); it waits, bounded by ctx, until every worker has
// handed its records to the producer.
func (ab *autoBatcher) close(ctx context.Context) {
	ab.mu.Lock()
	ab.closed = true
	ws := make([]*abWorker, 0, len(ab.workers))
	for _, w := range ab.workers {
		ws = append(ws, w)
	}
	ab.mu.Unlock()
	for _, w := range ws {
		w.mu.Lock()
		w.stopping = true
		w.mu.Unlock()
		w.signal()
	}
	for _, w := range ws {
		select {
		case <-w.drained:
		case <-ctx.Done():
			return
		}
	}
}

func (w *abWorker) run() {
	opts := w.ab.opts
	b := batcher{maxMsgs: opts.MaxMessages, maxBytes: opts.MaxBytes, wait: opts.Wait}
	inflight := 0
	timer := time.NewTimer(abIdle)
	defer timer.Stop()
	idleSince := time.Now()
	for {
		select {
		case <-w.wake:
		case <-timer.C:
		}
		w.mu.Lock()
		for _, it := range w.in {
			b.Add(it)
		}
		w.in = w.in[:0]
		inflight -= w.completed
		w.completed = 0
		stopping := w.stopping
		w.mu.Unlock()

		now := time.Now()
		for inflight < opts.MaxInflight || stopping {
			batch := b.Next(now, stopping)
			if batch == nil {
				break
			}
			inflight++
			w.flush(batch)
		}
		if b.Len() > 0 || inflight > 0 {
			idleSince = now
		}
		if stopping && b.Len() == 0 {
			w.markDrained()
		}
		if stopping && b.Len() == 0 && inflight == 0 {
			w.exit()
			return
		}
		// Next wake-up: the oldest record's deadline when a request may be
		// sent; otherwise a completion or an arrival wakes us.
		d := abIdle
		if dl, ok := b.Deadline(); ok && inflight < opts.MaxInflight {
			d = max(dl.Sub(now), 0)
		} else if b.Len() == 0 && inflight == 0 {
			if now.Sub(idleSince) >= abIdle && w.tryRetire() {
				return
			}
			d = abIdle - now.Sub(idleSince)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(d)
	}
}

// flush sends batch as one request (a plain SEND_MESSAGE when it holds one
// record); every record completes with its result.
func (w *abWorker) flush(batch []*abItem) {
	msgs := make([]*primitive.Message, len(batch))
	for i, it := range batch {
		msgs[i] = it.msg
	}
	o := &sendOp{n: len(batch), start: time.Now(), done: func(err error) {
		for _, it := range batch {
			it.done(err)
		}
		w.mu.Lock()
		w.completed++
		w.mu.Unlock()
		w.signal()
	}}
	p := w.ab.p
	p.start(o, w.key, [][]*primitive.Message{msgs}, w.ab.opts.Timeout, kindAuto)
}

// tryRetire removes an idle worker from the map unless a record arrived.
func (w *abWorker) tryRetire() bool {
	w.ab.mu.Lock()
	defer w.ab.mu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.in) > 0 || w.completed > 0 {
		return false
	}
	w.dead = true
	if w.ab.workers[w.key] == w {
		delete(w.ab.workers, w.key)
	}
	return true
}

func (w *abWorker) markDrained() {
	select {
	case <-w.drained:
	default:
		close(w.drained)
	}
}

// exit marks a stopped worker dead and removes it.
func (w *abWorker) exit() {
	w.ab.mu.Lock()
	defer w.ab.mu.Unlock()
	w.mu.Lock()
	w.dead = true
	// Records that arrived after the final drain are refused.
	late := w.in
	w.in = nil
	w.mu.Unlock()
	if w.ab.workers[w.key] == w {
		delete(w.ab.workers, w.key)
	}
	for _, it := range late {
		w.ab.p.reject(&sendOp{done: it.done}, mq.ErrClosed)
	}
}
