package engine

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/config"
	"github.com/ddmq-go/carrera/internal/mq"
)

type jobState uint8

const (
	stNew        jobState = iota
	stReady               // in part.ready or part.redo
	stKeyWait             // OrderKey: waiting behind an earlier job with the same key
	stInFlight            // handed out; deadline in its handout
	stExpired             // timed out; in part.expired
	stRetryWait           // nacked; retry timer scheduled
	stDeadLetter          // exhausted; waiting for, or in, a dead-letter publish
	stDone                // finished or discarded
)

// job is one message travelling through the engine.
type job struct {
	d    *mq.Delivery
	p    *part
	off  int64
	size int64

	state    jobState
	ho       *handout // the pull it is in flight under (stInFlight only)
	tm       timer    // retry or dead-letter retry
	seq      uint64   // pull that last handed it out
	timeouts int      // errorRetryCount: timeout redeliveries so far
	nackIdx  int      // retryIntervals index, starts at -1
	inBatch  bool     // OrderQID: member of the partition's outstanding batch
	chained  bool     // OrderKey: member of ut.chains[key]
	key      string

	dlTopic    string
	dlReason   string
	dlAttempts int
}

// setStateLocked moves j to st, keeping the in-flight and buffered counts
// and gauges right.
func (e *Engine) setStateLocked(j *job, st jobState) {
	ut := j.p.ut
	switch j.state {
	case stNew, stDone:
	case stInFlight:
		ut.inFlight--
		e.inFlight--
	default:
		ut.buffered--
	}
	j.state = st
	switch st {
	case stNew, stDone:
	case stInFlight:
		ut.inFlight++
		e.inFlight++
	default:
		ut.buffered++
	}
	e.markDirtyLocked(ut)
}

// handout is the deadline shared by the jobs one pull handed out: they time
// out together, so a pull schedules one timer instead of one per message.
type handout struct {
	tm   timer
	jobs []*job
	live int // jobs still in flight under this handout
}

// leaveHandoutLocked detaches j from the handout it is in flight under;
// the handout's timer is cancelled when its last job left.
func (e *Engine) leaveHandoutLocked(j *job) {
	h := j.ho
	if h == nil {
		return
	}
	j.ho = nil
	h.live--
	if h.live == 0 {
		e.timers.cancel(&h.tm)
		h.jobs = nil
	}
}

// expireHandoutLocked times out the jobs still in flight under h.
func (e *Engine) expireHandoutLocked(h *handout, now time.Time) {
	jobs := h.jobs
	h.jobs, h.live = nil, 0
	for _, j := range jobs {
		if j.ho == h {
			j.ho = nil
			e.expireLocked(j, now)
		}
	}
}

// inFlightJob returns the job at off if it is handed out (in flight or
// timed out and not yet handed out again), else nil.
func (p *part) inFlightJob(off int64) *job {
	j := p.jobs.get(off)
	if j == nil || (j.state != stInFlight && j.state != stExpired) {
		return nil
	}
	return j
}

type waiter struct {
	topic   string // "" = any topic
	maxMsgs int
	ch      chan pullResult // 1-buffered; receives exactly one result
	tm      timer
	done    bool
}

type pullResult struct {
	b   Batch
	seq uint64
	err error
}

// Pull returns up to maxMsgs messages (capped by the unit's
// maxPullBatchSize; maxMsgs <= 0 means that cap) of one (topic, qid), from topic or, when topic
// is "", from any topic, round robin over the partitions that have work.
// Timed-out messages come first, then nacked ones whose retry delay
// elapsed, then fresh ones. With nothing available it waits up to
// max(linger, 20ms) and returns as soon as messages arrive; an empty Batch
// means none did. It returns ctx's error when ctx ends first (messages
// already taken for it are put back), and ErrClosed on a closed engine.
func (e *Engine) Pull(ctx context.Context, topic string, maxMsgs int, linger time.Duration) (Batch, error) {
	b, err := e.pull(ctx, topic, maxMsgs, linger)
	if err == nil {
		e.m.pullBatch.Observe(float64(len(b.Messages)))
	}
	return b, err
}

