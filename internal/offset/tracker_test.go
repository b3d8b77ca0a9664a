package offset

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Operations in the table are written as tokens:
//
//	S<o>  Start(o) must report true     s<o>  Start(o) must report false
//	D<o>  Done(o) must report true      d<o>  Done(o) must report false
//
// fin lists the finished offsets above Committable as inclusive ranges
// ("101-102,104-109"); meta is the exact Metadata string ("?" = not
// checked, for cases with 14-digit numbers).
var trackerCases = []struct {
	no        int
	name      string
	committed int64
	restore   string // metadata to Decode from; "" = New
	ops       string
	committ   int64
	next      int64
	inFlight  int
	fin       string
	meta      string
}{
	{1, "fresh at zero", 0, "", "", 0, 0, 0, "", ""},
	{2, "fresh at committed offset", 100, "", "", 100, 100, 0, "", ""},
	{3, "in order", 0, "", "S0 S1 S2 D0 D1 D2", 3, 3, 0, "", ""},
	{4, "head still in flight", 0, "", "S0 S1 S2 D2 D1", 0, 3, 1, "1-2", "ot1:001"},
	{5, "head finishes last", 0, "", "S0 S1 S2 D1 D2 D0", 3, 3, 0, "", ""},
	{6, "every other finished", 10, "", "S10 S11 S12 S13 S14 D11 D13", 10, 15, 3, "11,13", "ot1:a0000"},
	{7, "duplicate done ignored", 0, "", "S0 D0 d0", 1, 1, 0, "", ""},
	{8, "done of a never started offset ignored", 0, "", "S0 d5 d1", 0, 1, 1, "", ""},
	{9, "done below committable ignored", 50, "", "d49 d50", 50, 50, 0, "", ""},
	{10, "start below committable ignored", 50, "", "s49 s0", 50, 50, 0, "", ""},
	{11, "duplicate start ignored", 5, "", "S5 s5", 5, 6, 1, "", ""},
	{12, "skipped gap cannot be started or done", 0, "", "S0 S5 s3 d3", 0, 6, 2, "1-4", "ot1:003"},
	{13, "gap before the first start", 0, "", "S10", 10, 11, 1, "", ""},
	{14, "gap while in flight", 0, "", "S0 S10 D0", 10, 11, 1, "", ""},
	{15, "gap with nothing in flight", 0, "", "S0 D0 S7 D7", 8, 8, 0, "", ""},
	{16, "gap merges with finished run", 0, "", "S0 S1 S5 D1", 0, 6, 2, "1-4", "ot1:003"},
	{17, "gap then head done", 0, "", "S0 S1 S5 D1 D0", 5, 6, 1, "", ""},
	{18, "invalid offsets ignored", 0, "", "s-1 d-1 s9223372036854775807 d9223372036854775807", 0, 0, 0, "", ""},
	{19, "multi-character run length", 0, "", "S0 S40", 0, 41, 2, "1-39", "ot1:00B6"},
	{20, "restored metadata is re-encoded unchanged", 100, "ot1:D40105", "", 100, 100, 0, "101-102,104-109", "ot1:D40105"},
	{21, "restored offsets are skipped", 100, "ot1:D40105",
		"S100 s101 s102 S103 s104 s105 s106 s107 s108 s109 S110", 100, 111, 3, "101-102,104-109", "ot1:D40105"},
	{22, "restored run folds into committable", 100, "ot1:D40105", "S100 D100", 103, 103, 0, "104-109", "ot1:D705"},
	{23, "fold, then the skipped offset is below next", 100, "ot1:D40105", "S100 D100 s101 S103 D103", 110, 110, 0, "", ""},
	{24, "jump into a restored run", 100, "ot1:D40105", "s105", 110, 110, 0, "", ""},
	{25, "jump past restored runs", 100, "ot1:D40105", "S120", 120, 121, 1, "", ""},
	{26, "restored runs ahead of next are kept", 0, "ot1:011", "S0 D0", 1, 1, 0, "2-3", "ot1:101"},
	{27, "restored run adjacent to finished run merges", 0, "ot1:011", "S0 S1 s2 s3 S4 D1", 0, 5, 2, "1-3", "ot1:002"},
	{28, "done of a restored offset not yet reached", 0, "ot1:011", "d2 S0", 0, 1, 1, "2-3", "ot1:011"},
	{29, "huge offsets", math.MaxInt64 - 3, "",
		"S9223372036854775804 S9223372036854775805 S9223372036854775806 D9223372036854775805 s9223372036854775807",
		math.MaxInt64 - 3, math.MaxInt64, 2, "9223372036854775805", "?"},
	{30, "nack keeps committable (no done)", 7, "", "S7 S8 S9 D8 D9", 7, 10, 1, "8-9", "ot1:701"},
	{31, "start just past a restored run", 0, "ot1:011", "S0 S4", 0, 5, 2, "1-3", "ot1:002"},
	{32, "start at the end of a restored run", 0, "ot1:011", "S0 s3 S4 D0", 4, 5, 1, "", ""},
}

