package engine

import (
	"context"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/ddmq-go/carrera/internal/config"
	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/offset"
)

// claimHandler is the mq.ClaimHandler of one broker cluster.
type claimHandler struct {
	e       *Engine
	cluster string
}

// Setup records how many partitions of each topic this member owns and,
// with Options.Partitions, how many there are, and rescales the units'
// rates (behaviour.md §2.3).
func (h *claimHandler) Setup(assigned map[string][]int32) {
	e := h.e
	totals := map[string]int{}
	if e.partitions != nil {
		for topic := range assigned {
			ctx, cancel := context.WithTimeout(e.ctx, partitionsTimeout)
			n, err := e.partitions(ctx, h.cluster, topic)
			cancel()
			if err != nil {
				e.log.Warn("partition count unknown; consume rate falls back to maxTps",
					zap.String("cluster", h.cluster), zap.String("topic", topic), zap.Error(err))
				continue
			}
			totals[topic] = n
		}
	}
	e.mu.Lock()
	defer e.unlock()
	if e.closed {
		return
	}
	now := e.now()
	for k, ut := range e.units {
		if k.Cluster == h.cluster {
			ut.owned = 0
		}
	}
	for topic, ps := range assigned {
		ut := e.unitLocked(UnitTopic{Cluster: h.cluster, Topic: topic})
		ut.owned = len(ps)
		if n, ok := totals[topic]; ok {
			ut.total = n
		}
	}
	for k, ut := range e.units {
		if k.Cluster == h.cluster {
			e.applyRateLocked(ut, now)
		}
	}
}

// Cleanup implements mq.ClaimHandler; claims clean up after themselves.
func (h *claimHandler) Cleanup() {}

type blockReason uint8

const (
	blockNone  blockReason = iota
	blockConc              // unit's Concurrency reached
	blockBytes             // engine's MaxBufferedBytes reached
	blockLag               // partition's MaxConsumeLag reached
)

// part is one claimed partition: its reader state, tracker and buffers.
// Everything except wake, commitDue and superseded is guarded by Engine.mu.
type part struct {
	ut      *unitTopic
	key     partKey
	cluster string
	claim   mq.Claim

	wake       chan struct{} // 1-buffered: wakes the reader
	commitDue  atomic.Bool   // the commit interval elapsed; the reader commits
	superseded atomic.Bool   // a newer claim of the same partition replaced this one

	revoked    bool
	tracker    *offset.Tracker // nil until the first message when nothing was committed
	first      bool            // no message admitted yet
	lastCommit mq.CommittedOffset
	metaBuf    []byte

	jobs        jobIndex    // unfinished jobs by offset
	ready       deque[*job] // fresh jobs (and released key-chain heads)
	redo        deque[*job] // nacked jobs whose retry delay elapsed
	expired     deque[*job] // timed-out jobs (stale entries skipped)
	expiredLive int         // entries of expired in state stExpired
	batchLeft   int         // OrderQID: unfinished jobs of the outstanding batch

	inAll, inTopic bool // queued in Engine.all / Engine.byTopic

	blocked  blockReason
	tokenAt  time.Time // the pending message's rate token is due then
	hasToken bool      // a token (or reservation) is held for the pending message
	resv     *rate.Reservation

	commitTm timer
	limitTm  timer
}

// hasWork reports whether a pull of this partition would return something.
func (p *part) hasWork() bool {
	if p.revoked {
		return false
	}
	if p.expiredLive > 0 || p.redo.len() > 0 {
		return true
	}
	if p.ready.len() == 0 {
		return false
	}
	return p.ut.s.Order != config.OrderQID || p.batchLeft == 0
}

