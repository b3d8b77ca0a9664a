package zkconf

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ddmq-go/carrera/internal/testenv"
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

// The production Conn never resumes a session on a new TCP connection
// (go-zookeeper's resume path races, see renewingConn): after a network
// cut that the server's session would survive, the client comes back on
// a new session, the old session's watch ends with EventNotWatching, and
// watches armed on the new session fire.
func TestRenewingConnOpensANewSessionAfterACut(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	testenv.SeedZK(t, z.Addr, "", map[string][]byte{"/n": []byte("v0")})
	proxy := newCutProxy(t, z.Addr)

	logs, observed := observer.New(zap.InfoLevel)
	c, events, err := zkDialer(zap.New(logs), time.Second)([]string{proxy.addr()}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rc := c.(*renewingConn)
	defer rc.Close() // idempotent: also closed below
	awaitState := func(want zk.State) {
		t.Helper()
		timeout := time.After(resync)
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatalf("events closed waiting for %v", want)
				}
				if ev.Type == zk.EventSession && ev.State == want {
					return
				}
			case <-timeout:
				t.Fatalf("no %v event within %s", want, resync)
			}
		}
	}
	awaitState(zk.StateHasSession)
	first := rc.SessionID()
	if _, _, err := rc.Get("/n"); err != nil {
		t.Fatal(err)
	}
	_, _, oldWatch, err := rc.GetW("/n")
	if err != nil {
		t.Fatal(err)
	}

	proxy.setCut(true)
	awaitState(zk.StateDisconnected)
	proxy.setCut(false)
	awaitState(zk.StateHasSession)
	if second := rc.SessionID(); second == 0 || second == first {
		t.Fatalf("session after the cut = %#x, before = %#x; want a new one", second, first)
	}
	select {
	case ev := <-oldWatch:
		if ev.Type != zk.EventNotWatching {
			t.Fatalf("old session's watch got %+v, want EventNotWatching", ev)
		}
	case <-time.After(resync):
		t.Fatal("the old session's watch never ended")
	}
	if n := observed.FilterMessage("ZooKeeper connection lost; opening a new session").Len(); n != 1 {
		t.Fatalf("renewals logged: %d, want 1", n)
	}

	data, _, newWatch, err := rc.GetW("/n")
	if err != nil || string(data) != "v0" {
		t.Fatalf("GetW on the new session: %q, %v", data, err)
	}
	testenv.SeedZK(t, z.Addr, "", map[string][]byte{"/n": []byte("v1")})
	select {
	case ev := <-newWatch:
		if ev.Type != zk.EventNodeDataChanged {
			t.Fatalf("new watch got %+v", ev)
		}
	case <-time.After(resync):
		t.Fatal("the new session's watch did not fire")
	}

	rc.Close()
	rc.Close() // idempotent
	for range events {
	} // closed by Close
	if _, _, err := rc.Get("/n"); err == nil {
		t.Fatal("Get after Close succeeded")
	}
}
