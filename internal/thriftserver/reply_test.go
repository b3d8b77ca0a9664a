package thriftserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// captureConn is a net.Conn that records every Write (not a
// buffersWriter, so net.Buffers.WriteTo writes segment by segment and the
// test can see which slices were passed without copying).
type captureConn struct {
	fakeConn
	wmu    sync.Mutex
	data   bytes.Buffer
	writes [][]byte // the slices passed to Write (not copies)
	fail   error    // returned by Write when set
}

func (c *captureConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.fail != nil {
		return 0, c.fail
	}
	c.writes = append(c.writes, p)
	c.data.Write(p)
	return len(p), nil
}

// newTestTransport returns a connTransport writing to nc, outside a server.
func newTestTransport(nc net.Conn) *connTransport {
	c := &conn{s: &Server{}, nc: nc}
	c.trans = &connTransport{c: c}
	return c.trans
}

// replyOp is one write to the reply: kind 0 Write, 1 WriteByte,
// 2 WriteString, 3 WriteRef.
type replyOp struct {
	kind int
	b    []byte
}

// randomOps returns a random interleaving of small writes and refs of
// sizes around MinRefBytes and above.
func randomOps(r *rand.Rand, n int) []replyOp {
	ops := make([]replyOp, n)
	for i := range ops {
		op := replyOp{kind: r.IntN(4)}
		size := r.IntN(40)
		switch {
		case op.kind == 1:
			size = 1
		case op.kind == 3 && r.IntN(4) > 0:
			size = MinRefBytes - 2 + r.IntN(3000) // mostly referenced, some copied
		}
		op.b = make([]byte, size)
		for j := range op.b {
			op.b[j] = byte(r.Uint32())
		}
		ops[i] = op
	}
	return ops
}

// apply performs ops on t and returns the bytes a plain buffer would hold.
func apply(t *connTransport, ops []replyOp) []byte {
	var want bytes.Buffer
	for _, op := range ops {
		want.Write(op.b)
		switch op.kind {
		case 0:
			_, _ = t.Write(op.b)
		case 1:
			_ = t.WriteByte(op.b[0])
		case 2:
			_, _ = t.WriteString(string(op.b))
		case 3:
			t.WriteRef(op.b)
		}
	}
	return want.Bytes()
}

func frame(payload []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(payload))), payload...) //nolint:gosec // test sizes are small
}

// assertReleased fails unless t holds no reference to a reply slice, in
// the used part of its slices or beyond.
func assertReleased(t *testing.T, tr *connTransport) {
	t.Helper()
	if len(tr.refs) != 0 || tr.refBytes != 0 || tr.out.Len() != 0 || len(tr.iov) != 0 || tr.send != nil {
		t.Fatalf("reply not reset: %d refs, %d ref bytes, %d buffered, %d iovecs", len(tr.refs), tr.refBytes, tr.out.Len(), len(tr.iov))
	}
	for i, r := range tr.refs[:cap(tr.refs)] {
		if r.b != nil {
			t.Fatalf("segment %d still referenced after Flush", i)
		}
	}
	for i, b := range tr.iov[:cap(tr.iov)] {
		if b != nil {
			t.Fatalf("iovec %d still referenced after Flush", i)
		}
	}
}

// TestReplyRefsSameBytes builds random replies mixing small writes and refs
// and checks that the frame on the wire is what copying everything would
// send, that refs of MinRefBytes and more reach the connection without a
// copy, and that Flush releases every reference. Several replies go through
// one transport, so reuse of its slices is covered.
func TestReplyRefsSameBytes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	nc := &captureConn{fakeConn: fakeConn{r: bytes.NewReader(nil)}}
	tr := newTestTransport(nc)
	for round := range 300 {
		nc.data.Reset()
		nc.writes = nc.writes[:0]
		ops := randomOps(r, r.IntN(30))
		if round == 0 {
			ops = nil // empty reply: just the header
		}
		want := frame(apply(tr, ops))
		if err := tr.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(nc.data.Bytes(), want) {
			t.Fatalf("round %d: frame differs from the copied reply\n got % x\nwant % x", round, nc.data.Bytes(), want)
		}
		assertReleased(t, tr)
		for _, op := range ops {
			if op.kind != 3 || len(op.b) < MinRefBytes {
				continue
			}
			found := false
			for _, w := range nc.writes {
				if len(w) == len(op.b) && unsafe.SliceData(w) == unsafe.SliceData(op.b) {
					found = true
				}
			}
			if !found {
				t.Fatalf("round %d: a ref of %d bytes was copied", round, len(op.b))
			}
		}
	}
}

