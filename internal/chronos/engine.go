package chronos

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/chronos/bodyext"
	"github.com/ddmq-go/carrera/internal/chronos/delayid"
	"github.com/ddmq-go/carrera/internal/chronos/store"
)

// Clock is the engine's time source; tests inject a fake.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// submitter queues deliveries (sendPool; a fake in unit tests). done is
// called exactly once unless Submit returns false.
type submitter interface {
	Submit(ctx context.Context, d *Delivery, done func(Outcome)) bool
}

// engineConfig holds the engine's settings.
type engineConfig struct {
	// deliver: pushOn — a master sends due occurrences.
	deliver bool
	// maxCatchUp bounds already-due loop occurrences sent per ingested ADD.
	maxCatchUp int
}

// Engine is the delay service's core: ingestion of inner messages into the
// store (behaviour.md §3.2) and the seek loop that fires them second by
// second (§3.4–§3.6).
//
// Ingestion and the seek loop share one RW lock: ingestion holds it for
// reading while it classifies a batch against the horizon (the second the
// seek loop processes or last processed) and commits the batch; the seek
// loop takes it for writing only to advance the horizon. So a key written
// for second S is either committed before the scan of S starts, or was
// classified with horizon >= S and sent at once instead — never lost
// between the two.
type Engine struct {
	log   *zap.Logger
	m     *metrics
	store *store.Store
	pool  submitter
	role  *role
	clock Clock
	cfg   engineConfig
	// hard ends at the shutdown deadline; it aborts delivery retries.
	hard context.Context

	mu      sync.RWMutex
	horizon int64 // guarded by mu

	seek    atomic.Int64 // next second to process (persisted with each step)
	pending atomic.Int64
}

var errAborted = errors.New("chronos: deliveries aborted by shutdown")

// newEngine loads (or initialises to now, on the very first start) the seek
// position and the pending count.
func newEngine(hard context.Context, st *store.Store, pool submitter, r *role, clock Clock, m *metrics, log *zap.Logger, cfg engineConfig) (*Engine, error) {
	e := &Engine{log: log, m: m, store: st, pool: pool, role: r, clock: clock, cfg: cfg, hard: hard}
	seek, ok, err := st.Seek()
	if err != nil {
		return nil, err
	}
	if !ok {
		seek = clock.Now().Unix()
		b := st.NewBatch()
		defer b.Close()
		if err := b.SetSeek(seek); err != nil {
			return nil, err
		}
		if err := st.Commit(b, true); err != nil {
			return nil, err
		}
		log.Info("first start: seek initialised to now", zap.Int64("seek", seek))
	}
	e.seek.Store(seek)
	e.horizon = seek - 1
	n, err := st.CountFrom(seek)
	if err != nil {
		return nil, err
	}
	e.pending.Store(n)
	m.pending.Set(float64(n))
	m.seek.Set(float64(seek))
	log.Info("store loaded", zap.Int64("seek", seek), zap.Int64("pending", n))
	return e, nil
}

// Seek returns the next second the seek loop will process.
func (e *Engine) Seek() int64 { return e.seek.Load() }

// Pending returns the number of stored occurrences not yet fired.
func (e *Engine) Pending() int64 { return e.pending.Load() }

func (e *Engine) addPending(n int64) {
	if n != 0 {
		e.m.pending.Set(float64(e.pending.Add(n)))
	}
}

// InnerMessage is one message pulled from the inner topic.
type InnerMessage struct {
	Offset int64
	Value  []byte
}

// parsed is a decoded inner message.
type parsed struct {
	off int64
	ext *bodyext.BodyExt
	id  delayid.ID
}

// decode parses an inner message; invalid ones (not a BodyExt, malformed
// id, unknown action or type) are reported as errors.
func decode(v []byte) (*bodyext.BodyExt, delayid.ID, error) {
	ext, err := bodyext.Decode(v)
	if err != nil {
		return nil, delayid.ID{}, err
	}
	id, err := delayid.Parse(ext.UniqDelayMsgID)
	if err != nil {
		return nil, delayid.ID{}, err
	}
	if ext.Action != bodyext.ActionAdd && ext.Action != bodyext.ActionCancel {
		return nil, delayid.ID{}, fmt.Errorf("chronos: unknown action %d", ext.Action)
	}
	if id.Type != delayid.Delay && !id.IsLoop() {
		return nil, delayid.ID{}, fmt.Errorf("chronos: unknown message type %d", id.Type)
	}
	return ext, id, nil
}

// due is an occurrence that was already due at ingestion.
type due struct {
	off int64
	d   *Delivery
}

