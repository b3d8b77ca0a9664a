package ratelimit

import (
	"testing"
	"time"
)

// fixedClock lets tests control time: no sleeps.
type fixedClock struct{ t time.Time }

func newTestLimiter(node, ratio float64, topics map[string]float64, c *fixedClock) *Limiter {
	l := New(node, ratio)
	l.now = func() time.Time { return c.t }
	l.Update(node, ratio, topics)
	return l
}

func count(l *Limiter, key string, n int) (admitted, warned int) {
	for range n {
		switch l.TryEnter(key) {
		case Admitted:
			admitted++
		case AdmittedWarning:
			admitted++
			warned++
		}
	}
	return
}

func TestWarningSplit(t *testing.T) {
	c := &fixedClock{t: time.Unix(1000, 0)}
	// Topic limit 100/s at ratio 0.8: 80 normal + 20 warning burst.
	l := newTestLimiter(1e6, 0.8, map[string]float64{"t": 100}, c)
	adm, warn := count(l, "t", 200)
	if adm != 100 || warn != 20 {
		t.Fatalf("admitted %d (warning %d), want 100 (20)", adm, warn)
	}
	// One second later the buckets are full again.
	c.t = c.t.Add(time.Second)
	if adm, _ := count(l, "t", 200); adm != 100 {
		t.Fatalf("after refill admitted %d, want 100", adm)
	}
}

func TestUnknownKeyRejected(t *testing.T) {
	c := &fixedClock{t: time.Unix(1000, 0)}
	l := newTestLimiter(1e6, 0.9, map[string]float64{"t": 10}, c)
	if got := l.TryEnter("other"); got != Rejected {
		t.Fatalf("unknown key: %v, want Rejected", got)
	}
}

func TestNodeRejectionReturnsTopicToken(t *testing.T) {
	c := &fixedClock{t: time.Unix(1000, 0)}
	// Node admits 10 in total; topics a and b 10 each.
	l := newTestLimiter(10, 0.5, map[string]float64{"a": 10, "b": 10}, c)
	if adm, _ := count(l, "a", 10); adm != 10 {
		t.Fatalf("a admitted %d, want 10", adm)
	}
	// Node exhausted: b is rejected, and b's topic tokens must be returned.
	if adm, _ := count(l, "b", 5); adm != 0 {
		t.Fatalf("b admitted %d with node exhausted", adm)
	}
	c.t = c.t.Add(time.Second)
	// After refill the node again admits 10; b must still have its full 10.
	if adm, _ := count(l, "b", 20); adm != 10 {
		t.Fatalf("b admitted %d after refill, want 10 (tokens leaked)", adm)
	}
}

func TestUpdateInPlace(t *testing.T) {
	c := &fixedClock{t: time.Unix(1000, 0)}
	l := newTestLimiter(1e6, 0.9, map[string]float64{"t": 10, "gone": 5}, c)
	l.Update(1e6, 0.9, map[string]float64{"t": 1000})
	c.t = c.t.Add(time.Second)
	if adm, _ := count(l, "t", 2000); adm != 1000 {
		t.Fatalf("after raise admitted %d, want 1000", adm)
	}
	if l.TryEnter("gone") != Rejected {
		t.Fatal("removed key still admitted")
	}
}

func BenchmarkTryEnter(b *testing.B) {
	l := New(1e12, 0.9)
	l.Update(1e12, 0.9, map[string]float64{"t": 1e12})
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.TryEnter("t")
		}
	})
}
