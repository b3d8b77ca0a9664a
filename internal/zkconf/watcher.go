package zkconf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/config"
)

// Watcher defaults (zookeeper-layout.md §2, §9).
const (
	DefaultSessionTimeout = 30 * time.Second
	DefaultStartTimeout   = config.DefaultZKStartTimeout
	DefaultCacheInterval  = 3 * time.Second
	DefaultResyncInterval = 300 * time.Second
	DefaultRetryInterval  = time.Second
	// DefaultHandshakeTimeout bounds the wait for a server's answer to a
	// new connection's session request (see Config.HandshakeTimeout).
	DefaultHandshakeTimeout = 5 * time.Second
)

// Config configures a Watcher. Zero durations take the defaults.
type Config struct {
	// ConnectString is "host:port[,host:port...][/chroot]"; the chroot is
	// completed as config.ParseZKAddr does (default /carrera/v4/config).
	ConnectString string
	// SessionTimeout of the ZooKeeper session (default 30 s).
	SessionTimeout time.Duration
	// StartTimeout bounds how long Start waits for a session (default 5 s).
	StartTimeout time.Duration
	// CacheDir is the root of the on-disk cache; "" disables the cache.
	CacheDir string
	// CacheInterval: while disconnected, how often the newest cached
	// version of every watched node is checked (default 3 s).
	CacheInterval time.Duration
	// ResyncInterval: while connected, how often every watched node is
	// re-read (default 300 s).
	ResyncInterval time.Duration
	// RetryInterval: how often failed watch arming (and a failed dial) is
	// retried, and the connection state polled (default 1 s).
	RetryInterval time.Duration
	// HandshakeTimeout bounds how long a new TCP connection waits for the
	// server's answer to the session request before the client tries again
	// (default 5 s). go-zookeeper alone waits 10 × 2/3 × SessionTimeout,
	// which after a ZooKeeper restart can stall reconnection for minutes.
	HandshakeTimeout time.Duration
	// Logger; nil = no logging.
	Logger *zap.Logger
	// Dial opens the connection; nil = go-zookeeper's zk.Connect.
	Dial DialFunc
}

// WatcherConfigFromBootstrap fills the ZooKeeper and cache settings from the
// bootstrap file.
func WatcherConfigFromBootstrap(b *config.Bootstrap) Config {
	return Config{
		ConnectString: b.ZookeeperAddr,
		StartTimeout:  b.ZKStartTimeout,
		CacheDir:      b.ConfigCacheDir,
	}
}

// Event reports the state of one watched node.
type Event struct {
	// Path is the node path inside the chroot, e.g. "/topic/order_created".
	Path string
	// Exists is false when the node does not exist (never created, or
	// deleted); Data and Version are then unset.
	Exists bool
	// Data is the raw node data. Receivers must not modify it.
	Data []byte
	// Version is the node's data version (Stat.Version).
	Version int32
	// FromCache is true when the data comes from the on-disk cache because
	// ZooKeeper is unreachable.
	FromCache bool
}

// Handler receives node changes. Calls are serial, on the watcher's loop
// goroutine, in the order the changes were observed. A handler may call
// Watch, Unwatch and Read (Watch/Unwatch take effect after it returns) but
// must not call Close, and should not block for long.
type Handler func(Event)

