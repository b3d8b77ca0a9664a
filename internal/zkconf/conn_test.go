package zkconf

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A server that accepts connections but never answers the session request
// (as a ZooKeeper that is still starting may do) must not stall the client:
// after HandshakeTimeout it gives up on that connection and dials again.
func TestHandshakeTimeoutRetries(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	var mu sync.Mutex
	var held []net.Conn
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			mu.Lock()
			held = append(held, c) // never answered
			mu.Unlock()
		}
	}()
	defer func() {
		_ = ln.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range held {
			_ = c.Close()
		}
		mu.Unlock()
	}()

	w, err := NewWatcher(Config{
		ConnectString:    ln.Addr().String(),
		StartTimeout:     10 * time.Millisecond,
		HandshakeTimeout: 200 * time.Millisecond,
	}, func(Event) {})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// go-zookeeper waits 1 s between rounds over the server list.
	waitFor(t, 10*time.Second, "a second connection attempt", func() bool { return accepted.Load() >= 2 })
}

func TestHandshakeConnCapsOnlyTheFirstDeadline(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := &handshakeConn{Conn: a, limit: 50 * time.Millisecond}

	// Handshake read: a 1 h deadline is capped to 50 ms.
	_ = c.SetReadDeadline(time.Now().Add(time.Hour))
	start := time.Now()
	buf := make([]byte, 1)
	if _, err := c.Read(buf); err == nil {
		t.Fatal("read must time out")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("handshake read waited %s", d)
	}
	// Later deadlines are the caller's own.
	later := time.Now().Add(time.Hour)
	_ = c.SetReadDeadline(later)
	if got := capDeadline(later, 0); !got.Equal(later) {
		t.Fatal("limit 0 must not cap")
	}
	if !c.readDone.Load() || c.writeDone.Load() {
		t.Fatal("only the read side was used")
	}
	_ = c.SetWriteDeadline(time.Time{}) // zero: not the handshake's
	if c.writeDone.Load() {
		t.Fatal("a zero deadline must not consume the cap")
	}
}
