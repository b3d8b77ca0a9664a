package cproxy

import (
	"context"
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
	"github.com/ddmq-go/carrera/internal/config"
	"github.com/ddmq-go/carrera/internal/mq"
)

// Low-level API bounds (behaviour.md §2.11).
const (
	// DefaultFetcherIdleTimeout stops a fetcher after this long without a
	// fetch or ack.
	DefaultFetcherIdleTimeout = 30 * time.Second
	// maxFetchWait bounds the broker wait of one fetch call, split across
	// its qids, so a fetch answers quickly even with many qids.
	maxFetchWait = 100 * time.Millisecond
	// fetchCallTimeout bounds one fetch call's broker requests.
	fetchCallTimeout = 5 * time.Second
)

// LowLevelAPI serves the low-level fetch/ack calls.
type LowLevelAPI interface {
	// Fetch returns one QidResponse per qid owned by the request's fetcher
	// (never nil).
	Fetch(ctx context.Context, req *consumer.FetchRequest) []*consumer.QidResponse
	// Ack commits the offsets; false if the fetcher is missing or an entry
	// is for a qid it does not own.
	Ack(ctx context.Context, r *consumer.AckResult_) bool
}

// groupFetcher is implemented by readers that read as a named consumer
// group with a tag filter (rocketmq.OffsetReader): brokers may refuse
// pulls of unknown groups, and RocketMQ subscriptions filter by tag.
type groupFetcher interface {
	FetchAs(ctx context.Context, group, tagExpr, topic string, partition int32, offset int64, maxMsgs int,
		wait time.Duration) ([]*mq.Delivery, int64, error)
}

// lowWatermarker is implemented by readers that can list log start offsets
// (kafka.OffsetReader).
type lowWatermarker interface {
	LowWatermarks(ctx context.Context, topic string) (map[int32]int64, error)
}

// LowLevelOptions configures NewLowLevel.
type LowLevelOptions struct {
	Log *zap.Logger
	// Snapshot returns the configuration in force.
	Snapshot func() *config.CProxySnapshot
	// Consumer builds one broker group member of a unit.
	Consumer func(u *config.UnitView) (mq.GroupConsumer, error)
	// Reader returns a cluster's offset reader (nil if none).
	Reader func(cluster string) mq.OffsetReader
	// IdleTimeout stops fetchers without fetch/ack (default 30 s).
	IdleTimeout time.Duration
	// QID names a partition of a cluster (default: the Kafka QID).
	QID func(cluster string, partition int32) string
}

type fetcherKey struct{ group, consumerID string }

// LowLevel owns the fetchers: one per (group, consumerId), each a member of
// the group on every served unit, so the group's partitions are split among
// consumer ids and cproxies. Data is read with the OffsetReader at the
// client's offsets; the membership only decides ownership and commits.
type LowLevel struct {
	o LowLevelOptions

	mu       sync.Mutex
	fetchers map[fetcherKey]*fetcher
	closed   bool
}

// NewLowLevel returns the low-level API server; it starts no goroutine.
func NewLowLevel(o LowLevelOptions) *LowLevel {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultFetcherIdleTimeout
	}
	if o.QID == nil {
		o.QID = QID
	}
	return &LowLevel{o: o, fetchers: map[fetcherKey]*fetcher{}}
}

// qidKey names an owned queue.
type qidKey struct{ topic, qid string }

// owned is one claimed partition of a fetcher.
type owned struct {
	cluster   string
	topic     string
	partition int32
	claim     mq.Claim
	// guarded by fetcher.mu
	committed int64 // last committed offset (Initial or ack), -1 = none
	next      int64 // last nextRequestOffset handed out, -1 = none
}

// fetcher is one consumer id's membership in a low-level group.
type fetcher struct {
	key     fetcherKey
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	lastUse atomic.Int64 // unix nanos

	mu       sync.Mutex
	claims   map[qidKey]*owned
	limiters map[string]*rate.Limiter // per topic
}

func (f *fetcher) touch() { f.lastUse.Store(time.Now().UnixNano()) }

func (f *fetcher) stop() {
	f.cancel()
	f.wg.Wait()
}

// claimHandler records a unit's claims in its fetcher.
type claimHandler struct {
	f       *fetcher
	cluster string
	qid     func(cluster string, partition int32) string
}

func (h *claimHandler) Setup(map[string][]int32) {}
func (h *claimHandler) Cleanup()                 {}