// Watcher keeps single-node data watches in ZooKeeper, mirrors the nodes to
// the disk cache and reports changes to its Handler:
//
//   - a node is reported when first watched (unless Read already returned
//     the same state) and then on every change of its data or existence;
//     identical re-reads are not reported;
//   - every fired watch is re-armed (GetW, or ExistsW for a missing node);
//   - after a (re)connection or a new session, and every ResyncInterval
//     while connected, every watched node is re-read and unarmed watches
//     are re-created;
//   - while disconnected, every CacheInterval the newest cached version of
//     each watched node is applied if it is newer than the last one applied.
type Watcher struct {
	cfg     Config
	servers []string
	chroot  string
	log     *zap.Logger
	handler Handler
	cache   *diskCache // nil: cache disabled

	mu      sync.Mutex
	conn    Conn // nil until dialled
	desired map[string]bool
	state   map[string]*nodeState
	started bool
	closed  bool

	connected atomic.Bool
	kick      chan struct{} // desired changed
	fired     chan firedWatch
	sessionUp chan struct{} // closed at the first session
	upOnce    sync.Once
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// nodeState is the last state applied (read or delivered) for a path.
type nodeState struct {
	known   bool
	exists  bool
	version int32 // of the last data applied; -1 = none
	data    []byte
}

// entry is the loop's bookkeeping for one watched path.
type entry struct {
	path  string
	armed bool          // a watch is pending in ZooKeeper
	gen   uint64        // identifies the current arm; stale firings are ignored
	stop  chan struct{} // stops the current forwarder (Unwatch)
}

type firedWatch struct {
	path string
	gen  uint64
	ev   zk.Event
}

// NewWatcher validates cfg and returns a Watcher that reports to h. It
// starts nothing.
func NewWatcher(cfg Config, h Handler) (*Watcher, error) {
	if h == nil {
		return nil, errors.New("zkconf: nil handler")
	}
	servers, chroot := config.ParseZKAddr(cfg.ConnectString)
	if len(servers) == 0 {
		return nil, fmt.Errorf("zkconf: connect string %q has no servers", cfg.ConnectString)
	}
	setDefault(&cfg.SessionTimeout, DefaultSessionTimeout)
	setDefault(&cfg.StartTimeout, DefaultStartTimeout)
	setDefault(&cfg.CacheInterval, DefaultCacheInterval)
	setDefault(&cfg.ResyncInterval, DefaultResyncInterval)
	setDefault(&cfg.RetryInterval, DefaultRetryInterval)
	setDefault(&cfg.HandshakeTimeout, DefaultHandshakeTimeout)
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Dial == nil {
		cfg.Dial = zkDialer(cfg.Logger, cfg.HandshakeTimeout)
	}
	w := &Watcher{
		cfg:       cfg,
		servers:   servers,
		chroot:    chroot,
		log:       cfg.Logger,
		handler:   h,
		desired:   map[string]bool{},
		state:     map[string]*nodeState{},
		kick:      make(chan struct{}, 1),
		fired:     make(chan firedWatch),
		sessionUp: make(chan struct{}),
		done:      make(chan struct{}),
	}
	if cfg.CacheDir != "" {
		w.cache = &diskCache{dir: cfg.CacheDir}
	}
	return w, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Chroot returns the chroot prefixed to every path.
func (w *Watcher) Chroot() string { return w.chroot }

// Connected reports whether the watcher currently has a ZooKeeper session.
func (w *Watcher) Connected() bool { return w.connected.Load() }

// Start dials ZooKeeper, starts the loop and waits up to StartTimeout for a
// session. Without a session it returns nil anyway (Connected() == false):
// reads are then served from the cache and the connection keeps being
// retried in the background. It returns an error only if the watcher was
// already started or closed, or ctx ends first (call Close in any case).
func (w *Watcher) Start(ctx context.Context) error {
	w.mu.Lock()
	if w.started || w.closed {
		w.mu.Unlock()
		return errors.New("zkconf: watcher already started or closed")
	}
	w.started = true
	w.mu.Unlock()

	events := w.dial()
	w.wg.Add(1)
	go w.loop(events)

	timer := time.NewTimer(w.cfg.StartTimeout)
	defer timer.Stop()
	select {
	case <-w.sessionUp:
		return nil
	case <-timer.C:
		w.log.Warn("no ZooKeeper session yet; continuing with the on-disk cache and retrying in the background",
			zap.Strings("servers", w.servers), zap.Duration("waited", w.cfg.StartTimeout))
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// dial opens the connection (go-zookeeper returns at once and connects in
// the background) and returns its session event channel; nil on failure,
// the loop then retries every RetryInterval.
func (w *Watcher) dial() <-chan zk.Event {
	conn, events, err := w.cfg.Dial(w.servers, w.cfg.SessionTimeout)
	if err != nil {
		w.log.Warn("ZooKeeper dial failed; will retry", zap.Strings("servers", w.servers), zap.Error(err))
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		conn.Close()
		return nil
	}
	w.conn = conn
	return events
}

func (w *Watcher) getConn() Conn {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.conn
}

// Close stops the loop and the forwarders, closes the ZooKeeper connection
// and waits for all of them. It is idempotent and must not be called from
// the Handler.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		conn := w.conn
		w.mu.Unlock()
		close(w.done)
		if conn != nil {
			conn.Close() // also unblocks a request in flight on the loop
		}
		w.wg.Wait()
		w.connected.Store(false)
	})
	return nil
}

// Watch adds a node to the watched set. The loop reads it and arms its
// watch; its state is reported to the Handler unless it equals what Read
// last returned. Non-blocking; safe from the Handler.
func (w *Watcher) Watch(path string) error {
	if err := validPath(path); err != nil {
		return err
	}
	w.mu.Lock()
	w.desired[path] = true
	w.mu.Unlock()
	w.poke()
	return nil
}

// Unwatch removes a node from the watched set; no further events are
// reported for it. Non-blocking; safe from the Handler.
func (w *Watcher) Unwatch(path string) {
	w.mu.Lock()
	delete(w.desired, path)
	w.mu.Unlock()
	w.poke()
}

// Watched returns the watched paths, sorted.
func (w *Watcher) Watched() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.desired))
	for p := range w.desired {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func (w *Watcher) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Read returns the current state of a node synchronously: from ZooKeeper
// when there is a session (refreshing the cache), otherwise — or when the
// request fails for connection reasons — the newest cached version. A node
// missing in ZooKeeper yields Exists == false and no error; a node that can
// be read neither from ZooKeeper nor from the cache yields an error
// (wrapping ErrNoCache when there is no cached copy).
//
// The result becomes the node's "last applied" state: a later Watch of the
// same path reports only differences from it. Safe from the Handler.
func (w *Watcher) Read(path string) (Event, error) {
	if err := validPath(path); err != nil {
		return Event{}, err
	}
	if conn := w.getConn(); conn != nil && conn.State() == zk.StateHasSession {
		data, stat, err := conn.Get(w.chroot + path)
		switch {
		case err == nil:
			ev := Event{Path: path, Exists: true, Data: data, Version: stat.Version}
			w.storeCache(ev)
			w.accept(ev, true)
			return ev, nil
		case errors.Is(err, zk.ErrNoNode):
			ev := Event{Path: path}
			w.accept(ev, true)
			return ev, nil
		default:
			w.log.Warn("ZooKeeper read failed; trying the cache", zap.String("path", path), zap.Error(err))
		}
	}
	if w.cache == nil {
		return Event{}, fmt.Errorf("zkconf: %s: no ZooKeeper session and the cache is disabled: %w", path, ErrNoCache)
	}
	ev, err := w.cache.newest(path)
	if err != nil {
		return Event{}, fmt.Errorf("zkconf: %s: no ZooKeeper session: %w", path, err)
	}
	w.accept(ev, true)
	return ev, nil
}

// accept decides whether ev is news relative to the last applied state of
// its path and, if so (or if force), records it as applied:
//
//   - cached data is news only if its version is higher than the last one
//     applied (§9);
//   - ZooKeeper data is news if the node did not exist before or its
//     version or bytes differ (a re-created node restarts at version 0);
//   - a missing node is news if the node was unknown or existed.
func (w *Watcher) accept(ev Event, force bool) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.state[ev.Path]
	if st == nil {
		st = &nodeState{version: -1}
		w.state[ev.Path] = st
	}
	var news bool
	switch {
	case !ev.Exists:
		news = !st.known || st.exists
	case ev.FromCache:
		news = ev.Version > st.version
	default:
		news = !st.exists || st.version != ev.Version || !bytes.Equal(st.data, ev.Data)
	}
	if !news && !force {
		return false
	}
	st.known = true
	st.exists = ev.Exists
	if ev.Exists {
		st.version, st.data = ev.Version, ev.Data
	}
	return news
}

