package benchutil

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
)

// TestFrameTransportInteroperates exchanges frames with thrift's own
// TFramedTransport: requests written through FrameTransport decode on the
// other side, and replies of several sizes (one larger than any buffer
// default) decode through FrameTransport, field by field.
func TestFrameTransportInteroperates(t *testing.T) {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sizes := []int{0, 1, 5000, 300_000}
	srvErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		cfg := &thrift.TConfiguration{}
		p := thrift.NewTCompactProtocolConf(thrift.NewTFramedTransportConf(thrift.NewTSocketFromConnConf(c, cfg), cfg), cfg)
		for _, n := range sizes {
			s, err := p.ReadString(ctx)
			if err != nil {
				srvErr <- err
				return
			}
			if s != strings.Repeat("q", n%97) {
				srvErr <- fmt.Errorf("size %d: request %q", n, s)
				return
			}
			if err := p.WriteBinary(ctx, []byte(strings.Repeat("r", n))); err != nil {
				srvErr <- err
				return
			}
			if err := p.WriteI64(ctx, int64(n)-7); err != nil {
				srvErr <- err
				return
			}
			if err := p.Flush(ctx); err != nil {
				srvErr <- err
				return
			}
		}
		srvErr <- nil
	}()

	tr := NewFrameTransport(ln.Addr().String(), 5*time.Second, 0)
	if err := tr.Open(); err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	p := thrift.NewTCompactProtocolConf(tr, &thrift.TConfiguration{})
	for _, n := range sizes {
		if err := p.WriteString(ctx, strings.Repeat("q", n%97)); err != nil {
			t.Fatal(err)
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		b, err := p.ReadBinary(ctx)
		if err != nil {
			t.Fatalf("size %d: %v", n, err)
		}
		if string(b) != strings.Repeat("r", n) {
			t.Fatalf("size %d: got %d bytes back", n, len(b))
		}
		v, err := p.ReadI64(ctx)
		if err != nil || v != int64(n)-7 {
			t.Fatalf("size %d: i64 %d, %v", n, v, err)
		}
		if tr.RemainingBytes() != 0 {
			t.Fatalf("size %d: %d bytes left in the frame", n, tr.RemainingBytes())
		}
	}
	if err := <-srvErr; err != nil {
		t.Fatal(err)
	}
}

// TestFrameTransportRefusesBadFrames: a negative or oversized reply length
// is an error, not an allocation.
func TestFrameTransportRefusesBadFrames(t *testing.T) {
	for _, size := range []int32{-1, 1 << 20} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			var hdr [4]byte
			binary.BigEndian.PutUint32(hdr[:], uint32(size))
			_, _ = c.Write(hdr[:])
			_, _ = io.Copy(io.Discard, c) // open until the client closes
			c.Close()
		}()
		tr := NewFrameTransport(ln.Addr().String(), 5*time.Second, 1<<16)
		if err := tr.Open(); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.ReadByte(); err == nil || !strings.Contains(err.Error(), "reply frame") {
			t.Fatalf("size %d: err %v", size, err)
		}
		tr.Close()
		ln.Close()
	}
}
