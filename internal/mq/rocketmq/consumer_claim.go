package rocketmq

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/rocketmq/remoting"
)

// claimRun is one claimed queue from claim to release: its goroutine
// resolves the start offset, runs the pull loop and the handler's Claim,
// and stores the final offset.
type claimRun struct {
	q      mqueue
	p      int32
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the run ended and its offset is stored
	c      *claim
}

func (m *member) newClaimRun(parent context.Context, q mqueue, p int32) *claimRun {
	ctx, cancel := context.WithCancel(parent)
	r := &claimRun{q: q, p: p, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	r.c = &claim{q: q, p: p, ctx: ctx, msgs: make(chan *mq.Delivery, mq.ClaimBuffer), committed: -1, flushed: -1}
	r.c.hw.Store(-1)
	return r
}

// startClaim starts the run's goroutine.
func (m *member) startClaim(r *claimRun) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(r.done)
		m.serveClaim(r)
	}()
}

// serveClaim resolves the start offset, then pulls and hands the claim to
// the handler until the run's context ends; then it stores the final
// offset.
func (m *member) serveClaim(r *claimRun) {
	c := r.c
	start, ok := m.startOffset(r)
	if !ok {
		return // cancelled before the claim started
	}
	c.initial = mq.CommittedOffset{Offset: start}
	c.mu.Lock()
	c.committed, c.flushed, c.delivered, c.pulled = start, start, start, start
	c.mu.Unlock()
	m.log.Debug("rocketmq claim started", zap.Stringer("queue", r.q), zap.Int64("offset", start))

	pullDone := make(chan struct{})
	go func() {
		defer close(pullDone)
		defer close(c.msgs)
		m.pullLoop(r, start)
	}()
	m.h.Claim(c)
	// A handler that returned early still owns the queue until it is
	// revoked (its messages wait in the pull loop).
	<-r.ctx.Done()
	<-pullDone
	c.end()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), m.g.opts.RequestTimeout)
	defer cancel()
	c.flush(ctx, m, false)
	m.log.Debug("rocketmq claim released", zap.Stringer("queue", r.q), zap.Int64("stored", c.storedOffset()))
}

// startOffset returns the group's stored offset of the queue, or — when
// there is none — the consume-from-where position, which it stores at
// once (so a member that dies before its first commit does not make the
// next owner start at "last" again and skip what arrived in between).
// Failures are retried until the run ends (false).
func (m *member) startOffset(r *claimRun) (int64, bool) {
	o := &m.g.opts
	backoff := o.RetryBackoff
	for {
		off, err := m.resolveStart(r.ctx, r.q)
		if err == nil {
			return off, true
		}
		if r.ctx.Err() != nil {
			return 0, false
		}
		m.log.Warn("rocketmq start offset unavailable; retrying", zap.Stringer("queue", r.q),
			zap.Duration("backoff", backoff), zap.Error(err))
		if errors.Is(err, errUnknownBroker) {
			_, _ = m.rpc.fetchRoute(r.ctx, r.q.Topic)
		}
		if !sleepCtx(r.ctx, backoff) {
			return 0, false
		}
		backoff = min(2*backoff, max(maxConsumerBackoff, o.RetryBackoff))
	}
}

func (m *member) resolveStart(ctx context.Context, q mqueue) (int64, error) {
	o := &m.g.opts
	off, found, err := m.rpc.queryOffset(ctx, o.OffsetGroup, q)
	if err != nil {
		return 0, err
	}
	if found {
		return off, nil
	}
	// RocketMQ's RebalancePushImpl.computePullFromWhere, except that
	// "first" starts at the queue's min offset rather than 0.
	retry := isRetryTopic(q.Topic)
	switch {
	case o.ConsumeFrom == ConsumeFromFirstOffset:
		off, err = m.rpc.minOffset(ctx, q)
	case retry && o.ConsumeFrom == ConsumeFromLastOffset:
		off, err = m.rpc.minOffset(ctx, q)
	case retry || o.ConsumeFrom == ConsumeFromLastOffset:
		off, err = m.rpc.maxOffset(ctx, q)
	default:
		off, err = m.rpc.searchOffset(ctx, q, o.ConsumeTimestamp)
	}
	if err != nil {
		return 0, err
	}
	if err := m.rpc.updateOffset(ctx, o.OffsetGroup, q, off, false); err != nil {
		return 0, err
	}
	m.log.Info("rocketmq queue without a stored offset starts at the consume-from-where position (stored)",
		zap.Stringer("queue", q), zap.String("consumeFrom", o.ConsumeFrom), zap.Int64("offset", off))
	return off, nil
}

