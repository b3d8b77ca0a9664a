package zkconf

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
)

// startOwnNode starts w and reads a proxy's own node (kind "pproxy" or
// "cproxy") — from ZooKeeper, or from the disk cache when ZooKeeper is
// unreachable. The node must exist.
func startOwnNode(ctx context.Context, w *Watcher, log *zap.Logger, kind, path string) (Event, error) {
	if err := w.Start(ctx); err != nil {
		return Event{}, err
	}
	ev, err := w.Read(path)
	if err != nil {
		return Event{}, fmt.Errorf("zkconf: cannot read the %s node: %w", kind, err)
	}
	if !ev.Exists {
		return Event{}, fmt.Errorf("zkconf: %s node %s%s does not exist", kind, w.Chroot(), path)
	}
	if ev.FromCache {
		log.Warn("starting from cached config", zap.String("path", ev.Path), zap.Int32("version", ev.Version))
	}
	return ev, nil
}

// sourceBase is what PProxySource and CProxySource share: the watcher, the
// snapshot in force, its subscribers and the reload metrics. S is the
// snapshot type.
type sourceBase[S any] struct {
	log     *zap.Logger
	w       *Watcher
	metrics *sourceMetrics
	cur     atomic.Pointer[S]
	subs    subscribers[S]
	started atomic.Bool
}

// Current returns the snapshot in force; nil before a successful Start.
// Safe for concurrent use; the snapshot must not be modified.
func (b *sourceBase[S]) Current() *S { return b.cur.Load() }

// Connected reports whether the source has a ZooKeeper session.
func (b *sourceBase[S]) Connected() bool { return b.w.Connected() }

// Subscribe registers fn to be called after every snapshot swap with the
// previous and the new snapshot. Calls are serial, on the watcher
// goroutine, in registration order; fn must not block for long and must
// not call Close. The returned function unsubscribes.
func (b *sourceBase[S]) Subscribe(fn func(old, new *S)) (unsubscribe func()) { return b.subs.add(fn) }

// Close stops watching and closes the ZooKeeper connection, waiting for
// the watcher goroutines. Idempotent. The last snapshot stays readable.
func (b *sourceBase[S]) Close() error { return b.w.Close() }

// swapIn installs snap, counts the reload and notifies the subscribers.
func (b *sourceBase[S]) swapIn(snap *S) {
	old := b.cur.Swap(snap)
	b.metrics.reloads.Inc()
	b.subs.notify(old, snap)
}

// fail logs and counts a configuration change that was rejected. The log
// line comes first, so whoever sees the counter move finds the reason
// already logged.
func (b *sourceBase[S]) fail(reason string, ev Event, err error) {
	b.log.Warn("invalid configuration ignored; keeping the previous snapshot",
		zap.String("reason", reason), zap.String("path", ev.Path),
		zap.Int32("version", ev.Version), zap.Bool("fromCache", ev.FromCache), zap.Error(err))
	b.metrics.failures.WithLabelValues(reason).Inc()
}

// subscribers is a registry of snapshot subscribers called in registration
// order.
type subscribers[T any] struct {
	mu     sync.Mutex
	fns    map[int]func(old, new *T)
	nextID int
}

func (r *subscribers[T]) add(fn func(old, new *T)) (remove func()) {
	r.mu.Lock()
	if r.fns == nil {
		r.fns = map[int]func(old, new *T){}
	}
	id := r.nextID
	r.nextID++
	r.fns[id] = fn
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		delete(r.fns, id)
		r.mu.Unlock()
	}
}

// notify calls every subscriber (outside the lock, so a subscriber may
// subscribe or unsubscribe).
func (r *subscribers[T]) notify(old, new *T) {
	r.mu.Lock()
	ids := make([]int, 0, len(r.fns))
	for id := range r.fns {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	fns := make([]func(old, new *T), 0, len(ids))
	for _, id := range ids {
		fns = append(fns, r.fns[id])
	}
	r.mu.Unlock()
	for _, fn := range fns {
		fn(old, new)
	}
}
