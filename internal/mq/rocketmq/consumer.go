package rocketmq

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/rocketmq/remoting"
)

// Consumer side of the RocketMQ backend (GroupConsumer, OffsetReader).
//
// Decision: cproxy does not use rocketmq-client-go's push or pull consumer.
// The group member is built on the project's own remoting client
// (internal/rocketmq/remoting), because (1) offsets must move only under
// cproxy's control — the library persists its consumers' offsets on its own
// timer, which would commit messages still in flight (behaviour.md §2.2);
// (2) the library's consumers have data races (test-environment.md §3.6),
// which would push cproxy's tests out of -race; (3) the library offers no
// API for max/min offsets, stored offsets or send-back, which cproxy needs
// anyway. On the wire the member behaves like a Java clustering push
// consumer, so Java and Go members of one group interoperate:
//
//   - HEART_BEAT (34) at start, every HeartbeatInterval and to every broker
//     newly seen in a route: consumerDataSet {groupName, CONSUME_PASSIVELY,
//     CLUSTERING|BROADCASTING, consumeFromWhere, one subscription per topic
//     with its tag expression — including %RETRY%<group> for clustering};
//     client id "ip@instance#seq", unique per GroupConsumer.
//   - Rebalance at start, every RebalanceInterval (20 s) and at once on a
//     broker's NOTIFY_CONSUMER_IDS_CHANGED (40): per topic the readable
//     queues from the route and GET_CONSUMER_LIST_BY_GROUP (38) from one of
//     its brokers, allocated with AllocateMessageQueueAveragely
//     (rebalance.go). Topics whose route or member list is unavailable keep
//     their claims. Rebalancing is incremental: claims of queues kept
//     across a change continue; ClaimHandler.Setup gets every new complete
//     assignment, Cleanup is called once at the end.
//   - Per claimed queue, two goroutines: the claim's (start offset, handler,
//     final offset) and its pull loop (PULL_MESSAGE 11, long-polling up to
//     PullSuspend, tags filtered on the broker and here).
//   - Start offset: QUERY_CONSUMER_OFFSET (14); without one (22) the
//     consume-from-where position (last → GET_MAX_OFFSET 30, first →
//     GET_MIN_OFFSET 31, timestamp → SEARCH_OFFSET_BY_TIMESTAMP 29; retry
//     topics: first/min for "last", max for "timestamp", as the Java
//     client), stored at once (DESIGN #18's reasoning).
//   - Claim.Commit keeps the offset in memory; it is stored with
//     UPDATE_CONSUMER_OFFSET (15) every CommitInterval (persistConsumerOffsetInterval,
//     "oneway" as the clients do) and synchronously when the claim ends.
//     RocketMQ has no commit metadata: CommittedOffset.Metadata is dropped,
//     so messages acknowledged above an unacknowledged one are delivered
//     again after a restart or a rebalance (at-least-once). When everything
//     handed out is committed, the stored offset moves past messages the tag
//     filter dropped (the Java client's correctTagsOffset).
//   - PULL_OFFSET_MOVED (21): the claim ends, the broker's corrected offset
//     is stored and the queue is claimed again from it.
//   - Stop: every claim ends (final offsets stored), UNREGISTER_CLIENT (35)
//     to every broker heartbeated (a broker that does not support it drops
//     the member when the connection closes), connections closed.
//
// Broadcasting (ConsumerOptions.Broadcasting): every member claims every
// queue and does not subscribe the retry topic. RocketMQ keeps broadcast
// offsets on the client; here they are kept at the broker under a group
// name of their own per member (ConsumerOptions.OffsetGroup; cproxy uses
// "<group>_BROADCAST_<instance>"), so they survive a restart of the
// instance without a local file, and getConsumeStats can show them.
//
// Queues are numbered for the mq contract by QueuePartition
// (brokerIndex<<16 | queueId, process-local); mq.Delivery.Handle carries
// what SendBack (CONSUMER_SEND_MSG_BACK 36, delay level 0) needs.

var _ mq.GroupConsumer = (*GroupConsumer)(nil)

// maxConsumerBackoff caps the doubling waits of a member (failed rebalance,
// failed pulls, failed offset queries).
const maxConsumerBackoff = 10 * time.Second