func (w *Watcher) storeCache(ev Event) {
	if w.cache == nil {
		return
	}
	if err := w.cache.store(ev.Path, ev.Version, ev.Data); err != nil {
		w.log.Warn("cannot write the config cache", zap.String("path", ev.Path), zap.Error(err))
	}
}

// deliver reports ev to the handler if it is news.
func (w *Watcher) deliver(ev Event) {
	if w.accept(ev, false) {
		w.handler(ev)
	}
}

// loop owns the entries and all timers. It runs until Close.
func (w *Watcher) loop(events <-chan zk.Event) {
	defer w.wg.Done()
	entries := map[string]*entry{}
	defer func() {
		for _, e := range entries {
			e.disarm()
		}
	}()

	cacheT := time.NewTicker(w.cfg.CacheInterval)
	defer cacheT.Stop()
	resyncT := time.NewTicker(w.cfg.ResyncInterval)
	defer resyncT.Stop()
	retryT := time.NewTicker(w.cfg.RetryInterval)
	defer retryT.Stop()

	for {
		select {
		case <-w.done:
			return

		case ev, ok := <-events:
			if !ok {
				events = nil // connection closed; only happens on Close
				continue
			}
			if ev.Type == zk.EventSession {
				w.setConnected(ev.State == zk.StateHasSession, entries)
			}

		case f := <-w.fired:
			e := entries[f.path]
			if e == nil || e.gen != f.gen || !e.armed {
				continue // unwatched, or an older arm
			}
			e.armed, e.stop = false, nil // that forwarder has exited
			if f.ev.Type == zk.EventNotWatching {
				w.log.Debug("watch lost; re-arming when possible", zap.String("path", f.path), zap.Error(f.ev.Err))
			}
			w.refresh(e)

		case <-w.kick:
			w.reconcile(entries)

		case <-cacheT.C:
			if !w.connected.Load() {
				for _, p := range sortedPaths(entries) {
					w.loadCache(entries[p])
				}
			}

		case <-resyncT.C:
			if w.connected.Load() {
				w.refreshAll(entries, false)
			}

		case <-retryT.C:
			if events == nil && w.getConn() == nil {
				events = w.dial()
			}
			if conn := w.getConn(); conn != nil {
				// Poll too: go-zookeeper drops session events when its
				// channel is full.
				w.setConnected(conn.State() == zk.StateHasSession, entries)
			}
			if w.connected.Load() {
				w.refreshAll(entries, true)
			}
		}
	}
}

