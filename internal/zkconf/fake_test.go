package zkconf

import (
	"errors"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// fakeZK is an in-memory Conn modelled on go-zookeeper's behaviour:
// one-shot buffered watch channels, existence watches for missing nodes,
// watches kept across a disconnection (fired on reconnect when something
// changed meanwhile), all watches invalidated with EventNotWatching on
// session expiry and Close, session state changes on the event channel.
// Paths are absolute (chroot included).
type fakeZK struct {
	mu       sync.Mutex
	nodes    map[string]*fakeNode
	data     map[string][]chan zk.Event // data watches (existing nodes)
	exist    map[string][]chan zk.Event // existence watches (missing nodes)
	pending  []zk.Event                 // changes made while disconnected
	state    zk.State
	events   chan zk.Event
	closed   bool
	dialErrs int // the first dialErrs dials fail
	dials    int
}

type fakeNode struct {
	data    []byte
	version int32
}

func newFakeZK(connected bool) *fakeZK {
	f := &fakeZK{
		nodes:  map[string]*fakeNode{},
		data:   map[string][]chan zk.Event{},
		exist:  map[string][]chan zk.Event{},
		state:  zk.StateConnecting,
		events: make(chan zk.Event, 256),
	}
	if connected {
		f.state = zk.StateHasSession
	}
	return f
}

// dial is a DialFunc; the fake can be dialled successfully once.
func (f *fakeZK) dial([]string, time.Duration) (Conn, <-chan zk.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dials++
	if f.dials <= f.dialErrs {
		return nil, nil, errors.New("fake dial failure")
	}
	if f.state == zk.StateHasSession {
		f.emitLocked(zk.StateHasSession)
	}
	return f, f.events, nil
}

func (f *fakeZK) emitLocked(s zk.State) {
	select {
	case f.events <- zk.Event{Type: zk.EventSession, State: s}:
	default:
	}
}

func (f *fakeZK) usableLocked() error {
	if f.closed {
		return zk.ErrClosing
	}
	if f.state != zk.StateHasSession {
		return zk.ErrConnectionClosed
	}
	return nil
}

func (f *fakeZK) Get(path string) ([]byte, *zk.Stat, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.usableLocked(); err != nil {
		return nil, nil, err
	}
	n := f.nodes[path]
	if n == nil {
		return nil, nil, zk.ErrNoNode
	}
	return append([]byte(nil), n.data...), &zk.Stat{Version: n.version}, nil
}

func (f *fakeZK) GetW(path string) ([]byte, *zk.Stat, <-chan zk.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.usableLocked(); err != nil {
		return nil, nil, nil, err
	}
	n := f.nodes[path]
	if n == nil {
		return nil, nil, nil, zk.ErrNoNode
	}
	ch := make(chan zk.Event, 1)
	f.data[path] = append(f.data[path], ch)
	return append([]byte(nil), n.data...), &zk.Stat{Version: n.version}, ch, nil
}

func (f *fakeZK) ExistsW(path string) (bool, *zk.Stat, <-chan zk.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.usableLocked(); err != nil {
		return false, nil, nil, err
	}
	ch := make(chan zk.Event, 1)
	n := f.nodes[path]
	if n == nil {
		f.exist[path] = append(f.exist[path], ch)
		return false, &zk.Stat{}, ch, nil
	}
	f.data[path] = append(f.data[path], ch)
	return true, &zk.Stat{Version: n.version}, ch, nil
}

func (f *fakeZK) State() zk.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state
}

func (f *fakeZK) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.closed = true
	f.invalidateLocked(zk.ErrClosing)
	f.state = zk.StateDisconnected
	close(f.events)
}

// set creates or updates a node and fires the watches (or queues them
// while disconnected).
func (f *fakeZK) set(path string, data string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nodes[path]
	typ := zk.EventNodeDataChanged
	if n == nil {
		n = &fakeNode{version: -1}
		f.nodes[path] = n
		typ = zk.EventNodeCreated
	}
	n.version++
	n.data = []byte(data)
	f.fireLocked(zk.Event{Type: typ, Path: path})
}

// setSilently changes a node without firing watches (a lost notification).
func (f *fakeZK) setSilently(path string, data string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nodes[path]
	n.version++
	n.data = []byte(data)
}

func (f *fakeZK) del(path string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.nodes, path)
	f.fireLocked(zk.Event{Type: zk.EventNodeDeleted, Path: path})
}

func (f *fakeZK) fireLocked(ev zk.Event) {
	if f.state != zk.StateHasSession {
		f.pending = append(f.pending, ev)
		return
	}
	var lists []map[string][]chan zk.Event
	switch ev.Type {
	case zk.EventNodeCreated:
		lists = append(lists, f.exist)
	case zk.EventNodeDataChanged, zk.EventNodeDeleted:
		lists = append(lists, f.data, f.exist)
	}
	for _, m := range lists {
		for _, ch := range m[ev.Path] {
			ch <- ev
			close(ch)
		}
		delete(m, ev.Path)
	}
}

func (f *fakeZK) invalidateLocked(err error) {
	for _, m := range []map[string][]chan zk.Event{f.data, f.exist} {
		for p, chans := range m {
			for _, ch := range chans {
				ch <- zk.Event{Type: zk.EventNotWatching, State: zk.StateDisconnected, Path: p, Err: err}
				close(ch)
			}
			delete(m, p)
		}
	}
}

// disconnect loses the connection but keeps the session and its watches.
func (f *fakeZK) disconnect() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = zk.StateDisconnected
	f.emitLocked(zk.StateDisconnected)
}

// reconnect restores the session; changes made meanwhile fire now.
func (f *fakeZK) reconnect() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = zk.StateHasSession
	pending := f.pending
	f.pending = nil
	for _, ev := range pending {
		f.fireLocked(ev)
	}
	f.emitLocked(zk.StateHasSession)
}

// expire ends the session (all watches get EventNotWatching) and opens a
// new one, as go-zookeeper does after a long disconnection.
func (f *fakeZK) expire() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = zk.StateExpired
	f.emitLocked(zk.StateExpired)
	f.invalidateLocked(zk.ErrSessionExpired)
	f.pending = nil
	f.state = zk.StateHasSession
	f.emitLocked(zk.StateHasSession)
}

// watchCount is the number of pending watches on path.
func (f *fakeZK) watchCount(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.data[path]) + len(f.exist[path])
}