// Ingest handles one pulled batch (behaviour.md §3.2): future occurrences
// and tombstones are written with one synchronous commit; occurrences
// already due are sent at once by a master (a backup treats them as sent
// by the master). It returns the offsets that may be acknowledged: every
// message, except those whose immediate delivery was aborted by shutdown.
// On a store error nothing may be acknowledged.
func (e *Engine) Ingest(msgs []InnerMessage) ([]int64, error) {
	acks := make([]int64, 0, len(msgs))
	items := make([]parsed, 0, len(msgs))
	for _, im := range msgs {
		ext, id, err := decode(im.Value)
		if err != nil {
			e.m.ingested.WithLabelValues("invalid").Inc()
			e.log.Warn("invalid inner message skipped", zap.Int64("offset", im.Offset), zap.Error(err))
			acks = append(acks, im.Offset)
			continue
		}
		items = append(items, parsed{off: im.Offset, ext: ext, id: id})
	}
	sending := e.role.Master() && e.cfg.deliver
	var dues []due
	if len(items) > 0 {
		var err error
		if dues, err = e.write(items, sending); err != nil {
			e.m.storeErrors.Inc()
			return nil, err
		}
		e.m.batches.Inc()
	}
	aborted := e.sendDue(dues)
	for _, it := range items {
		if !aborted[it.off] {
			acks = append(acks, it.off)
		}
	}
	return acks, nil
}

// write classifies items against the horizon and commits the batch, under
// the read lock. It returns the occurrences to send now (only when
// sending).
func (e *Engine) write(items []parsed, sending bool) ([]due, error) {
	b := e.store.NewBatch()
	defer b.Close()
	now := e.clock.Now().UnixMilli()
	var dues []due
	var added int64
	seen := map[string]bool{}
	put := func(id delayid.ID, msg *store.Message) error {
		key := id.String()
		if !seen[key] {
			seen[key] = true
			exists, err := e.store.Has(key)
			if err != nil {
				return err
			}
			if !exists {
				added++
			}
		}
		return b.PutMessage(id, msg)
	}
	sendNow := func(off int64, id delayid.ID, msg *store.Message) {
		if sending {
			dues = append(dues, due{off: off, d: &Delivery{ID: id.String(), Msg: msg}})
		}
	}

	e.mu.RLock()
	defer e.mu.RUnlock()
	h := e.horizon
	for _, it := range items {
		ext, id := it.ext, it.id
		if ext.Action == bodyext.ActionCancel {
			e.m.ingested.WithLabelValues("cancel").Inc()
			// The pending occurrence is the first one after the horizon;
			// a DELAY at or before it has fired (the CANCEL is too late).
			target, _, ok := id.FirstAfter(h)
			if !ok {
				e.m.cancels.WithLabelValues("late").Inc()
				continue
			}
			if err := b.PutCancel(target, ext.Topic); err != nil {
				return nil, err
			}
			e.m.cancels.WithLabelValues("stored").Inc()
			continue
		}
		msg := &store.Message{Topic: ext.Topic, Body: ext.Body, CreateTime: now, Tags: ext.Tags, Properties: ext.Properties}
		if id.Type == delayid.Delay {
			e.m.ingested.WithLabelValues("add_delay").Inc()
			if id.Timestamp > h {
				if err := put(id, msg); err != nil {
					return nil, err
				}
			} else {
				sendNow(it.off, id, msg)
			}
			continue
		}
		// Loops: send the occurrences already due (at most maxCatchUp of
		// them), store the first future one; later ones are generated as
		// each fires.
		e.m.ingested.WithLabelValues("add_loop").Inc()
		occ, ok := id, id.Valid()
		for sent := 0; ok && occ.Timestamp <= h && sent < e.cfg.maxCatchUp; sent++ {
			sendNow(it.off, occ, msg)
			occ, ok = occ.Next()
		}
		if ok && occ.Timestamp <= h {
			var skipped int64
			occ, skipped, ok = occ.FirstAfter(h)
			e.m.catchUp.Add(float64(skipped))
			e.log.Warn("loop message far in the past: due occurrences skipped", zap.String("id", id.String()),
				zap.Int("sent", e.cfg.maxCatchUp), zap.Int64("skipped", skipped))
		}
		if ok {
			if err := put(occ, msg); err != nil {
				return nil, err
			}
		}
	}
	if b.Empty() {
		return dues, nil
	}
	if err := e.store.Commit(b, true); err != nil {
		return nil, err
	}
	e.addPending(added)
	return dues, nil
}

// sendDue delivers the occurrences that were due at ingestion and waits
// for them; it returns the offsets whose delivery was aborted.
func (e *Engine) sendDue(dues []due) map[int64]bool {
	if len(dues) == 0 {
		return nil
	}
	var mu sync.Mutex
	aborted := map[int64]bool{}
	var wg sync.WaitGroup
	for _, du := range dues {
		off := du.off
		wg.Add(1)
		ok := e.pool.Submit(e.hard, du.d, func(o Outcome) {
			defer wg.Done()
			switch o {
			case Delivered:
				e.m.delivered.WithLabelValues("ingest").Inc()
			case Aborted:
				mu.Lock()
				aborted[off] = true
				mu.Unlock()
			}
		})
		if !ok {
			wg.Done()
			mu.Lock()
			aborted[off] = true
			mu.Unlock()
		}
	}
	wg.Wait()
	return aborted
}