// Claim registers the claim until it ends, draining (and discarding) its
// messages so the backend never stalls: data is read at the client's
// offsets with the OffsetReader.
func (h *claimHandler) Claim(c mq.Claim) {
	k := qidKey{c.Topic(), h.qid(h.cluster, c.Partition())}
	o := &owned{cluster: h.cluster, topic: c.Topic(), partition: c.Partition(), claim: c,
		committed: max(c.Initial().Offset, -1), next: -1}
	h.f.mu.Lock()
	h.f.claims[k] = o
	h.f.mu.Unlock()
	defer func() {
		h.f.mu.Lock()
		if h.f.claims[k] == o {
			delete(h.f.claims, k)
		}
		h.f.mu.Unlock()
	}()
	msgs, done := c.Messages(), c.Context().Done()
	for {
		select {
		case _, ok := <-msgs:
			if !ok {
				return
			}
		case <-done:
			return
		}
	}
}

// lowLevelGroup returns the group's units if it is a low-level group served
// here.
func (l *LowLevel) lowLevelGroup(group string) (*config.CProxySnapshot, *config.GroupView, []*config.UnitView) {
	snap := l.o.Snapshot()
	if snap == nil {
		return nil, nil, nil
	}
	gv, ok := snap.Group(group)
	if !ok || gv.Kind != config.KindLowLevel {
		return nil, nil, nil
	}
	units := snap.UnitsOf(group)
	if len(units) == 0 {
		return nil, nil, nil
	}
	return snap, gv, units
}

// fetcherFor returns the consumer id's fetcher, creating it (at most
// asyncThreads per group) if needed; nil if refused.
func (l *LowLevel) fetcherFor(gv *config.GroupView, units []*config.UnitView, consumerID string) *fetcher {
	k := fetcherKey{gv.Name, consumerID}
	l.mu.Lock()
	defer l.mu.Unlock()
	if f, ok := l.fetchers[k]; ok {
		return f
	}
	if l.closed {
		return nil
	}
	if limit := gv.Config.AsyncThreads; limit > 0 {
		n := 0
		for fk := range l.fetchers {
			if fk.group == gv.Name {
				n++
			}
		}
		if n >= limit {
			l.o.Log.Warn("fetcher limit (asyncThreads) reached", zap.String("group", gv.Name),
				zap.String("consumerId", consumerID), zap.Int("limit", limit))
			return nil
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &fetcher{key: k, cancel: cancel, claims: map[qidKey]*owned{}, limiters: map[string]*rate.Limiter{}}
	f.touch()
	started := 0
	for _, u := range units {
		c, err := l.o.Consumer(u)
		if err != nil {
			l.o.Log.Error("cannot create fetcher consumer", zap.String("unit", u.Key.String()), zap.Error(err))
			continue
		}
		started++
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			if err := c.Run(ctx, &claimHandler{f: f, cluster: u.Key.Cluster, qid: l.o.QID}); err != nil && !errors.Is(err, context.Canceled) {
				l.o.Log.Error("fetcher consumer stopped", zap.String("unit", u.Key.String()),
					zap.String("consumerId", consumerID), zap.Error(err))
			}
		}()
	}
	if started == 0 {
		cancel()
		return nil
	}
	l.o.Log.Info("fetcher started", zap.String("group", gv.Name), zap.String("consumerId", consumerID), zap.Int("units", started))
	l.fetchers[k] = f
	return f
}

// Fetch implements LowLevelAPI.
func (l *LowLevel) Fetch(ctx context.Context, req *consumer.FetchRequest) []*consumer.QidResponse {
	out := []*consumer.QidResponse{}
	if req == nil || req.GroupId == "" {
		return out
	}
	snap, gv, units := l.lowLevelGroup(req.GroupId)
	if gv == nil {
		return out
	}
	f := l.fetcherFor(gv, units, req.ConsumerId)
	if f == nil {
		return out
	}
	f.touch()
	defer f.touch()

	f.mu.Lock()
	list := make([]*owned, 0, len(f.claims))
	for _, o := range f.claims {
		list = append(list, o)
	}
	f.mu.Unlock()
	if len(list) == 0 {
		return out // still joining, or nothing assigned to this consumer id
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].topic != list[j].topic {
			return list[i].topic < list[j].topic
		}
		if list[i].cluster != list[j].cluster {
			return list[i].cluster < list[j].cluster
		}
		return list[i].partition < list[j].partition
	})

	ctx, cancel := context.WithTimeout(ctx, fetchCallTimeout)
	defer cancel()
	budget := min(max(time.Duration(req.GetMaxLingerTime())*time.Millisecond, 0), maxFetchWait)
	wait := budget / time.Duration(len(list))
	counts := map[string]int{}
	for _, o := range list {
		qr := l.fetchOne(ctx, snap, f, o, req, wait)
		counts[o.topic] += len(qr.Messages)
		out = append(out, qr)
	}
	l.throttle(ctx, snap, f, counts)
	return out
}

