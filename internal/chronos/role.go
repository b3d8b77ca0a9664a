package chronos

import (
	"maps"
	"sync"
)

// role is this node's master/backup state (behaviour.md §3.7) and the
// master's last published progress. All methods are safe for concurrent
// use; it is a leaf lock (nothing is called while it is held).
//
//   - elected: the ZooKeeper election says this node leads (standAlone: always).
//   - master: elected and the local seek has reached the published seek;
//     only then does the node deliver and publish. Demotion is immediate.
//   - A node that is not master processes a second only below the
//     published seek, and ingests an inner message only below the published
//     offset of its qid.
type role struct {
	mu        sync.Mutex
	elected   bool
	master    bool
	known     bool             // the published progress was read at least once
	published bool             // a master has published a seek
	pubSeek   int64            // next second the master will process
	offsets   map[string]int64 // qid → master's committed offset
	changed   chan struct{}    // closed and replaced on every change
	onMaster  func(bool)       // metrics hook, called under mu
}

func newRole(standAlone bool, onMaster func(bool)) *role {
	if onMaster == nil {
		onMaster = func(bool) {}
	}
	r := &role{changed: make(chan struct{}), onMaster: onMaster}
	if standAlone {
		r.elected, r.master, r.known = true, true, true
	}
	onMaster(r.master)
	return r
}

// notify wakes waiters; called with mu held.
func (r *role) notify() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// Changed returns a channel closed at the next change of role or
// published progress.
func (r *role) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// Master reports whether the node acts as master.
func (r *role) Master() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.master
}

// SetElected records the election result; losing it demotes at once.
func (r *role) SetElected(elected bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.elected == elected {
		return
	}
	r.elected = elected
	if !elected && r.master {
		r.master = false
		r.onMaster(false)
	}
	r.notify()
}

// SetPublished records the master's published seek and offsets (read by a
// non-master from ZooKeeper). offsets nil keeps the previous ones.
func (r *role) SetPublished(seek int64, haveSeek bool, offsets map[string]int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := !r.known || haveSeek != r.published || seek != r.pubSeek || (offsets != nil && !maps.Equal(offsets, r.offsets))
	r.known, r.published, r.pubSeek = true, haveSeek, seek
	if offsets != nil {
		r.offsets = offsets
	}
	if changed {
		r.notify()
	}
}

// Promote makes an elected node master once the published progress was
// read (absent counts) and its local seek (the next second to process) has
// reached the published seek; it reports whether the node is master.
func (r *role) Promote(seek int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.elected && !r.master && r.known && (!r.published || seek >= r.pubSeek) {
		r.master = true
		r.onMaster(true)
		r.notify()
	}
	return r.master
}

// MayProcess reports whether second sec may be processed: always for the
// master, below the published seek otherwise.
func (r *role) MayProcess(sec int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.master || (r.published && sec < r.pubSeek)
}

// Allowed reports whether an inner message at offset of qid may be
// ingested: always for the master; otherwise only when the master's
// committed offset (the next offset it will read) is beyond it.
func (r *role) Allowed(qid string, offset int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.master {
		return true
	}
	committed, ok := r.offsets[qid]
	return ok && offset < committed
}
