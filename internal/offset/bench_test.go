package offset

import (
	"math/rand/v2"
	"testing"
)

const benchWindow = 1000

// BenchmarkStartDone is the per-message hot path: one Start, one Done and
// one Committable, with benchWindow messages in flight.
func BenchmarkStartDone(b *testing.B) {
	// in-order: messages finish in the order they started.
	b.Run("in-order", func(b *testing.B) {
		tr := New(0)
		for o := range int64(benchWindow) {
			tr.Start(o)
		}
		b.ReportAllocs()
		var sink int64
		o := int64(benchWindow)
		for b.Loop() {
			tr.Start(o)
			tr.Done(o - benchWindow)
			sink += tr.Committable()
			o++
		}
		_ = sink
	})
	// shuffled: finish order is a random permutation within each block of
	// benchWindow, so the finished runs fragment.
	b.Run("shuffled", func(b *testing.B) { benchShuffled(b, 1) })
	// gaps: every other offset is missing (compacted Kafka partition), so
	// Done takes the binary-search path.
	b.Run("gaps", func(b *testing.B) { benchShuffled(b, 2) })
}

func benchShuffled(b *testing.B, step int64) {
	rng := rand.New(rand.NewPCG(7, 8))
	perm := rng.Perm(benchWindow)
	tr := New(0)
	for i := range int64(benchWindow) {
		tr.Start(i * step)
	}
	b.ReportAllocs()
	var sink int64
	i := int64(benchWindow)
	for b.Loop() {
		tr.Start(i * step)
		block := (i - benchWindow) / benchWindow * benchWindow
		tr.Done((block + int64(perm[i%benchWindow])) * step)
		sink += tr.Committable()
		i++
	}
	_ = sink
}

// BenchmarkMetadata encodes a tracker with 1000 messages in flight.
func BenchmarkMetadata(b *testing.B) {
	// every-other: the worst case, 1000 in flight and 1000 finished runs.
	everyOther := New(1 << 40)
	for o := int64(1 << 40); o < 1<<40+2*benchWindow; o++ {
		everyOther.Start(o)
		if o%2 == 1 {
			everyOther.Done(o)
		}
	}
	// random: 1000 in flight scattered over 10000 offsets.
	rng := rand.New(rand.NewPCG(9, 10))
	random := New(0)
	for o := range int64(10 * benchWindow) {
		random.Start(o)
	}
	for o := range int64(10 * benchWindow) {
		if o != 0 && rng.IntN(10) != 0 {
			random.Done(o)
		}
	}
	for _, c := range []struct {
		name string
		tr   *Tracker
	}{{"every-other", everyOther}, {"random", random}} {
		b.Run(c.name+"/Metadata", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = c.tr.Metadata()
			}
			b.ReportMetric(float64(len(c.tr.Metadata())), "bytes/meta")
			b.ReportMetric(float64(c.tr.InFlight()), "inflight")
		})
		b.Run(c.name+"/AppendMetadata", func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, DefaultMaxMetadataLen)
			for b.Loop() {
				buf, _ = c.tr.AppendMetadata(buf[:0])
			}
		})
		meta := c.tr.Metadata()
		committed := c.tr.Committable()
		b.Run(c.name+"/Decode", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(committed, meta); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
