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
}

// Registry owns the producers of all broker clusters. Get is lock-free;
// Apply and Close are serialised by mu. Replaced producers are closed in the
// background (their in-flight records complete first); Close waits for them.
type Registry struct {
	log *zap.Logger

	cur atomic.Pointer[map[string]producerEntry]

	mu       sync.Mutex
	specs    map[string]ClusterSpec // last applied, for the rebuild loop
	closing  sync.WaitGroup         // background closes of replaced producers
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

// Get returns the producer of cluster or nil.
func (r *Registry) Get(cluster string) mq.Producer {
	if e, ok := (*r.cur.Load())[cluster]; ok {
		return e.p
	}
	return nil
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
	var retired []mq.Producer
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
		next[name] = producerEntry{fingerprint: spec.Fingerprint, p: p}
		if e, ok := old[name]; ok {
			retired = append(retired, e.p)
		}
	}
	for name, e := range old {
		if _, ok := specs[name]; !ok {
			r.log.Info("closing producer of removed cluster", zap.String("cluster", name))
			retired = append(retired, e.p)
		}
	}
	r.cur.Store(&next)
	for _, p := range retired {
		r.closing.Add(1)
		go func() {
			defer r.closing.Done()
			cctx, cancel := context.WithTimeout(context.Background(), r.closeTmo)
			defer cancel()
			if err := p.Close(cctx); err != nil {
				r.log.Warn("closing replaced producer", zap.Error(err))
			}
		}()
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

// Close closes every producer (flushing, bounded by ctx) and waits for
// background closes. Idempotent.
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
	var wg sync.WaitGroup
	for name, e := range cur {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.p.Close(ctx); err != nil {
				r.log.Warn("closing producer", zap.String("cluster", name), zap.Error(err))
			}
		}()
	}
	wg.Wait()
	r.closing.Wait()
}