// TestReplyRefsEdgeCases covers fixed interleavings: refs first, last,
// back to back, and a copied ref between small writes.
func TestReplyRefsEdgeCases(t *testing.T) {
	big := func(c byte) []byte { return bytes.Repeat([]byte{c}, MinRefBytes) }
	cases := map[string][]replyOp{
		"ref only":          {{3, big('a')}},
		"refs back to back": {{3, big('a')}, {3, big('b')}, {3, big('c')}},
		"ref first":         {{3, big('a')}, {0, []byte("xy")}},
		"ref last":          {{0, []byte("xy")}, {3, big('a')}},
		"small ref copied":  {{0, []byte("x")}, {3, []byte("small")}, {1, []byte("y")}, {3, big('a')}, {2, []byte("z")}},
		"empty ref":         {{0, []byte("x")}, {3, nil}, {0, []byte("y")}},
	}
	for name, ops := range cases {
		t.Run(name, func(t *testing.T) {
			nc := &captureConn{fakeConn: fakeConn{r: bytes.NewReader(nil)}}
			tr := newTestTransport(nc)
			want := frame(apply(tr, ops))
			if err := tr.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(nc.data.Bytes(), want) {
				t.Fatalf("got % x\nwant % x", nc.data.Bytes(), want)
			}
			assertReleased(t, tr)
		})
	}
}

// TestReplyRefsOverTCP sends replies with more segments than one writev
// takes (IOV_MAX is 1024 on Linux) through a real socket, and checks that
// a reply costs no allocation there.
func TestReplyRefsOverTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	tr := newTestTransport(server)
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 10, 1500} {
		ops := randomOps(r, n)
		want := frame(apply(tr, ops))
		got := make([]byte, len(want))
		done := make(chan error, 1)
		go func() {
			_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err := io.ReadFull(client, got)
			done <- err
		}()
		if err := tr.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%d ops: frame differs", n)
		}
		assertReleased(t, tr)
	}

	// Steady state over a socket: no allocation per reply.
	drained := make(chan struct{})
	go func() { defer close(drained); _, _ = io.Copy(io.Discard, client) }()
	body := make([]byte, 1024)
	reply := func() {
		for range 32 {
			_, _ = tr.Write([]byte("hdr"))
			tr.WriteRef(body)
		}
		if err := tr.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	reply()
	if n := testing.AllocsPerRun(100, reply); n != 0 {
		t.Fatalf("%v allocations per reply over TCP", n)
	}
	_ = server.Close()
	<-drained
}

// TestReplyFrameTooLarge: refs count towards the 2^31-1 frame limit (the
// same 1 MiB slice referenced 2048 times makes 2 GiB without allocating
// it); nothing is written and the references are dropped.
func TestReplyFrameTooLarge(t *testing.T) {
	nc := &captureConn{fakeConn: fakeConn{r: bytes.NewReader(nil)}}
	tr := newTestTransport(nc)
	mib := make([]byte, 1<<20)
	_, _ = tr.Write([]byte{1})
	for range 2048 {
		tr.WriteRef(mib)
	}
	if err := tr.Flush(context.Background()); err == nil || tr.writeErr == nil {
		t.Fatalf("Flush of a 2 GiB reply = %v", err)
	}
	if nc.data.Len() != 0 {
		t.Fatalf("%d bytes written", nc.data.Len())
	}
	assertReleased(t, tr)
	// A failed connection stays failed and still drops what it was given.
	tr.WriteRef(mib)
	if err := tr.Flush(context.Background()); err == nil {
		t.Fatal("Flush after a failure succeeded")
	}
	assertReleased(t, tr)
}

// TestReplyWriteError: a socket error is kept and references are dropped.
func TestReplyWriteError(t *testing.T) {
	boom := errors.New("boom")
	nc := &captureConn{fakeConn: fakeConn{r: bytes.NewReader(nil)}, fail: boom}
	tr := newTestTransport(nc)
	tr.WriteRef(make([]byte, 1000))
	if err := tr.Flush(context.Background()); !errors.Is(err, boom) || !errors.Is(tr.writeErr, boom) {
		t.Fatalf("Flush = %v, writeErr = %v", err, tr.writeErr)
	}
	assertReleased(t, tr)
}

// TestReplyFlushAllocs: building and flushing a reply with refs allocates
// nothing once the transport's slices have grown.
func TestReplyFlushAllocs(t *testing.T) {
	nc := &fakeConn{r: bytes.NewReader(nil)} // discards writes
	tr := newTestTransport(nc)
	body := make([]byte, 1024)
	small := []byte("header")
	reply := func() {
		for range 32 {
			_, _ = tr.Write(small)
			tr.WriteRef(body)
		}
		_ = tr.WriteByte(0)
		if err := tr.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	reply()
	if n := testing.AllocsPerRun(100, reply); n != 0 {
		t.Fatalf("%v allocations per reply", n)
	}
}

// TestTrimDropsLargeSegmentLists: a reply with very many segments does not
// leave its bookkeeping behind.
func TestTrimDropsLargeSegmentLists(t *testing.T) {
	tr := newTestTransport(&fakeConn{r: bytes.NewReader(nil)})
	body := make([]byte, MinRefBytes)
	for range refsRetain + 1 {
		_ = tr.WriteByte(0)
		tr.WriteRef(body)
	}
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	tr.trim()
	if cap(tr.refs) != 0 || cap(tr.iov) != 0 {
		t.Fatalf("kept %d refs and %d iovecs of capacity", cap(tr.refs), cap(tr.iov))
	}
}