// Claim is the reader of one claimed partition: it admits the partition's
// messages into the engine (rate, concurrency, bytes and lag limits first)
// and commits the partition's offset when its commit timer says so. It
// returns when the claim ends or the engine closes, after discarding the
// partition's jobs and making the final commit.
func (h *claimHandler) Claim(c mq.Claim) {
	e := h.e
	p := e.openPart(h.cluster, c)
	if p == nil {
		return
	}
	defer e.closePart(p)
	ctx := c.Context()
	msgs := c.Messages()
	// pending holds deliveries read from the claim but not admitted yet, in
	// offset order; the head is blocked by a limit until p.wake.
	pending := make([]*mq.Delivery, 0, admitBatch)
	pendingSince := int64(-1) // see ownPending
	for {
		if len(pending) == 0 {
			select {
			case d, ok := <-msgs:
				if !ok {
					return
				}
				pending = append(pending, d)
			case <-p.wake:
			case <-ctx.Done():
				return
			case <-e.done:
				return
			}
		} else {
			select {
			case <-p.wake:
			case <-ctx.Done():
				return
			case <-e.done:
				return
			}
		}
		if p.superseded.Load() {
			return
		}
		if p.commitDue.Swap(false) {
			e.commit(p)
		}
		if len(pending) > 0 {
			pending = topUp(msgs, pending)
			n := e.admit(p, pending)
			pending = pending[:copy(pending, pending[n:])]
			e.ownPending(pending, &pendingSince)
		}
	}
}

// ShareWindow bounds how long the engine keeps a shared delivery
// (mq.Delivery.Shared, a window into a whole Kafka fetch response): a job
// still unfinished when the deliveries admitted after it reach this many
// body bytes gets its own copy. A pull→submit round trip finishes a job
// within a few hundred KiB of admissions at full speed, so copies are for
// the stragglers (a slow or vanished consumer, a retry wait), which would
// otherwise pin a response each.
const ShareWindow = 8 << 20

// trackSharedLocked stamps a job admitted with a shared delivery and gives
// the jobs admitted ShareWindow before it their own copies.
func (e *Engine) trackSharedLocked(j *job) {
	at := e.shareClock.Add(mq.ShareCost(len(j.d.Body)))
	e.sharedJobs.pushBack(sharedJob{j: j, at: at})
	for e.sharedJobs.len() > 0 {
		old := e.sharedJobs.front()
		if at-old.at <= ShareWindow {
			break
		}
		e.sharedJobs.popFront()
		e.ownLocked(old.j)
	}
}

// ownLocked replaces the shared delivery of an unfinished job with its own
// copy. The delivery itself is not changed: a pull reply being written from
// it outside the lock keeps reading it. Jobs waiting for a dead-letter
// publish were given theirs on the way in (the worker reads j.d unlocked).
func (e *Engine) ownLocked(j *job) {
	if j.state != stDone && j.state != stDeadLetter && j.d.Shared {
		j.d = j.d.Owned()
	}
}

// ownPending bounds how long a reader's pending deliveries (read from the
// claim, not admitted yet: a limit holds them) keep shared fetch responses
// alive: once the engine admitted ShareWindow bytes of shared
// deliveries since *since (the clock when pending last became non-empty, or
// when it was last owned; -1 = empty), every pending delivery is given its
// own copy. A reader that admits one message per wake (a rate limit)
// would otherwise hold the other 63 for as long as the limit lasts.
func (e *Engine) ownPending(pending []*mq.Delivery, since *int64) {
	if len(pending) == 0 {
		*since = -1
		return
	}
	now := e.shareClock.Load()
	switch {
	case *since < 0:
		*since = now
	case now-*since > ShareWindow:
		for i, d := range pending {
			pending[i] = d.Owned()
		}
		*since = now
	}
}

// admitBatch bounds the deliveries a claim reader admits under one
// acquisition of the engine lock.
const admitBatch = 64

// topUp appends deliveries already waiting in msgs to pending, without
// blocking, up to admitBatch. A closed channel is left for the next
// blocking receive to notice.
func topUp(msgs <-chan *mq.Delivery, pending []*mq.Delivery) []*mq.Delivery {
	for len(pending) < admitBatch {
		select {
		case d, ok := <-msgs:
			if !ok {
				return pending
			}
			pending = append(pending, d)
		default:
			return pending
		}
	}
	return pending
}