// GroupConsumer is one member of a RocketMQ consumer group, built on the
// project's own remoting client (see doc.go, "Consumer"): it heartbeats,
// rebalances like a Java clustering consumer (AllocateMessageQueueAveragely)
// or claims every queue (broadcasting), long-polls each claimed queue and
// stores offsets only through Claim.Commit. Create it with NewGroupConsumer
// and call Run once.
type GroupConsumer struct {
	opts     ConsumerOptions
	log      *zap.Logger
	clientID string
	// filters by subscribed topic, including %RETRY%<group> for a
	// clustering member.
	filters map[string]*tagFilter
	topics  []string // sorted keys of filters
	started atomic.Bool
}

// NewGroupConsumer validates opts. It does not contact the cluster: Run
// does, and keeps retrying while it is unreachable. log may be nil.
func NewGroupConsumer(opts ConsumerOptions, log *zap.Logger) (*GroupConsumer, error) {
	if log == nil {
		log = zap.NewNop()
	}
	opts.applyDefaults()
	if err := opts.validateGroup(); err != nil {
		return nil, err
	}
	g := &GroupConsumer{opts: opts, clientID: opts.newClientID(), filters: map[string]*tagFilter{}}
	for _, s := range opts.Subscriptions {
		g.filters[s.Topic] = newTagFilter(s.Expression)
	}
	if !opts.Broadcasting && !opts.SkipRetryTopic {
		// A clustering member consumes its group's redeliveries too, as
		// every Java push consumer does.
		if _, ok := g.filters[groupRetryTopic(opts.Group)]; !ok {
			g.filters[groupRetryTopic(opts.Group)] = newTagFilter("*")
		}
	}
	g.topics = slices.Sorted(maps.Keys(g.filters))
	g.log = log.With(zap.String("cluster", opts.Cluster), zap.String("group", opts.Group),
		zap.String("clientId", g.clientID))
	return g, nil
}

// ClientID returns the member's RocketMQ client id, "ip@instance".
func (g *GroupConsumer) ClientID() string { return g.clientID }

// Topics returns the topics the member claims queues of, including the
// group's retry topic for a clustering member.
func (g *GroupConsumer) Topics() []string { return slices.Clone(g.topics) }

// Run implements mq.GroupConsumer. It registers the member (heartbeat),
// rebalances at once, every RebalanceInterval and whenever a broker
// notifies a membership change, and serves each claimed queue to h until
// ctx is done. Errors on the way (unreachable NameServer or brokers, a
// missing topic) are logged and retried. On return every claim has ended,
// its offset is stored at the broker, and the member has unregistered.
// Run returns nil when ctx ended it; it may be called only once.
func (g *GroupConsumer) Run(ctx context.Context, h mq.ClaimHandler) error {
	if !g.started.CompareAndSwap(false, true) {
		return errors.New("rocketmq: GroupConsumer.Run called twice")
	}
	m := &member{
		g:      g,
		h:      h,
		log:    g.log,
		claims: map[mqueue]*claimRun{},
		hbDone: map[string]bool{},
		notify: make(chan struct{}, 1),
		resets: make(chan offsetReset, 16),
	}
	m.rpc = newBrokerRPC(&g.opts, g.log, m.onServerRequest)
	m.run(ctx)
	return nil
}

// offsetReset asks the member to restart a claim at a broker-corrected
// offset (PULL_OFFSET_MOVED).
type offsetReset struct {
	run  *claimRun
	next int64
}

// member is the state of one Run: owned by the Run goroutine except where
// noted.
type member struct {
	g   *GroupConsumer
	h   mq.ClaimHandler
	log *zap.Logger
	rpc *brokerRPC

	claims   map[mqueue]*claimRun
	hbDone   map[string]bool // broker addresses heartbeated at least once
	setupRan bool
	notify   chan struct{}    // 1-buffered: a broker said the group changed
	resets   chan offsetReset // from pull loops
	wg       sync.WaitGroup   // claim goroutines
}

