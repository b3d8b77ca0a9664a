package rocketmq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/rocketmq/remoting"
)

// unregisterClient is RocketMQ's UNREGISTER_CLIENT request code (a member
// leaving its group); not sent by rocketmq-client-go v2.1.2, hence not in
// the remoting code table.
const unregisterClient int16 = 35

// errNoRoute: the topic has no route (the NameServer answered
// TOPIC_NOT_EXIST or listed no readable queue).
var errNoRoute = errors.New("rocketmq: no route")

// errUnknownBroker: a queue's broker is not in any cached route.
var errUnknownBroker = errors.New("rocketmq: broker address unknown")

// connPool keeps one remoting connection per address (NameServers and
// brokers), dialled on first use and again after it failed. Server →
// client requests on every connection go to handler.
type connPool struct {
	log     *zap.Logger
	handler remoting.RequestHandler

	mu     sync.Mutex
	conns  map[string]*remoting.Client
	closed bool
}

func newConnPool(log *zap.Logger, h remoting.RequestHandler) *connPool {
	return &connPool{log: log, handler: h, conns: map[string]*remoting.Client{}}
}

var errPoolClosed = errors.New("rocketmq: connections closed")

// get returns a live connection to addr, dialling one if needed.
func (p *connPool) get(ctx context.Context, addr string) (*remoting.Client, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errPoolClosed
	}
	c := p.conns[addr]
	var dead *remoting.Client
	if c != nil {
		select {
		case <-c.Done():
			delete(p.conns, addr)
			dead, c = c, nil
		default:
		}
	}
	p.mu.Unlock()
	if dead != nil {
		_ = dead.Close() // reaps the failed connection's goroutines
	}
	if c != nil {
		return c, nil
	}
	opts := []remoting.Option{remoting.WithLogger(p.log)}
	if p.handler != nil {
		opts = append(opts, remoting.WithRequestHandler(p.handler))
	}
	nc, err := remoting.Dial(ctx, addr, opts...)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = nc.Close()
		return nil, errPoolClosed
	}
	if old := p.conns[addr]; old != nil {
		select {
		case <-old.Done():
		default:
			_ = nc.Close()
			return old, nil
		}
	}
	p.conns[addr] = nc
	return nc, nil
}

// invoke sends req to addr and waits for the answer (bounded by ctx).
func (p *connPool) invoke(ctx context.Context, addr string, req *remoting.Command) (*remoting.Command, error) {
	c, err := p.get(ctx, addr)
	if err != nil {
		return nil, err
	}
	return c.Invoke(ctx, req)
}

// oneway sends req to addr without waiting for an answer.
func (p *connPool) oneway(ctx context.Context, addr string, req *remoting.Command) error {
	c, err := p.get(ctx, addr)
	if err != nil {
		return err
	}
	return c.InvokeOneway(ctx, req)
}

// addrs returns the addresses with an open connection.
func (p *connPool) addrs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.conns))
	for a := range p.conns {
		out = append(out, a)
	}
	return out
}

