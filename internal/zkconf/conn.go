package zkconf

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"
)

// Conn is the subset of *zk.Conn the Watcher uses. Paths are absolute
// (chroot included). *zk.Conn satisfies it; tests use a fake.
//
// Semantics follow go-zookeeper: a watch channel delivers exactly one event
// and is then closed; on session expiry or Close every pending watch
// receives an EventNotWatching. All methods are safe for concurrent use.
type Conn interface {
	// Get reads a node without setting a watch.
	Get(path string) ([]byte, *zk.Stat, error)
	// GetW reads a node and sets a data watch; zk.ErrNoNode if missing.
	GetW(path string) ([]byte, *zk.Stat, <-chan zk.Event, error)
	// ExistsW sets an existence watch (fires on creation) for a missing
	// node, a data watch for an existing one.
	ExistsW(path string) (bool, *zk.Stat, <-chan zk.Event, error)
	// State returns the connection state; zk.StateHasSession when usable.
	State() zk.State
	// Close ends the session and invalidates the watches.
	Close()
}

var _ Conn = (*zk.Conn)(nil)

// DialFunc opens a connection. It must not block on the network: like
// zk.Connect it returns at once and reports session state changes
// (Event.Type == zk.EventSession) on the returned channel.
type DialFunc func(servers []string, sessionTimeout time.Duration) (Conn, <-chan zk.Event, error)

// zkDialer returns the production DialFunc: a renewingConn over
// zk.Connect, with the client's own log lines sent to logger at debug
// level, and the session handshake of every connection bounded by
// handshakeTimeout (see handshakeConn).
func zkDialer(logger *zap.Logger, handshakeTimeout time.Duration) DialFunc {
	return func(servers []string, sessionTimeout time.Duration) (Conn, <-chan zk.Event, error) {
		connect := func() (*sessionConn, error) {
			return dialSession(servers, sessionTimeout, logger, handshakeTimeout)
		}
		first, err := connect()
		if err != nil {
			return nil, nil, err
		}
		r := newRenewingConn(first, connect, logger)
		return r, r.events, nil
	}
}

// sessionConn is one zk.Conn that carries at most one session: once a
// session has been established on it, its dialer refuses to open another
// TCP connection and reports that on lost instead, so go-zookeeper never
// resumes the session on a new connection.
type sessionConn struct {
	*zk.Conn
	events <-chan zk.Event
	lost   chan struct{} // one token: the session's connection is gone
}

// errSessionOver is what a sessionConn's dialer answers go-zookeeper when
// it tries to reconnect after the session's connection was lost.
var errSessionOver = errors.New("zkconf: the session's connection is gone; a new session is being opened")

func dialSession(servers []string, sessionTimeout time.Duration, logger *zap.Logger, handshakeTimeout time.Duration) (*sessionConn, error) {
	s := &sessionConn{lost: make(chan struct{}, 1)}
	var hadSession atomic.Bool
	dial := func(network, address string, timeout time.Duration) (net.Conn, error) {
		if hadSession.Load() {
			select {
			case s.lost <- struct{}{}:
			default:
			}
			return nil, errSessionOver
		}
		c, err := net.DialTimeout(network, address, timeout)
		if err != nil {
			return nil, err
		}
		return &handshakeConn{Conn: c, limit: handshakeTimeout}, nil
	}
	// The callback runs on go-zookeeper's connection goroutine while it
	// authenticates, so the flag is set before that goroutine can dial
	// again.
	onEvent := func(ev zk.Event) {
		if ev.Type == zk.EventSession && ev.State == zk.StateHasSession {
			hadSession.Store(true)
		}
	}
	c, events, err := zk.Connect(servers, sessionTimeout,
		zk.WithDialer(dial),
		zk.WithEventCallback(onEvent),
		zk.WithLogger(zkLogger{logger.Sugar()}),
		zk.WithLogInfo(false))
	if err != nil {
		return nil, err
	}
	s.Conn, s.events = c, events
	return s, nil
}

// renewingConn is the production Conn. It opens a new session whenever the
// connection of the current one is lost, instead of letting go-zookeeper
// resume the session on a new connection.
//
// Why: go-zookeeper's resume path (sendSetWatches) reads Conn.lastZxid
// while the new connection's receive loop writes it, without
// synchronisation (go-zookeeper/zk#35, unfixed in v1.0.4); the race
// detector reports it whenever ZooKeeper comes back while watches are
// armed. A configuration reader loses nothing by starting a new session:
// it owns no ephemeral nodes, and the Watcher re-reads every watched node
// and re-arms its watch on every new session anyway. Watches of the old
// session end with EventNotWatching when it is closed, as on expiry.
//
// Session events of the current zk.Conn are forwarded on events, in order;
// those of a replaced one are dropped. One goroutine (run) forwards the
// events and replaces the connection; it exits on Close, which then closes
// events.
type renewingConn struct {
	connect func() (*sessionConn, error)
	log     *zap.Logger

	mu  sync.Mutex
	cur *sessionConn

	events    chan zk.Event
	quit      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup // run and the closers of replaced connections
}

