package engine

import (
	"context"
	"errors"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/ddmq-go/carrera/internal/config"
	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/offset"
)

// ErrClosed is returned by Pull once the engine is closing.
var ErrClosed = errors.New("engine: closed")

// Defaults of Options.
const (
	DefaultMaxBufferedBytes  = 64 << 20
	DefaultCommitInterval    = 100 * time.Millisecond
	DefaultDeadLetterTimeout = 10 * time.Second
	// MinLinger is the shortest long-poll (behaviour.md §2.5 step 6).
	MinLinger = 20 * time.Millisecond
	// MaxWaiters bounds the parked long-polls per topic key (and for "any
	// topic"); a pull beyond it is answered empty at once.
	MaxWaiters = 1000
	// maxIdle bounds the scheduler's sleep, so a clock injected through
	// Options.Now that jumps is noticed within it even without timers due.
	maxIdle = time.Second
	// partitionsTimeout bounds one Options.Partitions call.
	partitionsTimeout = 5 * time.Second
)

// Options configures an Engine. Only Group is required.
type Options struct {
	// Group is the consumer group (for logs and the metrics' group label).
	Group string
	// Log receives the engine's logs; the drop log is its child "drop".
	// nil = no logs.
	Log *zap.Logger
	// Registerer, when set, receives the engine's metrics (with a constant
	// label group). Engines of several groups, or a restarted engine of one
	// group, may share a registerer.
	Registerer prometheus.Registerer
	// Now is the clock (default time.Now). Every deadline, retry time,
	// limiter decision and LastPull uses it; waiting uses runtime timers
	// for the difference, re-checked at least every second.
	Now func() time.Time
	// DeadLetter publishes an exhausted message to a dead-letter topic (on
	// the subscription's cluster) and returns nil once the broker stored
	// it. It is called from one engine goroutine, one message at a time,
	// with a context bounded by DeadLetterTimeout and cancelled by Close.
	// DeadLetter and DeadLetterOn both nil = only the drop policy is
	// available (a unit configured with a dead-letter topic then drops,
	// logged as such).
	DeadLetter func(ctx context.Context, topic string, d *mq.Delivery) error
	// DeadLetterOn is DeadLetter with the broker cluster of the unit the
	// message came from (the dead-letter topic lives on that cluster). When
	// set it is used instead of DeadLetter.
	DeadLetterOn func(ctx context.Context, cluster, topic string, d *mq.Delivery) error
	// DeadLetterTimeout bounds one DeadLetter call (default 10 s).
	DeadLetterTimeout time.Duration
	// MaxBufferedBytes bounds the body bytes of the unfinished messages of
	// the whole engine; reading pauses above it (one message is always
	// admitted when nothing is buffered). 0 = 64 MiB; negative = no bound.
	MaxBufferedBytes int64
	// MaxRecvMsgsLength caps the body bytes of one pull response (the
	// cproxy node's maxRecvMsgsLength; default 4 MiB). At least one message
	// is always returned.
	MaxRecvMsgsLength int64
	// CommitInterval is the shortest time between two commits of one
	// partition (default 100 ms). A final commit is always made when the
	// claim ends.
	CommitInterval time.Duration
	// Partitions returns the partition count of a topic on a cluster, for
	// the totalMaxTps share (called from ClaimHandler.Setup with a 5 s
	// timeout). nil or an error: the share is unknown and maxTps applies.
	Partitions func(ctx context.Context, cluster, topic string) (int, error)
	// QID names a partition for clients (default: the Kafka format
	// "<cluster>_<partition>", wire-contract.md §5).
	QID func(cluster, topic string, partition int32) string
}

// KafkaQID returns the Kafka QID "<cluster>_<partition>".
func KafkaQID(cluster, _ string, partition int32) string {
	return cluster + "_" + strconv.Itoa(int(partition))
}

// Batch is one pull response: messages of one (topic, qid). An empty Batch
// (no messages, empty names) means nothing was available.
type Batch struct {
	Topic    string
	QID      string
	Cluster  string
	Messages []*mq.Delivery
}

// Stats is a snapshot of the engine's buffers.
type Stats struct {
	Partitions    int   // claimed partitions
	Unfinished    int   // started and not finished messages
	InFlight      int   // handed out and not acknowledged
	BufferedBytes int64 // body bytes of the unfinished messages
	Waiters       int   // parked long-polls
}

