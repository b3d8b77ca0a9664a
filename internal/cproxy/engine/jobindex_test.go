package engine

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestJobIndexMatchesAMap: random admissions (ascending offsets with gaps)
// and removals in any order give the same lookups, count and iteration as
// a map, and the ring never keeps finished slots in front.
func TestJobIndexMatchesAMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var x jobIndex
	ref := map[int64]*job{}
	next := int64(100)
	for step := range 20000 {
		if r.IntN(3) > 0 || len(ref) == 0 {
			next += 1 + int64(r.IntN(3)) // gaps, as compaction or markers leave
			j := &job{off: next}
			x.add(j)
			ref[j.off] = j
		} else {
			var victim *job
			if r.IntN(2) == 0 { // the oldest, as most acks go
				for _, j := range ref {
					if victim == nil || j.off < victim.off {
						victim = j
					}
				}
			} else {
				for _, j := range ref {
					victim = j
					break
				}
			}
			x.remove(victim)
			x.remove(victim) // twice: a no-op
			delete(ref, victim.off)
		}
		if x.len() != len(ref) {
			t.Fatalf("step %d: len %d, want %d", step, x.len(), len(ref))
		}
		if x.q.len() > 0 && x.q.front().j == nil {
			t.Fatalf("step %d: a finished slot at the front", step)
		}
		probe := next - int64(r.IntN(50))
		if got, want := x.get(probe), ref[probe]; got != want {
			t.Fatalf("step %d: get(%d) = %v, want %v", step, probe, got, want)
		}
	}
	n, last := 0, int64(-1)
	x.each(func(j *job) {
		if ref[j.off] != j || j.off <= last {
			t.Fatalf("each: %d out of order or unknown", j.off)
		}
		last = j.off
		n++
	})
	if n != len(ref) {
		t.Fatalf("each visited %d of %d", n, len(ref))
	}
	if x.get(next+1) != nil || x.get(0) != nil {
		t.Fatal("found an offset never added")
	}
}

// TestJobIndexOutOfOrderAdd: an offset below the newest (which the tracker
// never starts) is still found in its place, and one added twice is
// replaced, not counted twice.
func TestJobIndexOutOfOrderAdd(t *testing.T) {
	var x jobIndex
	for _, off := range []int64{10, 20, 30} {
		x.add(&job{off: off})
	}
	j15, j5 := &job{off: 15}, &job{off: 5}
	x.add(j15)
	x.add(j5)
	again := &job{off: 20}
	x.add(again)
	var got []int64
	x.each(func(j *job) { got = append(got, j.off) })
	if want := []int64{5, 10, 15, 20, 30}; !slices.Equal(got, want) || x.len() != 5 {
		t.Fatalf("offsets %v (len %d), want %v", got, x.len(), want)
	}
	if x.get(15) != j15 || x.get(5) != j5 || x.get(20) != again {
		t.Fatal("lookup after out-of-order adds")
	}
}