// close closes every connection (waiting for their goroutines) and
// refuses new ones.
func (p *connPool) close() {
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.conns = map[string]*remoting.Client{}
	p.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// topicRoute is what the NameServer says about a topic.
type topicRoute struct {
	// queues are the readable queues, sorted by (broker, queue id).
	queues []mqueue
	// addrs maps a broker name to its master address.
	addrs   map[string]string
	fetched time.Time
}

// parseRoute decodes a route body of topic: the readable queues of brokers
// that have a master.
func parseRoute(topic string, body []byte) (*topicRoute, error) {
	rd, err := remoting.DecodeTopicRoute(body)
	if err != nil {
		return nil, fmt.Errorf("rocketmq: route of %q: %w", topic, err)
	}
	r := &topicRoute{addrs: rd.Masters(), fetched: time.Now()}
	for _, qd := range rd.QueueDatas {
		if qd.Perm&remoting.PermRead == 0 || r.addrs[qd.BrokerName] == "" {
			continue
		}
		for i := 0; i < qd.ReadQueueNums && i <= maxQueueID; i++ {
			r.queues = append(r.queues, mqueue{Topic: topic, Broker: qd.BrokerName, QueueID: int32(i)})
		}
	}
	slices.SortFunc(r.queues, compareQueues)
	return r, nil
}

// brokerRPC is the request layer shared by GroupConsumer and OffsetReader:
// NameServer routes (cached), broker addresses, and one method per request
// code. Every call is bounded by its ctx and by opts.RequestTimeout
// (pulls: by their hold plus RequestTimeout).
type brokerRPC struct {
	opts *ConsumerOptions
	log  *zap.Logger
	pool *connPool

	mu     sync.Mutex
	routes map[string]*topicRoute
	addrs  map[string]string // broker name → master address, from every route seen
}

func newBrokerRPC(opts *ConsumerOptions, log *zap.Logger, h remoting.RequestHandler) *brokerRPC {
	return &brokerRPC{opts: opts, log: log, pool: newConnPool(log, h),
		routes: map[string]*topicRoute{}, addrs: map[string]string{}}
}

func (r *brokerRPC) close() { r.pool.close() }

func (r *brokerRPC) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.opts.RequestTimeout)
}

// route returns the cached route of topic when it is younger than
// RouteInterval, else fetches it.
func (r *brokerRPC) route(ctx context.Context, topic string) (*topicRoute, error) {
	r.mu.Lock()
	rt := r.routes[topic]
	r.mu.Unlock()
	if rt != nil && time.Since(rt.fetched) < r.opts.RouteInterval {
		return rt, nil
	}
	return r.fetchRoute(ctx, topic)
}