var _ Conn = (*renewingConn)(nil)

func newRenewingConn(first *sessionConn, connect func() (*sessionConn, error), logger *zap.Logger) *renewingConn {
	r := &renewingConn{
		connect: connect,
		log:     logger,
		cur:     first,
		events:  make(chan zk.Event, 16),
		quit:    make(chan struct{}),
	}
	r.wg.Add(1)
	go r.run(first)
	return r
}

func (r *renewingConn) current() *sessionConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

func (r *renewingConn) Get(path string) ([]byte, *zk.Stat, error) { return r.current().Get(path) }

func (r *renewingConn) GetW(path string) ([]byte, *zk.Stat, <-chan zk.Event, error) {
	return r.current().GetW(path)
}

func (r *renewingConn) ExistsW(path string) (bool, *zk.Stat, <-chan zk.Event, error) {
	return r.current().ExistsW(path)
}

func (r *renewingConn) State() zk.State { return r.current().State() }

// SessionID is the current session's id (0 while there is none).
func (r *renewingConn) SessionID() int64 { return r.current().SessionID() }

// Close closes the current connection and waits for run and for the
// closing of replaced connections. Idempotent.
func (r *renewingConn) Close() {
	r.closeOnce.Do(func() {
		close(r.quit)
		r.wg.Wait() // run has exited: cur is final
		r.current().Close()
		close(r.events)
	})
}

func (r *renewingConn) run(c *sessionConn) {
	defer r.wg.Done()
	in := c.events
	for {
		select {
		case <-r.quit:
			return
		case ev, ok := <-in:
			if !ok {
				in = nil // closed only by Close, which quits too
				continue
			}
			select {
			case r.events <- ev:
			case <-r.quit:
				return
			}
		case <-c.lost:
			next, err := r.connect()
			if err != nil {
				// zk.Connect fails only on a bad server list, which the
				// first dial accepted; keep the dead connection and try
				// again on the next refused reconnect.
				r.log.Error("cannot open a new ZooKeeper session", zap.Error(err))
				continue
			}
			r.log.Info("ZooKeeper connection lost; opening a new session",
				zap.Int64("previousSession", c.SessionID()))
			r.mu.Lock()
			old := c
			r.cur, c, in = next, next, next.events
			r.mu.Unlock()
			// The old connection's Disconnected event may still be unread
			// or have been dropped; the Watcher must see the session end
			// before any event of the new one.
			select {
			case r.events <- zk.Event{Type: zk.EventSession, State: zk.StateDisconnected}:
			case <-r.quit:
			}
			r.wg.Add(1)
			go func() { // zk.Conn.Close can wait up to 1 s
				defer r.wg.Done()
				old.Close()
			}()
		}
	}
}

// zkLogger adapts zap to go-zookeeper's Printf logger. The client logs
// every reconnect attempt; the watcher logs the state changes that matter,
// so these go to debug.
type zkLogger struct{ s *zap.SugaredLogger }

func (l zkLogger) Printf(format string, args ...any) {
	l.s.Debugf("zookeeper client: "+format, args...)
}

// handshakeConn bounds the session handshake of a new connection.
//
// go-zookeeper sends the connect request and waits for the answer with a
// deadline of 10 × (2/3 × session timeout) — 200 s for a 30 s session. A
// server that is still starting (e.g. just restarted) accepts connections
// but may never answer them, so a client that connected in that window
// hangs for minutes before it tries again. The first read and the first
// write deadline set on the connection are the handshake's; they are
// capped at limit from now. Later deadlines (the session's normal traffic)
// pass unchanged.
type handshakeConn struct {
	net.Conn
	limit     time.Duration
	readDone  atomic.Bool
	writeDone atomic.Bool
}

func (c *handshakeConn) SetReadDeadline(t time.Time) error {
	if !t.IsZero() && c.readDone.CompareAndSwap(false, true) {
		t = capDeadline(t, c.limit)
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *handshakeConn) SetWriteDeadline(t time.Time) error {
	if !t.IsZero() && c.writeDone.CompareAndSwap(false, true) {
		t = capDeadline(t, c.limit)
	}
	return c.Conn.SetWriteDeadline(t)
}

func capDeadline(t time.Time, limit time.Duration) time.Time {
	if max := time.Now().Add(limit); limit > 0 && t.After(max) {
		return max
	}
	return t
}