func (m *member) run(ctx context.Context) {
	o := &m.g.opts
	m.log.Info("rocketmq group member starting", zap.Strings("nameServers", o.NameServers),
		zap.Strings("topics", m.g.topics), zap.Bool("broadcasting", o.Broadcasting),
		zap.String("consumeFrom", o.ConsumeFrom))
	hb := time.NewTicker(o.HeartbeatInterval)
	defer hb.Stop()
	rb := time.NewTicker(o.RebalanceInterval)
	defer rb.Stop()
	rt := time.NewTicker(o.RouteInterval)
	defer rt.Stop()
	fl := time.NewTicker(o.CommitInterval)
	defer fl.Stop()
	retry := time.NewTimer(0) // the first rebalance
	defer retry.Stop()
	backoff := o.RetryBackoff

	for {
		select {
		case <-ctx.Done():
			m.stop()
			return
		case <-retry.C:
			if m.rebalance(ctx) {
				backoff = o.RetryBackoff
			} else if ctx.Err() == nil {
				retry.Reset(backoff)
				backoff = min(2*backoff, max(maxConsumerBackoff, o.RetryBackoff))
			}
		case <-rb.C:
			m.rebalance(ctx)
		case <-m.notify:
			m.log.Debug("broker notified a membership change; rebalancing")
			m.rebalance(ctx)
		case <-hb.C:
			m.heartbeatAll(ctx, false)
		case <-rt.C:
			for _, t := range m.g.topics {
				if _, err := m.rpc.fetchRoute(ctx, t); err != nil && ctx.Err() == nil {
					m.log.Warn("rocketmq route refresh failed", zap.String("topic", t), zap.Error(err))
				}
			}
			m.heartbeatAll(ctx, true) // brokers new in the routes
		case <-fl.C:
			m.flushAll(ctx)
		case r := <-m.resets:
			m.reset(ctx, r)
		}
	}
}

// stop ends every claim (each stores its final offset), cleans the handler
// up, unregisters and closes the connections.
func (m *member) stop() {
	runs := slices.Collect(maps.Values(m.claims))
	m.endClaims(runs)
	m.claims = map[mqueue]*claimRun{}
	m.wg.Wait()
	m.h.Cleanup()
	m.unregister()
	m.rpc.close()
	m.log.Info("rocketmq group member stopped")
}

// onServerRequest handles broker → client requests (on a connection's
// goroutine): NOTIFY_CONSUMER_IDS_CHANGED of this group triggers a
// rebalance; it needs no answer.
func (m *member) onServerRequest(req *remoting.Command) *remoting.Command {
	if req.Code == remoting.NotifyConsumerIDsChanged {
		if g := req.Ext("consumerGroup"); g == "" || g == m.g.opts.Group {
			select {
			case m.notify <- struct{}{}:
			default:
			}
		}
		return nil
	}
	return remoting.NewResponse(req, remoting.RequestCodeNotSupported, "not supported by this client")
}

// rebalance computes the member's queues and applies the difference. It
// reports whether every topic was rebalanced (false: retry soon). Topics
// whose route or member list is unavailable keep their current claims.
func (m *member) rebalance(ctx context.Context) bool {
	o := &m.g.opts
	ok := true
	want := map[mqueue]bool{}
	keep := map[string]bool{} // topics whose current claims stay as they are
	for _, topic := range m.g.topics {
		rt, err := m.rpc.route(ctx, topic)
		if err != nil {
			if ctx.Err() == nil {
				m.log.Warn("rocketmq rebalance: no route; keeping the topic's queues", zap.String("topic", topic), zap.Error(err))
			}
			ok, keep[topic] = false, true
			continue
		}
		m.heartbeatAll(ctx, true) // a member must be registered before it asks for the members
		if o.Broadcasting {
			for _, q := range rt.queues {
				want[q] = true
			}
			continue
		}
		cids, err := m.members(ctx, rt)
		if err != nil {
			if ctx.Err() == nil {
				m.log.Warn("rocketmq rebalance: member list unavailable; keeping the topic's queues",
					zap.String("topic", topic), zap.Error(err))
			}
			ok, keep[topic] = false, true
			continue
		}
		for _, q := range allocateAveragely(m.g.clientID, cids, rt.queues) {
			want[q] = true
		}
	}
	if ctx.Err() != nil {
		return false
	}
	for q := range m.claims {
		if keep[q.Topic] {
			want[q] = true
		}
	}
	var removed []*claimRun
	for q, r := range m.claims {
		if !want[q] {
			removed = append(removed, r)
		}
	}
	var added []mqueue
	for q := range want {
		if _, ok := m.claims[q]; !ok {
			added = append(added, q)
		}
	}
	if len(removed) == 0 && len(added) == 0 && m.setupRan {
		return ok
	}
	if len(removed) > 0 {
		m.endClaims(removed)
		for _, r := range removed {
			delete(m.claims, r.q)
		}
	}
	slices.SortFunc(added, compareQueues)
	assigned := map[string][]int32{}
	var startNow []*claimRun
	for _, q := range added {
		p, pok := QueuePartition(q.Broker, q.QueueID)
		if !pok {
			m.log.Error("rocketmq queue cannot be numbered; not consumed", zap.Stringer("queue", q))
			continue
		}
		r := m.newClaimRun(ctx, q, p)
		m.claims[q] = r
		startNow = append(startNow, r)
	}
	for q, r := range m.claims {
		assigned[q.Topic] = append(assigned[q.Topic], r.p)
	}
	for _, ps := range assigned {
		slices.Sort(ps)
	}
	m.log.Info("rocketmq rebalance: assignment changed", zap.Int("queues", len(m.claims)),
		zap.Int("added", len(startNow)), zap.Int("removed", len(removed)), zap.Stringers("claimed", m.claimedQueues()))
	m.h.Setup(assigned)
	m.setupRan = true
	for _, r := range startNow {
		m.startClaim(r)
	}
	return ok
}

