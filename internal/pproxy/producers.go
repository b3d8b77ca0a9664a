package pproxy

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/mq"
)

// ClusterSpec describes the producer one broker cluster should have.
type ClusterSpec struct {
	// Fingerprint identifies the configuration; a different fingerprint
	// means the producer must be rebuilt.
	Fingerprint string
	// Build creates and warms up the producer (fetches metadata of the
	// cluster's served topics) so it never answers "no producer" once
	// swapped in.
	Build func(ctx context.Context) (mq.Producer, error)
}

type producerEntry struct {
	fingerprint string
	p           mq.Producer
	lease       *Lease
}

// Lease keeps a producer from being closed by a hot reload: the registry
// closes a replaced producer only once its own reference and every lease
// reference are released. A request holds one from Acquire until it
// answers, and every record it hands to the producer holds one until the
// producer's callback (Track), so a record is never refused because a
// reload replaced its producer mid-send. The nil Lease is valid and does
// nothing (producers that are never replaced).
type Lease struct {
	refs   atomic.Int64 // the registry's while current, requests', records in flight
	onIdle func()       // set before the registry drops its reference
}

func newLease() *Lease {
	l := &Lease{}
	l.refs.Store(1)
	return l
}

// acquire takes a reference unless the count already reached 0 (retired
// and idle: the caller reloads the current map, which no longer holds it).
func (l *Lease) acquire() bool {
	for n := l.refs.Load(); n > 0; n = l.refs.Load() {
		if l.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
	return false
}

// Release drops one reference; the last one of a retired producer starts
// its close.
func (l *Lease) Release() {
	if l != nil && l.refs.Add(-1) == 0 {
		l.onIdle()
	}
}

// Track returns done wrapped to hold a reference until it is called: pass
// it as the callback of a record handed to the leased producer.
func (l *Lease) Track(done func(error)) func(error) {
	if l == nil {
		return done
	}
	l.refs.Add(1)
	return func(err error) {
		done(err)
		l.Release()
	}
}

// Registry owns the producers of all broker clusters. Acquire is lock-free;
// Apply and Close are serialised by mu. A replaced producer is closed in
// the background once no lease holds it (its in-flight records complete
// first); Close waits for those closes.
type Registry struct {
	log *zap.Logger

	cur atomic.Pointer[map[string]producerEntry]

	mu       sync.Mutex
	specs    map[string]ClusterSpec // last applied, for the rebuild loop
	closing  sync.WaitGroup         // replaced producers not closed yet
	closed   bool
	closeTmo time.Duration
}

// NewRegistry returns an empty registry.
func NewRegistry(log *zap.Logger) *Registry {
	r := &Registry{log: log, closeTmo: 30 * time.Second}
	empty := map[string]producerEntry{}
	r.cur.Store(&empty)
	return r
}

// Acquire returns the producer of cluster (nil if none) and a lease on it;
// the caller releases the lease when it no longer uses the producer.
func (r *Registry) Acquire(cluster string) (mq.Producer, *Lease) {
	for {
		e, ok := (*r.cur.Load())[cluster]
		if !ok {
			return nil, nil
		}
		if e.lease.acquire() {
			return e.p, e.lease
		}
	}
}

// retire closes e's producer once its lease is idle, bounded by timeout
// from then. The caller has removed e from the current map.
func (r *Registry) retire(e producerEntry, timeout time.Duration) {
	r.closing.Add(1)
	e.lease.onIdle = func() {
		go func() {
			defer r.closing.Done()
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			if err := e.p.Close(ctx); err != nil {
				r.log.Warn("closing replaced producer", zap.Error(err))
			}
		}()
	}
	e.lease.Release()
}

// Apply makes the registry match specs: new or changed clusters get a new
// producer (built before the swap), removed clusters are closed. A cluster
// whose build fails keeps its previous producer (if any) and is retried by
// Run. It returns the number of clusters that failed to build.
func (r *Registry) Apply(ctx context.Context, specs map[string]ClusterSpec) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0
	}
	r.specs = specs
	old := *r.cur.Load()
	next := make(map[string]producerEntry, len(specs))
	var retired []producerEntry
	failed := 0
	for name, spec := range specs {
		if e, ok := old[name]; ok && e.fingerprint == spec.Fingerprint {
			next[name] = e
			continue
		}
		p, err := spec.Build(ctx)
		if err != nil {
			failed++
			r.log.Error("cannot build producer; will retry", zap.String("cluster", name), zap.Error(err))
			if e, ok := old[name]; ok {
				next[name] = e // keep serving with the old configuration
			}
			continue
		}
		r.log.Info("producer ready", zap.String("cluster", name))
		next[name] = producerEntry{fingerprint: spec.Fingerprint, p: p, lease: newLease()}
		if e, ok := old[name]; ok {
			retired = append(retired, e)
		}
	}
	for name, e := range old {
		if _, ok := specs[name]; !ok {
			r.log.Info("closing producer of removed cluster", zap.String("cluster", name))
			retired = append(retired, e)
		}
	}
	r.cur.Store(&next)
	for _, e := range retired {
		r.retire(e, r.closeTmo)
	}
	return failed
}

// pending reports whether some spec has no producer with its fingerprint.
func (r *Registry) pending() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := *r.cur.Load()
	for name, spec := range r.specs {
		if e, ok := cur[name]; !ok || e.fingerprint != spec.Fingerprint {
			return true
		}
	}
	return false
}

// Run retries failed builds every interval until ctx is done.
func (r *Registry) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if r.pending() {
				r.mu.Lock()
				specs := r.specs
				r.mu.Unlock()
				r.Apply(ctx, specs)
			}
		}
	}
}

// Close closes every producer once the requests using it are done
// (flushing, each close bounded by ctx) and waits for all closes, at most
// until ctx ends. Idempotent.
func (r *Registry) Close(ctx context.Context) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	cur := *r.cur.Load()
	empty := map[string]producerEntry{}
	r.cur.Store(&empty)
	r.mu.Unlock()
	timeout := r.closeTmo
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	for _, e := range cur {
		r.retire(e, timeout)
	}
	done := make(chan struct{})
	go func() {
		r.closing.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		r.log.Warn("producers still in use when the shutdown deadline passed")
	}
}
