package rocketmq

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/rocketmq/remoting"
)

// BrokerConfig names one broker and its listen address.
type BrokerConfig struct {
	Name string // e.g. "broker-a"; must be unique
	Addr string // listen address; "" = 127.0.0.1:0
}

// Options configures Start. The zero value is usable: one broker
// "broker-a", in memory, auto-created topics with 4 queues.
type Options struct {
	// NameServerAddr is the NameServer's listen address ("" = 127.0.0.1:0).
	// Broker listeners answer NameServer requests too, so a broker address
	// also works as a NameServer address.
	NameServerAddr string
	// Brokers (default one, "broker-a"); all in Cluster.
	Brokers []BrokerConfig
	// Cluster is the cluster name in routes (default "DefaultCluster").
	Cluster string
	// DataDir persists topics, messages and consumer offsets under
	// <DataDir>/<brokerName>/; "" keeps everything in memory.
	DataDir string
	// SyncWrites fsyncs each message append; otherwise appends reach the
	// OS page cache only (they survive a process crash, not a power loss).
	SyncWrites bool
	// DefaultQueues is the queue count of auto-created topics and of the
	// TBW102 template route (default 4).
	DefaultQueues int
	// DisableAutoCreateTopics refuses sends to unknown topics with code 17.
	// By default (false) a send creates the topic on the receiving broker,
	// like a development broker with autoCreateTopicEnable=true.
	DisableAutoCreateTopics bool
	// ClientExpiry removes a consumer whose heartbeats stopped (default
	// 120 s, as real brokers); the remaining members get code 40.
	ClientExpiry time.Duration
	// MaxPullHold caps how long a PULL with nothing new is held (long
	// polling): min(MaxPullHold, suspendTimeoutMillis). Default 2 s.
	MaxPullHold time.Duration
	// DelayLevels are the delays of levels 1..n for delayed messages and
	// send-back retries (default DefaultDelayLevels: RocketMQ's table
	// divided by 100, so level 3 = 100 ms instead of 10 s).
	DelayLevels []time.Duration
	// MaxMessageSize bounds a message body (default 4 MiB); larger → 13.
	MaxMessageSize int
	// MaxFrame bounds an incoming frame (default remoting.DefaultMaxFrame).
	MaxFrame int
	// RetentionBytes bounds the message bytes each broker keeps in memory
	// (0: no bound, keep everything). Past it the oldest segments (up to
	// 1 MiB of consecutive messages of one queue) are dropped and their
	// queues' min offset advances; a queue's newest segment and the
	// delayed messages waiting in SCHEDULE_TOPIC_XXXX are never dropped.
	// Files under DataDir keep every message (a restart reloads and trims
	// again).
	RetentionBytes int64
	// Logger (default none).
	Logger *zap.Logger
}

// RealDelayLevels is RocketMQ's messageDelayLevel table.
var RealDelayLevels = []time.Duration{
	time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 3 * time.Minute, 4 * time.Minute, 5 * time.Minute, 6 * time.Minute,
	7 * time.Minute, 8 * time.Minute, 9 * time.Minute, 10 * time.Minute, 20 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour,
}

// DefaultDelayLevels is RealDelayLevels divided by 100 (10 ms ... 72 s).
var DefaultDelayLevels = func() []time.Duration {
	out := make([]time.Duration, len(RealDelayLevels))
	for i, d := range RealDelayLevels {
		out[i] = d / 100
	}
	return out
}()

