// Package rmqfault is a TEST-ONLY fault-injecting proxy for RocketMQ
// remoting traffic, used by the RocketMQ producer's tests and the pproxy
// end-to-end tests to make a broker slow without the broker's help.
//
// A Proxy stands in front of a NameServer and of every broker of a
// (test) cluster. Clients are pointed at Proxy.NameServer(); route answers
// (GET_ROUTEINFO_BY_TOPIC) are rewritten so that broker addresses name the
// broker proxies, so all broker traffic of the client passes through the
// Proxy. Hold(broker) then withholds the broker's answers to sends (codes
// 10, 310 and 320) until release: the broker stores the message, the client
// sees no acknowledgement — a slow broker as the client experiences it.
//
// It works on whole frames (internal/rocketmq/remoting) and never alters
// anything but route bodies.
package rmqfault

import (
	"bytes"
	"fmt"
	"net"
	"sync"

	"github.com/ddmq-go/carrera/internal/rocketmq/remoting"
)

// Proxy proxies a NameServer and its brokers.
type Proxy struct {
	ns      *listener
	brokers map[string]*listener // broker name → its proxy
	rewrite map[string]string    // real broker address → proxy address

	mu    sync.Mutex
	held  map[string]*holdState    // broker name → hold in force
	reqs  map[string]map[int16]int // broker name ("" = NameServer) → request code → count
	conns map[net.Conn]struct{}
	done  bool
	stop  chan struct{} // closed by Close
	wg    sync.WaitGroup
}

type listener struct {
	ln       net.Listener
	upstream string
	broker   string // "" for the NameServer
}

type holdState struct {
	release chan struct{}
}

// Start listens on 127.0.0.1 for the NameServer at nameServer and for each
// broker of brokers (name → address).
func Start(nameServer string, brokers map[string]string) (*Proxy, error) {
	p := &Proxy{
		brokers: map[string]*listener{}, rewrite: map[string]string{},
		held: map[string]*holdState{}, conns: map[net.Conn]struct{}{}, stop: make(chan struct{}),
		reqs: map[string]map[int16]int{},
	}
	listen := func(up, broker string) (*listener, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		return &listener{ln: ln, upstream: up, broker: broker}, nil
	}
	var err error
	if p.ns, err = listen(nameServer, ""); err != nil {
		return nil, err
	}
	for name, addr := range brokers {
		l, err := listen(addr, name)
		if err != nil {
			p.Close()
			return nil, err
		}
		p.brokers[name] = l
		p.rewrite[addr] = l.ln.Addr().String()
	}
	for _, l := range p.all() {
		p.wg.Add(1)
		go p.accept(l)
	}
	return p, nil
}

func (p *Proxy) all() []*listener {
	out := []*listener{p.ns}
	for _, l := range p.brokers {
		out = append(out, l)
	}
	return out
}

// NameServer is the proxy's NameServer address.
func (p *Proxy) NameServer() string { return p.ns.ln.Addr().String() }

// BrokerAddr is the proxy address of broker name ("" if unknown).
func (p *Proxy) BrokerAddr(name string) string {
	if l := p.brokers[name]; l != nil {
		return l.ln.Addr().String()
	}
	return ""
}

// Hold withholds broker's answers to sends from now on until release is
// called; release (idempotent) delivers them.
func (p *Proxy) Hold(broker string) (release func()) {
	h := &holdState{release: make(chan struct{})}
	p.mu.Lock()
	p.held[broker] = h
	p.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			if p.held[broker] == h {
				delete(p.held, broker)
			}
			p.mu.Unlock()
			close(h.release)
		})
	}
}

// Requests returns how many requests with code the clients sent to broker
// through the proxy ("" counts the NameServer's).
func (p *Proxy) Requests(broker string, code int16) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reqs[broker][code]
}

func (p *Proxy) count(broker string, code int16) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.reqs[broker]
	if m == nil {
		m = map[int16]int{}
		p.reqs[broker] = m
	}
	m[code]++
}

func (p *Proxy) hold(broker string) *holdState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held[broker]
}

// Close stops listening, closes every connection and waits for the
// proxy's goroutines. Held answers are dropped.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.done {
		p.mu.Unlock()
		return
	}
	p.done = true
	close(p.stop)
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	for _, l := range p.all() {
		if l != nil {
			_ = l.ln.Close()
		}
	}
	p.wg.Wait()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *Proxy) accept(l *listener) {
	defer p.wg.Done()
	for {
		down, err := l.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", l.upstream)
		if err != nil {
			_ = down.Close()
			continue
		}
		if !p.track(down) || !p.track(up) {
			_ = down.Close()
			_ = up.Close()
			continue
		}
		s := &session{p: p, l: l, down: down, up: up, codes: map[int32]int16{}}
		p.wg.Add(2)
		go s.clientToServer()
		go s.serverToClient()
	}
}

// session is one proxied connection.
type session struct {
	p        *Proxy
	l        *listener
	down, up net.Conn
	wmu      sync.Mutex // serialises writes to down

	mu    sync.Mutex
	codes map[int32]int16 // opaque → request code, client requests in flight
}

func (s *session) close() {
	s.p.untrack(s.down)
	s.p.untrack(s.up)
}

func (s *session) clientToServer() {
	defer s.p.wg.Done()
	defer s.close()
	for {
		cmd, err := remoting.ReadCommand(s.down, 0)
		if err != nil {
			return
		}
		if !cmd.IsResponse() {
			s.mu.Lock()
			s.codes[cmd.Opaque] = cmd.Code
			s.mu.Unlock()
			s.p.count(s.l.broker, cmd.Code)
		}
		if err := write(s.up, cmd); err != nil {
			return
		}
	}
}

func (s *session) serverToClient() {
	defer s.p.wg.Done()
	defer s.close()
	for {
		cmd, err := remoting.ReadCommand(s.up, 0)
		if err != nil {
			return
		}
		var code int16 = -1
		if cmd.IsResponse() {
			s.mu.Lock()
			code = s.codes[cmd.Opaque]
			delete(s.codes, cmd.Opaque)
			s.mu.Unlock()
		}
		switch {
		case code == remoting.GetRouteInfoByTopic && cmd.Code == remoting.Success:
			for real, proxied := range s.p.rewrite {
				cmd.Body = bytes.ReplaceAll(cmd.Body, []byte(`"`+real+`"`), []byte(`"`+proxied+`"`))
			}
		case s.l.broker != "" && isSend(code):
			if h := s.p.hold(s.l.broker); h != nil {
				// Deliver later, without blocking this connection's other
				// answers.
				s.p.wg.Add(1)
				go func() {
					defer s.p.wg.Done()
					select {
					case <-h.release:
						_ = s.writeDown(cmd)
					case <-s.p.stop:
					}
				}()
				continue
			}
		}
		if err := s.writeDown(cmd); err != nil {
			return
		}
	}
}

func isSend(code int16) bool {
	return code == remoting.SendMessage || code == remoting.SendMessageV2 || code == remoting.SendBatchMessage
}

func (s *session) writeDown(cmd *remoting.Command) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return write(s.down, cmd)
}

func write(c net.Conn, cmd *remoting.Command) error {
	frame, err := cmd.Encode()
	if err != nil {
		return fmt.Errorf("rmqfault: %w", err)
	}
	_, err = c.Write(frame)
	return err
}
