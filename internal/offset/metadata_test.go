package offset

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// The metadata format is persisted in Kafka and read by later versions:
// these strings are frozen.
func TestNumberGolden(t *testing.T) {
	for _, c := range []struct {
		v    int64
		text string
	}{
		{0, "0"},
		{9, "9"},
		{10, "a"},
		{31, "v"},
		{32, "B0"},
		{100, "D4"},
		{831, "Zv"},
		{832, "BA0"},
		{21631, "ZZv"},
		{21632, "BAA0"},
		{math.MaxInt64, "DANTYUCVAKBVJv"},
	} {
		if got := string(appendNum(nil, uint64(c.v))); got != c.text {
			t.Errorf("appendNum(%d) = %q, want %q", c.v, got, c.text)
		}
		if got := numLen(uint64(c.v)); got != len(c.text) {
			t.Errorf("numLen(%d) = %d, want %d", c.v, got, len(c.text))
		}
		v, next, err := parseNum(c.text+"x", 0)
		if err != nil || v != c.v || next != len(c.text) {
			t.Errorf("parseNum(%q) = %d, %d, %v; want %d, %d", c.text, v, next, err, c.v, len(c.text))
		}
	}
	if n := numLen(math.MaxInt64); n != maxNumLen {
		t.Fatalf("numLen(MaxInt64) = %d, maxNumLen = %d", n, maxNumLen)
	}
}

func TestNumberRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 100000 {
		var v int64
		switch i % 3 {
		case 0:
			v = rng.Int64N(2000)
		case 1:
			v = rng.Int64()
		default:
			v = rng.Int64() >> rng.IntN(63)
		}
		b := appendNum([]byte("x"), uint64(v))
		if numLen(uint64(v)) != len(b)-1 {
			t.Fatalf("numLen(%d) = %d, encoded %q", v, numLen(uint64(v)), b)
		}
		got, next, err := parseNum(string(b), 1)
		if err != nil || got != v || next != len(b) {
			t.Fatalf("parseNum(%q) = %d, %d, %v; want %d", b, got, next, err, v)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, c := range []struct {
		name      string
		committed int64
		meta      string
		want      error
	}{
		{"negative committed", -1, "", ErrInvalidOffset},
		{"foreign format", 0, `{"owner":"x"}`, ErrMalformed},
		{"other version", 0, "ot2:001", ErrMalformed},
		{"prefix only", 0, "ot1:", ErrMalformed},
		{"no pairs", 0, "ot1:0", ErrMalformed},
		{"half a pair", 0, "ot1:0000", ErrMalformed},
		{"truncated number", 0, "ot1:00B", ErrMalformed},
		{"leading zero digit", 0, "ot1:A000", ErrMalformed},
		{"leading zero in run", 0, "ot1:0A00", ErrMalformed},
		{"foreign character", 0, "ot1:00w", ErrMalformed},
		{"space", 0, "ot1:0 01", ErrMalformed},
		{"base mismatch", 5, "ot1:001", ErrBaseMismatch},
		{"base mismatch by one", 100, "ot1:D50105", ErrBaseMismatch},
		{"number overflow", 0, "ot1:0ZZZZZZZZZZZZZZv0", ErrMalformed},
		{"run beyond MaxInt64", 0, "ot1:0DANTYUCVAKBVJv0", ErrMalformed},
		{"run ends past MaxInt64", 0, "ot1:00DANTYUCVAKBVJu", ErrMalformed},
		{"too long", 0, "ot1:0" + strings.Repeat("00", 2046), ErrMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr, err := Decode(c.committed, c.meta)
			if !errors.Is(err, c.want) || tr != nil {
				t.Fatalf("Decode(%d, %q) = %v, %v; want %v", c.committed, c.meta, tr, err, c.want)
			}
		})
	}
	// The largest run that still fits: [1, MaxInt64), i.e. up to the
	// largest valid offset.
	tr := mustDecode(t, 0, "ot1:00DANTYUCVAKBVJt")
	if s := spans(tr); len(s) != 1 || s[0] != (span{1, math.MaxInt64}) {
		t.Fatalf("spans %v", s)
	}
	if !tr.Start(0) || tr.Start(math.MaxInt64-1) || !tr.Done(0) || tr.Committable() != math.MaxInt64 {
		t.Fatalf("%v", tr)
	}
	// Exactly at the limit is accepted.
	mustDecode(t, 32, "ot1:B0"+strings.Repeat("00", 2045))
}

// randomTracker builds a tracker by a random walk of starts (with gaps),
// finishes and nacks (offsets left unfinished).
func randomTracker(rng *rand.Rand, committed int64, ops int, opts ...Option) *Tracker {
	tr := New(committed, opts...)
	var started []int64
	for range ops {
		switch r := rng.IntN(10); {
		case r < 5:
			o := tr.Next()
			if rng.IntN(8) == 0 {
				o += 1 + rng.Int64N(100)
			}
			if tr.Start(o) {
				started = append(started, o)
			}
		case len(started) > 0:
			i := rng.IntN(len(started))
			if r < 9 { // r == 9 leaves the message unfinished (nack)
				tr.Done(started[i])
			}
			started[i] = started[len(started)-1]
			started = started[:len(started)-1]
		}
	}
	return tr
}

