package benchutil

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
)

// FrameTransport is a client-side Thrift framed transport that works as
// DDMQ's Java SDK does (TFramedTransport over a socket): a reply frame is
// read whole, header then payload, with one ReadFull into a reused buffer,
// and decoded from memory; a request is built in memory and sent with its
// header in one write. Go's thrift.TFramedTransport instead reads each
// field through a bufio.Reader and a frame-size counter, which costs the
// load generators more CPU per message than the proxy they measure.
//
// It is a client transport only: one request and one reply at a time, as
// thrift.TStandardClient uses it.
type FrameTransport struct {
	addr     string
	timeout  time.Duration // connect timeout and per-I/O deadline
	maxFrame int
	conn     net.Conn
	in       bytes.Reader // unread part of the current reply frame
	inBuf    []byte
	out      []byte // request being built; out[:4] is the header slot
}

var _ thrift.TRichTransport = (*FrameTransport)(nil)

// NewFrameTransport returns a transport for addr; Open connects it.
// timeout bounds the connect and every read or write; maxFrame bounds the
// reply size (<= 0: thrift.DEFAULT_MAX_FRAME_SIZE).
func NewFrameTransport(addr string, timeout time.Duration, maxFrame int) *FrameTransport {
	if maxFrame <= 0 {
		maxFrame = thrift.DEFAULT_MAX_FRAME_SIZE
	}
	return &FrameTransport{addr: addr, timeout: timeout, maxFrame: maxFrame, out: make([]byte, 4, 4096)}
}

// Open connects.
func (t *FrameTransport) Open() error {
	c, err := net.DialTimeout("tcp", t.addr, t.timeout)
	if err != nil {
		return thrift.NewTTransportExceptionFromError(err)
	}
	t.conn = c
	return nil
}

// IsOpen reports whether Open succeeded and Close was not called.
func (t *FrameTransport) IsOpen() bool { return t.conn != nil }

// Close closes the connection.
func (t *FrameTransport) Close() error {
	if t.conn == nil {
		return nil
	}
	err := t.conn.Close()
	t.conn = nil
	return err
}

func (t *FrameTransport) deadline() time.Time {
	if t.timeout <= 0 {
		return time.Time{}
	}
	return time.Now().Add(t.timeout)
}

// readFrame reads the next reply frame into memory.
func (t *FrameTransport) readFrame() error {
	if t.conn == nil {
		return thrift.NewTTransportException(thrift.NOT_OPEN, "transport not open")
	}
	_ = t.conn.SetReadDeadline(t.deadline()) // a closed conn fails the read below
	var hdr [4]byte
	if _, err := io.ReadFull(t.conn, hdr[:]); err != nil {
		return thrift.NewTTransportExceptionFromError(err)
	}
	size := int(int32(binary.BigEndian.Uint32(hdr[:]))) //nolint:gosec // the wire length is a signed i32
	if size < 0 || size > t.maxFrame {
		return thrift.NewTTransportException(thrift.UNKNOWN_TRANSPORT_EXCEPTION, fmt.Sprintf("reply frame of %d bytes", size))
	}
	if cap(t.inBuf) < size {
		t.inBuf = make([]byte, size)
	}
	buf := t.inBuf[:size]
	if _, err := io.ReadFull(t.conn, buf); err != nil {
		return thrift.NewTTransportExceptionFromError(err)
	}
	t.in.Reset(buf)
	return nil
}

// Read reads from the current reply frame, reading the next frame when the
// current one is used up.
func (t *FrameTransport) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if t.in.Len() == 0 {
		if err := t.readFrame(); err != nil {
			return 0, err
		}
	}
	return t.in.Read(p)
}

// ReadByte reads one byte of the reply.
func (t *FrameTransport) ReadByte() (byte, error) {
	if t.in.Len() == 0 {
		if err := t.readFrame(); err != nil {
			return 0, err
		}
	}
	return t.in.ReadByte()
}

// RemainingBytes is what is left of the current frame.
func (t *FrameTransport) RemainingBytes() uint64 { return uint64(t.in.Len()) } //nolint:gosec // Len >= 0

// Write appends to the request being built.
func (t *FrameTransport) Write(p []byte) (int, error) {
	t.out = append(t.out, p...)
	return len(p), nil
}

// WriteByte appends one byte to the request.
func (t *FrameTransport) WriteByte(c byte) error {
	t.out = append(t.out, c)
	return nil
}

// WriteString appends s to the request.
func (t *FrameTransport) WriteString(s string) (int, error) {
	t.out = append(t.out, s...)
	return len(s), nil
}

// Flush sends the request as one frame in one write.
func (t *FrameTransport) Flush(context.Context) error {
	if t.conn == nil {
		return thrift.NewTTransportException(thrift.NOT_OPEN, "transport not open")
	}
	binary.BigEndian.PutUint32(t.out[:4], uint32(len(t.out)-4)) //nolint:gosec // requests are small
	_ = t.conn.SetWriteDeadline(t.deadline())                   // a closed conn fails the write below
	_, err := t.conn.Write(t.out)
	t.out = t.out[:4]
	if err != nil {
		return thrift.NewTTransportExceptionFromError(err)
	}
	return nil
}

// ReadFrame returns the payload of the next reply frame, for decoders that
// work on the whole frame. The slice is valid until the next read.
func (t *FrameTransport) ReadFrame() ([]byte, error) {
	if err := t.readFrame(); err != nil {
		return nil, err
	}
	b := t.inBuf[:t.in.Len()]
	t.in.Reset(nil)
	return b, nil
}