func (m *member) claimedQueues() []fmt.Stringer {
	qs := slices.SortedFunc(maps.Keys(m.claims), compareQueues)
	out := make([]fmt.Stringer, len(qs))
	for i, q := range qs {
		out[i] = q
	}
	return out
}

// members returns the group's client ids from one broker of the route
// (chosen by the topic's first queue's broker, rotating on failure); a list
// without this member is refused after one more heartbeat.
func (m *member) members(ctx context.Context, rt *topicRoute) ([]string, error) {
	brokers := slices.Sorted(maps.Keys(rt.addrs))
	var lastErr error
	for _, b := range brokers {
		addr := rt.addrs[b]
		cids, err := m.rpc.consumerList(ctx, addr, m.g.opts.Group)
		if err == nil && !slices.Contains(cids, m.g.clientID) {
			// The broker lost our registration (restarted): register again.
			m.heartbeat(ctx, addr)
			cids, err = m.rpc.consumerList(ctx, addr, m.g.opts.Group)
			if err == nil && !slices.Contains(cids, m.g.clientID) {
				err = fmt.Errorf("rocketmq: broker %s does not list this member among %v", addr, cids)
			}
		}
		if err == nil {
			return cids, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

// endClaims cancels the runs and waits until each has ended (its final
// offset stored).
func (m *member) endClaims(runs []*claimRun) {
	for _, r := range runs {
		r.cancel()
	}
	for _, r := range runs {
		<-r.done
	}
}

// reset restarts a claim whose offset the broker moved: the claim ends,
// the corrected offset is stored, and the queue is claimed again.
func (m *member) reset(ctx context.Context, rs offsetReset) {
	cur, ok := m.claims[rs.run.q]
	if !ok || cur != rs.run {
		return // already gone
	}
	m.log.Warn("rocketmq queue offset moved by the broker; restarting the queue at the corrected offset",
		zap.Stringer("queue", cur.q), zap.Int64("next", rs.next))
	m.endClaims([]*claimRun{cur})
	if err := m.rpc.updateOffset(ctx, m.g.opts.OffsetGroup, cur.q, rs.next, false); err != nil && ctx.Err() == nil {
		m.log.Warn("rocketmq corrected offset not stored", zap.Stringer("queue", cur.q), zap.Error(err))
	}
	if ctx.Err() != nil {
		delete(m.claims, cur.q)
		return
	}
	r := m.newClaimRun(ctx, cur.q, cur.p)
	m.claims[cur.q] = r
	m.startClaim(r)
}

// flushAll stores every claim's changed offset ("oneway", as the clients'
// periodic persistence).
func (m *member) flushAll(ctx context.Context) {
	for _, r := range m.claims {
		r.c.flush(ctx, m, true)
	}
}