// setConnected records a session state change; gaining a session re-reads
// every watched node and re-arms the missing watches (§9: on reconnect).
func (w *Watcher) setConnected(up bool, entries map[string]*entry) {
	if w.connected.Swap(up) == up {
		return
	}
	if up {
		w.log.Info("ZooKeeper session established; re-reading watched nodes",
			zap.Strings("servers", w.servers), zap.Int("watched", len(entries)))
		w.upOnce.Do(func() { close(w.sessionUp) })
		w.refreshAll(entries, false)
		return
	}
	w.log.Warn("ZooKeeper connection lost; serving the last configuration and polling the on-disk cache",
		zap.Strings("servers", w.servers))
}

// reconcile applies Watch/Unwatch calls to the entries.
func (w *Watcher) reconcile(entries map[string]*entry) {
	w.mu.Lock()
	var added []string
	for p := range w.desired {
		if entries[p] == nil {
			added = append(added, p)
		}
	}
	var removed []string
	for p := range entries {
		if !w.desired[p] {
			removed = append(removed, p)
			delete(w.state, p)
		}
	}
	w.mu.Unlock()

	for _, p := range removed {
		entries[p].disarm()
		delete(entries, p)
	}
	sort.Strings(added)
	for _, p := range added {
		e := &entry{path: p}
		entries[p] = e
		if w.connected.Load() {
			w.refresh(e)
		} else {
			w.loadCache(e)
		}
	}
}

// refreshAll re-reads the entries (only the unarmed ones if unarmedOnly).
func (w *Watcher) refreshAll(entries map[string]*entry, unarmedOnly bool) {
	for _, p := range sortedPaths(entries) {
		if e := entries[p]; !unarmedOnly || !e.armed {
			w.refresh(e)
		}
	}
}