// fetchRoute asks the NameServers (from a random one on) for topic's route
// and caches it.
func (r *brokerRPC) fetchRoute(ctx context.Context, topic string) (*topicRoute, error) {
	ns := r.opts.NameServers
	first := rand.IntN(len(ns))
	var lastErr error
	for i := range ns {
		addr := ns[(first+i)%len(ns)]
		cctx, cancel := r.timeout(ctx)
		resp, err := r.pool.invoke(cctx, addr, routeRequest(topic))
		cancel()
		if err != nil {
			lastErr = fmt.Errorf("rocketmq: route of %q from %s: %w", topic, addr, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if resp.Code == remoting.TopicNotExist {
			r.forget(topic)
			return nil, fmt.Errorf("%w: %w: topic %q", mq.ErrTopicNotExist, errNoRoute, topic)
		}
		if err := remoting.CheckCode(resp); err != nil {
			lastErr = fmt.Errorf("rocketmq: route of %q from %s: %w", topic, addr, err)
			continue
		}
		rt, err := parseRoute(topic, resp.Body)
		if err != nil {
			lastErr = err
			continue
		}
		if len(rt.queues) == 0 {
			r.forget(topic)
			return nil, fmt.Errorf("%w: %w: topic %q has no readable queue", mq.ErrTopicNotExist, errNoRoute, topic)
		}
		r.mu.Lock()
		r.routes[topic] = rt
		for b, a := range rt.addrs {
			r.addrs[b] = a
		}
		r.mu.Unlock()
		return rt, nil
	}
	return nil, lastErr
}

func (r *brokerRPC) forget(topic string) {
	r.mu.Lock()
	delete(r.routes, topic)
	r.mu.Unlock()
}

// brokerAddr returns the master address of a broker name seen in a route.
func (r *brokerRPC) brokerAddr(broker string) (string, error) {
	r.mu.Lock()
	a, ok := r.addrs[broker]
	r.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("%w: %q", errUnknownBroker, broker)
	}
	return a, nil
}

// brokerAddrs returns the master addresses of every broker seen in the
// routes of topics (all cached routes when topics is empty), sorted.
func (r *brokerRPC) brokerAddrs(topics ...string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	set := map[string]bool{}
	if len(topics) == 0 {
		for _, a := range r.addrs {
			set[a] = true
		}
	}
	for _, t := range topics {
		if rt := r.routes[t]; rt != nil {
			for _, a := range rt.addrs {
				set[a] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for a := range set {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// call sends a request to the broker of q and checks the answer code.
func (r *brokerRPC) call(ctx context.Context, broker string, code int16, ext map[string]string, ok ...int16) (*remoting.Command, error) {
	addr, err := r.brokerAddr(broker)
	if err != nil {
		return nil, err
	}
	cctx, cancel := r.timeout(ctx)
	defer cancel()
	resp, err := r.pool.invoke(cctx, addr, remoting.NewRequest(code, ext, nil))
	if err != nil {
		return nil, rpcError(err)
	}
	if err := remoting.CheckCode(resp, ok...); err != nil {
		return resp, fmt.Errorf("rocketmq: request %d to %s (%s): %w", code, broker, addr, err)
	}
	return resp, nil
}

// rpcError maps deadline errors to mq.ErrTimeout.
func rpcError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", mq.ErrTimeout, err)
	}
	return err
}

func queueExt(q mqueue) map[string]string {
	return map[string]string{"topic": q.Topic, "queueId": strconv.Itoa(int(q.QueueID))}
}

func extInt(c *remoting.Command, key string) (int64, error) {
	v, err := strconv.ParseInt(c.Ext(key), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("rocketmq: response ext %q=%q: %w", key, c.Ext(key), err)
	}
	return v, nil
}

// queryOffset returns group's stored offset of q; found is false when the
// broker has none (QUERY_NOT_FOUND).
func (r *brokerRPC) queryOffset(ctx context.Context, group string, q mqueue) (off int64, found bool, err error) {
	ext := queueExt(q)
	ext["consumerGroup"] = group
	resp, err := r.call(ctx, q.Broker, remoting.QueryConsumerOffset, ext, remoting.Success, remoting.QueryNotFound)
	if err != nil {
		return 0, false, err
	}
	if resp.Code == remoting.QueryNotFound {
		return 0, false, nil
	}
	off, err = extInt(resp, "offset")
	if err != nil {
		return 0, false, err
	}
	// The Java broker answers -1 for a group it knows without an offset of
	// this queue.
	return off, off >= 0, nil
}

// updateOffset stores group's offset of q; oneway does not wait for the
// answer (as the Java and Go clients' periodic persistence).
func (r *brokerRPC) updateOffset(ctx context.Context, group string, q mqueue, off int64, oneway bool) error {
	ext := queueExt(q)
	ext["consumerGroup"] = group
	ext["commitOffset"] = strconv.FormatInt(off, 10)
	if !oneway {
		_, err := r.call(ctx, q.Broker, remoting.UpdateConsumerOffset, ext)
		return err
	}
	addr, err := r.brokerAddr(q.Broker)
	if err != nil {
		return err
	}
	cctx, cancel := r.timeout(ctx)
	defer cancel()
	return r.pool.oneway(cctx, addr, remoting.NewRequest(remoting.UpdateConsumerOffset, ext, nil))
}

// maxOffset returns q's max offset (the next offset to be written).
func (r *brokerRPC) maxOffset(ctx context.Context, q mqueue) (int64, error) {
	resp, err := r.call(ctx, q.Broker, remoting.GetMaxOffset, queueExt(q))
	if err != nil {
		return 0, err
	}
	return extInt(resp, "offset")
}

// minOffset returns q's min offset (the oldest stored message).
func (r *brokerRPC) minOffset(ctx context.Context, q mqueue) (int64, error) {
	resp, err := r.call(ctx, q.Broker, remoting.GetMinOffset, queueExt(q))
	if err != nil {
		return 0, err
	}
	return extInt(resp, "offset")
}

// searchOffset returns the offset of the first message of q stored at or
// after ts.
func (r *brokerRPC) searchOffset(ctx context.Context, q mqueue, ts time.Time) (int64, error) {
	ext := queueExt(q)
	ext["timestamp"] = strconv.FormatInt(ts.UnixMilli(), 10)
	resp, err := r.call(ctx, q.Broker, remoting.SearchOffsetByTimestamp, ext)
	if err != nil {
		return 0, err
	}
	return extInt(resp, "offset")
}

// pullResult is the answer to one PULL_MESSAGE.
type pullResult struct {
	// code is remoting.Success (found), PullNotFound, PullRetryImmediately
	// or PullOffsetMoved.
	code             int16
	next, minO, maxO int64
	msgs             []remoting.StoredMessage
}

// pull reads up to maxMsgs messages of q from offset, letting the broker
// hold the request up to suspend when nothing is there.
func (r *brokerRPC) pull(ctx context.Context, group string, q mqueue, offset int64, maxMsgs int,
	suspend time.Duration, sub *tagFilter,
) (*pullResult, error) {
	addr, err := r.brokerAddr(q.Broker)
	if err != nil {
		return nil, err
	}
	ext := queueExt(q)
	ext["consumerGroup"] = group
	ext["queueOffset"] = strconv.FormatInt(offset, 10)
	ext["maxMsgNums"] = strconv.Itoa(maxMsgs)
	ext["commitOffset"] = "0"
	ext["suspendTimeoutMillis"] = strconv.FormatInt(suspend.Milliseconds(), 10)
	ext["subscription"] = sub.expr
	ext["subVersion"] = strconv.FormatInt(sub.version, 10)
	ext["expressionType"] = "TAG"
	flag := remoting.PullFlagSubscription
	if suspend > 0 {
		flag |= remoting.PullFlagSuspend
	}
	ext["sysFlag"] = strconv.Itoa(int(flag))
	cctx, cancel := context.WithTimeout(ctx, suspend+r.opts.RequestTimeout)
	defer cancel()
	resp, err := r.pool.invoke(cctx, addr, remoting.NewRequest(remoting.PullMessage, ext, nil))
	if err != nil {
		return nil, rpcError(err)
	}
	res := &pullResult{code: resp.Code, next: -1}
	switch resp.Code {
	case remoting.Success, remoting.PullNotFound, remoting.PullRetryImmediately, remoting.PullOffsetMoved:
	default:
		return nil, fmt.Errorf("rocketmq: pull %s at %d: %w", q, offset, remoting.CheckCode(resp))
	}
	if next, err := extInt(resp, "nextBeginOffset"); err == nil {
		res.next = next
	} else if resp.Code != remoting.PullRetryImmediately {
		return nil, err
	}
	res.minO, _ = extInt(resp, "minOffset")
	res.maxO, _ = extInt(resp, "maxOffset")
	if resp.Code == remoting.Success && len(resp.Body) > 0 {
		msgs, derr := remoting.DecodeStoredMessages(resp.Body)
		if derr != nil {
			r.log.Warn("rocketmq pull: undecodable messages skipped", zap.Stringer("queue", q),
				zap.Int64("offset", offset), zap.Int("decoded", len(msgs)), zap.Error(derr))
		}
		res.msgs = msgs
	}
	return res, nil
}

// consumerList returns the client ids of group's members that the broker
// at addr knows.
func (r *brokerRPC) consumerList(ctx context.Context, addr, group string) ([]string, error) {
	cctx, cancel := r.timeout(ctx)
	defer cancel()
	resp, err := r.pool.invoke(cctx, addr, remoting.NewRequest(remoting.GetConsumerListByGroup,
		map[string]string{"consumerGroup": group}, nil))
	if err != nil {
		return nil, rpcError(err)
	}
	if err := remoting.CheckCode(resp); err != nil {
		return nil, fmt.Errorf("rocketmq: consumer list of %q from %s: %w", group, addr, err)
	}
	var body struct {
		ConsumerIDList []string `json:"consumerIdList"`
	}
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		return nil, fmt.Errorf("rocketmq: consumer list of %q from %s: %w", group, addr, err)
	}
	return body.ConsumerIDList, nil
}

// invokeAddr sends a request to addr and checks for success.
func (r *brokerRPC) invokeAddr(ctx context.Context, addr string, req *remoting.Command) error {
	cctx, cancel := r.timeout(ctx)
	defer cancel()
	resp, err := r.pool.invoke(cctx, addr, req)
	if err != nil {
		return rpcError(err)
	}
	return remoting.CheckCode(resp)
}