// Engine is the pull/submit engine of one consumer group on this cproxy.
// See the package documentation.
type Engine struct {
	group        string
	log, dropLog *zap.Logger
	now          func() time.Time
	m            *metrics
	deadLetter   func(ctx context.Context, cluster, topic string, d *mq.Delivery) error
	dlTimeout    time.Duration
	maxBytes     int64
	maxRecv      int64
	commitEvery  time.Duration
	partitions   func(ctx context.Context, cluster, topic string) (int, error)
	qid          func(cluster, topic string, partition int32) string

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	done   chan struct{} // closed by Close
	kick   chan struct{} // wakes the scheduler early
	dlKick chan struct{} // wakes the dead-letter worker
	wg     sync.WaitGroup
	claims sync.WaitGroup // running ClaimHandler.Claim calls
	once   sync.Once

	lastPull atomic.Int64 // unix nanos of Now() at the last Pull; 0 = never

	mu         sync.Mutex
	closed     bool
	units      map[UnitTopic]*unitTopic
	parts      map[partKey]*part
	all        deque[*part]             // non-empty parts, group-wide round robin
	byTopic    map[string]*deque[*part] // non-empty parts per topic
	waiters    map[string]*waitQueue    // parked pulls by topic ("" = any)
	timers     timerHeap
	sleepUntil time.Time // when the scheduler wakes next
	bytes      int64
	bytesWait  []*part     // readers blocked on MaxBufferedBytes
	dlq        deque[*job] // jobs waiting for a dead-letter attempt
	pullSeq    uint64
	unfinished int
	inFlight   int
	dirty      []*unitTopic // units whose gauges and counters lag (see unlock)
	pubBytes   int64        // e.bytes as last published
	// sharedJobs are the jobs admitted with a shared delivery, by their
	// shareClock stamp; trackSharedLocked gives the unfinished ones their
	// own copy once shareClock moved ShareWindow past them.
	sharedJobs deque[sharedJob]
	// shareClock sums the mq.ShareCost of the shared deliveries admitted;
	// written under mu, read by claim readers without it.
	shareClock atomic.Int64
}

type sharedJob struct {
	j  *job
	at int64
}

// unitTopic is the state of one subscription unit (topic on a cluster).
type unitTopic struct {
	key        UnitTopic
	s          Settings
	configured bool // named by Configure at least once
	lim        *rate.Limiter
	owned      int // partitions of the topic this member owns (last Setup)
	total      int // partitions of the topic (0 = unknown)
	unfinished int
	inFlight   int
	buffered   int
	// Metrics are kept here under the lock and published by unlock: deltas
	// since the last publication (a gauge is shared by engines of the same
	// group, so only ever moved by deltas).
	dirty                    bool
	pulled, acked            int
	pubInFlight, pubBuffered int
	concWait                 []*part                 // readers blocked on Concurrency
	chains                   map[string]*deque[*job] // OrderKey: jobs per key, head released
	tm                       *topicMetrics
}

type partKey struct{ topic, qid string }

type waitQueue struct {
	q    deque[*waiter]
	live int // entries not done
}

