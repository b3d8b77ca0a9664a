package zkconf

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ddmq-go/carrera/internal/testenv"
)

// cutProxy forwards TCP connections to target and can "cut" the network:
// while cut, existing connections are closed and new ones are closed at
// once. It lets a test keep a client away from a running ZooKeeper until
// the server expires the client's session.
type cutProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.setCut(true)
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *cutProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

func (p *cutProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			_ = c.Close()
		}
	}
}

// TestPProxySourceSessionExpiry runs a real session expiry: the client is
// cut off until ZooKeeper expires its session, a topic changes meanwhile,
// and after the cut the source must re-read everything and re-arm its
// watches on the new session.
func TestPProxySourceSessionExpiry(t *testing.T) {
	z := testenv.StartZooKeeper(t, testenv.WithTickTime(500)) // min session 1 s
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{
		nodeKey:    pproxyNode(30000, "a"),
		"/topic/a": topicNode("a", "R_default", 100, me),
	})
	proxy := newCutProxy(t, z.Addr)
	env := mustSourceWith(t, proxy.addr(), t.TempDir(), 10*time.Second, time.Second)
	s := env.src

	sessions := func() string {
		m, err := z.Mntr()
		if err != nil {
			t.Fatal(err)
		}
		return m["zk_global_sessions"]
	}
	proxy.setCut(true)
	waitFor(t, resync, "disconnected", func() bool { return !s.Connected() })
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{"/topic/a": topicNode("a", "R_default", 200, me)})
	waitFor(t, resync, "session expired on the server", func() bool { return sessions() == "0" })
	if !maxTpsIs(s, "a", 100)() {
		t.Fatal("changed while cut off")
	}

	proxy.setCut(false)
	waitFor(t, resync, "re-read after the new session", maxTpsIs(s, "a", 200))
	// The watches are armed again on the new session.
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{"/topic/a": topicNode("a", "R_default", 300, me)})
	waitFor(t, reload, "topic change after expiry", maxTpsIs(s, "a", 300))
	testenv.SeedZK(t, z.Addr, chroot, map[string][]byte{nodeKey: pproxyNode(444, "a")})
	waitFor(t, reload, "node change after expiry", func() bool { return s.Current().Node.CarreraConfiguration.MaxTps == 444 })
	if n := env.logs.FilterMessage("ZooKeeper session established; re-reading watched nodes").Len(); n != 2 {
		t.Fatalf("sessions established: %d, want 2", n)
	}
}