func (e *Engine) pull(ctx context.Context, topic string, maxMsgs int, linger time.Duration) (Batch, error) {
	now := e.now()
	e.lastPull.Store(now.UnixNano())
	e.mu.Lock()
	if e.closed {
		e.unlock()
		return Batch{}, ErrClosed
	}
	if b, _ := e.pollLocked(topic, maxMsgs, now); len(b.Messages) > 0 {
		e.unlock()
		return b, nil
	}
	wq := e.waiters[topic]
	if wq == nil {
		wq = &waitQueue{}
		e.waiters[topic] = wq
	}
	for wq.q.len() > 0 && wq.q.front().done {
		wq.q.popFront()
	}
	if wq.q.len() > 2*wq.live+64 {
		wq.q.filter(func(w *waiter) bool { return !w.done })
	}
	if wq.live >= MaxWaiters {
		e.unlock()
		return Batch{}, nil
	}
	w := &waiter{topic: topic, maxMsgs: maxMsgs, ch: make(chan pullResult, 1)}
	w.tm = timer{kind: tWaiter, idx: -1, w: w}
	wq.q.pushBack(w)
	wq.live++
	e.setTimerLocked(&w.tm, now.Add(maxDur(linger, MinLinger)))
	e.unlock()

	select {
	case r := <-w.ch:
		return r.b, r.err
	case <-ctx.Done():
	}
	e.mu.Lock()
	if !w.done {
		w.done = true
		e.timers.cancel(&w.tm)
		e.dropWaiterLocked(w)
	}
	select {
	case r := <-w.ch:
		e.requeueLocked(r)
	default:
	}
	e.unlock()
	return Batch{}, ctx.Err()
}