func (o *Options) setDefaults() {
	if len(o.Brokers) == 0 {
		o.Brokers = []BrokerConfig{{Name: "broker-a"}}
	}
	if o.Cluster == "" {
		o.Cluster = "DefaultCluster"
	}
	if o.DefaultQueues <= 0 {
		o.DefaultQueues = 4
	}
	if o.ClientExpiry <= 0 {
		o.ClientExpiry = 120 * time.Second
	}
	if o.MaxPullHold <= 0 {
		o.MaxPullHold = 2 * time.Second
	}
	if len(o.DelayLevels) == 0 {
		o.DelayLevels = DefaultDelayLevels
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = 4 << 20
	}
	if o.MaxFrame <= 0 {
		o.MaxFrame = remoting.DefaultMaxFrame
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
}

// Server is a running test broker: one NameServer listener and one
// listener per broker, all in this process.
type Server struct {
	opts    Options
	log     *zap.Logger
	nsLn    net.Listener
	brokers []*broker // sorted by name

	mu     sync.Mutex
	conns  map[*conn]struct{}
	closed bool

	stop chan struct{} // closed by Close: background loops exit
	wg   sync.WaitGroup
	once sync.Once
}

// Start listens on every address and serves until Close. With a DataDir
// the previous state is loaded first.
func Start(opts Options) (*Server, error) {
	opts.setDefaults()
	s := &Server{opts: opts, log: opts.Logger, conns: map[*conn]struct{}{}, stop: make(chan struct{})}
	seen := map[string]bool{}
	for _, bc := range opts.Brokers {
		if bc.Name == "" || seen[bc.Name] || !validTopic(bc.Name) {
			return nil, fmt.Errorf("testbroker: bad or duplicate broker name %q", bc.Name)
		}
		seen[bc.Name] = true
	}
	var lns []net.Listener
	fail := func(err error) (*Server, error) {
		for _, ln := range lns {
			ln.Close()
		}
		for _, b := range s.brokers {
			b.closeFiles()
		}
		return nil, err
	}
	listen := func(addr string) (net.Listener, error) {
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			lns = append(lns, ln)
		}
		return ln, err
	}
	var err error
	if s.nsLn, err = listen(opts.NameServerAddr); err != nil {
		return fail(fmt.Errorf("testbroker: nameserver listen: %w", err))
	}
	for _, bc := range opts.Brokers {
		ln, err := listen(bc.Addr)
		if err != nil {
			return fail(fmt.Errorf("testbroker: broker %s listen: %w", bc.Name, err))
		}
		ap, err := netip.ParseAddrPort(ln.Addr().String())
		if err != nil {
			return fail(err)
		}
		dir := ""
		if opts.DataDir != "" {
			dir = filepath.Join(opts.DataDir, bc.Name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fail(err)
			}
		}
		b := newBroker(s, bc.Name, ln, ap, dir)
		s.brokers = append(s.brokers, b) // before load, so fail closes its files
		if err := b.load(); err != nil {
			return fail(fmt.Errorf("testbroker: broker %s: load %s: %w", bc.Name, dir, err))
		}
	}
	slices.SortFunc(s.brokers, func(a, b *broker) int { return compareStrings(a.name, b.name) })

	s.wg.Add(1)
	go s.acceptLoop(s.nsLn, nil)
	for _, b := range s.brokers {
		s.wg.Add(3)
		go s.acceptLoop(b.ln, b)
		go b.scheduleLoop()
		go b.housekeepingLoop()
	}
	s.log.Info("rocketmq test broker started", zap.String("nameserver", s.NameServerAddr()),
		zap.Any("brokers", s.BrokerAddrs()), zap.String("dataDir", opts.DataDir))
	return s, nil
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// NameServerAddr is the NameServer's "host:port".
func (s *Server) NameServerAddr() string { return s.nsLn.Addr().String() }

// BrokerAddrs maps broker name → "host:port".
func (s *Server) BrokerAddrs() map[string]string {
	m := map[string]string{}
	for _, b := range s.brokers {
		m[b.name] = b.addrString
	}
	return m
}

// BrokerNames returns the broker names, sorted.
func (s *Server) BrokerNames() []string {
	out := make([]string, len(s.brokers))
	for i, b := range s.brokers {
		out[i] = b.name
	}
	return out
}

func (s *Server) broker(name string) *broker {
	for _, b := range s.brokers {
		if b.name == name {
			return b
		}
	}
	return nil
}

// CreateTopic creates (or reconfigures) topic with queues read and write
// queues on every broker — or only on the named brokers.
func (s *Server) CreateTopic(topic string, queues int, brokers ...string) error {
	if !validTopic(topic) {
		return fmt.Errorf("testbroker: invalid topic name %q", topic)
	}
	if queues <= 0 || queues > maxQueues {
		return fmt.Errorf("testbroker: queue count %d outside [1, %d]", queues, maxQueues)
	}
	for _, b := range s.brokers {
		if len(brokers) > 0 && !slices.Contains(brokers, b.name) {
			continue
		}
		b.mu.Lock()
		err := b.createTopicLocked(topic, queues, queues, remoting.PermRead|remoting.PermWrite)
		b.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// ConsumerIDs returns the client ids registered for group on broker
// (sorted), for tests.
func (s *Server) ConsumerIDs(brokerName, group string) []string {
	b := s.broker(brokerName)
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.memberIDsLocked(group)
}

// ConsumerOffset returns the stored offset of group on (topic, queueID) of
// broker and whether there is one.
func (s *Server) ConsumerOffset(brokerName, group, topic string, queueID int) (int64, bool) {
	b := s.broker(brokerName)
	if b == nil {
		return 0, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	off, ok := b.offsets[group][topic][queueID]
	return off, ok
}

// MinOffset returns the offset of the oldest message (topic, queueID) of
// broker keeps: 0 unless RetentionBytes dropped messages (0 for an unknown
// queue).
func (s *Server) MinOffset(brokerName, topic string, queueID int) int64 {
	b := s.broker(brokerName)
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if q := b.queueLocked(topic, queueID); q != nil {
		return q.minOff
	}
	return 0
}

// StoredBytes returns the bytes of message storage broker holds (segment
// sizes, which RetentionBytes bounds).
func (s *Server) StoredBytes(brokerName string) int64 {
	b := s.broker(brokerName)
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.storedBytes
}

// MaxOffset returns the next offset to be written to (topic, queueID) of
// broker (0 for an unknown queue).
func (s *Server) MaxOffset(brokerName, topic string, queueID int) int64 {
	b := s.broker(brokerName)
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if q := b.queueLocked(topic, queueID); q != nil {
		return q.maxOffset()
	}
	return 0
}

func (s *Server) acceptLoop(ln net.Listener, b *broker) {
	defer s.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Warn("accept failed", zap.Error(err))
			}
			return
		}
		c := newConn(s, b, nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(2)
		s.mu.Unlock()
		go c.readLoop()
		go c.writeLoop()
	}
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Close stops the server: listeners close, held PULLs are answered,
// connections are flushed and closed, every goroutine is waited for, and
// (with a DataDir) offsets and topics are written. Idempotent.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		s.nsLn.Close()
		for _, b := range s.brokers {
			b.ln.Close()
		}
		close(s.stop) // scheduler and housekeeping exit
		for _, b := range s.brokers {
			b.shutdownHeld() // answer held pulls; later pulls are answered at once
		}
		s.mu.Lock()
		s.closed = true
		conns := make([]*conn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		for _, c := range conns {
			c.shutdown() // writer flushes queued frames, then closes the socket
		}
		s.wg.Wait()
		for _, b := range s.brokers {
			err = errors.Join(err, b.persistAll())
			b.closeFiles()
		}
		s.log.Info("rocketmq test broker stopped")
	})
	return err
}

// HeldPulls reports, per queue of topic on broker, the client addresses of
// the PULLs being held (long polling) right now, for tests that wait for
// consumers to settle after a rebalance.
func (s *Server) HeldPulls(brokerName, topic string) map[int][]string {
	b := s.broker(brokerName)
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[int][]string{}
	if t := b.topics[topic]; t != nil {
		for _, q := range t.qs {
			for _, hp := range q.waiters {
				out[q.id] = append(out[q.id], hp.c.nc.RemoteAddr().String())
			}
		}
	}
	return out
}
