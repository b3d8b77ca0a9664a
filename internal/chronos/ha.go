package chronos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
)

// ha runs master election and progress publishing on ZooKeeper
// (behaviour.md §3.7, zookeeper-layout.md §8):
//
//   - election: every replica creates an ephemeral sequential node under
//     /chronos/master/<cluster>/<group>; the lowest sequence leads, the
//     others watch their predecessor. Losing the session (or the
//     connection) demotes at once; the node queues again on reconnect.
//   - the master publishes, every publishInterval, its inner group's
//     committed offsets (cproxy getConsumeStats) and its seek under
//     /chronos/meta/<cluster>/<group>/{offsets,seektimestamp}; the others
//     read them there.
//
// Two goroutines (elector, meta) owned by ha, stopped by Close.
type ha struct {
	log    *zap.Logger
	cfg    *Config
	role   *role
	engine *Engine

	conn      *zk.Conn
	events    <-chan zk.Event
	masterDir string
	offsets   string // full path of the offsets node
	seekNode  string // full path of the seektimestamp node
	ident     []byte

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var openACL = zk.WorldACL(zk.PermAll)

// splitConnect splits "h1:p,h2:p/chroot" into servers and chroot.
func splitConnect(s string) ([]string, string) {
	chroot := ""
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s, chroot = s[:i], path.Clean(s[i:])
		if chroot == "/" {
			chroot = ""
		}
	}
	var servers []string
	for _, h := range strings.Split(s, ",") {
		if h = strings.TrimSpace(h); h != "" {
			servers = append(servers, h)
		}
	}
	return servers, chroot
}

// startHA connects to ZooKeeper (without waiting for the session) and
// starts the elector and meta goroutines.
func startHA(cfg *Config, r *role, e *Engine, log *zap.Logger) (*ha, error) {
	servers, chroot := splitConnect(cfg.ZK.ZkAddrs)
	if len(servers) == 0 {
		return nil, errors.New("chronos: zkConfig.zkAddrs has no server")
	}
	conn, events, err := zk.Connect(servers, ms(cfg.ZK.ZkSessionTimeoutMs),
		zk.WithLogger(zkLogger{log.Sugar()}), zk.WithLogInfo(false))
	if err != nil {
		return nil, fmt.Errorf("chronos: zookeeper: %w", err)
	}
	host, _ := os.Hostname()
	meta := path.Join(chroot, cfg.metaPath())
	h := &ha{log: log, cfg: cfg, role: r, engine: e, conn: conn, events: events,
		masterDir: path.Join(chroot, cfg.masterPath()),
		offsets:   path.Join(meta, cfg.ZK.OffsetsProp), seekNode: path.Join(meta, cfg.ZK.SeekTimestampProp),
		ident: []byte(fmt.Sprintf("%s/%d/%s", host, os.Getpid(), cfg.Pull.InnerGroup))}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	el := &elector{h: h}
	h.wg.Add(2)
	go func() { defer h.wg.Done(); el.run(ctx) }()
	go func() { defer h.wg.Done(); h.runMeta(ctx) }()
	return h, nil
}

// Close resigns (the ephemeral node is deleted), stops the goroutines and
// closes the session.
func (h *ha) Close() {
	h.cancel()
	h.wg.Wait()
	h.conn.Close()
}

// elector is the election state machine; its fields are owned by run.
type elector struct {
	h       *ha
	node    string // our latch node (full path), "" if none
	leading bool   // last logged leadership
}

// recheck is how often the election is re-verified without an event (a
// session event may be dropped by the client when its channel is full).
const recheck = 2 * time.Second

func (el *elector) run(ctx context.Context) {
	h := el.h
	defer func() {
		h.role.SetElected(false)
		if el.node != "" {
			_ = h.conn.Delete(el.node, -1)
		}
	}()
	var watch <-chan zk.Event
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-h.events:
			if !ok {
				h.events = nil // closed: only the periodic re-check remains
				continue
			}
			switch ev.State {
			case zk.StateExpired:
				h.log.Warn("zookeeper session expired: not master")
				el.node, el.leading = "", false // the ephemeral node died with the session
				h.role.SetElected(false)
				continue
			case zk.StateDisconnected:
				h.log.Warn("zookeeper disconnected: not master until reconnected")
				el.leading = false
				h.role.SetElected(false)
				continue
			case zk.StateHasSession:
			default:
				continue
			}
		case <-watch:
		case <-timer.C:
		}
		var err error
		watch, err = el.check()
		if err != nil {
			h.log.Warn("election check failed", zap.Error(err))
		}
		timer.Reset(recheck)
	}
}

// check (re)creates our latch node if needed, decides leadership and
// returns a watch on the node whose deletion may change it.
func (el *elector) check() (<-chan zk.Event, error) {
	h := el.h
	if h.conn.State() != zk.StateHasSession {
		el.leading = false
		h.role.SetElected(false)
		return nil, nil
	}
	if el.node == "" {
		if err := ensurePath(h.conn, h.masterDir); err != nil {
			return nil, err
		}
		p, err := h.conn.CreateProtectedEphemeralSequential(h.masterDir+"/latch-", h.ident, openACL)
		if err != nil {
			return nil, err
		}
		el.node = p
		h.log.Info("joined the master election", zap.String("node", p))
	}
	children, _, err := h.conn.Children(h.masterDir)
	if err != nil {
		return nil, err
	}
	sort.Slice(children, func(i, j int) bool { return seqOf(children[i]) < seqOf(children[j]) })
	me := path.Base(el.node)
	idx := -1
	for i, c := range children {
		if c == me {
			idx = i
		}
	}
	if idx < 0 {
		// Our node is gone (a new session): queue again.
		el.node, el.leading = "", false
		h.role.SetElected(false)
		return nil, errors.New("chronos: latch node vanished")
	}
	watchPath := el.node
	if idx > 0 {
		watchPath = path.Join(h.masterDir, children[idx-1])
	}
	if lead := idx == 0; lead != el.leading {
		el.leading = lead
		if lead {
			h.log.Info("elected master; acting as master once the local seek reaches the published seek", zap.String("node", el.node))
		} else {
			h.log.Info("not the elected master", zap.String("node", el.node), zap.String("watching", children[idx-1]))
		}
	}
	h.role.SetElected(idx == 0)
	exists, _, ch, err := h.conn.ExistsW(watchPath)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, errors.New("chronos: watched latch node vanished")
	}
	return ch, nil
}