func TestTrackerTable(t *testing.T) {
	for _, c := range trackerCases {
		t.Run(fmt.Sprintf("%02d_%s", c.no, strings.ReplaceAll(c.name, " ", "_")), func(t *testing.T) {
			tr := mustDecode(t, c.committed, c.restore)
			for tok := range strings.FieldsSeq(c.ops) {
				applyToken(t, tr, tok)
			}
			if got := tr.Committable(); got != c.committ {
				t.Errorf("Committable() = %d, want %d", got, c.committ)
			}
			if got := tr.Next(); got != c.next {
				t.Errorf("Next() = %d, want %d", got, c.next)
			}
			if got := tr.InFlight(); got != c.inFlight {
				t.Errorf("InFlight() = %d, want %d", got, c.inFlight)
			}
			if got := finString(tr); got != c.fin {
				t.Errorf("finished = %q, want %q", got, c.fin)
			}
			meta := tr.Metadata()
			if c.meta != "?" && meta != c.meta {
				t.Errorf("Metadata() = %q, want %q", meta, c.meta)
			}
			checkRoundTrip(t, tr)
		})
	}
}

func applyToken(t *testing.T, tr *Tracker, tok string) {
	t.Helper()
	off, err := strconv.ParseInt(tok[1:], 10, 64)
	if err != nil {
		t.Fatalf("bad token %q", tok)
	}
	var got, want bool
	switch tok[0] {
	case 'S', 's':
		got, want = tr.Start(off), tok[0] == 'S'
	case 'D', 'd':
		got, want = tr.Done(off), tok[0] == 'D'
	default:
		t.Fatalf("bad token %q", tok)
	}
	if got != want {
		t.Fatalf("%s: reported %v, want %v (%v)", tok, got, want, tr)
	}
}

func mustDecode(t testing.TB, committed int64, meta string, opts ...Option) *Tracker {
	t.Helper()
	tr, err := Decode(committed, meta, opts...)
	if err != nil {
		t.Fatalf("Decode(%d, %q): %v", committed, meta, err)
	}
	return tr
}

// spans returns the finished runs above Committable.
func spans(tr *Tracker) []span {
	var s []span
	tr.finishedSpans(func(lo, hi int64) bool {
		s = append(s, span{lo, hi})
		return true
	})
	return s
}

func finString(tr *Tracker) string {
	var parts []string
	for _, s := range spans(tr) {
		if s.hi-s.lo == 1 {
			parts = append(parts, strconv.FormatInt(s.lo, 10))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", s.lo, s.hi-1))
		}
	}
	return strings.Join(parts, ",")
}