// TestRoundTripProperty: for random trackers, the metadata decodes into a
// tracker that lists the same finished offsets, re-encodes unchanged, skips
// exactly the finished offsets, and commits past them once the offsets that
// were in flight are redelivered and finished.
func TestRoundTripProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 2000 {
		committed := rng.Int64N(1 << 40)
		if i%10 == 0 {
			committed = math.MaxInt64 - 1<<20
		}
		var opts []Option
		if i%4 == 0 {
			opts = append(opts, WithMaxMetadataLen(MinMetadataLen))
		}
		tr := randomTracker(rng, committed, rng.IntN(600), opts...)
		checkRoundTrip(t, tr)

		meta, complete := tr.AppendMetadata(nil)
		r := mustDecode(t, tr.Committable(), string(meta), opts...)
		finished := spans(r)
		// Redeliver everything from the committed offset to Next(): the
		// listed offsets are skipped, the others start and then finish.
		end := tr.Next()
		if n := len(finished); n > 0 {
			end = max(end, finished[n-1].hi)
		}
		inSpans := func(o int64) bool {
			for _, s := range finished {
				if o >= s.lo && o < s.hi {
					return true
				}
			}
			return false
		}
		for o := tr.Committable(); o < end; o++ {
			if got := r.Start(o); got == inSpans(o) {
				t.Fatalf("case %d: restored Start(%d) = %v with finished %v (complete %v)", i, o, got, finished, complete)
			}
			r.Done(o)
		}
		if r.Committable() != end || r.InFlight() != 0 || r.Metadata() != "" {
			t.Fatalf("case %d: after redelivery %v, metadata %q; want committable %d", i, r, r.Metadata(), end)
		}
	}
}

// TestEncodedLenBoundAdversarial: every other offset finished over the full
// window, with a 14-digit base, is the worst case and exactly fits.
func TestEncodedLenBoundAdversarial(t *testing.T) {
	for _, limit := range []int{DefaultMaxMetadataLen, MinMetadataLen, 1000, 1 << 14} {
		w := MaxWindow(limit)
		if b := EncodedLenBound(w); b > limit {
			t.Fatalf("limit %d: EncodedLenBound(MaxWindow) = %d", limit, b)
		}
		if b := EncodedLenBound(w + 1); b <= limit {
			t.Fatalf("limit %d: MaxWindow %d is not the largest (bound(w+1) = %d)", limit, w, b)
		}
		for _, window := range []int{w, w - 1, w + 1, w + 2, 2 * w} {
			base := int64(math.MaxInt64 - 3*window - 10) // base needs 14 characters
			if numLen(uint64(base)) != maxNumLen {
				t.Fatalf("base %d is not a worst-case base", base)
			}
			tr := New(base, WithMaxMetadataLen(limit))
			for o := base; o < base+int64(window); o++ {
				tr.Start(o)
			}
			for o := base + 1; o < base+int64(window); o += 2 {
				tr.Done(o)
			}
			meta, complete := tr.AppendMetadata(nil)
			if len(meta) > limit {
				t.Fatalf("limit %d window %d: %d bytes", limit, window, len(meta))
			}
			if len(meta) > EncodedLenBound(window) {
				t.Fatalf("limit %d window %d: %d bytes > bound %d", limit, window, len(meta), EncodedLenBound(window))
			}
			if window <= w && !complete {
				t.Fatalf("limit %d window %d <= MaxWindow %d: truncated", limit, window, w)
			}
			if window == w && window%2 == 0 && len(meta) != limit {
				// Even window: the bound is attained exactly.
				t.Fatalf("limit %d window %d: %d bytes, want exactly %d", limit, window, len(meta), limit)
			}
			if window > w+1 && complete {
				t.Fatalf("limit %d window %d > MaxWindow %d: not truncated", limit, window, w)
			}
			checkRoundTrip(t, tr)
		}
	}
	if EncodedLenBound(0) != 0 || EncodedLenBound(1) != 0 || MaxWindow(10) != 1 {
		t.Fatal("degenerate bounds")
	}
}

// TestTruncationDropsHighRuns: what is left out is the high end, and the
// restored tracker redelivers exactly those offsets.
func TestTruncationDropsHighRuns(t *testing.T) {
	tr := New(0, WithMaxMetadataLen(MinMetadataLen))
	for o := range int64(200) {
		tr.Start(o)
	}
	for o := int64(1); o < 200; o += 2 {
		tr.Done(o)
	}
	meta, complete := tr.AppendMetadata(nil)
	if complete || len(meta) > MinMetadataLen {
		t.Fatalf("%d bytes, complete %v", len(meta), complete)
	}
	if len(meta) != 63 { // header "ot1:0" (5 bytes) + 29 pairs of 2
		t.Fatalf("%d bytes", len(meta))
	}
	r := mustDecode(t, 0, string(meta), WithMaxMetadataLen(MinMetadataLen))
	s := spans(r)
	if len(s) != 29 || s[0] != (span{1, 2}) || s[28] != (span{57, 58}) {
		t.Fatalf("restored spans %v", s)
	}
	if r.Start(57) || !r.Start(59) {
		t.Fatal("restored tracker must skip 57 and deliver 59")
	}
}

func TestWithMaxMetadataLenClamps(t *testing.T) {
	if tr := New(0, WithMaxMetadataLen(1)); tr.limit != MinMetadataLen {
		t.Fatalf("limit %d", tr.limit)
	}
	if tr := New(0); tr.limit != DefaultMaxMetadataLen {
		t.Fatalf("limit %d", tr.limit)
	}
}

func TestMetadataExample(t *testing.T) {
	// The example of the package documentation.
	tr := New(100)
	for o := int64(100); o < 110; o++ {
		tr.Start(o)
		if o != 100 && o != 103 {
			tr.Done(o)
		}
	}
	if got := tr.Metadata(); got != "ot1:D40105" {
		t.Fatalf("Metadata() = %q", got)
	}
}
