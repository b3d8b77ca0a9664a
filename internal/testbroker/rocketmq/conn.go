package rocketmq

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/rocketmq/remoting"
)

// Per-connection bounds: frames waiting to be written and their bytes. A
// client that does not read its responses fast enough is disconnected.
const (
	maxQueuedFrames = 4096
	maxQueuedBytes  = 64 << 20
	writeTimeout    = 10 * time.Second
)

// conn is one client connection. readLoop handles requests in order;
// every outgoing frame goes through send → writeLoop, so handlers never
// block on the socket and may send while holding the broker lock.
type conn struct {
	srv    *Server
	b      *broker // nil on the NameServer listener
	nc     net.Conn
	remote netip.AddrPort
	log    *zap.Logger

	out    chan []byte
	queued atomic.Int64 // bytes in out
	opaque atomic.Int32 // for server → client requests

	stopOnce sync.Once
	stopCh   chan struct{} // shutdown: flush, then close
	deadOnce sync.Once
	dead     chan struct{} // the socket is closed

	held int // held pulls of this connection (guarded by b.mu)
}

func newConn(s *Server, b *broker, nc net.Conn) *conn {
	ap, _ := netip.ParseAddrPort(nc.RemoteAddr().String())
	return &conn{
		srv: s, b: b, nc: nc, remote: ap, log: s.log.With(zap.String("client", nc.RemoteAddr().String())),
		out: make(chan []byte, maxQueuedFrames), stopCh: make(chan struct{}), dead: make(chan struct{}),
	}
}

// send queues cmd; it never blocks. When the connection's queue is full
// the connection is closed (the client is not reading).
func (c *conn) send(cmd *remoting.Command) {
	frame, err := cmd.Encode()
	if err != nil {
		c.log.Error("encode failed", zap.Error(err), zap.Stringer("cmd", cmd))
		return
	}
	select {
	case <-c.dead:
		return
	default:
	}
	if c.queued.Add(int64(len(frame))) > maxQueuedBytes {
		c.queued.Add(-int64(len(frame)))
		c.log.Warn("client too slow: output queue over byte limit, closing")
		c.kill()
		return
	}
	select {
	case c.out <- frame:
	default:
		c.queued.Add(-int64(len(frame)))
		c.log.Warn("client too slow: output queue full, closing")
		c.kill()
	}
}

// notify sends a server → client request (no answer awaited).
func (c *conn) notify(code int16, ext map[string]string) {
	req := remoting.NewRequest(code, ext, nil)
	req.Language = "JAVA"
	req.Opaque = c.opaque.Add(1)
	c.send(req)
}

// kill closes the socket now; readLoop and writeLoop exit.
func (c *conn) kill() {
	c.deadOnce.Do(func() {
		close(c.dead)
		c.nc.Close()
	})
}

// shutdown makes writeLoop write what is queued and then close.
func (c *conn) shutdown() { c.stopOnce.Do(func() { close(c.stopCh) }) }

func (c *conn) writeLoop() {
	defer c.srv.wg.Done()
	defer c.kill()
	write := func(frame []byte) bool {
		c.queued.Add(-int64(len(frame)))
		if err := c.nc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
			return false
		}
		if _, err := c.nc.Write(frame); err != nil {
			c.log.Debug("write failed", zap.Error(err))
			return false
		}
		return true
	}
	for {
		select {
		case frame := <-c.out:
			if !write(frame) {
				return
			}
		case <-c.dead:
			return
		case <-c.stopCh:
			for {
				select {
				case frame := <-c.out:
					if !write(frame) {
						return
					}
				default:
					return
				}
			}
		}
	}
}

func (c *conn) readLoop() {
	defer c.srv.wg.Done()
	defer func() {
		c.kill()
		c.srv.forget(c)
		if c.b != nil {
			c.b.onConnClosed(c)
		}
	}()
	br := bufio.NewReaderSize(c.nc, 64<<10)
	for {
		cmd, err := remoting.ReadCommand(br, c.srv.opts.MaxFrame)
		if err != nil {
			switch {
			case errors.Is(err, remoting.ErrFrame):
				c.log.Warn("malformed frame, closing connection", zap.Error(err))
			case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
			default:
				c.log.Debug("read failed", zap.Error(err))
			}
			return
		}
		if cmd.IsResponse() {
			continue // a client's answer to code 40 and the like
		}
		if resp := c.srv.handle(c, cmd); resp != nil {
			c.send(resp)
		}
	}
}
