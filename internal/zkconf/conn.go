package zkconf

import (
	"net"
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

// zkDialer returns the production DialFunc: zk.Connect with the client's
// own log lines sent to logger at debug level, and the session handshake
// of every connection bounded by handshakeTimeout (see handshakeConn).
func zkDialer(logger *zap.Logger, handshakeTimeout time.Duration) DialFunc {
	dial := func(network, address string, timeout time.Duration) (net.Conn, error) {
		c, err := net.DialTimeout(network, address, timeout)
		if err != nil {
			return nil, err
		}
		return &handshakeConn{Conn: c, limit: handshakeTimeout}, nil
	}
	return func(servers []string, sessionTimeout time.Duration) (Conn, <-chan zk.Event, error) {
		c, events, err := zk.Connect(servers, sessionTimeout,
			zk.WithDialer(dial),
			zk.WithLogger(zkLogger{logger.Sugar()}),
			zk.WithLogInfo(false))
		if err != nil {
			return nil, nil, err
		}
		return c, events, nil
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
