package zkconf

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const (
	fakeConnect = "fake:2181"
	chroot      = "/carrera/v4/config"
)

// recorder is a Handler collecting events.
type recorder struct{ ch chan Event }

func newRecorder() *recorder { return &recorder{ch: make(chan Event, 1024)} }

func (r *recorder) handle(ev Event) { r.ch <- ev }

// next returns the next event or fails after 5 s.
func (r *recorder) next(t *testing.T) Event {
	t.Helper()
	select {
	case ev := <-r.ch:
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no watcher event within 5s")
		return Event{}
	}
}

// expect checks the next event.
func (r *recorder) expect(t *testing.T, path string, exists bool, data string, version int32, fromCache bool) {
	t.Helper()
	ev := r.next(t)
	if ev.Path != path || ev.Exists != exists || string(ev.Data) != data || ev.Version != version || ev.FromCache != fromCache {
		t.Fatalf("event %+v (data %q); want path=%s exists=%v data=%q version=%d fromCache=%v",
			ev, ev.Data, path, exists, data, version, fromCache)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fastConfig returns a watcher config driven by f with short intervals.
func fastConfig(f *fakeZK, cacheDir string) Config {
	return Config{
		ConnectString:  fakeConnect,
		StartTimeout:   2 * time.Second,
		CacheDir:       cacheDir,
		CacheInterval:  10 * time.Millisecond,
		ResyncInterval: time.Hour,
		RetryInterval:  10 * time.Millisecond,
		Dial:           f.dial,
	}
}

func startWatcher(t *testing.T, cfg Config, r *recorder) *Watcher {
	t.Helper()
	w, err := NewWatcher(cfg, r.handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return w
}

func TestWatcherDeliversAndRearms(t *testing.T) {
	f := newFakeZK(true)
	f.set(chroot+"/topic/a", "v0")
	r := newRecorder()
	w := startWatcher(t, fastConfig(f, ""), r)
	if !w.Connected() || w.Chroot() != chroot {
		t.Fatalf("connected=%v chroot=%q", w.Connected(), w.Chroot())
	}
	if err := w.Watch("/topic/a"); err != nil {
		t.Fatal(err)
	}
	r.expect(t, "/topic/a", true, "v0", 0, false)
	for i := 1; i <= 5; i++ {
		f.set(chroot+"/topic/a", "v"+string(rune('0'+i)))
		r.expect(t, "/topic/a", true, "v"+string(rune('0'+i)), int32(i), false)
		// Exactly one watch pending after each event: re-armed, no pile-up.
		waitFor(t, time.Second, "re-armed watch", func() bool { return f.watchCount(chroot+"/topic/a") == 1 })
	}
	if got := w.Watched(); len(got) != 1 || got[0] != "/topic/a" {
		t.Fatalf("Watched = %v", got)
	}
}

func TestWatcherMissingCreatedDeleted(t *testing.T) {
	f := newFakeZK(true)
	r := newRecorder()
	w := startWatcher(t, fastConfig(f, ""), r)
	_ = w.Watch("/topic/m")
	r.expect(t, "/topic/m", false, "", 0, false)
	waitFor(t, time.Second, "existence watch", func() bool { return f.watchCount(chroot+"/topic/m") == 1 })

	f.set(chroot+"/topic/m", "born")
	r.expect(t, "/topic/m", true, "born", 0, false)
	f.set(chroot+"/topic/m", "grown")
	r.expect(t, "/topic/m", true, "grown", 1, false)
	f.del(chroot + "/topic/m")
	r.expect(t, "/topic/m", false, "", 0, false)
	f.set(chroot+"/topic/m", "reborn") // re-created: version restarts at 0
	r.expect(t, "/topic/m", true, "reborn", 0, false)
}

func TestWatcherSessionExpiryRearms(t *testing.T) {
	f := newFakeZK(true)
	f.set(chroot+"/pproxy/i", "node")
	r := newRecorder()
	w := startWatcher(t, fastConfig(f, ""), r)
	_ = w.Watch("/pproxy/i")
	_ = w.Watch("/topic/missing")
	r.expect(t, "/pproxy/i", true, "node", 0, false)
	r.expect(t, "/topic/missing", false, "", 0, false)

	f.expire()
	waitFor(t, 2*time.Second, "watches re-created after the new session", func() bool {
		return f.watchCount(chroot+"/pproxy/i") == 1 && f.watchCount(chroot+"/topic/missing") == 1
	})
	f.set(chroot+"/pproxy/i", "node2")
	r.expect(t, "/pproxy/i", true, "node2", 1, false)
	f.set(chroot+"/topic/missing", "here")
	r.expect(t, "/topic/missing", true, "here", 0, false)
}

func TestWatcherDisconnectedUsesCache(t *testing.T) {
	dir := t.TempDir()
	f := newFakeZK(true)
	f.set(chroot+"/topic/a", "zk0")
	r := newRecorder()
	w := startWatcher(t, fastConfig(f, dir), r)
	_ = w.Watch("/topic/a")
	r.expect(t, "/topic/a", true, "zk0", 0, false)
	assertCacheFiles(t, dir, "/topic/a", map[string]string{"0": "zk0"})

	f.disconnect()
	waitFor(t, time.Second, "disconnected", func() bool { return !w.Connected() })

	// A newer version appears in the cache (e.g. written by another
	// process sharing the directory): applied by the cache poll.
	c := &diskCache{dir: dir}
	if err := c.store("/topic/a", 5, []byte("cache5")); err != nil {
		t.Fatal(err)
	}
	r.expect(t, "/topic/a", true, "cache5", 5, true)
	// An older one is ignored; the next newer one is applied.
	writeCacheFile(t, dir, "/topic/a", "3", "cache3")
	writeCacheFile(t, dir, "/topic/a", "7", "cache7")
	r.expect(t, "/topic/a", true, "cache7", 7, true)

	// Reads while disconnected come from the cache.
	ev, err := w.Read("/topic/a")
	if err != nil || !ev.FromCache || ev.Version != 7 {
		t.Fatalf("Read while disconnected: %+v %v", ev, err)
	}
	if _, err := w.Read("/topic/none"); !errors.Is(err, ErrNoCache) {
		t.Fatalf("Read of an uncached node: %v", err)
	}

	// Reconnect: ZooKeeper's data replaces the cached one, and the cache
	// keeps only ZooKeeper's version.
	f.reconnect()
	r.expect(t, "/topic/a", true, "zk0", 0, false)
	assertCacheFiles(t, dir, "/topic/a", map[string]string{"0": "zk0"})
	f.set(chroot+"/topic/a", "zk1")
	r.expect(t, "/topic/a", true, "zk1", 1, false)
}

func TestWatcherChangeWhileDisconnected(t *testing.T) {
	f := newFakeZK(true)
	f.set(chroot+"/topic/a", "a0")
	r := newRecorder()
	w := startWatcher(t, fastConfig(f, ""), r)
	_ = w.Watch("/topic/a")
	r.expect(t, "/topic/a", true, "a0", 0, false)
	f.disconnect()
	waitFor(t, time.Second, "disconnected", func() bool { return !w.Connected() })
	f.set(chroot+"/topic/a", "a1") // notification is delivered on reconnect
	f.reconnect()
	r.expect(t, "/topic/a", true, "a1", 1, false)
	waitFor(t, time.Second, "one watch", func() bool { return f.watchCount(chroot+"/topic/a") == 1 })
}

func TestWatcherPeriodicResync(t *testing.T) {
	f := newFakeZK(true)
	f.set(chroot+"/topic/a", "a0")
	r := newRecorder()
	cfg := fastConfig(f, "")
	cfg.ResyncInterval = 20 * time.Millisecond
	w := startWatcher(t, cfg, r)
	_ = w.Watch("/topic/a")
	r.expect(t, "/topic/a", true, "a0", 0, false)
	f.setSilently(chroot+"/topic/a", "lost-notification")
	r.expect(t, "/topic/a", true, "lost-notification", 1, false)
	if n := f.watchCount(chroot + "/topic/a"); n != 1 {
		t.Fatalf("resync must not add watches: %d pending", n)
	}
}

func TestWatcherStartWithoutSession(t *testing.T) {
	dir := t.TempDir()
	writeCacheFile(t, dir, "/pproxy/i", "4", "cached-node")
	f := newFakeZK(false)
	f.set(chroot+"/pproxy/i", "zk-node")
	r := newRecorder()
	cfg := fastConfig(f, dir)
	cfg.StartTimeout = 50 * time.Millisecond
	start := time.Now()
	w := startWatcher(t, cfg, r)
	if w.Connected() {
		t.Fatal("connected without a session")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Start took %s", d)
	}
	ev, err := w.Read("/pproxy/i")
	if err != nil || !ev.FromCache || string(ev.Data) != "cached-node" || ev.Version != 4 {
		t.Fatalf("Read from cache: %+v %v", ev, err)
	}
	_ = w.Watch("/pproxy/i") // same state as Read: not reported again

	f.reconnect()
	r.expect(t, "/pproxy/i", true, "zk-node", 0, false)
	if !w.Connected() {
		t.Fatal("not connected after the session")
	}
	ev, err = w.Read("/pproxy/i")
	if err != nil || ev.FromCache || string(ev.Data) != "zk-node" {
		t.Fatalf("Read from ZooKeeper: %+v %v", ev, err)
	}
}

func TestWatcherNoCacheNoSession(t *testing.T) {
	f := newFakeZK(false)
	cfg := fastConfig(f, "")
	cfg.StartTimeout = 10 * time.Millisecond
	w := startWatcher(t, cfg, newRecorder())
	if _, err := w.Read("/pproxy/i"); !errors.Is(err, ErrNoCache) {
		t.Fatalf("want ErrNoCache, got %v", err)
	}
}

func TestWatcherReadThenWatchReportsOnlyChanges(t *testing.T) {
	f := newFakeZK(true)
	f.set(chroot+"/topic/a", "a0")
	r := newRecorder()
	w := startWatcher(t, fastConfig(f, ""), r)
	ev, err := w.Read("/topic/a")
	if err != nil || string(ev.Data) != "a0" {
		t.Fatalf("%+v %v", ev, err)
	}
	_ = w.Watch("/topic/a")
	waitFor(t, time.Second, "armed", func() bool { return f.watchCount(chroot+"/topic/a") == 1 })
	f.set(chroot+"/topic/a", "a1")
	r.expect(t, "/topic/a", true, "a1", 1, false) // not a0 first
}

func TestWatcherUnwatch(t *testing.T) {
	f := newFakeZK(true)
	f.set(chroot+"/topic/a", "a0")
	f.set(chroot+"/topic/b", "b0")
	r := newRecorder()
	w := startWatcher(t, fastConfig(f, ""), r)
	_ = w.Watch("/topic/a")
	r.expect(t, "/topic/a", true, "a0", 0, false)
	w.Unwatch("/topic/a")
	_ = w.Watch("/topic/b")
	r.expect(t, "/topic/b", true, "b0", 0, false)
	f.set(chroot+"/topic/a", "a1") // no longer reported
	f.set(chroot+"/topic/b", "b1")
	r.expect(t, "/topic/b", true, "b1", 1, false)

	// Watching again reports the current state afresh.
	_ = w.Watch("/topic/a")
	r.expect(t, "/topic/a", true, "a1", 1, false)
}

func TestWatcherHandlerMayWatch(t *testing.T) {
	f := newFakeZK(true)
	f.set(chroot+"/list", "/topic/x")
	f.set(chroot+"/topic/x", "x0")
	events := make(chan Event, 16)
	var w *Watcher
	w, err := NewWatcher(fastConfig(f, ""), func(ev Event) {
		if ev.Path == "/list" {
			if _, err := w.Read(string(ev.Data)); err != nil {
				t.Errorf("Read from handler: %v", err)
			}
			_ = w.Watch(string(ev.Data))
		}
		events <- ev
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	_ = w.Watch("/list")
	if ev := <-events; ev.Path != "/list" {
		t.Fatalf("%+v", ev)
	}
	f.set(chroot+"/topic/x", "x1")
	select {
	case ev := <-events:
		if ev.Path != "/topic/x" || string(ev.Data) != "x1" {
			t.Fatalf("%+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch added from the handler does not report")
	}
}

func TestWatcherDialRetry(t *testing.T) {
	f := newFakeZK(true)
	f.dialErrs = 3
	r := newRecorder()
	w := startWatcher(t, fastConfig(f, ""), r)
	if !w.Connected() {
		t.Fatal("Start must wait for the session established after dial retries")
	}
}

func TestWatcherLifecycle(t *testing.T) {
	f := newFakeZK(true)
	w, err := NewWatcher(fastConfig(f, ""), func(Event) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err == nil {
		t.Fatal("second Start must fail")
	}
	_ = w.Close()
	_ = w.Close() // idempotent
	if w.Connected() {
		t.Fatal("connected after Close")
	}

	// Close without Start, Start after Close.
	w2, _ := NewWatcher(fastConfig(newFakeZK(true), ""), func(Event) {})
	_ = w2.Close()
	if err := w2.Start(context.Background()); err == nil {
		t.Fatal("Start after Close must fail")
	}

	// A cancelled context ends Start early.
	w3, _ := NewWatcher(Config{ConnectString: fakeConnect, Dial: newFakeZK(false).dial, StartTimeout: time.Hour}, func(Event) {})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w3.Start(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Start with a cancelled context: %v", err)
	}
	_ = w3.Close()
}

func TestNewWatcherErrors(t *testing.T) {
	if _, err := NewWatcher(Config{ConnectString: "/only/a/path"}, func(Event) {}); err == nil {
		t.Error("connect string without servers: want error")
	}
	if _, err := NewWatcher(Config{ConnectString: "h:1"}, nil); err == nil {
		t.Error("nil handler: want error")
	}
	w, err := NewWatcher(Config{ConnectString: "h:1/x"}, func(Event) {})
	if err != nil || w.Chroot() != "/x"+chroot {
		t.Fatalf("%v %q", err, w.Chroot())
	}
	if err := w.Watch("relative"); err == nil {
		t.Error("Watch(relative): want error")
	}
	if _, err := w.Read("/a/../b"); err == nil {
		t.Error("Read(/a/../b): want error")
	}
}

func TestValidPath(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
	}{
		{"/topic/a", true},
		{"/pproxy/10.0.0.11:9613", true},
		{"/a", true},
		{"/", false},
		{"", false},
		{"topic/a", false},
		{"/topic/", false},
		{"/topic//a", false},
		{"/topic/..", false},
		{"/topic/./a", false},
		{"/topic/a\x00", false},
		{"/topic/..a", true},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			if err := validPath(tc.path); (err == nil) != tc.ok {
				t.Fatalf("validPath(%q) = %v", tc.path, err)
			}
		})
	}
}

func TestDiskCache(t *testing.T) {
	dir := t.TempDir()
	c := &diskCache{dir: dir}
	if _, err := c.newest("/pproxy/i"); !errors.Is(err, ErrNoCache) {
		t.Fatalf("empty cache: %v", err)
	}
	if err := c.store("/pproxy/i", 3, []byte("three")); err != nil {
		t.Fatal(err)
	}
	writeCacheFile(t, dir, "/pproxy/i", "junk", "ignored")
	writeCacheFile(t, dir, "/pproxy/i", "007", "ignored: not canonical")
	writeCacheFile(t, dir, "/pproxy/i", "-1", "ignored: negative")
	ev, err := c.newest("/pproxy/i")
	if err != nil || ev.Version != 3 || string(ev.Data) != "three" || !ev.FromCache || !ev.Exists || ev.Path != "/pproxy/i" {
		t.Fatalf("%+v %v", ev, err)
	}
	if err := c.store("/pproxy/i", 9, []byte("")); err != nil {
		t.Fatal(err)
	}
	// Other versions deleted, non-version files left alone, no temp files.
	assertCacheFiles(t, dir, "/pproxy/i", map[string]string{
		"9": "", "junk": "ignored", "007": "ignored: not canonical", "-1": "ignored: negative",
	})
	ev, err = c.newest("/pproxy/i")
	if err != nil || ev.Version != 9 || len(ev.Data) != 0 {
		t.Fatalf("%+v %v", ev, err)
	}
	// Same version rewritten with other content (node re-created).
	if err := c.store("/pproxy/i", 9, []byte("nine")); err != nil {
		t.Fatal(err)
	}
	if ev, _ := c.newest("/pproxy/i"); string(ev.Data) != "nine" {
		t.Fatalf("%q", ev.Data)
	}
	// A child node's directory lives inside the parent's directory.
	if err := c.store("/pproxy", 1, []byte("default")); err != nil {
		t.Fatal(err)
	}
	if ev, _ := c.newest("/pproxy/i"); string(ev.Data) != "nine" {
		t.Fatal("parent store disturbed the child")
	}
}

func writeCacheFile(t *testing.T, dir, path, name, data string) {
	t.Helper()
	d := filepath.Join(dir, filepath.FromSlash(path[1:]))
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	// Atomically, as a concurrently polling watcher may read it any time.
	if err := writeAtomic(d, filepath.Join(d, name), []byte(data)); err != nil {
		t.Fatal(err)
	}
}

// assertCacheFiles checks the exact set of regular files of a node's cache
// directory.
func assertCacheFiles(t *testing.T, dir, path string, want map[string]string) {
	t.Helper()
	d := filepath.Join(dir, filepath.FromSlash(path[1:]))
	entries, err := os.ReadDir(d)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		got[e.Name()] = string(b)
	}
	if len(got) != len(want) {
		t.Fatalf("cache files of %s: got %v, want %v", path, got, want)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Fatalf("cache files of %s: got %v, want %v", path, got, want)
		}
	}
}