// pullLoop long-polls the queue from offset and hands matching messages to
// the claim's channel, until the run ends.
func (m *member) pullLoop(r *claimRun, offset int64) {
	o := &m.g.opts
	c := r.c
	filter := m.g.filters[r.q.Topic]
	backoff := o.RetryBackoff
	next := offset
	send := mq.NewBoundedSender(c.msgs)
	for r.ctx.Err() == nil {
		res, err := m.rpc.pull(r.ctx, o.Group, r.q, next, o.PullBatchSize, o.PullSuspend, filter)
		if err != nil {
			if r.ctx.Err() != nil {
				return
			}
			m.log.Warn("rocketmq pull failed; retrying", zap.Stringer("queue", r.q), zap.Int64("offset", next),
				zap.Duration("backoff", backoff), zap.Error(err))
			if !errors.Is(err, mq.ErrTimeout) {
				_, _ = m.rpc.fetchRoute(r.ctx, r.q.Topic) // the broker may have moved
			}
			if !sleepCtx(r.ctx, backoff) {
				return
			}
			backoff = min(2*backoff, max(maxConsumerBackoff, o.RetryBackoff))
			continue
		}
		backoff = o.RetryBackoff
		if res.maxO > 0 || res.code == remoting.Success {
			c.hw.Store(res.maxO)
		}
		switch res.code {
		case remoting.Success:
			last := next - 1
			for i := range res.msgs {
				sm := &res.msgs[i]
				if sm.QueueOffset < next {
					continue
				}
				last = max(last, sm.QueueOffset)
				props := storedProps(sm)
				if !filter.match(props[remoting.PropertyTags]) {
					continue
				}
				d, err := toDelivery(r.q, r.p, sm, props)
				if err != nil {
					m.log.Error("rocketmq message cannot be decoded; skipped", zap.Stringer("queue", r.q),
						zap.Int64("offset", sm.QueueOffset), zap.Error(err))
					continue
				}
				if !send.Send(r.ctx, d) {
					return
				}
				c.deliveredUpTo(d.Offset + 1)
			}
			next = max(res.next, last+1)
		case remoting.PullNotFound, remoting.PullRetryImmediately:
			// Nothing new, or nothing matching the tags up to next.
			if res.next >= 0 {
				next = res.next
			}
		case remoting.PullOffsetMoved:
			select {
			case m.resets <- offsetReset{run: r, next: res.next}:
			case <-r.ctx.Done():
			}
			<-r.ctx.Done()
			return
		}
		c.pulledUpTo(next)
	}
}

// claim implements mq.Claim for one queue.
type claim struct {
	q       mqueue
	p       int32
	ctx     context.Context
	initial mq.CommittedOffset
	msgs    chan *mq.Delivery
	hw      atomic.Int64

	mu        sync.Mutex
	ended     bool
	committed int64 // last Commit (the start offset before any)
	flushed   int64 // last offset sent to the broker
	delivered int64 // offset after the last message handed out
	pulled    int64 // offset after the last pull whose matching messages were all handed out
}

var _ mq.Claim = (*claim)(nil)

func (c *claim) Topic() string                 { return c.q.Topic }
func (c *claim) Partition() int32              { return c.p }
func (c *claim) Context() context.Context      { return c.ctx }
func (c *claim) Initial() mq.CommittedOffset   { return c.initial }
func (c *claim) Messages() <-chan *mq.Delivery { return c.msgs }

// HighWatermark implements mq.Claim: the queue's max offset from the last
// pull answer (-1 before the first).
func (c *claim) HighWatermark() int64 { return c.hw.Load() }

// Commit implements mq.Claim. RocketMQ stores no metadata: co.Metadata is
// dropped, so messages acknowledged above co.Offset are delivered again
// after a restart (at-least-once). Negative offsets are ignored; the offset
// reaches the broker at the member's next flush and when the claim ends.
func (c *claim) Commit(co mq.CommittedOffset) {
	if co.Offset < 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ended {
		c.committed = co.Offset
	}
}

func (c *claim) deliveredUpTo(off int64) {
	c.mu.Lock()
	c.delivered = max(c.delivered, off)
	c.mu.Unlock()
}

func (c *claim) pulledUpTo(off int64) {
	c.mu.Lock()
	c.pulled = max(c.pulled, off)
	c.mu.Unlock()
}

func (c *claim) end() {
	c.mu.Lock()
	c.ended = true
	c.mu.Unlock()
}

func (c *claim) storedOffset() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flushed
}

// flushValue is the offset to store: the last commit — or, when every
// message handed out is finished (committed at the delivered position),
// the pulled position, which moves over messages the tag filter dropped
// (as the Java client's correctTagsOffset does).
func (c *claim) flushValueLocked() int64 {
	v := c.committed
	if v >= c.delivered && c.pulled > v {
		v = c.pulled
	}
	return v
}

// flush stores the offset if it changed since the last flush.
func (c *claim) flush(ctx context.Context, m *member, oneway bool) {
	c.mu.Lock()
	v := c.flushValueLocked()
	same := v == c.flushed
	c.mu.Unlock()
	if same || v < 0 {
		return
	}
	if err := m.rpc.updateOffset(ctx, m.g.opts.OffsetGroup, c.q, v, oneway); err != nil {
		if ctx.Err() == nil {
			m.log.Warn("rocketmq offset not stored; retried at the next flush", zap.Stringer("queue", c.q),
				zap.Int64("offset", v), zap.Error(err))
		}
		return
	}
	c.mu.Lock()
	c.flushed = v
	c.mu.Unlock()
}
