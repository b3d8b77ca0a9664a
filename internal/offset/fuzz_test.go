package offset

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

// FuzzDecode: Decode never panics, fails only with its sentinels, and
// whatever it accepts re-encodes to the same string.
func FuzzDecode(f *testing.F) {
	for _, c := range trackerCases {
		if c.restore != "" {
			f.Add(c.committed, c.restore)
		}
		if c.meta != "" && c.meta != "?" {
			f.Add(c.committ, c.meta)
		}
	}
	for _, s := range []string{"", "ot1:", "ot1:0", "ot1:000", "ot1:0000", "ot1:A000", "ot2:000",
		"ot1:00DANTYUCVAKBVJt", "ot1:00DANTYUCVAKBVJu", "ot1:0ZZZZZZZZZZZZZZv0", `{"x":1}`} {
		f.Add(int64(0), s)
	}
	f.Add(int64(math.MaxInt64), "ot1:DANTYUCVAKBVJv00")
	f.Add(int64(-1), "ot1:000")
	f.Fuzz(func(t *testing.T, committed int64, meta string) {
		tr, err := Decode(committed, meta)
		if err != nil {
			if tr != nil {
				t.Fatal("tracker returned with an error")
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBaseMismatch) && !errors.Is(err, ErrInvalidOffset) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if got := tr.Metadata(); got != meta {
			t.Fatalf("Decode(%d, %q) re-encodes as %q", committed, meta, got)
		}
		if tr.Committable() != committed || tr.Next() != committed || tr.InFlight() != 0 {
			t.Fatalf("decoded %v", tr)
		}
		// Listed offsets are skipped, the first unlisted one is delivered.
		if s := spans(tr); len(s) > 0 {
			if s[0].lo <= committed {
				t.Fatalf("span %v not above committed %d", s[0], committed)
			}
			if tr.Start(s[0].lo) || tr.Committable() != s[0].hi {
				t.Fatalf("after Start(%d): %v, spans %v", s[0].lo, tr, s)
			}
		}
	})
}

// model is a deliberately naive reference tracker: maps of offsets, linear
// scans. Its rules are the package documentation, restated:
//
//   - an offset below the last restart's committed offset is finished;
//   - a started offset is finished once Done;
//   - an offset below next that was never started is finished (a gap or an
//     offset skipped because the restored metadata listed it);
//   - an offset at or above next is finished iff the restored metadata
//     lists it.
type model struct {
	committed int64
	low       int64 // cached committable: offsets below it stay finished
	next      int64
	started   map[int64]bool // offset -> finished
	restored  map[int64]bool
}

func newModel(committed int64, restored map[int64]bool) *model {
	return &model{committed: committed, low: committed, next: committed, started: map[int64]bool{}, restored: restored}
}

func (m *model) finished(o int64) bool {
	if o < m.committed {
		return true
	}
	if done, ok := m.started[o]; ok {
		return done
	}
	return o < m.next || m.restored[o]
}

func (m *model) committable() int64 {
	for m.finished(m.low) {
		m.low++
	}
	return m.low
}

func (m *model) effNext() int64 { return max(m.next, m.committable()) }

func (m *model) start(o int64) bool {
	if o < m.effNext() || o == math.MaxInt64 {
		return false
	}
	m.next = o + 1
	if m.restored[o] {
		return false
	}
	m.started[o] = false
	return true
}

func (m *model) done(o int64) bool {
	if done, ok := m.started[o]; ok && !done {
		m.started[o] = true
		return true
	}
	return false
}

func (m *model) unfinished() []int64 {
	var u []int64
	for o, done := range m.started {
		if !done {
			u = append(u, o)
		}
	}
	slices.Sort(u)
	return u
}

// finishedAbove lists the finished offsets above committable as runs.
func (m *model) finishedAbove() []span {
	end := m.effNext()
	for o := range m.restored {
		end = max(end, o+1)
	}
	var s []span
	for o := m.committable(); o < end; o++ {
		if !m.finished(o) {
			continue
		}
		if n := len(s); n > 0 && s[n-1].hi == o {
			s[n-1].hi++
		} else {
			s = append(s, span{o, o + 1})
		}
	}
	return s
}

// FuzzOps runs random operation sequences against the tracker and the model
// and checks: identical results and state; committable never decreases (also
// across restarts); committable is at most every unfinished started offset;
// metadata within its limit and within EncodedLenBound of its window, and
// complete whenever that bound fits; metadata round-trips; a restart from
// the metadata continues with the same state.
//
// Input: byte 0 selects the committed offset and the metadata limit, then
// one byte per operation. The O(window) checks run after every operation
// of short inputs and after every 8th of long ones (and at the end).
func FuzzOps(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 4, 5, 6})
	f.Add([]byte{1, 0, 8, 16, 24, 0, 0, 5, 13, 7, 0, 6, 6, 6, 7, 0, 0})
	f.Add([]byte{0x83, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 13, 21, 29, 37, 45, 7, 0, 0, 0, 0, 0, 0, 0, 6, 6})
	f.Add([]byte{2, 0xf8, 0, 3, 11, 0xfc, 7, 0xf8, 6, 6, 6, 6})
	f.Add([]byte(strings.Repeat("\x00\x05\x00\x0d", 64) + "\x07" + strings.Repeat("\x00\x06", 40)))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || len(data) > 512 {
			return
		}
		committed := int64(data[0] & 0x3f)
		if data[0]&0x40 != 0 {
			committed = math.MaxInt64 - 1<<40 + committed // 14-digit numbers
		}
		var opts []Option
		if data[0]&0x80 != 0 {
			opts = append(opts, WithMaxMetadataLen(MinMetadataLen))
		}
		tr := New(committed, opts...)
		m := newModel(committed, nil)
		lastCommittable := committed

		for i, b := range data[1:] {
			arg := int64(b >> 3) // 0..31
			switch b & 7 {
			case 0, 1, 2: // start the next offset, or jump a gap
				o := m.effNext()
				if b&7 == 2 {
					o += arg
					if arg == 31 && o-m.committable() < 2000 {
						o += 100 // a long gap: multi-character runs
					}
				}
				if got, want := tr.Start(o), m.start(o); got != want {
					t.Fatalf("op %d: Start(%d) = %v, model %v", i, o, got, want)
				}
			case 3: // start an old offset: duplicate, gap, finished
				o := m.effNext() - 1 - arg
				if got, want := tr.Start(o), m.start(o); got != want {
					t.Fatalf("op %d: Start(%d) = %v, model %v", i, o, got, want)
				}
			case 4: // done of an arbitrary offset near the window
				o := m.committable() + arg - 2
				if got, want := tr.Done(o), m.done(o); got != want {
					t.Fatalf("op %d: Done(%d) = %v, model %v", i, o, got, want)
				}
			case 5, 6: // done of an in-flight offset (6: the oldest)
				u := m.unfinished()
				if len(u) == 0 {
					continue
				}
				o := u[0]
				if b&7 == 5 {
					o = u[int(arg)%len(u)]
				}
				if got, want := tr.Done(o), m.done(o); got != want {
					t.Fatalf("op %d: Done(%d) = %v, model %v", i, o, got, want)
				}
			case 7: // crash and restart from the committed state
				meta, complete := tr.AppendMetadata(nil)
				c := tr.Committable()
				r, err := Decode(c, string(meta), opts...)
				if err != nil {
					t.Fatalf("op %d: Decode(%d, %q): %v", i, c, meta, err)
				}
				want := m.finishedAbove()
				got := spans(r)
				if complete && !slices.Equal(got, want) {
					t.Fatalf("op %d: restored %v, model %v", i, got, want)
				}
				if !complete && !isPrefixOf(got, want) {
					t.Fatalf("op %d: truncated %v not a prefix of %v", i, got, want)
				}
				restored := map[int64]bool{}
				for _, s := range got {
					for o := s.lo; o < s.hi; o++ {
						restored[o] = true
					}
				}
				tr, m = r, newModel(c, restored)
			}
			full := len(data) <= 128 || i%8 == 0 || i == len(data)-2
			checkAgainstModel(t, i, tr, m, &lastCommittable, full)
		}
	})
}