func maxDur(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

// pollLocked takes the next partition with work from the group-wide or the
// topic's round-robin queue and builds a batch from it.
func (e *Engine) pollLocked(topic string, maxMsgs int, now time.Time) (Batch, uint64) {
	q := &e.all
	if topic != "" {
		q = e.byTopic[topic]
		if q == nil {
			return Batch{}, 0
		}
	}
	// Each queued partition is looked at most once per call, so a partition
	// that claims work but yields none cannot make this spin.
	for n := q.len(); n > 0; n-- {
		p, _ := q.popFront()
		if topic == "" {
			p.inAll = false
		} else {
			p.inTopic = false
		}
		if !p.hasWork() {
			continue
		}
		b, seq := e.buildBatchLocked(p, maxMsgs, now)
		if p.hasWork() {
			q.pushBack(p)
			if topic == "" {
				p.inAll = true
			} else {
				p.inTopic = true
			}
		}
		if len(b.Messages) > 0 {
			return b, seq
		}
	}
	return Batch{}, 0
}

// enqueueLocked puts p into the round-robin queues it is not in yet.
func (e *Engine) enqueueLocked(p *part) {
	if !p.inAll {
		e.all.pushBack(p)
		p.inAll = true
	}
	if !p.inTopic {
		q := e.byTopic[p.key.topic]
		if q == nil {
			q = &deque[*part]{}
			e.byTopic[p.key.topic] = q
		}
		q.pushBack(p)
		p.inTopic = true
	}
}

// offerLocked is called when p may have new work: it answers parked pulls
// for p's topic first, then topic-less ones (defect #12 is not reproduced),
// and queues p for later pulls if work is left.
func (e *Engine) offerLocked(p *part, now time.Time) {
	for p.hasWork() {
		w, wq := e.popWaiterLocked(p.key.topic)
		if w == nil {
			break
		}
		b, seq := e.buildBatchLocked(p, w.maxMsgs, now)
		if len(b.Messages) == 0 {
			wq.q.pushFront(w)
			break
		}
		e.answerLocked(w, pullResult{b: b, seq: seq})
	}
	if p.hasWork() {
		e.enqueueLocked(p)
	}
}

// popWaiterLocked removes the oldest live waiter for topic, else the oldest
// topic-less one, from its queue; it stays counted as live until it is
// answered (or pushed back by the caller).
func (e *Engine) popWaiterLocked(topic string) (*waiter, *waitQueue) {
	for _, k := range [2]string{topic, ""} {
		wq := e.waiters[k]
		if wq == nil || wq.live == 0 {
			continue
		}
		for {
			w, ok := wq.q.popFront()
			if !ok {
				break
			}
			if !w.done {
				return w, wq
			}
		}
	}
	return nil, nil
}

// answerLocked completes a live waiter.
func (e *Engine) answerLocked(w *waiter, r pullResult) {
	w.done = true
	e.timers.cancel(&w.tm)
	e.dropWaiterLocked(w)
	w.ch <- r
}

// dropWaiterLocked uncounts a waiter that became done. A queue without live
// waiters is removed, so topic names sent by clients do not accumulate. A
// live waiter is always in the queue the map holds for its topic.
func (e *Engine) dropWaiterLocked(w *waiter) {
	wq := e.waiters[w.topic]
	if wq == nil {
		return
	}
	wq.live--
	if wq.live <= 0 {
		delete(e.waiters, w.topic)
	}
}

// buildBatchLocked hands out up to maxMsgs jobs of p (behaviour.md §2.5 step
// 4): timed-out ones first, then nacked ones due for retry, then fresh ones
// (with OrderQID, fresh ones only when no batch is outstanding).
func (e *Engine) buildBatchLocked(p *part, maxMsgs int, now time.Time) (Batch, uint64) {
	s := &p.ut.s
	n := s.MaxPullBatchSize
	if maxMsgs > 0 && maxMsgs < n {
		n = maxMsgs
	}
	e.pullSeq++
	seq := e.pullSeq
	// Sized once: growing both slices by appends cost a dozen allocations
	// per pull.
	avail := min(n, p.expiredLive+p.redo.len()+p.ready.len())
	msgs := make([]*mq.Delivery, 0, avail)
	var bytes int64
	h := &handout{tm: timer{kind: tHandoutDeadline, idx: -1}, jobs: make([]*job, 0, avail)}
	h.tm.h = h
	room := func() bool { return len(msgs) < n && bytes < e.maxRecv }
	take := func(j *job, reason string) {
		e.handOutLocked(j, h, reason, seq)
		msgs = append(msgs, j.d)
		bytes += j.size
	}
	for room() && p.expiredLive > 0 {
		j, _ := p.expired.popFront()
		if j.state != stExpired {
			continue // acked, nacked or dropped meanwhile
		}
		p.expiredLive--
		take(j, ReasonTimeout)
	}
	for room() && p.redo.len() > 0 {
		j, _ := p.redo.popFront()
		take(j, ReasonNack)
	}
	qid := s.Order == config.OrderQID
	if !qid || (p.batchLeft == 0 && len(msgs) == 0) {
		for room() && p.ready.len() > 0 {
			j, _ := p.ready.popFront()
			if qid {
				j.inBatch = true
				p.batchLeft++
			}
			take(j, "")
		}
	}
	if len(msgs) == 0 {
		return Batch{}, 0
	}
	e.setTimerLocked(&h.tm, now.Add(p.ut.s.Timeout))
	p.ut.pulled += len(msgs)
	e.markDirtyLocked(p.ut)
	return Batch{Topic: p.key.topic, QID: p.key.qid, Cluster: p.cluster, Messages: msgs}, seq
}

// handOutLocked puts j in flight under h (whose deadline the caller sets).
func (e *Engine) handOutLocked(j *job, h *handout, reason string, seq uint64) {
	e.setStateLocked(j, stInFlight)
	j.seq = seq
	j.ho = h
	h.jobs = append(h.jobs, j)
	h.live++
	if reason != "" {
		j.p.ut.tm.redelivered(reason).Inc()
	}
}

// requeueLocked puts back the jobs of a batch that could not be delivered
// (the puller went away), without counting an attempt.
func (e *Engine) requeueLocked(r pullResult) {
	if r.err != nil || len(r.b.Messages) == 0 {
		return
	}
	p := e.parts[partKey{topic: r.b.Topic, qid: r.b.QID}]
	if p == nil {
		return
	}
	for i := len(r.b.Messages) - 1; i >= 0; i-- {
		j := p.inFlightJob(r.b.Messages[i].Offset)
		if j == nil || j.seq != r.seq || j.state != stInFlight {
			continue
		}
		e.leaveHandoutLocked(j)
		e.setStateLocked(j, stReady)
		p.redo.pushFront(j)
	}
	e.offerLocked(p, e.now())
}

// Submit processes the acknowledgements of one (topic, qid): success
// offsets finish their messages; fail offsets schedule a redelivery after
// the next retryIntervals delay (or exhaust the message). Offsets that are
// not in flight — unknown, acknowledged before, of a revoked partition or
// an unknown topic/qid — are ignored (counted and logged at debug level).
func (e *Engine) Submit(topic, qid string, success, fail []int64) {
	if len(success)+len(fail) == 0 {
		return
	}
	ignored := 0
	e.mu.Lock()
	p := e.parts[partKey{topic: topic, qid: qid}]
	if p == nil || e.closed {
		ignored = len(success) + len(fail)
	} else {
		now := e.now()
		for _, off := range success {
			j := p.inFlightJob(off)
			if j == nil {
				ignored++
				continue
			}
			p.ut.acked++
			e.takeBackLocked(j)
			e.finishLocked(j, now)
		}
		e.markDirtyLocked(p.ut)
		for _, off := range fail {
			j := p.inFlightJob(off)
			if j == nil {
				ignored++
				continue
			}
			p.ut.tm.nacked.Inc()
			e.takeBackLocked(j)
			e.nackLocked(j, now)
		}
	}
	e.unlock()
	if ignored > 0 {
		e.m.ignored.Add(float64(ignored))
		e.log.Debug("submit: offsets not in flight ignored", zap.String("topic", topic),
			zap.String("qid", qid), zap.Int("ignored", ignored))
	}
}

// takeBackLocked ends a handed-out job's time in flight (acknowledged).
func (e *Engine) takeBackLocked(j *job) {
	if j.state == stExpired {
		j.p.expiredLive--
	}
	e.leaveHandoutLocked(j)
}

// nackLocked schedules the redelivery of a failed job (behaviour.md §2.6).
func (e *Engine) nackLocked(j *job, now time.Time) {
	p := j.p
	d := nextRetryDelay(p.ut.s.RetryIntervals, &j.nackIdx)
	switch {
	case d < 0:
		e.exhaustLocked(j, ReasonNack, now)
	case d == 0:
		e.setStateLocked(j, stReady)
		p.redo.pushBack(j)
		e.offerLocked(p, now)
	default:
		e.setStateLocked(j, stRetryWait)
		j.tm.kind = tJobRetry
		e.setTimerLocked(&j.tm, now.Add(d))
	}
}

// expireLocked handles a job whose deadline passed (behaviour.md §2.5 step
// 8): queue it for redelivery while maxRetry allows, else exhaust it.
func (e *Engine) expireLocked(j *job, now time.Time) {
	if j.state != stInFlight || j.p.revoked {
		return
	}
	p := j.p
	if mr := p.ut.s.MaxRetry; mr < 0 || j.timeouts < mr {
		j.timeouts++
		e.setStateLocked(j, stExpired)
		p.expired.pushBack(j)
		p.expiredLive++
		e.offerLocked(p, now)
		return
	}
	e.exhaustLocked(j, ReasonTimeout, now)
}

// exhaustLocked applies the unit's policy to a job whose retries are
// spent: publish it to the dead-letter topic (finished only once that
// succeeded), or drop it (logged, counted, finished).
func (e *Engine) exhaustLocked(j *job, reason string, now time.Time) {
	p := j.p
	s := &p.ut.s
	if s.DeadLetterTopic != "" && e.deadLetter != nil {
		j.d = j.d.Owned() // the worker holds it unlocked, maybe for long
		e.setStateLocked(j, stDeadLetter)
		j.dlTopic, j.dlReason = s.DeadLetterTopic, reason
		e.dlq.pushBack(j)
		signal(e.dlKick)
		return
	}
	p.ut.tm.dropped(reason).Inc()
	msg := "message dropped: retries exhausted"
	if s.DeadLetterTopic != "" {
		msg = "message dropped: retries exhausted and no dead-letter producer is available"
	}
	e.dropLog.Warn(msg,
		zap.String("topic", p.key.topic), zap.String("qid", p.key.qid),
		zap.Int64("offset", j.off), zap.String("key", j.d.Key), zap.String("reason", reason),
		zap.Int("timeouts", j.timeouts), zap.Int("nacks", j.nackIdx+1))
	e.finishLocked(j, now)
}

// finishLocked finishes a job (acknowledged, dropped or dead-lettered): its
// offset becomes committable, its budgets are returned, and the next job of
// its order (QID batch, key chain) is released.
func (e *Engine) finishLocked(j *job, now time.Time) {
	p := j.p
	ut := p.ut
	e.timers.cancel(&j.tm)
	e.leaveHandoutLocked(j)
	p.jobs.remove(j)
	e.setStateLocked(j, stDone)
	e.releaseLocked(j)
	if p.tracker.Done(j.off) {
		e.scheduleCommitLocked(p, now)
		if p.blocked == blockLag && !lagExceeded(p) {
			p.blocked = blockNone
			signal(p.wake)
		}
	}
	if j.inBatch {
		j.inBatch = false
		p.batchLeft--
		if p.batchLeft == 0 {
			e.offerLocked(p, now)
		}
	}
	if j.chained {
		j.chained = false
		if ch := ut.chains[j.key]; ch != nil {
			if ch.len() > 0 && ch.front() == j {
				ch.popFront()
			} else {
				ch.filter(func(x *job) bool { return x != j })
			}
			e.releaseHeadLocked(ut, j.key, ch, now)
		}
	}
	e.wakeWaitingReadersLocked(ut)
}

// releaseHeadLocked makes the first job of a key chain available.
func (e *Engine) releaseHeadLocked(ut *unitTopic, key string, ch *deque[*job], now time.Time) {
	if ch.len() == 0 {
		delete(ut.chains, key)
		return
	}
	h := ch.front()
	if h.state != stKeyWait {
		return
	}
	e.setStateLocked(h, stReady)
	h.p.ready.pushBack(h)
	e.offerLocked(h.p, now)
}
