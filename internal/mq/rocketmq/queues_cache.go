package rocketmq

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/rocketmq/remoting"
)

// nameServers asks the NameServers for routes over one remoting connection
// at a time, moving to the next address when a call fails for a reason
// other than the answer itself.
type nameServers struct {
	addrs []string
	log   *zap.Logger

	mu   sync.Mutex // guards cli, cur, closed; held while dialling
	cli  *remoting.Client
	cur  int
	dead bool
}

func newNameServers(addrs []string, log *zap.Logger) *nameServers {
	return &nameServers{addrs: addrs, log: log}
}

// client returns the current connection, dialling the current address if
// needed.
func (n *nameServers) client(ctx context.Context) (*remoting.Client, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.dead {
		return nil, mq.ErrClosed
	}
	if n.cli != nil {
		select {
		case <-n.cli.Done():
			_ = n.cli.Close()
			n.cli = nil
		default:
			return n.cli, nil
		}
	}
	c, err := remoting.Dial(ctx, n.addrs[n.cur], remoting.WithLogger(n.log))
	if err != nil {
		n.cur = (n.cur + 1) % len(n.addrs)
		return nil, err
	}
	n.cli = c
	return c, nil
}

// drop closes c (if it is still the current connection) and moves on to
// the next address.
func (n *nameServers) drop(c *remoting.Client) {
	n.mu.Lock()
	if n.cli == c {
		n.cli = nil
		n.cur = (n.cur + 1) % len(n.addrs)
	}
	n.mu.Unlock()
	_ = c.Close()
}

// lookup fetches topic's route, trying each NameServer at most once
// within ctx.
func (n *nameServers) lookup(ctx context.Context, topic string) (*Route, error) {
	var last error
	for range n.addrs {
		c, err := n.client(ctx)
		if err != nil {
			if errors.Is(err, mq.ErrClosed) {
				return nil, err
			}
			last = err
			if ctx.Err() != nil {
				break
			}
			continue
		}
		resp, err := c.Invoke(ctx, routeRequest(topic))
		if err != nil {
			last = err
			if ctx.Err() != nil {
				break
			}
			n.drop(c)
			continue
		}
		return routeFromResponse(topic, resp)
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%w: route of topic %q: %w", mq.ErrTimeout, topic, errors.Join(ctx.Err(), last))
	}
	return nil, fmt.Errorf("rocketmq: route of topic %q: no name server answered: %w", topic, last)
}

func (n *nameServers) close() {
	n.mu.Lock()
	n.dead = true
	c := n.cli
	n.cli = nil
	n.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
}

// routeCall is one lookup in progress; callers wait for done.
type routeCall struct {
	done  chan struct{}
	route *Route
	err   error
}

// routeTable caches the routes of the topics in use. Lookups of a cached
// topic never block; a missing topic is fetched by one goroutine at a time
// (bounded by timeout) while callers wait bounded by their ctx. A refresh
// keeps the old route unless the NameServer says the topic is gone.
type routeTable struct {
	ns      *nameServers
	timeout time.Duration
	log     *zap.Logger
	stop    context.Context // cancelled when the producer closes
	goBG    func(func())    // runs a goroutine the producer's Close waits for
	onFetch func(err error) // metrics hook; may be nil
	// onNew runs after the first successful lookup of a topic, before the
	// route is cached and waiters are released; may be nil.
	onNew func(topic string)

	routes sync.Map // topic → *Route

	mu    sync.Mutex
	calls map[string]*routeCall
}

// cached returns the cached route of topic, or nil.
func (t *routeTable) cached(topic string) *Route {
	if r, ok := t.routes.Load(topic); ok {
		return r.(*Route)
	}
	return nil
}

// get returns topic's route, fetching it when not cached.
func (t *routeTable) get(ctx context.Context, topic string) (*Route, error) {
	if r := t.cached(topic); r != nil {
		return r, nil
	}
	c := t.fetch(topic)
	select {
	case <-c.done:
		return c.route, c.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: route of topic %q: %w", mq.ErrTimeout, topic, ctx.Err())
	case <-t.stop.Done():
		return nil, mq.ErrClosed
	}
}

// refresh starts a background lookup of topic unless one is running.
func (t *routeTable) refresh(topic string) { t.fetch(topic) }

// refreshAll refreshes every cached topic (one at a time, on the caller's
// goroutine: the periodic refresher).
func (t *routeTable) refreshAll() {
	var topics []string
	t.routes.Range(func(k, _ any) bool {
		topics = append(topics, k.(string))
		return true
	})
	for _, topic := range topics {
		select {
		case <-t.fetch(topic).done:
		case <-t.stop.Done():
			return
		}
	}
}

// fetch returns the running lookup of topic or starts one.
func (t *routeTable) fetch(topic string) *routeCall {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c := t.calls[topic]; c != nil {
		return c
	}
	c := &routeCall{done: make(chan struct{})}
	if t.stop.Err() != nil {
		c.err = mq.ErrClosed
		close(c.done)
		return c
	}
	t.calls[topic] = c
	t.goBG(func() { t.run(topic, c) })
	return c
}

func (t *routeTable) run(topic string, c *routeCall) {
	ctx, cancel := context.WithTimeout(t.stop, t.timeout)
	r, err := t.ns.lookup(ctx, topic)
	cancel()
	if t.onFetch != nil {
		t.onFetch(err)
	}
	switch {
	case err == nil:
		old := t.cached(topic)
		if old == nil && t.onNew != nil {
			t.onNew(topic)
		}
		if old == nil || !sameRoute(old, r) {
			t.log.Info("route updated", zap.String("topic", topic), zap.Int("queues", len(r.Queues)),
				zap.Int("brokers", len(r.Brokers)))
		}
		t.routes.Store(topic, r)
	case errors.Is(err, mq.ErrTopicNotExist):
		if _, had := t.routes.LoadAndDelete(topic); had {
			t.log.Warn("topic gone from the name server", zap.String("topic", topic), zap.Error(err))
		}
	default:
		if r := t.cached(topic); r != nil {
			// Keep serving the old route; the next refresh tries again.
			t.log.Warn("route refresh failed; keeping the old route", zap.String("topic", topic), zap.Error(err))
			c.route = r
			err = nil
		}
	}
	if c.route == nil && err == nil {
		c.route = r
	}
	c.err = err
	t.mu.Lock()
	delete(t.calls, topic)
	t.mu.Unlock()
	close(c.done)
}

// sameRoute reports whether two routes have the same queues and brokers.
func sameRoute(a, b *Route) bool {
	if len(a.Queues) != len(b.Queues) || len(a.Brokers) != len(b.Brokers) {
		return false
	}
	for i := range a.Queues {
		if a.Queues[i] != b.Queues[i] {
			return false
		}
	}
	for k, v := range a.Brokers {
		if b.Brokers[k] != v {
			return false
		}
	}
	return true
}