// RunSeek runs the seek loop until ctx ends; a second in progress is
// completed first (its sends end only at the hard deadline).
func (e *Engine) RunSeek(ctx context.Context) {
	for ctx.Err() == nil {
		sec := e.seek.Load()
		master := e.role.Promote(sec)
		changed := e.role.Changed()
		if !e.role.MayProcess(sec) {
			// A backup never passes the master's published seek.
			e.wait(ctx, changed, 2*time.Second)
			continue
		}
		now := e.clock.Now()
		if start := time.Unix(sec, 0); now.Before(start) {
			e.wait(ctx, changed, start.Sub(now))
			continue
		}
		if err := e.step(sec, master && e.cfg.deliver); err != nil {
			e.log.Error("seek step failed; retrying", zap.Int64("second", sec), zap.Error(err))
			e.wait(ctx, nil, 100*time.Millisecond)
			continue
		}
		e.m.seekLag.Set(float64(max(e.clock.Now().Unix()-sec-1, 0)))
	}
}

func (e *Engine) wait(ctx context.Context, changed <-chan struct{}, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-changed:
	case <-e.clock.After(d):
	}
}

// step processes second sec (behaviour.md §3.4): tombstones (which sort
// first) are remembered, cancelled data keys skipped, a loop's next
// occurrence inserted before the occurrence is delivered, unmatched loop
// tombstones moved to their next occurrence; then the inserts and the new
// seek are committed synchronously. With deliver false (backup) nothing is
// sent. A failed or aborted second is not committed and is processed
// again.
func (e *Engine) step(sec int64, deliver bool) error {
	e.mu.Lock()
	e.horizon = sec
	e.mu.Unlock()

	b := e.store.NewBatch()
	defer b.Close()
	cancelled := map[string]*store.Cancel{}
	var added, processed int64
	var wg sync.WaitGroup
	var aborted atomic.Bool
	err := e.store.ScanSecond(sec, func(en *store.Entry) error {
		switch {
		case en.Err != nil:
			e.m.discarded.WithLabelValues("corrupt").Inc()
			e.log.Error("undecodable store entry skipped", zap.String("key", en.Key), zap.Error(en.Err))
		case en.Cancel != nil:
			target, err := delayid.Parse(en.Cancel.UniqDelayMsgID)
			if err != nil {
				e.log.Error("tombstone with a malformed id skipped", zap.String("key", en.Key), zap.Error(err))
				return nil
			}
			cancelled[target.String()] = en.Cancel
		default:
			processed++
			if _, ok := cancelled[en.Key]; ok {
				delete(cancelled, en.Key)
				e.m.cancels.WithLabelValues("matched").Inc()
				return nil
			}
			if en.ID.IsLoop() {
				if next, ok := en.ID.Next(); ok {
					if err := b.PutMessage(next, en.Message); err != nil {
						return err
					}
					added++
				}
			}
			if !deliver {
				return nil
			}
			d := &Delivery{ID: en.Key, Fire: sec, Msg: en.Message}
			wg.Add(1)
			if !e.pool.Submit(e.hard, d, func(o Outcome) { e.delivered(d, o, &aborted); wg.Done() }) {
				wg.Done()
				aborted.Store(true)
			}
		}
		return nil
	})
	wg.Wait()
	if err != nil {
		return err
	}
	if aborted.Load() {
		return errAborted
	}
	for target, c := range cancelled {
		id, _ := delayid.Parse(target) // canonical: parsed above
		if !id.IsLoop() {
			continue
		}
		if next, ok := id.Next(); ok {
			if err := b.PutCancel(next, c.Topic); err != nil {
				return err
			}
			e.m.cancels.WithLabelValues("moved").Inc()
		}
	}
	if err := b.SetSeek(sec + 1); err != nil {
		return err
	}
	if err := e.store.Commit(b, true); err != nil {
		return err
	}
	e.seek.Store(sec + 1)
	e.m.seek.Set(float64(sec + 1))
	e.addPending(added - processed)
	return nil
}

// delivered records a seek-loop delivery's outcome.
func (e *Engine) delivered(d *Delivery, o Outcome, aborted *atomic.Bool) {
	switch o {
	case Delivered:
		e.m.delivered.WithLabelValues("seek").Inc()
		late := e.clock.Now().Sub(time.Unix(d.Fire, 0))
		e.m.lateness.Observe(late.Seconds())
	case Aborted:
		aborted.Store(true)
	}
}

// RunRetention deletes keys older than seek − saveHours every interval
// (behaviour.md §3.8) and recounts the pending occurrences (correcting
// drift from re-processed seconds after a crash) until ctx ends.
func (e *Engine) RunRetention(ctx context.Context, interval time.Duration, saveHours int) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.clock.After(interval):
		}
		e.retain(saveHours)
	}
}

func (e *Engine) retain(saveHours int) {
	seek := e.seek.Load()
	cutoff := seek - int64(saveHours)*3600
	if err := e.store.DeleteBefore(cutoff); err != nil {
		e.log.Error("retention failed", zap.Error(err))
		return
	}
	e.m.retention.Inc()
	if n, err := e.store.CountFrom(seek); err == nil {
		e.pending.Store(n)
		e.m.pending.Set(float64(n))
	}
	e.log.Info("retention done", zap.Int64("deletedBefore", cutoff), zap.Int64("pending", e.pending.Load()))
}