// checkRoundTrip checks that the metadata decodes into a tracker with the
// same committable offset and finished runs, and re-encodes unchanged.
func checkRoundTrip(t testing.TB, tr *Tracker) {
	t.Helper()
	meta, complete := tr.AppendMetadata(nil)
	if len(meta) > tr.limit {
		t.Fatalf("metadata is %d bytes, limit %d", len(meta), tr.limit)
	}
	r, err := Decode(tr.Committable(), string(meta), WithMaxMetadataLen(tr.limit))
	if err != nil {
		t.Fatalf("Decode(%d, %q): %v", tr.Committable(), meta, err)
	}
	if got := r.Metadata(); got != string(meta) {
		t.Fatalf("re-encoded %q, want %q", got, meta)
	}
	want, got := spans(tr), spans(r)
	if complete && !slices.Equal(got, want) {
		t.Fatalf("restored finished runs %v, want %v", got, want)
	}
	if !complete && !isPrefixOf(got, want) {
		t.Fatalf("truncated runs %v are not a prefix of %v", got, want)
	}
}

// isPrefixOf reports whether the runs p are the first runs of s: truncation
// leaves out whole runs at the high end.
func isPrefixOf(p, s []span) bool {
	if len(p) > len(s) {
		return false
	}
	for i := range p {
		if p[i] != s[i] {
			return false
		}
	}
	return true
}

// TestRingGrowAndShrink drives the ring far beyond its initial capacity and
// back, finishing in a random order, against a trivially correct model.
func TestRingGrowAndShrink(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tr := New(1000)
	const n = 20000
	offs := make([]int64, 0, n)
	o := int64(1000)
	for range n {
		o += 1 + int64(rng.IntN(3)/2) // occasional gaps: binary search path
		if !tr.Start(o) {
			t.Fatalf("Start(%d) = false", o)
		}
		offs = append(offs, o)
	}
	if c := len(tr.ring); c < n {
		t.Fatalf("ring capacity %d < %d", c, n)
	}
	rng.Shuffle(len(offs), func(i, j int) { offs[i], offs[j] = offs[j], offs[i] })
	unfinished := make(map[int64]bool, n)
	for _, o := range offs {
		unfinished[o] = true
	}
	minUnfinished := func() int64 {
		m := tr.Next()
		for o := range unfinished {
			m = min(m, o)
		}
		return m
	}
	for i, o := range offs {
		if !tr.Done(o) {
			t.Fatalf("Done(%d) = false", o)
		}
		delete(unfinished, o)
		if i%997 == 0 || len(unfinished) < 50 {
			if got, want := tr.Committable(), minUnfinished(); got != want {
				t.Fatalf("after %d done: Committable() = %d, want %d", i+1, got, want)
			}
		}
	}
	if tr.InFlight() != 0 || tr.Committable() != o+1 || tr.Metadata() != "" {
		t.Fatalf("drained tracker: %v, metadata %q", tr, tr.Metadata())
	}
	if len(tr.ring) > maxIdleRing {
		t.Fatalf("ring capacity %d kept after draining", len(tr.ring))
	}
	// Shrinking while in flight: one old message holds everything back.
	tr = New(0)
	for o := range int64(10000) {
		tr.Start(o)
	}
	for o := int64(1); o < 10000; o++ {
		tr.Done(o)
	}
	tr.Start(10000)
	tr.Done(0) // pops 10000 entries, leaving one
	if tr.Committable() != 10000 || tr.InFlight() != 1 || len(tr.ring) > maxIdleRing {
		t.Fatalf("%v with ring capacity %d", tr, len(tr.ring))
	}
}

func TestNewPanicsOnNegative(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New(-1) did not panic")
		}
	}()
	New(-1)
}

func TestString(t *testing.T) {
	tr := New(5)
	tr.Start(5)
	tr.Start(6)
	tr.Done(6)
	if got, want := tr.String(), "offset.Tracker{committable: 5, next: 7, inFlight: 1}"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}
