package rocketmq

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
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
	// One write (writev) carries up to this many queued frames and bytes.
	maxWriteFrames = 128
	maxWriteBytes  = 1 << 20
	// A connection keeps its read buffer for frames up to this size;
	// larger ones get a buffer of their own.
	keepReadBuffer = 1 << 20
)

// frame is one outgoing frame: its encoded header and body in parts (a
// PULL answer's body aliases stored segments).
type frame struct {
	parts [][]byte
	size  int
}

// conn is one client connection. readLoop handles requests in order;
// every outgoing frame goes through send → writeLoop, so handlers never
// block on the socket and may send while holding the broker lock.
type conn struct {
	srv    *Server
	b      *broker // nil on the NameServer listener
	nc     net.Conn
	remote netip.AddrPort
	log    *zap.Logger

	out    chan frame
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
		out: make(chan frame, maxQueuedFrames), stopCh: make(chan struct{}), dead: make(chan struct{}),
	}
}

// send queues cmd; it never blocks. When the connection's queue is full
// the connection is closed (the client is not reading).
func (c *conn) send(cmd *remoting.Command) { c.sendParts(cmd, nil) }

// sendParts queues cmd with body (replacing cmd.Body) as its body: the
// parts are written one after the other, not copied, and must not change.
// Without parts cmd.Body is sent.
func (c *conn) sendParts(cmd *remoting.Command, body [][]byte) {
	var f frame
	if len(body) == 0 {
		enc, err := cmd.Encode()
		if err != nil {
			c.log.Error("encode failed", zap.Error(err), zap.Stringer("cmd", cmd))
			return
		}
		f = frame{parts: [][]byte{enc}, size: len(enc)}
	} else {
		hdr := *cmd
		hdr.Body = nil
		enc, err := hdr.Encode()
		if err != nil {
			c.log.Error("encode failed", zap.Error(err), zap.Stringer("cmd", cmd))
			return
		}
		f = frame{parts: make([][]byte, 0, 1+len(body)), size: len(enc)}
		f.parts = append(f.parts, enc)
		for _, p := range body {
			f.parts = append(f.parts, p)
			f.size += len(p)
		}
		// The length prefix counts everything after itself.
		binary.BigEndian.PutUint32(enc[0:4], uint32(f.size-4))
	}
	select {
	case <-c.dead:
		return
	default:
	}
	if c.queued.Add(int64(f.size)) > maxQueuedBytes {
		c.queued.Add(-int64(f.size))
		c.log.Warn("client too slow: output queue over byte limit, closing")
		c.kill()
		return
	}
	select {
	case c.out <- f:
	default:
		c.queued.Add(-int64(f.size))
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
	var bufs net.Buffers
	// write writes first and whatever else is queued (within the
	// per-write bounds) with one writev.
	write := func(first frame) bool {
		bufs = append(bufs[:0], first.parts...)
		frames, size := 1, first.size
	more:
		for frames < maxWriteFrames && size < maxWriteBytes {
			select {
			case f := <-c.out:
				bufs = append(bufs, f.parts...)
				frames++
				size += f.size
			default:
				break more
			}
		}
		c.queued.Add(-int64(size))
		all := bufs
		defer clear(all) // drop the references to written bodies
		if err := c.nc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
			return false
		}
		if _, err := bufs.WriteTo(c.nc); err != nil {
			c.log.Debug("write failed", zap.Error(err))
			return false
		}
		bufs = all[:0]
		return true
	}
	for {
		select {
		case f := <-c.out:
			if !write(f) {
				return
			}
		case <-c.dead:
			return
		case <-c.stopCh:
			for {
				select {
				case f := <-c.out:
					if !write(f) {
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
	var buf []byte
	for {
		var cmd *remoting.Command
		var err error
		cmd, buf, err = readCommand(br, buf, c.srv.opts.MaxFrame)
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

// readCommand reads one frame like remoting.ReadCommand, but into buf
// (grown when too small) so that a connection does not allocate every
// frame anew: the command's Body aliases the returned buffer, valid only
// until the next call. Handlers copy what they keep.
func readCommand(r io.Reader, buf []byte, maxFrame int) (*remoting.Command, []byte, error) {
	var lb [4]byte
	if _, err := io.ReadFull(r, lb[:]); err != nil {
		return nil, buf, err
	}
	n := int64(binary.BigEndian.Uint32(lb[:]))
	if n < 4 || n > int64(maxFrame) {
		return nil, buf, fmt.Errorf("%w: frame length %d outside [4, %d]", remoting.ErrFrame, n, maxFrame)
	}
	need := 4 + int(n)
	f := buf[:0]
	if cap(f) < need {
		f = make([]byte, need)
		if need <= keepReadBuffer {
			buf = f
		}
	}
	f = f[:need]
	copy(f, lb[:])
	if _, err := io.ReadFull(r, f[4:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, buf, err
	}
	cmd, err := remoting.Decode(f)
	return cmd, buf, err
}