// openPart registers a claim; nil when the engine is closed.
func (e *Engine) openPart(cluster string, c mq.Claim) *part {
	topic := c.Topic()
	qid := e.qid(cluster, topic, c.Partition())
	init := c.Initial()
	tr := e.decodeTracker(init, topic, qid)

	e.mu.Lock()
	defer e.unlock()
	if e.closed {
		return nil
	}
	ut := e.unitLocked(UnitTopic{Cluster: cluster, Topic: topic})
	if !ut.configured {
		e.log.Warn("claimed a topic that was not configured; using default settings",
			zap.String("cluster", cluster), zap.String("topic", topic))
	}
	key := partKey{topic: topic, qid: qid}
	if old := e.parts[key]; old != nil {
		// Two live claims of one partition (an old consumer not yet
		// stopped): the newer one wins; the old reader exits without a
		// final commit.
		e.log.Warn("partition claimed again before the previous claim ended",
			zap.String("topic", topic), zap.String("qid", qid))
		old.superseded.Store(true)
		e.discardLocked(old, e.now())
		signal(old.wake)
	}
	p := &part{
		ut:         ut,
		key:        key,
		cluster:    cluster,
		claim:      c,
		wake:       make(chan struct{}, 1),
		tracker:    tr,
		first:      true,
		lastCommit: mq.CommittedOffset{Offset: init.Offset, Metadata: init.Metadata},
		commitTm:   timer{kind: tCommit, idx: -1},
		limitTm:    timer{kind: tLimiter, idx: -1},
	}
	if init.Offset < 0 {
		p.lastCommit = mq.CommittedOffset{Offset: -1}
	}
	p.commitTm.p, p.limitTm.p = p, p
	e.parts[key] = p
	e.claims.Add(1)
	e.log.Debug("partition claimed", zap.String("topic", topic), zap.String("qid", qid),
		zap.Int64("committed", init.Offset))
	return p
}

// closePart ends a claim: its jobs are discarded (acks for them are ignored
// from now on) and the committable offset is committed a last time.
func (e *Engine) closePart(p *part) {
	defer e.claims.Done()
	e.mu.Lock()
	now := e.now()
	if p.resv != nil {
		p.resv.CancelAt(now)
		p.resv = nil
	}
	if !p.revoked {
		e.discardLocked(p, now)
	}
	var co mq.CommittedOffset
	ok := false
	if !p.superseded.Load() {
		co, ok = e.commitValueLocked(p)
	}
	e.unlock()
	if ok {
		p.claim.Commit(co)
	}
	e.log.Debug("partition released", zap.String("topic", p.key.topic), zap.String("qid", p.key.qid))
}

// discardLocked revokes a partition: all its jobs are dropped from every
// structure without finishing them (the tracker keeps them unfinished, so
// the new owner gets them again).
func (e *Engine) discardLocked(p *part, now time.Time) {
	p.revoked = true
	if e.parts[p.key] == p {
		delete(e.parts, p.key)
	}
	e.timers.cancel(&p.commitTm)
	e.timers.cancel(&p.limitTm)
	ut := p.ut
	var keys map[string]bool
	p.jobs.each(func(j *job) {
		e.timers.cancel(&j.tm)
		e.leaveHandoutLocked(j)
		if j.chained {
			if keys == nil {
				keys = map[string]bool{}
			}
			keys[j.key] = true
		}
		e.setStateLocked(j, stDone)
		e.releaseLocked(j)
	})
	p.jobs = jobIndex{}
	p.ready.clear()
	p.redo.clear()
	p.expired.clear()
	p.expiredLive, p.batchLeft = 0, 0
	for k := range keys {
		ch := ut.chains[k]
		if ch == nil {
			continue
		}
		ch.filter(func(j *job) bool { return j.p != p })
		e.releaseHeadLocked(ut, k, ch, now)
	}
	e.wakeWaitingReadersLocked(ut)
}