// refresh reads one node from ZooKeeper, arming its watch if none is
// pending, and delivers the result. Errors leave the entry unarmed; the
// retry tick tries again.
func (w *Watcher) refresh(e *entry) {
	conn := w.getConn()
	if conn == nil || !w.connected.Load() {
		return
	}
	full := w.chroot + e.path
	if e.armed {
		data, stat, err := conn.Get(full)
		w.afterGet(e.path, data, stat, err)
		return
	}
	data, stat, ch, err := conn.GetW(full)
	if err == nil {
		w.arm(e, ch)
		w.applyZK(e.path, data, stat)
		return
	}
	if !errors.Is(err, zk.ErrNoNode) {
		w.readFailed(e.path, err)
		return
	}
	// Missing: watch for its creation.
	exists, _, ch, err := conn.ExistsW(full)
	if err != nil {
		w.readFailed(e.path, err)
		return
	}
	w.arm(e, ch)
	if !exists {
		w.deliver(Event{Path: e.path})
		return
	}
	// Created in between: the ExistsW watch is a data watch now.
	data, stat, err = conn.Get(full)
	w.afterGet(e.path, data, stat, err)
}

func (w *Watcher) afterGet(path string, data []byte, stat *zk.Stat, err error) {
	switch {
	case err == nil:
		w.applyZK(path, data, stat)
	case errors.Is(err, zk.ErrNoNode):
		w.deliver(Event{Path: path})
	default:
		w.readFailed(path, err)
	}
}

func (w *Watcher) applyZK(path string, data []byte, stat *zk.Stat) {
	ev := Event{Path: path, Exists: true, Data: data, Version: stat.Version}
	w.storeCache(ev)
	w.deliver(ev)
}

func (w *Watcher) readFailed(path string, err error) {
	if errors.Is(err, zk.ErrClosing) || errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrNoServer) {
		w.log.Debug("ZooKeeper read failed; will retry", zap.String("path", path), zap.Error(err))
		return
	}
	w.log.Warn("ZooKeeper read failed; will retry", zap.String("path", path), zap.Error(err))
}

// loadCache applies the newest cached version of a node if it is newer
// than the last one applied.
func (w *Watcher) loadCache(e *entry) {
	if w.cache == nil {
		return
	}
	ev, err := w.cache.newest(e.path)
	if err != nil {
		if !errors.Is(err, ErrNoCache) {
			w.log.Warn("cannot read the config cache", zap.String("path", e.path), zap.Error(err))
		}
		return
	}
	w.deliver(ev)
}

// arm records a new pending watch and starts its forwarder, which hands
// the single event of ch to the loop.
func (w *Watcher) arm(e *entry, ch <-chan zk.Event) {
	e.disarm()
	e.gen++
	e.armed = true
	e.stop = make(chan struct{})
	w.wg.Add(1)
	go w.forward(e.path, e.gen, ch, e.stop)
}

// disarm stops the entry's forwarder (the ZooKeeper-side watch stays until
// it fires; its buffered channel is then simply dropped).
func (e *entry) disarm() {
	if e.stop != nil {
		close(e.stop)
		e.stop = nil
	}
	e.armed = false
}

func (w *Watcher) forward(path string, gen uint64, ch <-chan zk.Event, stop <-chan struct{}) {
	defer w.wg.Done()
	var ev zk.Event
	select {
	case e, ok := <-ch:
		if ok {
			ev = e
		} else {
			ev = zk.Event{Type: zk.EventNotWatching, Path: path}
		}
	case <-stop:
		return
	case <-w.done:
		return
	}
	select {
	case w.fired <- firedWatch{path: path, gen: gen, ev: ev}:
	case <-stop:
	case <-w.done:
	}
}

func sortedPaths(entries map[string]*entry) []string {
	out := make([]string, 0, len(entries))
	for p := range entries {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// validPath accepts absolute node paths inside the chroot: "/a/b", no
// empty, "." or ".." segment, no NUL. This also keeps cache files inside
// the cache directory.
func validPath(p string) error {
	if len(p) < 2 || p[0] != '/' {
		return fmt.Errorf("zkconf: invalid node path %q", p)
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "" || seg == "." || seg == ".." || strings.ContainsRune(seg, 0) {
			return fmt.Errorf("zkconf: invalid node path %q", p)
		}
	}
	return nil
}