// fetchOne reads one owned qid at the request's (or the remembered) offset.
func (l *LowLevel) fetchOne(ctx context.Context, snap *config.CProxySnapshot, f *fetcher, o *owned,
	req *consumer.FetchRequest, wait time.Duration,
) *consumer.QidResponse {
	qid := l.o.QID(o.cluster, o.partition)
	qr := &consumer.QidResponse{Topic: o.topic, Qid: qid, Messages: []*consumer.Message{}}
	reader := l.o.Reader(o.cluster)
	start, ok := req.FetchOffset[o.topic][qid]
	if !ok {
		f.mu.Lock()
		start = o.next
		if start < 0 {
			start = o.committed
		}
		f.mu.Unlock()
	}
	if start < 0 && reader != nil {
		start = l.watermark(ctx, reader, o, true)
	}
	if start < 0 || reader == nil {
		// Cannot tell where to start: list the qid without messages.
		if start >= 0 {
			qr.NextRequestOffset = &start
		}
		return qr
	}
	maxMsgs := maxPullBatch(snap, f.key.group, o)
	if bs := req.GetMaxBatchSize(); bs > 0 {
		maxMsgs = min(maxMsgs, int(bs))
	}
	maxMsgs = max(maxMsgs, 1)
	var (
		msgs []*mq.Delivery
		next int64
		err  error
	)
	if gf, ok := reader.(groupFetcher); ok {
		msgs, next, err = gf.FetchAs(ctx, f.key.group, tagExpr(snap, f.key.group, o), o.topic, o.partition, start, maxMsgs, wait)
	} else {
		msgs, next, err = reader.Fetch(ctx, o.topic, o.partition, start, maxMsgs, wait)
	}
	switch {
	case errors.Is(err, mq.ErrOffsetOutOfRange):
		next = l.correct(ctx, reader, o, start)
		msgs = nil
	case err != nil:
		l.o.Log.Warn("low-level fetch failed", zap.String("group", f.key.group), zap.String("topic", o.topic),
			zap.String("qid", qid), zap.Int64("offset", start), zap.Error(err))
		next, msgs = start, nil
	}
	skipPressure := !pressureTraffic(snap, f.key.group, o)
	for _, d := range msgs {
		if skipPressure && d.IsPressureTraffic() {
			continue
		}
		qr.Messages = append(qr.Messages, toThrift(d))
	}
	if len(msgs) > 0 && len(qr.Messages) == 0 && next > start {
		// Everything read was pressure traffic: store the next offset as
		// the group's position (behaviour.md §2.11), as an ack would.
		f.mu.Lock()
		o.claim.Commit(mq.CommittedOffset{Offset: next})
		o.committed = next
		f.mu.Unlock()
	}
	qr.NextRequestOffset = &next
	f.mu.Lock()
	o.next = next
	f.mu.Unlock()
	return qr
}

// watermark returns the partition's high (or low) watermark; -1 on error.
func (l *LowLevel) watermark(ctx context.Context, r mq.OffsetReader, o *owned, high bool) int64 {
	var (
		m   map[int32]int64
		err error
	)
	if high {
		m, err = r.HighWatermarks(ctx, o.topic)
	} else if lw, ok := r.(lowWatermarker); ok {
		m, err = lw.LowWatermarks(ctx, o.topic)
	} else {
		return 0
	}
	if err != nil {
		l.o.Log.Warn("low-level fetch: watermarks", zap.String("topic", o.topic), zap.Error(err))
		return -1
	}
	if v, ok := m[o.partition]; ok {
		return v
	}
	return -1
}

// correct returns where to restart after an out-of-range start: the high
// watermark when start is beyond it, else the low watermark.
func (l *LowLevel) correct(ctx context.Context, r mq.OffsetReader, o *owned, start int64) int64 {
	hw := l.watermark(ctx, r, o, true)
	if hw < 0 {
		return start
	}
	if start >= hw {
		return hw
	}
	if lw := l.watermark(ctx, r, o, false); lw >= 0 && lw <= hw {
		return lw
	}
	return hw
}

// tagExpr is the subscription's tag expression of o's topic ("*" if none).
func tagExpr(snap *config.CProxySnapshot, group string, o *owned) string {
	if u, ok := snap.Unit(group, o.cluster); ok {
		if s, ok := u.Subscription(o.topic); ok && s.TagExpression != "" {
			return s.TagExpression
		}
	}
	return "*"
}

// pressureTraffic reports whether o's subscription delivers messages
// flagged isPressureTraffic=true (default false: they are skipped).
func pressureTraffic(snap *config.CProxySnapshot, group string, o *owned) bool {
	if u, ok := snap.Unit(group, o.cluster); ok {
		if s, ok := u.Subscription(o.topic); ok {
			return s.Config.PressureTraffic
		}
	}
	return false
}

