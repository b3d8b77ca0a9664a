package rocketmq

import (
	"testing"
	"time"
)

func items(t0 time.Time, sizes ...int) []*abItem {
	out := make([]*abItem, len(sizes))
	for i, s := range sizes {
		out[i] = &abItem{size: s, added: t0}
	}
	return out
}

// The passive batcher decides when a batch is due without a clock of its
// own: numbered cases of (queued sizes, time since the oldest, force) →
// batch sizes taken.
func TestBatcherNext(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const wait = 5 * time.Millisecond
	cases := []struct {
		name    string
		sizes   []int
		elapsed time.Duration
		force   bool
		want    []int // sizes of consecutive Next results until nil
	}{
		{"1 empty", nil, time.Hour, false, nil},
		{"2 lone record before its wait", []int{10}, wait - 1, false, nil},
		{"3 lone record at its wait", []int{10}, wait, false, []int{1}},
		{"4 full by count", []int{1, 1, 1, 1, 1}, 0, false, []int{4}},
		{"5 full by count then remainder waits", []int{1, 1, 1, 1, 1, 1, 1, 1, 1}, 0, false, []int{4, 4}},
		{"6 full by bytes: next would reach max", []int{40, 40, 20}, 0, false, []int{2}},
		{"7 bytes below max, not full", []int{40, 40, 19}, 0, false, nil},
		{"8 bytes below max, due", []int{40, 40, 19}, wait, false, []int{3}},
		{"9 one oversize record goes alone", []int{500, 1}, 0, false, []int{1}},
		{"10 force takes everything in limits", []int{1, 1}, 0, true, []int{2}},
		{"11 force, several batches", []int{60, 60, 60}, 0, true, []int{1, 1, 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := batcher{maxMsgs: 4, maxBytes: 100, wait: wait}
			for _, it := range items(t0, c.sizes...) {
				b.Add(it)
			}
			var got []int
			for {
				batch := b.Next(t0.Add(c.elapsed), c.force)
				if batch == nil {
					break
				}
				got = append(got, len(batch))
			}
			if len(got) != len(c.want) {
				t.Fatalf("batches %v, want %v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("batches %v, want %v", got, c.want)
				}
			}
		})
	}
}

func TestBatcherDeadline(t *testing.T) {
	b := batcher{maxMsgs: 4, maxBytes: 100, wait: 5 * time.Millisecond}
	if _, ok := b.Deadline(); ok {
		t.Fatal("deadline of an empty batcher")
	}
	t0 := time.Unix(1000, 0)
	b.Add(&abItem{size: 1, added: t0})
	b.Add(&abItem{size: 1, added: t0.Add(3 * time.Millisecond)})
	if d, ok := b.Deadline(); !ok || !d.Equal(t0.Add(5*time.Millisecond)) {
		t.Fatalf("deadline %v %v, want the oldest record's t0+5ms", d, ok)
	}
	if got := b.Drain(); len(got) != 2 || b.Len() != 0 {
		t.Fatalf("drain %d, left %d", len(got), b.Len())
	}
}

func BenchmarkBatcher(b *testing.B) {
	bt := batcher{maxMsgs: 32, maxBytes: 4096, wait: 0}
	it := &abItem{size: 100}
	now := time.Now()
	for range b.N {
		bt.Add(it)
		if bt.Len() >= 32 {
			bt.Next(now, false)
		}
	}
}