// seqOf is the ten-digit sequence suffix ZooKeeper appends.
func seqOf(name string) string {
	if len(name) >= 10 {
		return name[len(name)-10:]
	}
	return name
}

// ensurePath creates p and its missing parents (empty data).
func ensurePath(conn *zk.Conn, p string) error {
	cur := ""
	for _, part := range strings.Split(strings.Trim(p, "/"), "/") {
		cur += "/" + part
		if _, err := conn.Create(cur, nil, 0, openACL); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("chronos: create %s: %w", cur, err)
		}
	}
	return nil
}

// setNode writes data to p, creating it (and its parents) if missing.
func setNode(conn *zk.Conn, p string, data []byte) error {
	_, err := conn.Set(p, data, -1)
	if errors.Is(err, zk.ErrNoNode) {
		if err := ensurePath(conn, path.Dir(p)); err != nil {
			return err
		}
		_, err = conn.Create(p, data, 0, openACL)
		if errors.Is(err, zk.ErrNodeExists) {
			_, err = conn.Set(p, data, -1)
		}
	}
	return err
}

// runMeta publishes (master) or reads (backup) the progress nodes every
// publish interval.
func (h *ha) runMeta(ctx context.Context) {
	var stats *statsClient
	defer func() {
		if stats != nil {
			stats.close()
		}
	}()
	t := time.NewTicker(ms(h.cfg.ZK.PublishIntervalMs))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if h.conn.State() != zk.StateHasSession {
			continue
		}
		if h.role.Master() {
			if stats == nil {
				stats = &statsClient{cfg: h.cfg}
			}
			h.publish(stats)
		} else {
			h.read()
		}
	}
}

func (h *ha) publish(stats *statsClient) {
	seek := h.engine.Seek()
	if offsets, err := stats.offsets(); err != nil {
		h.log.Warn("master offsets unavailable; publishing the seek only", zap.Error(err))
	} else {
		data, _ := json.Marshal(offsets) // a string → int64 map cannot fail
		if err := setNode(h.conn, h.offsets, data); err != nil {
			h.log.Warn("publishing offsets failed", zap.Error(err))
		}
	}
	if err := setNode(h.conn, h.seekNode, []byte(strconv.FormatInt(seek, 10))); err != nil {
		h.log.Warn("publishing the seek failed", zap.Error(err))
	}
}

func (h *ha) read() {
	var seek int64
	haveSeek := false
	data, _, err := h.conn.Get(h.seekNode)
	switch {
	case err == nil:
		if v, perr := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64); perr == nil {
			seek, haveSeek = v, true
		} else {
			h.log.Warn("malformed published seek", zap.ByteString("data", data))
		}
	case !errors.Is(err, zk.ErrNoNode):
		return // keep the previous values
	}
	var offsets map[string]int64
	if data, _, err := h.conn.Get(h.offsets); err == nil {
		if err := json.Unmarshal(data, &offsets); err != nil {
			h.log.Warn("malformed published offsets", zap.ByteString("data", data))
			offsets = nil
		}
	}
	h.role.SetPublished(seek, haveSeek, offsets)
}

// statsClient asks cproxy for the inner group's committed offsets
// (getConsumeStats with group = innerGroup, topic = innerTopic).
type statsClient struct {
	cfg    *Config
	next   int
	trans  thrift.TTransport
	client *consumer.ConsumerServiceClient
}

func (s *statsClient) offsets() (map[string]int64, error) {
	addrs := s.cfg.Pull.CproxyAddrs
	if len(addrs) == 0 {
		return nil, errors.New("chronos: no cproxy address")
	}
	var lastErr error
	for range addrs {
		if s.client == nil {
			trans, proto, err := dialThrift(addrs[s.next%len(addrs)], ms(s.cfg.Pull.TimeoutMs))
			if err != nil {
				s.next++
				lastErr = err
				continue
			}
			s.trans, s.client = trans, consumer.NewConsumerServiceClient(thrift.NewTStandardClient(proto, proto))
		}
		topic := s.cfg.Pull.InnerTopic
		stats, err := s.client.GetConsumeStats(context.Background(),
			&consumer.ConsumeStatsRequest{Group: s.cfg.Pull.InnerGroup, Topic: &topic})
		if err != nil {
			s.close()
			s.next++
			lastErr = err
			continue
		}
		out := map[string]int64{}
		for _, st := range stats {
			if st.GetTopic() == topic {
				maps.Copy(out, st.GetConsumeOffsets())
			}
		}
		if len(out) == 0 {
			return nil, errors.New("chronos: cproxy reports no committed offset for the inner group")
		}
		return out, nil
	}
	return nil, lastErr
}

func (s *statsClient) close() {
	if s.trans != nil {
		_ = s.trans.Close()
	}
	s.trans, s.client = nil, nil
}

// zkLogger sends go-zookeeper's client lines to debug.
type zkLogger struct{ s *zap.SugaredLogger }

func (l zkLogger) Printf(format string, args ...any) {
	l.s.Debugf("zookeeper client: "+format, args...)
}