func checkAgainstModel(t *testing.T, op int, tr *Tracker, m *model, last *int64, full bool) {
	t.Helper()
	c := tr.Committable()
	if want := m.committable(); c != want {
		t.Fatalf("op %d: Committable() = %d, model %d", op, c, want)
	}
	if c < *last {
		t.Fatalf("op %d: Committable() went back from %d to %d", op, *last, c)
	}
	*last = c
	if got, want := tr.Next(), m.effNext(); got != want {
		t.Fatalf("op %d: Next() = %d, model %d", op, got, want)
	}
	u := m.unfinished()
	if tr.InFlight() != len(u) {
		t.Fatalf("op %d: InFlight() = %d, model %d", op, tr.InFlight(), len(u))
	}
	if len(u) > 0 && c > u[0] {
		t.Fatalf("op %d: Committable() = %d above unfinished offset %d", op, c, u[0])
	}
	if !full {
		return
	}
	want := m.finishedAbove()
	if got := spans(tr); !slices.Equal(got, want) {
		t.Fatalf("op %d: finished runs %v, model %v", op, got, want)
	}
	meta, complete := tr.AppendMetadata(nil)
	window := 0
	if n := len(want); n > 0 {
		window = int(want[n-1].hi - c)
	}
	bound := EncodedLenBound(window)
	if len(meta) > tr.limit || len(meta) > bound {
		t.Fatalf("op %d: metadata %d bytes, limit %d, bound %d (window %d)", op, len(meta), tr.limit, bound, window)
	}
	if bound <= tr.limit && !complete {
		t.Fatalf("op %d: truncated although window %d fits", op, window)
	}
	checkRoundTrip(t, tr)
}
