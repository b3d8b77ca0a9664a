// Package ratelimit is pproxy's non-blocking admission limiter
// (behaviour.md §1.6): one pair of token buckets per topic key plus one pair
// for the whole node. Each pair splits its limit L into a "normal" bucket of
// L×ratio per second and a "warning" bucket of L×(1−ratio) per second, each
// able to burst about one second of its rate.
//
// Admission reserves from the topic pair and then from the node pair; when
// the node rejects, the topic reservation is cancelled so no token is lost
// (DDMQ defect #20 is not reproduced).
package ratelimit

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Outcome of an admission attempt.
type Outcome int

const (
	// Rejected: no token in either bucket of the topic or of the node, or
	// the key has no buckets.
	Rejected Outcome = iota
	// Admitted from the normal buckets.
	Admitted
	// AdmittedWarning: admitted, but at least one warning bucket was used.
	AdmittedWarning
)

type pair struct {
	normal, warning *rate.Limiter
}

func newPair(limit, ratio float64) *pair {
	n, w := split(limit, ratio)
	// Fresh limiters start with a full bucket (one second of rate).
	return &pair{
		normal:  rate.NewLimiter(rate.Limit(n), burstFor(n)),
		warning: rate.NewLimiter(rate.Limit(w), burstFor(w)),
	}
}

func burstFor(r float64) int {
	if r <= 0 {
		return 0
	}
	return int(math.Max(1, math.Ceil(r)))
}

func split(limit, ratio float64) (normal, warning float64) {
	normal = limit * ratio
	warning = limit - normal
	if warning < 0 {
		warning = 0
	}
	return normal, warning
}

func (p *pair) set(limit, ratio float64, now time.Time) {
	n, w := split(limit, ratio)
	p.normal.SetLimitAt(now, rate.Limit(n))
	p.normal.SetBurstAt(now, burstFor(n))
	p.warning.SetLimitAt(now, rate.Limit(w))
	p.warning.SetBurstAt(now, burstFor(w))
}

// take reserves one token from normal, else warning. It returns the
// reservation (to cancel on a later rejection), whether the warning bucket
// was used, and false if neither had a token.
func (p *pair) take(now time.Time) (*rate.Reservation, bool, bool) {
	if r := p.normal.ReserveN(now, 1); r.OK() {
		if r.DelayFrom(now) == 0 {
			return r, false, true
		}
		r.CancelAt(now)
	}
	if r := p.warning.ReserveN(now, 1); r.OK() {
		if r.DelayFrom(now) == 0 {
			return r, true, true
		}
		r.CancelAt(now)
	}
	return nil, false, false
}

// Limiter is safe for concurrent use.
type Limiter struct {
	mu     sync.RWMutex
	ratio  float64
	node   *pair
	topics map[string]*pair
	now    func() time.Time
}

// New returns a limiter with a node limit and no topics.
func New(nodeLimit, ratio float64) *Limiter {
	return &Limiter{ratio: ratio, node: newPair(nodeLimit, ratio), topics: map[string]*pair{}, now: time.Now}
}

// Update applies a new configuration in place: existing buckets keep their
// tokens and get the new rates; keys not in topics are removed.
func (l *Limiter) Update(nodeLimit, ratio float64, topics map[string]float64) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ratio = ratio
	l.node.set(nodeLimit, ratio, now)
	for k, lim := range topics {
		if p, ok := l.topics[k]; ok {
			p.set(lim, ratio, now)
		} else {
			l.topics[k] = newPair(lim, ratio)
		}
	}
	for k := range l.topics {
		if _, ok := topics[k]; !ok {
			delete(l.topics, k)
		}
	}
}

// TryEnter admits one request for key without blocking.
func (l *Limiter) TryEnter(key string) Outcome {
	now := l.now()
	l.mu.RLock()
	tp, ok := l.topics[key]
	node := l.node
	l.mu.RUnlock()
	if !ok {
		return Rejected
	}
	tr, tw, ok := tp.take(now)
	if !ok {
		return Rejected
	}
	_, nw, ok := node.take(now)
	if !ok {
		tr.CancelAt(now)
		return Rejected
	}
	if tw || nw {
		return AdmittedWarning
	}
	return Admitted
}