// releaseLocked returns an unfinished job's concurrency and byte budget.
func (e *Engine) releaseLocked(j *job) {
	j.p.ut.unfinished--
	e.unfinished--
	e.bytes -= j.size
}

// wakeWaitingReadersLocked wakes readers that wait for capacity of ut or of
// the engine's byte budget, once enough of it is free to be worth a wake-up
// (wakeSlack): waking every blocked reader of a unit for each finished job
// made them queue on the engine lock only to find the one free slot taken
// (a thundering herd that cost half the pull path's scheduling time). Of
// the unit's readers, only as many are woken, oldest first, as the free
// capacity can keep busy with one admit batch each; the others stay queued
// for the next finish.
func (e *Engine) wakeWaitingReadersLocked(ut *unitTopic) {
	if n := len(ut.concWait); n > 0 {
		free := ut.s.Concurrency - ut.unfinished
		if free >= wakeSlack(ut.s.Concurrency) {
			k := min(n, (free+admitBatch-1)/admitBatch)
			for _, q := range ut.concWait[:k] {
				if q.blocked == blockConc {
					q.blocked = blockNone
				}
				signal(q.wake)
			}
			rest := copy(ut.concWait, ut.concWait[k:])
			clear(ut.concWait[rest:])
			ut.concWait = ut.concWait[:rest]
		}
	}
	if len(e.bytesWait) > 0 && (e.maxBytes <= 0 || e.maxBytes-e.bytes >= e.maxBytes/16) {
		for _, q := range e.bytesWait {
			if q.blocked == blockBytes {
				q.blocked = blockNone
			}
			signal(q.wake)
		}
		clear(e.bytesWait)
		e.bytesWait = e.bytesWait[:0]
	}
}

// wakeSlack is the free concurrency at which readers blocked on a unit's
// Concurrency are woken: one admit batch, at most a quarter of the limit,
// at least one slot.
func wakeSlack(concurrency int) int {
	return max(1, min(admitBatch, concurrency/4))
}

// lagExceeded reports whether reading p must pause for maxConsumeLag:
// maxStartedOffset − committableOffset >= maxConsumeLag (behaviour.md §2.2).
func lagExceeded(p *part) bool {
	lag := p.ut.s.MaxConsumeLag
	return lag >= 0 && p.tracker != nil && p.tracker.Next()-1-p.tracker.Committable() >= lag
}

// admit tries to let d into the engine: rate limiter, concurrency, byte
// budget and lag, in that order (behaviour.md §2.2), then the tracker. It
// reports whether d was consumed (admitted, or skipped as already
// finished); false means the reader must wait for p.wake and try again.
func (e *Engine) admit(p *part, ds []*mq.Delivery) int {
	e.mu.Lock()
	defer e.unlock()
	now := e.now()
	n, offered := 0, true
	for _, d := range ds {
		if !e.admitLocked(p, d, now) {
			break
		}
		n++
		offered = false
	}
	if !offered {
		// Offer once for the whole batch, so a parked pull gets up to its
		// maxBatchSize instead of the first message alone.
		e.offerLocked(p, now)
	}
	return n
}