// New returns an engine and starts its scheduler (and, with DeadLetter,
// its dead-letter worker). Close stops them.
func New(opts Options) *Engine {
	log := opts.Log
	if log == nil {
		log = zap.NewNop()
	}
	log = log.With(zap.String("group", opts.Group))
	e := &Engine{
		group:       opts.Group,
		log:         log,
		dropLog:     log.Named("drop"),
		now:         opts.Now,
		m:           newMetrics(opts.Group, opts.Registerer),
		deadLetter:  opts.DeadLetterOn,
		dlTimeout:   opts.DeadLetterTimeout,
		maxBytes:    opts.MaxBufferedBytes,
		maxRecv:     opts.MaxRecvMsgsLength,
		commitEvery: opts.CommitInterval,
		partitions:  opts.Partitions,
		qid:         opts.QID,
		done:        make(chan struct{}),
		kick:        make(chan struct{}, 1),
		dlKick:      make(chan struct{}, 1),
		units:       map[UnitTopic]*unitTopic{},
		parts:       map[partKey]*part{},
		byTopic:     map[string]*deque[*part]{},
		waiters:     map[string]*waitQueue{},
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.deadLetter == nil && opts.DeadLetter != nil {
		dl := opts.DeadLetter
		e.deadLetter = func(ctx context.Context, _, topic string, d *mq.Delivery) error { return dl(ctx, topic, d) }
	}
	if e.dlTimeout <= 0 {
		e.dlTimeout = DefaultDeadLetterTimeout
	}
	switch {
	case e.maxBytes == 0:
		e.maxBytes = DefaultMaxBufferedBytes
	case e.maxBytes < 0:
		e.maxBytes = 0 // no bound
	}
	if e.maxRecv <= 0 {
		e.maxRecv = config.DefaultMaxRecvMsgsLength
	}
	if e.commitEvery <= 0 {
		e.commitEvery = DefaultCommitInterval
	}
	if e.qid == nil {
		e.qid = KafkaQID
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.sleepUntil = e.now().Add(maxIdle)
	e.wg.Add(1)
	go e.schedule()
	if e.deadLetter != nil {
		e.wg.Add(1)
		go e.deadLetterLoop()
	}
	return e
}

// Group returns the group name.
func (e *Engine) Group() string { return e.group }

// LastPull returns the time of the last Pull call (zero if none), for the
// lazy stop of idle pull groups.
func (e *Engine) LastPull() time.Time {
	n := e.lastPull.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Stats returns a snapshot of the engine's buffers.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.unlock()
	st := Stats{
		Partitions:    len(e.parts),
		Unfinished:    e.unfinished,
		InFlight:      e.inFlight,
		BufferedBytes: e.bytes,
	}
	for _, wq := range e.waiters {
		st.Waiters += wq.live
	}
	return st
}

// Configure sets the settings of the named units (live: new limits apply
// to the next read, pull or retry; deadlines already set are kept). Units
// not named keep their settings. A unit claimed before it was configured
// uses DefaultSettings.
func (e *Engine) Configure(subs map[UnitTopic]Settings) {
	e.mu.Lock()
	defer e.unlock()
	now := e.now()
	for k, s := range subs {
		ns := s.normalized()
		if ns.Order == config.OrderJSONPath {
			e.log.Warn("orderKey JsonPath is not supported for pull subscriptions; messages are not ordered",
				zap.Stringer("unit", k))
		}
		ut := e.unitLocked(k)
		ut.s = ns
		ut.configured = true
		e.applyRateLocked(ut, now)
	}
	// Limits may have grown and the ordering may have changed: let every
	// reader re-check and every partition offer its work again.
	for _, ut := range e.units {
		ut.concWait = ut.concWait[:0]
	}
	e.bytesWait = e.bytesWait[:0]
	for _, p := range e.parts {
		p.blocked = blockNone
		signal(p.wake)
		e.offerLocked(p, now)
	}
}

// unitLocked returns the state of k, creating it with default settings.
func (e *Engine) unitLocked(k UnitTopic) *unitTopic {
	ut := e.units[k]
	if ut == nil {
		ut = &unitTopic{
			key:    k,
			s:      DefaultSettings().normalized(),
			lim:    rate.NewLimiter(rate.Inf, 1),
			chains: map[string]*deque[*job]{},
			tm:     e.m.topic(k.Topic),
		}
		e.units[k] = ut
	}
	return ut
}

// rateOf returns the consume rate of a unit (behaviour.md §2.3).
func rateOf(s *Settings, owned, total int) rate.Limit {
	switch {
	case s.TotalMaxTps > 0 && owned > 0 && total > 0:
		return rate.Limit(s.TotalMaxTps * float64(min(owned, total)) / float64(total))
	case s.MaxTps > 0:
		return rate.Limit(s.MaxTps)
	case s.TotalMaxTps > 0:
		return rate.Limit(s.TotalMaxTps) // share unknown: the group's rate is the cap
	default:
		return rate.Inf
	}
}

// burstFor allows about one second of the rate (like the Java limiter),
// at least one token.
func burstFor(r rate.Limit) int {
	if r == rate.Inf {
		return 1
	}
	return int(max(1, math.Ceil(float64(r))))
}

func (e *Engine) applyRateLocked(ut *unitTopic, now time.Time) {
	r := rateOf(&ut.s, ut.owned, ut.total)
	old := ut.lim.Limit()
	switch {
	case old == r:
	case old == rate.Inf || r == rate.Inf:
		ut.lim = rate.NewLimiter(r, burstFor(r))
	default:
		ut.lim.SetLimitAt(now, r)
		ut.lim.SetBurstAt(now, burstFor(r))
	}
}

// Handler returns the claim handler of one broker cluster's GroupConsumer.
func (e *Engine) Handler(cluster string) mq.ClaimHandler {
	return &claimHandler{e: e, cluster: cluster}
}

// Close answers parked pulls with ErrClosed, makes every running Claim
// call return (after its final commit), stops the engine's goroutines and
// waits for all of them. Idempotent; concurrent callers wait for the first.
// Stop the GroupConsumers first (cancel their Run context) if their claims
// should end through the group protocol.
func (e *Engine) Close() {
	e.once.Do(func() {
		e.mu.Lock()
		e.closed = true
		for _, wq := range e.waiters {
			for {
				w, ok := wq.q.popFront()
				if !ok {
					break
				}
				if !w.done {
					e.answerLocked(w, pullResult{err: ErrClosed})
				}
			}
		}
		e.unlock()
		e.cancel()
		close(e.done)
		e.claims.Wait()
		e.wg.Wait()
	})
}

// signal does a non-blocking send on a 1-buffered wake-up channel.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// setTimerLocked schedules t at when and wakes the scheduler if it would
// sleep past it.
func (e *Engine) setTimerLocked(t *timer, when time.Time) {
	e.timers.set(t, when)
	if when.Before(e.sleepUntil) {
		signal(e.kick)
	}
}

// schedule is the scheduler goroutine: it fires due timers and sleeps until
// the next one.
func (e *Engine) schedule() {
	defer e.wg.Done()
	t := time.NewTimer(maxIdle)
	defer t.Stop()
	for {
		e.mu.Lock()
		d := e.tickLocked()
		e.unlock()
		t.Reset(d)
		select {
		case <-t.C:
		case <-e.kick:
		case <-e.done:
			return
		}
	}
}

// tickLocked fires every due timer and returns how long to sleep.
func (e *Engine) tickLocked() time.Duration {
	now := e.now()
	for {
		t := e.timers.popDue(now)
		if t == nil {
			break
		}
		e.fireLocked(t, now)
	}
	d := maxIdle
	if top := e.timers.peek(); top != nil {
		d = min(d, top.when.Sub(now))
	}
	d = max(d, 0)
	e.sleepUntil = now.Add(d)
	return d
}

// fireLocked runs a due timer (already removed from the heap).
func (e *Engine) fireLocked(t *timer, now time.Time) {
	switch t.kind {
	case tHandoutDeadline:
		e.expireHandoutLocked(t.h, now)
	case tJobRetry:
		j := t.job
		if j.state == stRetryWait && !j.p.revoked {
			e.setStateLocked(j, stReady)
			j.p.redo.pushBack(j)
			e.offerLocked(j.p, now)
		}
	case tJobDeadLetter:
		j := t.job
		if j.state == stDeadLetter && !j.p.revoked {
			e.dlq.pushBack(j)
			signal(e.dlKick)
		}
	case tWaiter:
		if w := t.w; !w.done {
			e.answerLocked(w, pullResult{})
		}
	case tCommit:
		if p := t.p; !p.revoked {
			p.commitDue.Store(true)
			signal(p.wake)
		}
	case tLimiter:
		signal(t.p.wake)
	}
}

// decodeTracker restores a partition's tracker from its committed state;
// nil when nothing is committed (created at the first message).
func (e *Engine) decodeTracker(init mq.CommittedOffset, topic, qid string) *offset.Tracker {
	if init.Offset < 0 {
		return nil
	}
	tr, err := offset.Decode(init.Offset, init.Metadata)
	if err != nil {
		e.log.Warn("ignoring commit metadata; acknowledged messages above the committed offset will be delivered again",
			zap.String("topic", topic), zap.String("qid", qid), zap.Int64("committed", init.Offset), zap.Error(err))
		tr = offset.New(init.Offset)
	}
	return tr
}