// maxPullBatch is the subscription's maxPullBatchSize of o's topic.
func maxPullBatch(snap *config.CProxySnapshot, group string, o *owned) int {
	if u, ok := snap.Unit(group, o.cluster); ok {
		if s, ok := u.Subscription(o.topic); ok && s.Config.MaxPullBatchSize > 0 {
			return s.Config.MaxPullBatchSize
		}
	}
	return config.DefaultMaxPullBatchSize
}

// throttle blocks on each topic's maxTps limiter for the messages returned
// (per fetcher and topic), bounded by ctx.
func (l *LowLevel) throttle(ctx context.Context, snap *config.CProxySnapshot, f *fetcher, counts map[string]int) {
	for topic, n := range counts {
		if n == 0 {
			continue
		}
		tps := l.maxTps(snap, f.key.group, topic)
		if tps <= 0 {
			continue
		}
		burst := max(int(tps), 1)
		f.mu.Lock()
		lim, ok := f.limiters[topic]
		if !ok || lim.Limit() != rate.Limit(tps) {
			lim = rate.NewLimiter(rate.Limit(tps), burst)
			f.limiters[topic] = lim
		}
		f.mu.Unlock()
		for n > 0 {
			k := min(n, burst)
			if lim.WaitN(ctx, k) != nil {
				return
			}
			n -= k
		}
	}
}

// maxTps is the smallest positive maxTps of the group's subscriptions of
// topic (0 = unlimited).
func (l *LowLevel) maxTps(snap *config.CProxySnapshot, group, topic string) float64 {
	var tps float64
	for _, u := range snap.UnitsOf(group) {
		if s, ok := u.Subscription(topic); ok && s.Config.MaxTps > 0 && (tps == 0 || s.Config.MaxTps < tps) {
			tps = s.Config.MaxTps
		}
	}
	return tps
}

// Ack implements LowLevelAPI.
func (l *LowLevel) Ack(_ context.Context, r *consumer.AckResult_) bool {
	if r == nil || len(r.Offsets) == 0 {
		return true
	}
	l.mu.Lock()
	f := l.fetchers[fetcherKey{r.GroupId, r.ConsumerId}]
	l.mu.Unlock()
	if f == nil {
		return false
	}
	f.touch()
	// Unknown topics/qids (e.g. moved away by a rebalance) are skipped with
	// a warning and do not make the answer false (behaviour.md §2.11).
	f.mu.Lock()
	defer f.mu.Unlock()
	for topic, qids := range r.Offsets {
		for qid, off := range qids {
			o, ok := f.claims[qidKey{topic, qid}]
			if !ok || off < 0 {
				l.o.Log.Warn("low-level ack for a qid not owned by the fetcher; skipped", zap.String("group", r.GroupId),
					zap.String("consumerId", r.ConsumerId), zap.String("topic", topic), zap.String("qid", qid), zap.Int64("offset", off))
				continue
			}
			o.claim.Commit(mq.CommittedOffset{Offset: off})
			o.committed = off
		}
	}
	return true
}

// RunIdle stops fetchers without fetch/ack for the idle timeout, checking
// every interval, until ctx is done.
func (l *LowLevel) RunIdle(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			l.stopWhere(func(_ fetcherKey, f *fetcher) bool {
				return now.Sub(time.Unix(0, f.lastUse.Load())) >= l.o.IdleTimeout
			}, "stopping idle fetcher")
		}
	}
}

// Apply stops the fetchers of groups whose units changed or were removed
// (they restart on their next fetch).
func (l *LowLevel) Apply(old, next *config.CProxySnapshot) {
	diff := config.DiffCProxySnapshots(old, next)
	restart := map[string]bool{}
	for _, k := range append(append(append([]config.UnitKey{}, diff.Added...), diff.Removed...), diff.Changed...) {
		restart[k.Group] = true
	}
	for _, g := range diff.GroupsRemoved {
		restart[g] = true
	}
	if len(restart) == 0 {
		return
	}
	l.stopWhere(func(k fetcherKey, _ *fetcher) bool { return restart[k.group] }, "configuration changed: stopping fetcher")
}

func (l *LowLevel) stopWhere(pred func(fetcherKey, *fetcher) bool, msg string) {
	l.mu.Lock()
	var stop []*fetcher
	for k, f := range l.fetchers {
		if pred(k, f) {
			stop = append(stop, f)
			delete(l.fetchers, k)
		}
	}
	l.mu.Unlock()
	var wg sync.WaitGroup
	for _, f := range stop {
		l.o.Log.Info(msg, zap.String("group", f.key.group), zap.String("consumerId", f.key.consumerID))
		wg.Add(1)
		go func() { defer wg.Done(); f.stop() }()
	}
	wg.Wait()
}

// Close stops every fetcher (each consumer flushes its commits and leaves
// the group) and refuses new ones. Idempotent.
func (l *LowLevel) Close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.stopWhere(func(fetcherKey, *fetcher) bool { return true }, "stopping fetcher")
}