// admitLocked admits one delivery (see admit); false = blocked by a limit.
// The caller offers p's new work to parked pulls.
func (e *Engine) admitLocked(p *part, d *mq.Delivery, now time.Time) bool {
	if p.revoked || d == nil {
		return true
	}
	ut := p.ut
	s := &ut.s
	if !p.hasToken {
		p.hasToken = true
		p.tokenAt = now
		if !ut.lim.AllowN(now, 1) {
			r := ut.lim.ReserveN(now, 1)
			if r.OK() {
				p.resv = r
				p.tokenAt = now.Add(r.DelayFrom(now))
			}
		}
	}
	if now.Before(p.tokenAt) {
		e.setTimerLocked(&p.limitTm, p.tokenAt)
		return false
	}
	if ut.unfinished >= s.Concurrency {
		if p.blocked != blockConc {
			p.blocked = blockConc
			ut.concWait = append(ut.concWait, p)
		}
		return false
	}
	size := int64(len(d.Body))
	if e.maxBytes > 0 && e.bytes > 0 && e.bytes+size > e.maxBytes {
		if p.blocked != blockBytes {
			p.blocked = blockBytes
			e.bytesWait = append(e.bytesWait, p)
		}
		return false
	}
	if lagExceeded(p) {
		p.blocked = blockLag
		return false
	}
	p.blocked = blockNone
	p.hasToken, p.resv = false, nil

	switch {
	case p.tracker == nil:
		p.tracker = offset.New(d.Offset)
	case p.first && d.Offset < p.tracker.Committable():
		// The backend started below the committed offset (its offset reset
		// policy moved the position back, e.g. the committed offset was
		// beyond the log end): follow it, or every message would be
		// skipped as already finished.
		e.log.Warn("partition restarts below its committed offset; following the backend",
			zap.String("topic", p.key.topic), zap.String("qid", p.key.qid),
			zap.Int64("committed", p.tracker.Committable()), zap.Int64("offset", d.Offset))
		p.tracker = offset.New(d.Offset)
	}
	p.first = false
	before := p.tracker.Committable()
	if !p.tracker.Start(d.Offset) {
		// Finished before a restart (commit metadata) or a duplicate.
		if p.tracker.Committable() != before {
			e.scheduleCommitLocked(p, now)
		}
		return true
	}
	if !s.PressureTraffic && d.IsPressureTraffic() {
		// Filtered before the chain (behaviour.md §2.4): finished at once.
		p.tracker.Done(d.Offset)
		ut.tm.filtered.Inc()
		e.scheduleCommitLocked(p, now)
		return true
	}
	if p.tracker.Committable() != before {
		e.scheduleCommitLocked(p, now) // moved over a gap
	}
	j := &job{d: d, p: p, off: d.Offset, size: size, nackIdx: -1}
	j.tm = timer{idx: -1, job: j}
	p.jobs.add(j)
	ut.unfinished++
	e.unfinished++
	e.bytes += size
	if d.Shared {
		e.trackSharedLocked(j)
	}

	if s.Order == config.OrderKey && d.Key != "" {
		j.key, j.chained = d.Key, true
		ch := ut.chains[d.Key]
		if ch == nil {
			ch = &deque[*job]{}
			ut.chains[d.Key] = ch
		}
		ch.pushBack(j)
		if ch.len() > 1 {
			e.setStateLocked(j, stKeyWait)
			return true
		}
	}
	e.setStateLocked(j, stReady)
	p.ready.pushBack(j)
	return true
}

// scheduleCommitLocked arranges a commit of p within the commit interval.
func (e *Engine) scheduleCommitLocked(p *part, now time.Time) {
	if p.revoked || p.commitTm.scheduled() || p.commitDue.Load() {
		return
	}
	e.setTimerLocked(&p.commitTm, now.Add(e.commitEvery))
}

// commit commits p's current position if it changed (reader goroutine).
func (e *Engine) commit(p *part) {
	e.mu.Lock()
	co, ok := e.commitValueLocked(p)
	e.unlock()
	if ok {
		p.claim.Commit(co)
	}
}

// commitValueLocked returns p's committable position and whether it
// differs from the last one committed (which it then becomes).
func (e *Engine) commitValueLocked(p *part) (mq.CommittedOffset, bool) {
	if p.tracker == nil {
		return mq.CommittedOffset{}, false
	}
	b, complete := p.tracker.AppendMetadata(p.metaBuf[:0])
	p.metaBuf = b
	off := p.tracker.Committable()
	if off == p.lastCommit.Offset && string(b) == p.lastCommit.Metadata {
		return mq.CommittedOffset{}, false
	}
	if !complete {
		p.ut.tm.truncated.Inc()
	}
	p.lastCommit = mq.CommittedOffset{Offset: off, Metadata: string(b)}
	return p.lastCommit, true
}
